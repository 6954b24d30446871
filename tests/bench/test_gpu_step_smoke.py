"""bench/gpu_step.py on CPU with the tiny encoder: real timed steps of the trainer's step with and without XLA,
on one device and two (MirroredStrategy over logical CPUs), the BiLSTM-share table, and the FLOPs/peak arithmetic."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_step.py"


@pytest.fixture(scope="module")
def gpu_step():
    spec = importlib.util.spec_from_file_location("gpu_step_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_formula_and_peak_table(gpu_step):
    enc = gpu_step.encoder_config("m3e-small")
    assert (enc.hidden_size, enc.num_hidden_layers, enc.intermediate_size, enc.vocab_size) == (512, 4, 2048, 21128)
    f = gpu_step.flops_per_sample(enc, 128, 128, 7)
    assert f["encoder"] == 6 * 4 * (4 * 512 ** 2 + 2 * 512 * 2048) * 128
    assert f["attention"] == 12 * 4 * 128 ** 2 * 512
    assert f["bilstm"] == 6 * 2 * 4 * 128 * (512 + 128) * 126
    assert f["total"] == f["encoder"] + f["attention"] + f["bilstm"] + f["dense"]
    albert = gpu_step.encoder_config("albert-base")  # shared layers: compute counts all 12, plus the projection
    assert albert.num_layer_groups == 1
    assert gpu_step.flops_per_sample(albert, 0, 128, 7)["encoder"] == 6 * (12 * (4 * 768 ** 2 + 2 * 768 * 3072)
                                                                             + 128 * 768) * 128
    assert gpu_step.peak_tflops("NVIDIA H200", "mixed_bfloat16", (9, 0)) == (989.4, "bf16")
    assert gpu_step.peak_tflops("NVIDIA A100-SXM4-40GB", "float32", (8, 0)) == (156.0, "tf32")
    assert gpu_step.peak_tflops("Tesla V100-SXM2-16GB", "float32", (7, 0)) == (15.7, "fp32")
    assert gpu_step.peak_tflops("NVIDIA A10G", "mixed_float16", (8, 6)) == (70.0, "fp16")
    assert gpu_step.peak_tflops("Tesla T4", "mixed_bfloat16", (7, 5))[0] is None
    assert gpu_step.peak_tflops("Radeon 9000", "float32", (0, 0))[0] is None


def test_plan_skips_what_the_hardware_cannot_run(gpu_step):
    args = gpu_step.parse_args(["--models", "m3e-small"])
    one_t4 = {"gpus": [{"name": "Tesla T4", "compute_capability": [7, 5]}]}
    run, skipped = gpu_step.plan(args, one_t4)
    names = {v["name"] for v in run}
    assert "m3e-small/mixed_float16/xla/bilstm-crf/1gpu" in names
    assert not any("bfloat16" in n or "xla/bilstm-cudnn" in n or "2gpu" in n for n in names)
    assert len(run) == 2 * 5  # 2 precisions x (2 XLA x 2 heads + cuDNN without XLA)
    assert any("compute capability" in s["reason"] for s in skipped)
    assert any("N > 1 not run" in s["reason"] for s in skipped)
    quick, _ = gpu_step.plan(gpu_step.parse_args(["--quick"]), {"gpus": one_t4["gpus"] * 4})
    assert quick[0]["name"] == "albert-base/mixed_float16/xla/bilstm-crf/1gpu"
    assert quick[-1]["name"] == "m3e-small/mixed_float16/xla/bilstm-crf/4gpu" and len(quick) == 2 * 7 + 2


def test_tiny_cpu_run_times_every_variant(tmp_path):
    out = tmp_path / "gpu_step.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    args = ["--device", "cpu", "--models", "tiny", "--precisions", "float32", "--steps", "2", "--warmup", "1",
            "--batch-size", "2", "--seq-len", "12", "--lstm-units", "4", "--cpu-replicas", "2",
            "--variants", "*/xla/bilstm-crf/1gpu,*/xla/crf-only/1gpu,*/graph/bilstm-crf/2gpu,*/xla/crf-only/2gpu",
            "--json-out", str(out)]
    proc = subprocess.run([sys.executable, str(SCRIPT)] + args, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    rows = {r["variant"]["name"]: r for r in report["results"]}
    assert set(rows) == {"tiny/float32/xla/bilstm-crf/1gpu", "tiny/float32/xla/crf-only/1gpu",
                         "tiny/float32/graph/bilstm-crf/2gpu", "tiny/float32/xla/crf-only/2gpu"}
    for name, r in rows.items():
        assert "error" not in r, name
        assert len(r["step_ms"]) == 2 and len(r["losses"]) == 3 and r["traces"] >= 1, name
        assert r["samples_per_s"] == pytest.approx(r["global_batch"] * 1000 / r["ms_mean"]), name
        assert r["mfu"] is None and r["model_tflops_per_s"] > 0, name
    assert rows["tiny/float32/graph/bilstm-crf/2gpu"]["global_batch"] == 4
    assert len(rows["tiny/float32/graph/bilstm-crf/2gpu"]["devices"]) == 2
    assert rows["tiny/float32/xla/bilstm-crf/1gpu"]["xla"]["programs"] >= 1
    assert rows["tiny/float32/graph/bilstm-crf/2gpu"]["xla"] is None
    # Several devices run as the trainer runs them: XLA compiles each replica's forward and backward pass only
    # (build_training(strategy=..., jit=True)), the collectives and updates stay outside.
    assert len(rows["tiny/float32/xla/crf-only/2gpu"]["devices"]) == 2
    assert rows["tiny/float32/xla/crf-only/2gpu"]["xla"]["programs"] >= 1
    (share,) = [s for s in report["bilstm_share"] if s["jit"]]
    assert share["bilstm_ms"] == pytest.approx(share["bilstm_crf_ms"] - share["crf_only_ms"])
    assert report["environment"]["tensorflow"] and report["failures"] == 0
    assert "| tiny | float32 | on | bilstm-crf | 1 | 2 |" in proc.stdout


def test_a_variant_that_times_out_is_a_failed_row(tmp_path):
    out = tmp_path / "gpu_step.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--models", "tiny", "--variants",
                           "*/float32/graph/crf-only/1gpu", "--variant-timeout", "0.5", "--json-out", str(out)],
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (row,) = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert row["error"].startswith("timed out after") and "FAILED: timed out" in proc.stdout
