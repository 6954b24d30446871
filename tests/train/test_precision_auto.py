"""--precision auto on CPU: AMX bfloat16 tiles detected from /proc/cpuinfo-style flags; auto takes
AUTO_POLICY_WITH_AMX there (float32 until bfloat16 is shown to cost no F1), float32 elsewhere."""
import logging
from pathlib import Path

import pytest
import tensorflow as tf

from albert_ner.train import precision
from albert_ner.train.precision import CPUINFO, cpu_bf16_matmul, cpu_flags, resolve_precision

SAPPHIRE_RAPIDS = "avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 avx_vnni"
ICE_LAKE_BF16 = "avx512f avx512_bf16 avx512_vnni avx_vnni"  # AVX512-BF16 without AMX, like this test machine


def _cpuinfo(tmp_path: Path, flags: str, key: str = "flags") -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\n{key}\t\t: fpu sse2 {flags}\n\n"
                    f"processor\t: 1\n{key}\t\t: fpu\n")
    return path


def test_flags_of_the_first_cpu(tmp_path):
    flags = cpu_flags(_cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    assert {"amx_bf16", "amx_tile", "sse2"} <= flags and "fpu" in flags
    assert cpu_flags(_cpuinfo(tmp_path, "asimd bf16", key="Features")) >= {"asimd", "bf16"}  # arm64 wording
    assert cpu_flags(tmp_path / "missing") == frozenset()


NO_GPU = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                            reason="auto follows the GPU when one is visible")


@NO_GPU
@pytest.mark.parametrize("flags, amx", [(SAPPHIRE_RAPIDS, True), (ICE_LAKE_BF16, False),
                                        ("avx2 fma amx_tile", False), ("", False)])
@pytest.mark.parametrize("with_amx", ["float32", "mixed_bfloat16"])
def test_auto_on_cpu(tmp_path, monkeypatch, caplog, flags, amx, with_amx):
    monkeypatch.setattr(precision, "AUTO_POLICY_WITH_AMX", with_amx)
    path = _cpuinfo(tmp_path, flags)
    assert cpu_bf16_matmul(cpu_flags(path)) is amx
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        assert resolve_precision("auto", cpuinfo=path) == (with_amx if amx else "float32")
    assert ("AMX bfloat16 tiles" in caplog.text) is (amx and with_amx == "float32")
    assert resolve_precision("float32", cpuinfo=path) == "float32"  # an explicit choice is kept
    assert resolve_precision("mixed_float16", cpuinfo=path) == "mixed_float16"


@pytest.mark.skipif(not CPUINFO.is_file() or bool(tf.config.list_physical_devices("GPU")),
                    reason="needs /proc/cpuinfo and no GPU")
def test_this_machine_agrees_with_its_cpuinfo():
    text = CPUINFO.read_text(errors="replace")
    first = next(line for line in text.splitlines() if line.startswith("flags")).split(":", 1)[1].split()
    want = precision.AUTO_POLICY_WITH_AMX if {"amx_bf16", "amx_tile"} <= set(first) else "float32"
    assert resolve_precision("auto") == want
