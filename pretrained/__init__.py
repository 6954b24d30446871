"""Known pretrained Chinese encoders: where to get them, and a checksum-verified download cache."""
from pretrained.cache import default_cache_dir, resolve_pretrained
from pretrained.registry import KNOWN, PretrainedCheckpoint

__all__ = ["KNOWN", "PretrainedCheckpoint", "default_cache_dir", "resolve_pretrained"]
