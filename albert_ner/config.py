"""Configuration as data: encoder, head and training settings, read from and saved as JSON."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

MODEL_CONFIG_FILE = "model_config.json"  # a trained model directory's ModelConfig

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
EMBEDDING_LAYOUTS = ("project_first", "project_last", "none")
LN_TYPES = ("postln", "preln")
# How characters find their vocabulary ids (data/vocab.py): "fold" (full-width/case folded first; what
# every model saved without a stated lookup used) or "exact_first" (the character as written first, as a
# pretrained encoder's own tokenizer does).
CHAR_LOOKUPS = ("fold", "exact_first")
DEFAULT_CHAR_LOOKUP = "fold"

# Supported range of each integer encoder field. Published encoders sit far inside these; a value
# outside is a typo or a damaged file, and would otherwise end in an out-of-memory error or a hang
# while TensorFlow builds the model.
ENCODER_INT_LIMITS: Dict[str, Tuple[int, int]] = {
    "vocab_size": (1, 2_000_000),
    "hidden_size": (1, 16_384),
    "num_hidden_layers": (0, 256),  # 0: embeddings straight into the head (preset "embedding-only")
    "num_attention_heads": (1, 256),
    "intermediate_size": (1, 131_072),
    "max_position_embeddings": (1, 65_536),
    "type_vocab_size": (1, 1_024),
    "embedding_size": (1, 16_384),
    "num_layer_groups": (1, 256),
    "task_type_vocab_size": (0, 1_024),
}
# Float encoder fields: (rule as written in messages, test).
ENCODER_FLOAT_RULES: Dict[str, Tuple[str, Callable[[float], bool]]] = {
    "hidden_dropout_prob": ("in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "attention_probs_dropout_prob": ("in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "initializer_range": (">= 0", lambda v: v >= 0.0),
    "layer_norm_eps": ("in (0, 1]", lambda v: 0.0 < v <= 1.0),
}
HEAD_INT_LIMITS: Dict[str, Tuple[int, int]] = {
    "lstm_units": (0, 16_384),  # 0: no BiLSTM
    "lexicon_dim": (0, 16_384),
    "pos_dim": (0, 16_384),
    "bigram_dim": (0, 16_384),
    "bigram_vocab_size": (0, 10_000_000),
}
HEAD_FLOAT_RULES: Dict[str, Tuple[str, Callable[[float], bool]]] = {
    "input_dropout": ("in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "dropout": ("in [0, 1)", lambda v: 0.0 <= v < 1.0),
}
# Largest encoder accepted, in bytes of float32 parameters (the optimizer needs twice as much again).
MAX_PARAM_BYTES_ENV = "ALBERT_NER_MAX_PARAM_BYTES"
DEFAULT_MAX_PARAM_BYTES = 8 * 2**30


def int_field_error(name: str, value: Any, low: int, high: int) -> Optional[str]:
    """Why `value` is not a valid integer field `name` in [low, high], or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an integer, got {value!r}"
    if value < low:
        return f"{name} {value} is smaller than the supported {low}"
    if value > high:
        return f"{name} {value} is larger than the supported {high}"
    return None


