"""Choose and apply the Keras mixed-precision policy."""
from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def resolve_precision(requested: str) -> str:
    """'auto' -> mixed_bfloat16 on Ampere+ GPUs, mixed_float16 on older GPUs, float32 on CPU."""
    if requested != "auto":
        return requested
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "float32"
    cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return "mixed_bfloat16" if tuple(cc) >= (8, 0) else "mixed_float16"


def apply_precision(requested: str) -> str:
    """Set the global policy; returns the policy name in force."""
    policy = resolve_precision(requested)
    tf.keras.mixed_precision.set_global_policy(policy)
    log.info("precision policy: %s", policy)
    return policy


def resolve_jit(requested: "bool | None") -> bool:
    """None -> XLA when a GPU is visible, graph mode on CPU."""
    if requested is not None:
        return requested
    return bool(tf.config.list_physical_devices("GPU"))
