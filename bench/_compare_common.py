"""What bench/hf_compare.py and bench/pretrain_compare.py share: the environment block, step timing, one subprocess
per (side, variant) with threads pinned, and the Markdown tables, so both measure and report alike."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.cli import positive_int

DEFAULT_CHECKPOINT = Path.home() / ".cache" / "albert-ner" / "pretrained" / "m3e-small"
# Our variants: name -> (XLA on, Keras precision policy). HF variants: name -> autocast dtype (None: float32).
OURS_VARIANTS: Dict[str, Tuple[bool, str]] = {
    "graph": (False, "float32"), "xla": (True, "float32"),
    "mixed_bfloat16": (False, "mixed_bfloat16"), "xla_mixed_bfloat16": (True, "mixed_bfloat16")}
HF_VARIANTS: Dict[str, Optional[str]] = {"float32": None, "bf16": "bfloat16"}  # same as hf_finetune.AUTOCAST
CPU_FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512f", "avx2")
PACKAGES = ("tensorflow", "torch", "transformers", "numpy", "seqeval", "albert-ner")
ENV_VARS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "KMP_AFFINITY")
STEP_COLUMNS = ("side", "variant", "precision", "XLA", "B x T", "threads", "first step", "ms/step median",
                "ms/step mean", "samples/s")
positive = positive_int  # an integer >= 1 (argparse type), the CLI's own


# ---- environment ---------------------------------------------------------------------------------
def cpu_info(path: str = "/proc/cpuinfo") -> Dict[str, Any]:
    """CPU model name and the ISA flags that matter for bfloat16 (AMX, AVX-512 BF16), from /proc/cpuinfo."""
    model, flags = "unknown", set()
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return {"model": model, "flags": {}, "error": f"{path}: {exc}"}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "flags": {f: f in flags for f in CPU_FLAGS}, "amx": "amx_bf16" in flags}


def load_average() -> Optional[List[float]]:
    """1/5/15-minute load averages: a busy machine (other jobs on these cores) makes every time here meaningless."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment(threads: int, inter_op_threads: int) -> Dict[str, Any]:
    """Where the numbers were measured: CPU, cores usable, package versions, thread settings."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_info(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "threads": threads, "inter_op_threads": inter_op_threads, "loadavg": load_average(),
            "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ}}


# ---- inside a child: threads pinned, steps timed ---------------------------------------------------------
def time_steps(step: Callable[[Any], float], batches: List[Any], warmup: int) -> Dict[str, Any]:
    """Run `step` (which must block until its update is done) on every batch; first-step and steady times."""
    times, losses = [], []
    for b in batches:
        t0 = time.perf_counter()
        losses.append(float(step(b)))
        times.append(time.perf_counter() - t0)
    steady = [t * 1000 for t in times[warmup:]]
    mean = statistics.fmean(steady)
    return {"first_step_s": times[0], "warmup_ms": [t * 1000 for t in times[:warmup]], "step_ms": steady,
            "ms_median": statistics.median(steady), "ms_mean": mean, "ms_min": min(steady),
            "ms_stdev": statistics.stdev(steady) if len(steady) > 1 else 0.0, "losses": losses}


def finite_losses(result: Dict[str, Any], where: str) -> None:
    """A step that produced NaN/inf did not train: refuse to report its time as if it had."""
    bad = [i for i, v in enumerate(result["losses"]) if not np.isfinite(v)]
    if bad:
        raise RuntimeError(f"{where}: loss is not finite at step(s) {bad[:5]}: {result['losses'][:5]}")


def tf_threads(args: argparse.Namespace):
    """TensorFlow with --threads / --inter-op-threads pinned and --seed set; call it before building anything."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    tf.keras.utils.set_random_seed(args.seed)
    return tf


def torch_threads(args: argparse.Namespace) -> Dict[str, str]:
    """torch pinned and seeded as TensorFlow is; returns the from_pretrained keywords that --hf-attn asks for."""
    import torch

    from hf_finetune import set_torch_threads

    set_torch_threads(args.threads, args.inter_op_threads)
    torch.manual_seed(args.seed)
    return {"attn_implementation": args.hf_attn} if args.hf_attn else {}


def torch_step(model, opt, sched, dtype_name: Optional[str], clip_norm: float,
               loss_of: Callable[[Dict[str, Any]], Any]) -> Callable[[Dict[str, Any]], float]:
    """A plain PyTorch update: loss_of(batch) under autocast to dtype_name, backward, clipping, optimizer and
    schedule steps; the step returns the loss (its .item() waits for the update)."""
    import torch

    from hf_finetune import autocast

    def step(batch: Dict[str, Any]) -> float:
        with autocast(dtype_name):
            loss = loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
    return step


def run_side(args: argparse.Namespace,
             children: Dict[str, Callable[[argparse.Namespace, str], Dict[str, Any]]]) -> Dict[str, Any]:
    """Inside a child: time --child SIDE:VARIANT with children[SIDE] and stamp the result with the shape it ran."""
    side, _, variant = args.child.partition(":")
    result = children[side](args, variant)
    result.update(batch_size=args.batch_size, seq_len=args.seq_len, warmup=args.warmup, steps=args.steps)
    return result


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON at `path`, its folder made if need be."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")