def float_field_error(name: str, value: Any, rule: str, ok: Callable[[float], bool]) -> Optional[str]:
    """Why `value` is not a valid finite number field `name` obeying `rule`, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if not ok(value):
        return f"{name} must be {rule}, got {value!r}"
    return None


def _human_bytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def field_errors(obj: Any, int_limits: Dict[str, Tuple[int, int]],
                 float_rules: Dict[str, Tuple[str, Callable[[float], bool]]]) -> List[str]:
    """Every integer and float field of a config that breaks its table entry."""
    errors = [int_field_error(n, getattr(obj, n), lo, hi) for n, (lo, hi) in int_limits.items()]
    errors += [float_field_error(n, getattr(obj, n), rule, ok) for n, (rule, ok) in float_rules.items()]
    return [e for e in errors if e]


def max_param_bytes() -> int:
    """The parameter-memory limit: $ALBERT_NER_MAX_PARAM_BYTES, or 8 GiB."""
    text = os.environ.get(MAX_PARAM_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PARAM_BYTES
    if not re.fullmatch(r"\d+", text):
        raise ValueError(f"{MAX_PARAM_BYTES_ENV}={text!r}: expected a whole number of bytes")
    return int(text)


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Shape and flavour of the Transformer encoder (ALBERT, BERT or ERNIE)."""

    vocab_size: int = 21128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_tanh"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    # ALBERT factorised embedding: word vectors of width embedding_size projected to hidden_size.
    # "project_first" (brightmart albert_zh): project, then add position/type embeddings, LN over H.
    # "project_last" (Google ALBERT): add position/type at width E, LN over E, then dense E->H.
    # "none" (BERT/ERNIE): embedding_size == hidden_size, no projection.
    embedding_size: int = 768
    embedding_layout: str = "none"
    # Cross-layer sharing: layer i uses group int(i * num_layer_groups / num_hidden_layers).
    # ALBERT: 1 group shared by all layers; BERT/ERNIE: one group per layer.
    num_layer_groups: int = 12
    ln_type: str = "postln"
    # ERNIE 3.0 (use_task_id): a task-type embedding table whose row 0 is added to every token.
    task_type_vocab_size: int = 0

    def __post_init__(self) -> None:
        errors = field_errors(self, ENCODER_INT_LIMITS, ENCODER_FLOAT_RULES)
        if self.hidden_act not in ACTIVATIONS:
            errors.append(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if self.embedding_layout not in EMBEDDING_LAYOUTS:
            errors.append(f"embedding_layout must be one of {EMBEDDING_LAYOUTS}, got {self.embedding_layout!r}")
        if self.ln_type not in LN_TYPES:
            errors.append(f"ln_type must be one of {LN_TYPES}, got {self.ln_type!r}")
        if errors:  # the checks below need well-typed, in-range sizes
            raise ValueError("invalid encoder config: " + "; ".join(errors))
        if self.hidden_size % self.num_attention_heads:
            errors.append(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}")
        if self.embedding_layout == "none" and self.embedding_size != self.hidden_size:
            errors.append("embedding_layout 'none' needs embedding_size == hidden_size")
        if not 1 <= self.num_layer_groups <= max(1, self.num_hidden_layers):
            errors.append(f"num_layer_groups must be in 1..num_hidden_layers, got {self.num_layer_groups}")
        if not errors:
            errors += self._memory_errors()
        if errors:
            raise ValueError("invalid encoder config: " + "; ".join(errors))

    def parameter_counts(self) -> Dict[str, Tuple[int, str]]:
        """Encoder parameters by part: part -> (count, the fields that size it, with their values)."""
        v, h, e, i = self.vocab_size, self.hidden_size, self.embedding_size, self.intermediate_size
        width = e if self.embedding_layout == "project_last" else h  # where position/type vectors are added
        groups = self.num_layer_groups if self.num_hidden_layers else 0
        projection = {"project_first": e * h, "project_last": e * h + h, "none": 0}[self.embedding_layout]
        return {
            "word embeddings": (v * e, f"vocab_size {v} x embedding_size {e}"),
            "position embeddings": (self.max_position_embeddings * width,
                                    f"max_position_embeddings {self.max_position_embeddings} x width {width}"),
            "segment embeddings and LayerNorm": (
                (self.type_vocab_size + self.task_type_vocab_size + 2) * width,
                f"type_vocab_size {self.type_vocab_size} + task_type_vocab_size {self.task_type_vocab_size}"),
            "embedding projection": (projection, f"embedding_size {e} x hidden_size {h}"),
            "attention": (groups * (4 * h * h + 8 * h), f"num_layer_groups {groups} x 4 x hidden_size {h}^2"),
            "feed-forward": (groups * (2 * h * i + i + h),
                             f"num_layer_groups {groups} x 2 x hidden_size {h} x intermediate_size {i}"),
        }

    def num_parameters(self) -> int:
        """How many weights the encoder will have (shared layer groups counted once)."""
        return sum(count for count, _ in self.parameter_counts().values())

    def _memory_errors(self) -> List[str]:
        limit = max_param_bytes()
        need = 4 * self.num_parameters()
        if need <= limit:
            return []
        part, (count, fields) = max(self.parameter_counts().items(), key=lambda kv: kv[1][0])
        return [f"the encoder would hold {_human_bytes(need)} of float32 parameters, more than the "
                f"{_human_bytes(limit)} allowed (${MAX_PARAM_BYTES_ENV}); the largest part is the {part}: "
                f"{fields} = {count:,} parameters"]

    @classmethod
    def from_pretrained_json(cls, path: str | Path, **overrides: Any) -> "EncoderConfig":
        """Read an albert_zh, Google ALBERT, BERT or ERNIE config file and map it onto this class."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read encoder config: {exc}") from exc
        return cls.from_pretrained_dict(raw, source=str(path), **overrides)

    @classmethod
    def from_pretrained_dict(cls, raw: Dict[str, Any], source: str = "<config>", **overrides: Any) -> "EncoderConfig":
        """Map a published config dict (format detected from its keys) onto EncoderConfig.

        Errors name `source` and the field: a non-number, a size out of ENCODER_INT_LIMITS, too many parameters.
        """
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: an encoder config must be a JSON object, got {type(raw).__name__}")
        if isinstance(raw.get("init_args"), list) and raw["init_args"] and isinstance(raw["init_args"][0], dict):
            raw = dict(raw["init_args"][0], **{k: v for k, v in raw.items() if k != "init_args"})  # PaddleNLP
        required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
        missing = [k for k in required if k not in raw]
        if missing:
            raise ValueError(f"{source}: missing config field(s) {', '.join(missing)}")
        def whole(key: str, default: Any = None) -> int:
            return _whole_number(raw, key, default, source)

        def number(key: str, default: Any = None) -> float:
            return _real_number(raw, key, default, source)

        hidden = whole("hidden_size")
        layers = whole("num_hidden_layers")
        is_google_albert = "num_hidden_groups" in raw or "inner_group_num" in raw
        is_brightmart = "ln_type" in raw or ("embedding_size" in raw and not is_google_albert)
        is_ernie = raw.get("model_type") == "ernie" or "sent_type_vocab_size" in raw or "use_task_id" in raw or (
            "intermediate_size" not in raw and whole("max_position_embeddings", 512) == 513
        )
        if whole("inner_group_num", 1) != 1:
            raise ValueError(f"{source}: inner_group_num {raw['inner_group_num']} is not supported (only 1)")
        act = str(raw.get("hidden_act", "gelu"))
        # TF1 BERT/ALBERT "gelu" is the tanh approximation; Hugging Face ("model_type" configs) and
        # Paddle mean the exact erf form by "gelu" and call the tanh one "gelu_new"/"gelu_pytorch_tanh".
        tf1_config = "model_type" not in raw and not is_ernie
        tanh_names = {"gelu_new", "gelu_fast", "gelu_pytorch_tanh"} | ({"gelu"} if tf1_config else set())
        act = "gelu_tanh" if act in tanh_names else act
        if is_google_albert:
            layout = "project_last"
            groups = whole("num_hidden_groups", 1)
        elif is_brightmart:
            layout = "project_first"
            groups = 1
        else:
            layout = "none"
            groups = layers
        embedding_size = whole("embedding_size", hidden) if layout != "none" else hidden
        eps_key = next((k for k in ("layer_norm_eps", "layer_norm_epsilon") if raw.get(k)), None)
        values: Dict[str, Any] = dict(
            vocab_size=whole("vocab_size"),
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=whole("num_attention_heads"),
            intermediate_size=whole("intermediate_size", 4 * hidden),
            hidden_act=act,
            hidden_dropout_prob=number("hidden_dropout_prob", 0.1),
            attention_probs_dropout_prob=number("attention_probs_dropout_prob", 0.1),
            max_position_embeddings=whole("max_position_embeddings", 512),
            type_vocab_size=whole("sent_type_vocab_size") if raw.get("sent_type_vocab_size")
            else whole("type_vocab_size", 2),
            initializer_range=number("initializer_range", 0.02),
            # Paddle's LayerNorm defaults to 1e-5; TF1 contrib layer_norm hardcodes 1e-12.
            layer_norm_eps=number(eps_key) if eps_key else (1e-5 if is_ernie else 1e-12),
            embedding_size=embedding_size,
            embedding_layout=layout,
            num_layer_groups=groups,
            ln_type=str(raw.get("ln_type") or "postln"),
            task_type_vocab_size=(whole("task_type_vocab_size") if raw.get("task_type_vocab_size") else 3)
            if raw.get("use_task_id") else 0,
        )
        values.update(overrides)
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


def _whole_number(raw: Dict[str, Any], key: str, default: Any, source: str) -> int:
    """raw[key] (or `default`) as an int: ints, integral floats such as 768.0 and digit strings pass."""
    value = raw.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f"{source}: {key} must be a whole number, got {value!r}")


def _real_number(raw: Dict[str, Any], key: str, default: Any, source: str) -> float:
    """raw[key] (or `default`) as a finite float; numeric strings pass."""
    value = raw.get(key, default)
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{source}: {key} must be a finite number, got {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """The tagging head on top of the encoder: optional word-boundary features, BiLSTM, dense, CRF."""

    lstm_units: int = 128
    lexicon_dim: int = 0  # 0 disables jieba word-boundary (B/M/E/S) features
    pos_dim: int = 0  # 0 disables jieba part-of-speech features
    bigram_dim: int = 0  # 0 disables character-bigram embeddings
    bigram_vocab_size: int = 0  # embedding rows, fixed by the training data's bigram vocabulary
    input_dropout: float = 0.0  # on the concatenated encoder output + features, before the BiLSTM
    dropout: float = 0.1
    char_lookup: str = DEFAULT_CHAR_LOOKUP  # the featurizer's character lookup (CHAR_LOOKUPS)

    def __post_init__(self) -> None:
        errors = field_errors(self, HEAD_INT_LIMITS, HEAD_FLOAT_RULES)
        if self.char_lookup not in CHAR_LOOKUPS:
            errors.append(f"char_lookup must be one of {', '.join(CHAR_LOOKUPS)}, got {self.char_lookup!r}")
        if not errors and self.bigram_dim and not self.bigram_vocab_size:
            errors.append(f"bigram_dim {self.bigram_dim} needs bigram_vocab_size >= 1")
        if errors:
            raise ValueError("invalid head config: " + "; ".join(errors))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a trained model: encoder, head, label set and input length."""

    encoder: EncoderConfig
    head: HeadConfig
    labels: Tuple[str, ...]
    max_seq_len: int = 128

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Dict[str, Any], source: str = "model config") -> "ModelConfig":
        """Rebuild from `to_dict` output; errors name `source` (the file) and the field."""
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        missing = [k for k in ("encoder", "head", "labels", "max_seq_len") if k not in raw]
        if missing:
            raise ValueError(f"{source}: missing field(s) {', '.join(missing)}")
        labels = raw["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(t, str) and t for t in labels):
            raise ValueError(f"{source}: labels must be a non-empty list of tag names, got {labels!r}")
        error = int_field_error("max_seq_len", raw["max_seq_len"], 3, 65_536)
        if error:
            raise ValueError(f"{source}: {error}")
        return cls(
            encoder=from_dict(EncoderConfig, raw["encoder"], f"{source}: encoder"),
            head=from_dict(HeadConfig, raw["head"], f"{source}: head"),
            labels=tuple(labels),
            max_seq_len=raw["max_seq_len"],
        )


def from_dict(cls: Type[T], raw: Dict[str, Any], source: str = "config") -> T:
    """Build a dataclass from a dict, rejecting unknown keys by name; errors name `source`."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: {cls.__name__} must be a JSON object, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} field(s): {', '.join(unknown)}")
    try:
        return cls(**raw)
    except (TypeError, ValueError) as exc:  # TypeError: a required field is missing
        raise ValueError(f"{source}: {exc}") from None


def save_json(obj: Any, path: str | Path) -> None:
    """Write a dataclass or dict as pretty UTF-8 JSON."""
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_json(path: str | Path) -> Dict[str, Any]:
    """Read a JSON object, naming the file on error."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read JSON: {exc}") from exc


