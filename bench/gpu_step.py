"""GPU benchmark of the trainer's own train step: throughput, model FLOPs utilisation and XLA programs compiled.

Models: ALBERT-base (brightmart albert_zh base) and m3e-small (BERT, 4 layers, H 512), random weights, with
heads `bilstm-crf` (the trainer's BiLSTM: RNN(LSTMCell), a sequential loop), `crf-only` (no BiLSTM: isolates its
cost) and `bilstm-cudnn-crf` (Keras LSTM, which takes the cuDNN kernel on a GPU; only without XLA, where that
kernel exists). Each variant (model, precision, XLA on/off, head, 1 or N GPUs) runs the step of
`albert-ner train` (train/runner.build_training on ner_task.NerTrainable, as bench/hf_compare.py builds it) in
its own subprocess, so that precision policies and XLA state do not leak; a failure or timeout is a row, not a crash.

    python bench/gpu_step.py --quick --budget-s 420 --json-out bench/runs/gpu_step.json     # ~8 min on one GPU
    python bench/gpu_step.py --device cpu --models tiny --steps 2 --warmup 1                # CPU smoke run

Model FLOPs per sample (training = 3x forward, a multiply-add = 2 FLOPs):
  encoder   6 x (L x (4 H^2 + 2 H I) + E x H) x T   (per-layer matmul weights x layers: ALBERT's shared layers
                                                     count once per layer applied; embedding lookups excluded)
  attention 12 x L x T^2 x H                        (QK^T and AV)
  BiLSTM    6 x 2 directions x 4 u (d_in + u) x C   (C = T - 2 characters, d_in = H)
  dense     6 x d x K x C                           (the CRF's own K^2 x C work is left out: negligible)
MFU = FLOPs/sample x samples/s / (peak dense TFLOPs of the precision's tensor unit x GPUs); float32 on compute
capability >= 8 is rated at TF32 (TensorFlow's default there). An unknown GPU gets FLOPs/s only.

XLA programs compiled: the child runs with XLA_FLAGS=--xla_dump_to=<temp dir>; XLA writes one
`module_NNNN.<name>.before_optimizations.txt` per HLO module it compiles, and the TensorFlow clusters among them
(names starting `a_inference`) are counted. (The "Compiled cluster using XLA!" log line is printed once per
process, so it cannot count.) `traces` is the step tf.function's experimental_get_tracing_count().

N GPUs: tf.distribute.MirroredStrategy over the first N visible GPUs, global batch = --batch-size x N, run exactly
as `albert-ner train` runs it on several devices: the step built for the strategy (build_training(strategy=...,
jit=...): gradients summed over the replicas before one global-norm clip; under XLA only each replica's forward
and backward pass is compiled) and called through train/distribute.py's distributed_step on the global batch
split by split_batch, so one update equals one device's on the whole global batch.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _compare_common import finite_losses, load_average, time_steps  # noqa: E402  (the same timing as hf_compare)
from albert_ner.cli import positive_int  # noqa: E402

LABELS = tuple("O B-LOC I-LOC B-ORG I-ORG B-PER I-PER".split())  # the MSRA tag set
ALBERT_BASE_JSON = REPO.parent / "shared" / "pretrained" / "albert_config" / "albert_config_base.json"
M3E_SMALL_JSON = Path.home() / ".cache" / "albert-ner" / "pretrained" / "m3e-small" / "config.json"
# The published configs, used when the files above are absent (the device machine has neither).
ALBERT_BASE_RAW = {"attention_probs_dropout_prob": 0.0, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
                   "hidden_size": 768, "embedding_size": 128, "initializer_range": 0.02, "intermediate_size": 3072,
                   "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
                   "type_vocab_size": 2, "vocab_size": 21128, "ln_type": "postln"}
M3E_SMALL_RAW = {"model_type": "bert", "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
                 "hidden_dropout_prob": 0.1, "hidden_size": 512, "intermediate_size": 2048, "layer_norm_eps": 1e-12,
                 "max_position_embeddings": 512, "num_attention_heads": 8, "num_hidden_layers": 4,
                 "type_vocab_size": 2, "vocab_size": 21128}
MODELS: Dict[str, Tuple[Optional[Path], Optional[Dict[str, Any]]]] = {
    "albert-base": (ALBERT_BASE_JSON, ALBERT_BASE_RAW), "m3e-small": (M3E_SMALL_JSON, M3E_SMALL_RAW),
    "tiny": (None, None)}  # tiny: the "tiny" preset, for CPU smoke runs
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
HEADS = ("bilstm-crf", "crf-only", "bilstm-cudnn-crf")
# Peak dense (no sparsity) TFLOPs by GPU name substring, first match wins: vendor data sheets (SXM parts where
# there are two; A10G as AWS rates it). None: the GPU has no such tensor unit.
PEAK_TFLOPS: Tuple[Tuple[str, Dict[str, Optional[float]]], ...] = (
    ("H200", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}),
    ("A10G", {"fp32": 31.2, "tf32": 35.0, "fp16": 70.0, "bf16": 70.0}),
    ("L4", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0}),
    ("V100", {"fp32": 15.7, "tf32": None, "fp16": 125.0, "bf16": None}),
    ("T4", {"fp32": 8.1, "tf32": None, "fp16": 65.0, "bf16": None}),
)
# --quick: what answers the issue's questions first (in this order, every model): XLA vs not, the BiLSTM's
# share (crf-only), the cuDNN LSTM, then float32. (precision, jit, head); "mixed" = bf16 where supported.
QUICK_ORDER = (("mixed", True, "bilstm-crf"), ("mixed", True, "crf-only"), ("mixed", False, "bilstm-cudnn-crf"),
               ("mixed", False, "bilstm-crf"), ("mixed", False, "crf-only"), ("float32", True, "bilstm-crf"),
               ("float32", False, "bilstm-crf"))


# ---- model arithmetic ---------------------------------------------------------------------------------
def encoder_config(model: str):
    """The EncoderConfig of a benchmark model: its config file when present, else the published values."""
    from albert_ner.config import EncoderConfig, preset_encoder

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    path, raw = MODELS[model]
    if raw is None:
        return preset_encoder("tiny", 21128)
    if path is not None and path.is_file():
        return EncoderConfig.from_pretrained_json(path)
    return EncoderConfig.from_pretrained_dict(raw, source=f"{model} (built-in config)")


def flops_per_sample(enc, lstm_units: int, seq_len: int, num_labels: int) -> Dict[str, float]:
    """Training FLOPs of one sequence by part (formula in the module docstring)."""
    h, layers, inter, t, c = enc.hidden_size, enc.num_hidden_layers, enc.intermediate_size, seq_len, seq_len - 2
    projection = enc.embedding_size * h if enc.embedding_layout != "none" else 0
    parts = {"encoder": 6.0 * (layers * (4 * h * h + 2 * h * inter) + projection) * t,
             "attention": 12.0 * layers * t * t * h,
             "bilstm": 6.0 * 2 * 4 * lstm_units * (h + lstm_units) * c if lstm_units else 0.0,
             "dense": 6.0 * (2 * lstm_units if lstm_units else h) * num_labels * c}
    parts["total"] = sum(parts.values())
    return parts


def peak_tflops(gpu_name: str, precision: str, compute_capability: Tuple[int, int]) -> Tuple[Optional[float], str]:
    """(peak dense TFLOPs of one GPU for this precision, the unit rated) or (None, why)."""
    unit = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}.get(precision)
    if unit is None:
        unit = "tf32" if tuple(compute_capability) >= (8, 0) else "fp32"
    for key, table in PEAK_TFLOPS:
        if key.lower() in gpu_name.lower():
            value = table.get(unit)
            return (value, unit) if value else (None, f"{key} has no {unit} tensor unit")
    return None, f"no peak known for {gpu_name!r}"


# ---- the plan --------------------------------------------------------------------------------------------
def variant_name(v: Dict[str, Any]) -> str:
    return f"{v['model']}/{v['precision']}/{'xla' if v['jit'] else 'graph'}/{v['head']}/{v['gpus']}gpu"


def plan(args: argparse.Namespace, env: Dict[str, Any]) -> Tuple[List[Dict], List[Dict]]:
    """(variants to run in order, variants skipped with the reason) for the devices in `env`."""
    devices = env["gpus"] if args.device == "gpu" else [{"name": "cpu", "compute_capability": [0, 0]}]
    n_all = len(devices) if args.device == "gpu" else args.cpu_replicas
    cc = tuple(devices[0]["compute_capability"]) if devices else (0, 0)
    bf16_ok = args.device == "cpu" or cc >= (8, 0)
    gpu_counts = sorted({1 if g == "1" else n_all for g in args.gpus})
    combos = []
    if args.quick:
        mixed = "mixed_bfloat16" if bf16_ok else "mixed_float16"
        for prec, jit, head in QUICK_ORDER:
            combos += [(m, mixed if prec == "mixed" else prec, jit, head, 1) for m in args.models]
        if n_all > 1:
            combos += [(m, mixed, True, "bilstm-crf", n_all) for m in args.models]
    else:
        combos = [(m, p, j, h, g) for g in gpu_counts for m in args.models for p in args.precisions
                  for j in args.jit for h in args.heads]
    run, skipped = [], []
    for m, p, j, h, g in combos:
        v = {"model": m, "precision": p, "jit": j, "head": h, "gpus": g}
        v["name"] = variant_name(v)
        why = None
        if args.variants and not any(fnmatch.fnmatch(v["name"], pat) for pat in args.variants):
            continue  # filtered out by the user: not a skip
        if p == "mixed_bfloat16" and not bf16_ok:
            why = f"bfloat16 needs compute capability >= 8.0, this GPU has {cc[0]}.{cc[1]}"
        elif h == "bilstm-cudnn-crf" and j:
            why = "the cuDNN LSTM kernel is not used under XLA"
        elif g > 1 and n_all < 2:
            why = f"{g} devices asked, {n_all} visible"
        (skipped if why else run).append(dict(v, reason=why) if why else v)
    if not args.quick and n_all < 2 and "N" in args.gpus:
        skipped.append({"name": "*/Ngpu", "reason": f"only {n_all} device visible: N > 1 not run"})
    return run, skipped


# ---- the child: one variant ------------------------------------------------------------------------------
def build_bilstm_cudnn(units: int):
    """A BiLSTM of Keras LSTM layers with default activations and no recurrent dropout: cuDNN-eligible."""
    import tensorflow as tf

    return tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(units, return_sequences=True, name="lstm"),
                                         name="bilstm_cudnn")


def make_training(args: argparse.Namespace, variant: Dict[str, Any], total_steps: int, strategy=None):
    """The model and the train step `albert-ner train` builds for it (runner.build_training, for `strategy` when
    several devices run it); returns the Training. Call it inside the strategy's scope."""
    from albert_ner.config import HeadConfig, ModelConfig
    from albert_ner.model.tagger import NerTagger
    from albert_ner.train.ner_task import NerTrainable
    from albert_ner.train.runner import build_training

    head = variant["head"]
    units = 0 if head == "crf-only" else args.lstm_units
    model = NerTagger(ModelConfig(encoder_config(variant["model"]), HeadConfig(lstm_units=units), LABELS,
                                  max_seq_len=args.seq_len))
    if head == "bilstm-cudnn-crf":
        model.bilstm = build_bilstm_cudnn(units)
    model.build_weights()
    return build_training(NerTrainable(model, encoder_lr=5e-5, head_lr=1e-3), seed=args.seed,
                          policy=variant["precision"], clip_norm=1.0, weight_decay=0.01, warmup_steps=1,
                          total_steps=total_steps, strategy=strategy,
                          jit=bool(variant["jit"]) and strategy is not None)