def write_report(path: Path, report: Dict[str, Any]) -> None:
    """The parent's JSON report, announced on stderr (stdout carries only the tables)."""
    write_json(path, report)
    print(f"# wrote {path}", file=sys.stderr)


# ---- the parent: one subprocess per child ---------------------------------------------------------------
def child_env(args: argparse.Namespace) -> Dict[str, str]:
    """The child's environment: quiet TensorFlow, OpenMP pinned to --threads unless the caller already set it."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    return env


def spawn(script: Path, argv: List[str], child: str, out: Path, args: argparse.Namespace,
          label: Optional[str] = None, extra: Sequence[str] = ()) -> Tuple[Optional[Dict[str, Any]], int]:
    """Run `script ARGV --child CHILD --child-out OUT EXTRA` in a fresh process, so TensorFlow and torch never
    share one; (its result JSON, or None when it failed, and its exit code)."""
    label = label or child
    cmd = [sys.executable, str(script)] + argv + ["--child", child, "--child-out", str(out), *extra]
    print(f"# {label}: running in a subprocess (load average {load_average()})", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=child_env(args))
    if proc.returncode != 0 or not out.is_file():
        print(f"# {label}: FAILED (exit code {proc.returncode}); see its output above", file=sys.stderr, flush=True)
        return None, proc.returncode
    return json.loads(out.read_text(encoding="utf-8")), proc.returncode


def run_each(script: Path, argv: List[str], specs: Sequence[Tuple[str, str]], folder: Path,
             args: argparse.Namespace, sep: str = "/",
             extra: Sequence[str] = ()) -> Iterator[Tuple[str, str, Optional[Dict[str, Any]], int]]:
    """Each (side, variant) in its own subprocess, one after another: yields (side, variant, result or None, exit
    code), a result with the load average before and after its run."""
    for side, variant in specs:
        before = load_average()
        out = Path(folder) / f"{side}_{variant.replace(':', '_')}.json"
        result, code = spawn(script, argv, f"{side}:{variant}", out, args, f"{side}{sep}{variant}", extra)
        if result is not None:
            result = dict(result, loadavg_before=before, loadavg_after=load_average())
        yield side, variant, result, code


def pairs(results: List[Dict], extra: Callable[[Dict, Dict, float], Dict]) -> List[Dict]:
    """For every (ours, HF) pair: HF mean ms / our mean ms as "speedup" (above 1: we are faster), + extra(o, h, it)."""
    rows = []
    for o in (r for r in results if r["side"] == "ours"):
        for h in (r for r in results if r["side"] == "hf"):
            speedup = h["ms_mean"] / o["ms_mean"]
            rows.append(dict(ours=o["variant"], hf=h["variant"], speedup=speedup, **extra(o, h, speedup)))
    return rows


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table from a header and rows of cells already formatted."""
    lines = [f"| {' | '.join(header)} |", "|---" * len(header) + "|"]
    return "\n".join(lines + [f"| {' | '.join(row)} |" for row in rows])


def step_table(results: List[Dict], threads: int, hf_name: Callable[[Dict], str] = lambda r: "HF",
               extra: Sequence[Tuple[str, str]] = ()) -> str:
    """One row per (side, variant): the columns both benchmarks print, then each extra (header, result key) as a
    whole number with thousands separators."""
    rows = [["albert-ner" if r["side"] == "ours" else hf_name(r), r["variant"], r["precision"],
             "on" if r["jit"] else "off", f"{r['batch_size']}x{r['seq_len']}", str(threads),
             f"{r['first_step_s']:.1f} s", f"{r['ms_median']:,.0f}", f"{r['ms_mean']:,.0f}",
             f"{r['samples_per_s']:.1f}"] + [f"{r[key]:,.0f}" for _, key in extra] for r in results]
    return table(STEP_COLUMNS + tuple(h for h, _ in extra), rows)


# ---- command line ----------------------------------------------------------------------------------
def variant_list(known: Dict[str, Any], what: str) -> Callable[[str], List[str]]:
    """An argparse type: a comma-separated list of names from `known`, refusing any other name."""
    def parse(text: str) -> List[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in names if v not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} variant(s) {unknown}; known: {sorted(known)}")
        return names
    return parse


def add_thread_args(group) -> None:
    """--threads, --inter-op-threads (see resolve_threads) and --seed, the same for both frameworks."""
    group.add_argument("--threads", type=positive, default=2, help="intra-op threads (TF and torch)")
    group.add_argument("--inter-op-threads", type=positive, default=None, help="default: --threads")
    group.add_argument("--seed", type=int, default=42)


def resolve_threads(args: argparse.Namespace) -> None:
    """--inter-op-threads defaults to --threads (after parsing)."""
    if args.inter_op_threads is None:
        args.inter_op_threads = args.threads


def add_variant_args(group, ours: List[str], hf: List[str]) -> None:
    """--ours-variants and --hf-variants with their defaults."""
    group.add_argument("--ours-variants", type=variant_list(OURS_VARIANTS, "albert-ner"), default=ours)
    group.add_argument("--hf-variants", type=variant_list(HF_VARIANTS, "HF"), default=hf)


def add_child_args(group) -> None:
    """The hidden options by which the parent tells a child what to run and where to write its result."""
    group.add_argument("--child", default=None, help=argparse.SUPPRESS)
    group.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