# Named encoder sizes for training from random init (no pretrained weights) and for tests.
PRESETS: Dict[str, Dict[str, Any]] = {
    # A CPU-sized ALBERT-style encoder: factorised embedding, 2 unshared layers.
    "cpu-small": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024,
                      embedding_size=128, embedding_layout="project_first", num_layer_groups=2,
                      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
    # Tiny encoder for tests and smoke runs.
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 embedding_size=16, embedding_layout="project_first", num_layer_groups=1,
                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    # No Transformer layers: embedding (+ lexicon) straight into the BiLSTM-CRF head.
    "embedding-only": dict(hidden_size=128, num_hidden_layers=0, num_attention_heads=1, intermediate_size=128,
                           embedding_size=128, embedding_layout="none", num_layer_groups=1,
                           hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0),
}


def preset_encoder(name: str, vocab_size: int, **overrides: Any) -> EncoderConfig:
    """An EncoderConfig from a named preset (see PRESETS) for a vocabulary size."""
    if name not in PRESETS:
        raise ValueError(f"unknown encoder preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[name], vocab_size=vocab_size)
    values.update(overrides)
    return EncoderConfig(**values)


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run: data, model shape, optimisation and bookkeeping. Saved beside the model."""

    train_file: str
    output_dir: str
    vocab_file: str
    dev_file: Optional[str] = None
    test_file: Optional[str] = None
    # Without a dev file this fraction of train sentences (a seeded random choice) is held out
    # for model selection; the test set is never used for selection.
    dev_fraction: float = 0.05
    # Pretrained encoder: a directory from `albert-ner convert` or any published checkpoint
    # (TF1, Hugging Face, ERNIE params/, .pdparams); its config and vocab come with it. Or a model
    # written by `albert-ner train` (its directory, or an archive such as a SageMaker model.tar.gz):
    # training continues from it, the head too when the label set and head shape are the same.
    init: Optional[str] = None
    encoder_config: Optional[str] = None  # a published albert/bert/ernie config JSON
    encoder_preset: str = "cpu-small"  # used when encoder_config is not given
    encoder_dropout: Optional[float] = None  # overrides the config's dropouts (0.0 in albert_zh configs)
    # Pretrained character vectors (word2vec text, optionally .gz/.xz/.bz2, or X.npy + X.vocab.txt) for
    # the rows of a character table trained from scratch; a preset's table takes their width.
    char_embeddings: Optional[str] = None
    freeze_char_embeddings: bool = False  # keep the rows the vectors set unchanged while training
    # Character lookup (CHAR_LOOKUPS); None: exact_first with a pretrained encoder (init), fold otherwise.
    char_lookup: Optional[str] = None
    max_seq_len: int = 128
    window_overlap: int = 32
    lstm_units: int = 128
    lexicon_dim: int = 0
    pos_dim: int = 0
    bigram_dim: int = 0
    bigram_min_count: int = 2  # bigrams seen fewer times in train share the unknown id
    head_dropout: float = 0.1
    input_dropout: float = 0.0
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 3
    encoder_lr: Optional[float] = None  # default: head_lr from random init, 5e-5 for a pretrained encoder
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    clip_norm: float = 1.0
    precision: str = "auto"
    # XLA-compile the train/predict steps. None = auto: on with a GPU; off on CPU, where the
    # BiLSTM step measured 2.3x slower under XLA than in graph mode (see BENCHMARKS.md).
    jit: Optional[bool] = None
    seed: int = 42
    patience: int = 3  # epochs without dev F1 improvement before stopping; 0 disables
    strict_tags: bool = False
    # Tagging scheme the model learns: "keep" (the training corpus's), "BIO" or "BIOES". Entities are
    # the same either way; reports compare entities against each corpus in its own scheme.
    tag_scheme: str = "keep"
    resume: bool = True
    max_train_sentences: int = 0  # 0 = all; for smoke runs
    checkpoint_every: int = 500  # steps between resumable checkpoints (and at every epoch end)
    log_every: int = 50

    def __post_init__(self) -> None:
        errors = []
        if self.precision not in PRECISIONS:
            errors.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.char_lookup is not None and self.char_lookup not in CHAR_LOOKUPS:
            errors.append(f"char_lookup must be one of {', '.join(CHAR_LOOKUPS)}, got {self.char_lookup!r}")
        if self.char_embeddings and self.init:
            errors.append("char_embeddings and init both set the character table (init brings its encoder's "
                          "own); use one")
        if self.freeze_char_embeddings and not self.char_embeddings:
            errors.append("freeze_char_embeddings needs char_embeddings (the vectors to keep)")
        if self.tag_scheme not in ("keep", "BIO", "BIOES"):
            errors.append(f"tag_scheme must be keep, BIO or BIOES, got {self.tag_scheme!r}")
        if not 0.0 <= self.dev_fraction < 1.0:
            errors.append(f"dev_fraction must be in [0, 1), got {self.dev_fraction}")
        if self.max_seq_len < 3 or self.max_seq_len > 4096:
            errors.append(f"max_seq_len must be in 3..4096, got {self.max_seq_len}")
        if not 0 <= self.window_overlap < self.max_seq_len - 2:
            errors.append(f"window_overlap must be in 0..max_seq_len-3, got {self.window_overlap}")
        for name in ("batch_size", "eval_batch_size", "epochs"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if errors:
            raise ValueError("invalid training config: " + "; ".join(errors))

    def char_lookup_mode(self) -> str:
        """The run's character lookup: char_lookup if set, else exact_first with a pretrained encoder (init),
        whose embeddings were learned through its own tokenizer, else fold (merged variants generalise
        better in a table trained from scratch). Training on from a model `albert-ner train` wrote uses that
        model's own lookup instead (model/warm_start.py)."""
        return self.char_lookup or ("exact_first" if self.init else DEFAULT_CHAR_LOOKUP)