def strategy_for(args: argparse.Namespace, gpus: int):
    """MirroredStrategy over `gpus` devices (logical CPUs with --device cpu), or None for one device."""
    import tensorflow as tf

    if gpus == 1:
        return None
    if args.device == "cpu":
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(gpus)])
    return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(gpus)])


def run_child(args: argparse.Namespace) -> Dict[str, Any]:
    """Time one variant (given as JSON in --child); returns its result."""
    import tensorflow as tf

    from albert_ner.train import distribute
    from albert_ner.train.runner import compile_step

    variant = json.loads(args.child)
    if args.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
        if variant["gpus"] > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(variant["gpus"])])
    tf.keras.utils.set_random_seed(args.seed)
    tf.keras.mixed_precision.set_global_policy(variant["precision"])
    strategy = strategy_for(args, variant["gpus"])
    total = args.warmup + args.steps
    b, t, n = args.batch_size, args.seq_len, variant["gpus"]
    with strategy.scope() if strategy else _nullcontext():
        training = make_training(args, variant, total, strategy)
    model = training.trainable.model
    rng = np.random.default_rng(args.seed)
    vocab = model.config.encoder.vocab_size

    def host_batch(rows: int) -> Dict[str, tf.Tensor]:
        return {"token_ids": tf.constant(rng.integers(1, vocab, (rows, t)).astype(np.int32)),
                "lengths": tf.constant(np.full(rows, t - 2, np.int32)),
                "labels": tf.constant(rng.integers(0, len(LABELS), (rows, t - 2)).astype(np.int32))}

    if strategy is None:
        batches = [host_batch(b) for _ in range(total)]
        traced = compile_step(training.step, variant["jit"])
    else:  # the trainer's multi-device path (runner.Runner: distributed_step over split_batch)
        dist = distribute.Distribution(strategy, "mirrored", n, 1, 0, True)
        batches = [distribute.split_batch(dist, host_batch(b * n)) for _ in range(total)]
        traced = distribute.distributed_step(dist, training.step)

    def step(batch) -> float:
        return traced(batch).loss.numpy()

    result = time_steps(step, batches, args.warmup)
    finite_losses(result, variant["name"])
    enc, head = model.encoder_variables, model.head_variables
    bilstm = model.bilstm
    result.update(variant=variant, traces=traced.experimental_get_tracing_count(),
                  global_batch=b * n, samples_per_s=b * n * 1000 / result["ms_mean"],
                  bilstm_layer=None if bilstm is None else type(bilstm.forward_layer).__name__,
                  parameters={"encoder": int(sum(np.prod(v.shape) for v in enc)),
                              "head": int(sum(np.prod(v.shape) for v in head))},
                  devices=[d.name for d in tf.config.list_logical_devices("GPU" if args.device == "gpu" else "CPU")])
    return result


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ---- the environment probe (a child too: the parent never initialises a GPU) --------------------------
def probe() -> Dict[str, Any]:
    """TF version and build (CUDA/cuDNN), GPUs with name and compute capability, driver, host."""
    import tensorflow as tf

    gpus = []
    for d in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(d)
        gpus.append({"device": d.name, "name": details.get("device_name", "unknown"),
                     "compute_capability": list(details.get("compute_capability", (0, 0)))})
    build = {k: v for k, v in tf.sysconfig.get_build_info().items() if isinstance(v, (str, bool, int, float))}
    driver = None
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            driver = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            driver = None
    return {"tensorflow": tf.__version__, "build": build, "gpus": gpus, "driver": driver,
            "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


# ---- the parent -----------------------------------------------------------------------------------------
def child_env(args: argparse.Namespace, dump_dir: Optional[Path]) -> Dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    flags = env.get("XLA_FLAGS", "")
    if dump_dir is not None:
        flags = f"{flags} --xla_dump_to={dump_dir}".strip()
    if flags:
        env["XLA_FLAGS"] = flags
    return env


def count_xla_modules(dump_dir: Path) -> Dict[str, Any]:
    """HLO modules XLA compiled, from the dump folder: TF clusters (a_inference*) and all."""
    names = sorted(p.name[:-len(".before_optimizations.txt")]
                   for p in dump_dir.glob("module_*.before_optimizations.txt"))
    tf_clusters = [n for n in names if n.split(".", 1)[-1].startswith("a_inference")]
    return {"programs": len(tf_clusters), "all_modules": len(names), "names": tf_clusters[:10]}


def run_parent(args: argparse.Namespace, argv: List[str]) -> int:
    """Probe, plan, run every variant in its own subprocess, print the tables, write the JSON."""
    started = time.perf_counter()
    script = [sys.executable, str(Path(__file__).resolve())]
    proc = subprocess.run(script + argv + ["--probe"], env=child_env(args, None), capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        print(f"{__file__}: the environment probe failed (exit {proc.returncode})", file=sys.stderr)
        return 2
    env = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.device == "gpu" and not env["gpus"]:
        print(f"{__file__}: no GPU visible to TensorFlow; use --device cpu for a CPU run", file=sys.stderr)
        return 2
    variants, skipped = plan(args, env)
    print(f"# {len(variants)} variant(s) to run, {len(skipped)} skipped; devices: "
          f"{[g['name'] for g in env['gpus']] if args.device == 'gpu' else 'cpu'}", file=sys.stderr, flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu_step_") as tmp:
        for i, v in enumerate(variants):
            elapsed = time.perf_counter() - started
            if args.budget_s and elapsed > args.budget_s:
                skipped += [dict(x, reason=f"--budget-s {args.budget_s} spent") for x in variants[i:]]
                break
            timeout = args.variant_timeout
            if args.budget_s:
                timeout = max(30, min(timeout, args.budget_s - elapsed + 30))
            results.append(run_one(args, argv, v, Path(tmp) / str(i), timeout, env))
    report = {"environment": env, "settings": {k: getattr(args, k) for k in (
        "device", "batch_size", "seq_len", "lstm_units", "warmup", "steps", "seed", "quick", "budget_s")},
        "flops_formula": __doc__.split("Model FLOPs per sample")[1].split("XLA programs")[0].strip(),
        "results": results, "bilstm_share": bilstm_share(results), "skipped": skipped,
        "failures": sum(1 for r in results if r.get("error")), "wall_s": time.perf_counter() - started}
    print(markdown(results))
    print()
    print(share_markdown(report["bilstm_share"]))
    for s in skipped:
        print(f"# skipped {s['name']}: {s['reason']}", file=sys.stderr)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"# wrote {args.json_out}", file=sys.stderr)
    return 1 if report["failures"] else 0


def run_one(args: argparse.Namespace, argv: List[str], v: Dict[str, Any], tmp: Path, timeout: float,
            env: Dict[str, Any]) -> Dict[str, Any]:
    """One variant in a subprocess; the result row (with `error` on failure or timeout)."""
    tmp.mkdir(parents=True)
    dump = tmp / "xla_dump" if v["jit"] and args.count_xla else None
    out = tmp / "result.json"
    cmd = [sys.executable, str(Path(__file__).resolve())] + argv + [
        "--child", json.dumps(v), "--child-out", str(out)]
    print(f"# {v['name']}: running (timeout {timeout:.0f} s, load {load_average()})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=child_env(args, dump), capture_output=True, text=True, timeout=timeout)
        last = ([x.strip() for x in proc.stderr.splitlines() if x.strip()] or ["(no output)"])[-1]
        error = None if proc.returncode == 0 and out.is_file() else \
            f"exit code {proc.returncode}: {last[:300]}\n{proc.stderr.strip()[-1500:]}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s"
    row: Dict[str, Any] = {"variant": v, "wall_s": time.perf_counter() - t0}
    if error:
        print(f"# {v['name']}: FAILED: {error[-600:]}", file=sys.stderr, flush=True)
        return dict(row, error=error)
    row.update(json.loads(out.read_text(encoding="utf-8")))
    row["xla"] = count_xla_modules(dump) if dump is not None and dump.is_dir() else None
    enc = encoder_config(v["model"])
    flops = flops_per_sample(enc, 0 if v["head"] == "crf-only" else args.lstm_units, args.seq_len, len(LABELS))
    row["flops_per_sample"] = flops
    row["model_tflops_per_s"] = flops["total"] * row["samples_per_s"] / 1e12
    row["mfu"], row["peak"] = None, "cpu" if args.device == "cpu" else None
    if args.device == "gpu":
        gpu = env["gpus"][0]
        peak, unit = peak_tflops(gpu["name"], v["precision"], tuple(gpu["compute_capability"]))
        row["peak"] = f"{peak} TFLOPs {unit} x {v['gpus']}" if peak else unit
        if peak:
            row["mfu"] = row["model_tflops_per_s"] / (peak * v["gpus"])
    return row


def bilstm_share(results: List[Dict]) -> List[Dict]:
    """Per (model, precision, XLA, GPUs): the BiLSTM's share of the step (bilstm-crf vs crf-only), and the
    cuDNN LSTM step (no XLA) against the loop BiLSTM with and without XLA."""
    ok = {r["variant"]["name"]: r for r in results if not r.get("error")}
    rows = []
    for r in ok.values():
        v = r["variant"]
        if v["head"] != "bilstm-crf":
            continue
        crf = ok.get(variant_name(dict(v, head="crf-only")))
        cudnn = ok.get(variant_name(dict(v, jit=False, head="bilstm-cudnn-crf")))
        row = {"model": v["model"], "precision": v["precision"], "jit": v["jit"], "gpus": v["gpus"],
               "bilstm_crf_ms": r["ms_mean"], "crf_only_ms": crf["ms_mean"] if crf else None,
               "bilstm_ms": r["ms_mean"] - crf["ms_mean"] if crf else None,
               "bilstm_share": (r["ms_mean"] - crf["ms_mean"]) / r["ms_mean"] if crf else None,
               "cudnn_ms": cudnn["ms_mean"] if cudnn else None}
        row["cudnn_faster"] = cudnn["ms_mean"] < r["ms_mean"] if cudnn else None
        rows.append(row)
    return rows


def _fmt(x: Optional[float], spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(results: List[Dict]) -> str:
    lines = ["| model | precision | XLA | head | GPUs | global batch | first step s | ms/step | samples/s | "
             "model TFLOP/s | MFU | XLA programs | traces |", "|" + "---|" * 13]
    for r in results:
        v = r["variant"]
        cells = [v["model"], v["precision"], "on" if v["jit"] else "off", v["head"], str(v["gpus"])]
        if r.get("error"):
            lines.append("| " + " | ".join(cells) + f" | FAILED: {r['error'].splitlines()[0][:80]} |")
            continue
        xla = r["xla"]["programs"] if r.get("xla") else ("-" if not v["jit"] else "n/a")
        cells += [str(r["global_batch"]), f"{r['first_step_s']:.1f}", f"{r['ms_mean']:.1f}",
                  f"{r['samples_per_s']:.1f}", f"{r['model_tflops_per_s']:.3f}",
                  _fmt(r["mfu"] and 100 * r["mfu"], ".1f") + ("%" if r["mfu"] else f" ({r['peak']})"),
                  str(xla), str(r["traces"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def share_markdown(rows: List[Dict]) -> str:
    lines = ["| model | precision | XLA | GPUs | BiLSTM-CRF ms | CRF-only ms | BiLSTM ms | BiLSTM share | "
             "cuDNN LSTM (no XLA) ms | cuDNN faster |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['model']} | {r['precision']} | {'on' if r['jit'] else 'off'} | {r['gpus']} | "
                     f"{r['bilstm_crf_ms']:.1f} | {_fmt(r['crf_only_ms'], '.1f')} | {_fmt(r['bilstm_ms'], '.1f')} | "
                     f"{'n/a' if r['bilstm_share'] is None else format(100 * r['bilstm_share'], '.0f') + '%'} | {_fmt(r['cudnn_ms'], '.1f')} | "
                     f"{'n/a' if r['cudnn_faster'] is None else ('yes' if r['cudnn_faster'] else 'no')} |")
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------------------
def choices(known, what: str):
    def parse(text: str) -> List[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in names if x not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; known: {', '.join(known)}")
        return names
    return parse


positive = positive_int  # an integer >= 1 (argparse type), the CLI's own


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    p.add_argument("--models", type=choices(tuple(MODELS), "model"), default=["albert-base", "m3e-small"])
    p.add_argument("--precisions", type=choices(PRECISIONS, "precision"), default=list(PRECISIONS))
    p.add_argument("--jit", type=choices(("on", "off"), "XLA setting"), default=["on", "off"])
    p.add_argument("--heads", type=choices(HEADS, "head"), default=list(HEADS))
    p.add_argument("--gpus", type=choices(("1", "N"), "GPU count"), default=["1", "N"],
                   help="1 and/or N = every visible GPU (skipped with one GPU)")
    p.add_argument("--variants", type=lambda s: [x for x in s.split(",") if x], default=None,
                   help="glob(s) on model/precision/xla|graph/head/Ngpu, e.g. 'm3e-small/*/xla/*'")
    p.add_argument("--quick", action="store_true", help="the short list in QUICK_ORDER (one precision + float32)")
    p.add_argument("--batch-size", type=positive, default=32, help="per replica")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per row incl. [CLS] and [SEP]")
    p.add_argument("--lstm-units", type=positive, default=128)
    p.add_argument("--warmup", type=positive, default=3, help="untimed steps (the first traces/compiles)")
    p.add_argument("--steps", type=positive, default=20, help="timed steps")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variant-timeout", type=float, default=300.0, help="seconds per variant subprocess")
    p.add_argument("--budget-s", type=float, default=0.0, help="start no variant after this many seconds; 0 = none")
    p.add_argument("--cpu-replicas", type=positive, default=1,
                   help="with --device cpu: N for the N-device (MirroredStrategy) variants, as logical CPUs")
    p.add_argument("--no-count-xla", dest="count_xla", action="store_false",
                   help="do not dump HLO to count XLA programs (the dump adds to the first step's time)")
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seq_len < 3:
        p.error(f"--seq-len must be >= 3 ([CLS], a character, [SEP]), got {args.seq_len}")
    args.jit = [j == "on" for j in args.jit]
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.probe:
        print(json.dumps(probe()))
        return 0
    if args.child:
        Path(args.child_out).write_text(json.dumps(run_child(args), indent=1), encoding="utf-8")
        return 0
    return run_parent(args, argv)


if __name__ == "__main__":
    sys.exit(main())
