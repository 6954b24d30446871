"""Choose and apply the Keras mixed-precision policy (and XLA or graph mode) for the machine at hand.

On CPU bfloat16 pays only where the CPU multiplies bfloat16 matrices in hardware tiles (Intel AMX,
`amx_bf16` in /proc/cpuinfo): with AVX512-BF16 alone the m3e-small train step took 1.56x the float32 time
(measured on a shared machine).
Whether it costs F1 is not measured yet, so `auto` stays float32 there too (AUTO_POLICY_WITH_AMX) and says so."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import FrozenSet

import tensorflow as tf

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
# CPU flags (all required) of hardware bfloat16 matrix tiles (AMX).
BF16_CPU_FLAGS = frozenset({"amx_tile", "amx_bf16"})
# What `auto` picks on such a CPU: "mixed_bfloat16" once a fine-tuning run there shows it costs no F1 (issue 12).
AUTO_POLICY_WITH_AMX = "float32"


def cpu_flags(path: Path = CPUINFO) -> FrozenSet[str]:
    """The ISA flags of the first CPU in a /proc/cpuinfo-style file; empty where there is none (not Linux)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_bf16_matmul(flags: FrozenSet[str]) -> bool:
    """True when the flags promise hardware bfloat16 matrix tiles (AMX), the case `auto` uses bfloat16 for."""
    return BF16_CPU_FLAGS <= flags


def resolve_precision(requested: str, cpuinfo: Path = CPUINFO) -> str:
    """'auto' -> mixed_bfloat16 on Ampere+ GPUs, mixed_float16 on older GPUs; on CPU AUTO_POLICY_WITH_AMX where
    the CPU has AMX bfloat16 tiles, else float32."""
    if requested != "auto":
        return requested
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        if not cpu_bf16_matmul(cpu_flags(cpuinfo)):
            return "float32"
        if AUTO_POLICY_WITH_AMX != "mixed_bfloat16":
            log.info("this CPU has AMX bfloat16 tiles: --precision mixed_bfloat16 may train faster (its F1 cost on "
                     "CPU is not measured yet; auto keeps %s)", AUTO_POLICY_WITH_AMX)
        return AUTO_POLICY_WITH_AMX
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
