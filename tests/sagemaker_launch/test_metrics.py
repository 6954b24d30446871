"""The launcher's metric regexes against a training log as albert-ner writes it.

The step and epoch lines are rendered by the runner's own `step_line`/`epoch_line` (albert_ner/train/runner.py,
with the NER task's epoch value, so a changed format shows up here), the closing lines come from train/report.py's
`metric_lines`, and the noise around them (progress bars, log records, the report table) is what a
SageMaker job's log holds. Each regex must match exactly the lines of its own kind, and capture their value.
"""
import itertools
import re

from albert_ner.train.ner_task import DEV_F1
from albert_ner.train.report import format_table, metric_lines
from albert_ner.train.runner import epoch_line, step_line
from tests.sagemaker_launch.conftest import load_launcher


def report(f1, types=("LOC", "ORG", "PER")):
    per_type = {t: {"precision": f1 - 0.01, "recall": f1 + 0.01, "f1": f1, "support": 10} for t in types}
    return {"precision": f1 - 0.02, "recall": f1 + 0.02, "f1": f1, "support": 30, "per_type": per_type}


def training_log():
    """(log lines, {kind: [(line, {field: printed value})]}) of a two-epoch job with dev and test sets."""
    lines, kinds = [], {"step": [], "epoch": [], "eval": []}
    lines += ["2024-05-01 10:00:00 INFO albert_ner.sagemaker_env: host algo-1 of algo-1, 1 GPU(s); running: "
              "albert-ner train --data-dir /opt/ml/input/data/train --epochs 2 --output-dir /opt/ml/checkpoints",
              "2024-05-01 10:00:05.123456: I tensorflow/core/common_runtime/gpu/gpu_device.cc:1886] Created device"]
    step = itertools.count(50, 50)
    for epoch in (1, 2):
        for i in range(3):
            n = next(step)
            loss, speed = 2.0 / n + 1e-5, 800.0 + i
            line = step_line(n, loss, speed)
            lines += [f"epoch {epoch}/2:  {30 * i}%|###       | {n}/300 [00:05<00:10, 9.8it/s, loss={loss:.3f}]", line]
            kinds["step"].append((line, {"train:loss": f"{loss:.4f}", "train:samples_per_sec": f"{speed:.1f}"}))
        loss, f1 = 0.5 / epoch, 0.8 + epoch / 100
        line = epoch_line(epoch, loss, {DEV_F1: f1}, 120.5)
        lines.append(line)
        kinds["epoch"].append((line, {"train:epoch_loss": f"{loss:.4f}", "dev:f1": f"{f1:.4f}"}))
        lines.append(f"2024-05-01 10:0{epoch}:00 INFO albert_ner.train.runner: new best dev F1 {f1:.4f} at epoch "
                     f"{epoch}: model published as /opt/ml/checkpoints/model-{epoch}")
    dev, test = report(0.8201), report(0.7903)
    lines += format_table(dev).splitlines() + metric_lines("dev", dev)
    lines += format_table(test).splitlines() + metric_lines("test", test)
    for line in metric_lines("eval", test):
        lines.append(line)
        name = line.split(" =")[0]
        if name in ("eval_precision", "eval_recall", "eval_f1"):
            kinds["eval"].append((line, {f"eval:{name[5:]}": line.split("= ")[1]}))
    lines.append("2024-05-01 10:03:00 INFO albert_ner.sagemaker_env: model written to /opt/ml/model")
    return lines, kinds


def test_each_metric_regex_matches_exactly_its_own_lines():
    lines, kinds = training_log()
    definitions = {m["Name"]: m["Regex"] for m in load_launcher().METRIC_DEFINITIONS}
    expected = {}  # metric -> [(line, value)]
    for kind in kinds.values():
        for line, values in kind:
            for metric, value in values.items():
                expected.setdefault(metric, []).append((line, value))
    for metric, regex in definitions.items():
        found = [(line, m.group(1)) for line in lines for m in [re.search(regex, line)] if m]
        assert found == expected.get(metric), metric
        sources = {kind for kind, rows in kinds.items() for line, _ in rows if line in {f for f, _ in found}}
        assert len(sources) == 1, (metric, sources)  # one kind of line per regex
    assert set(definitions) == set(expected)  # and every value the log carries has its metric


def test_eval_regexes_skip_per_type_lines_whatever_the_type_is_called():
    definitions = {m["Name"]: m["Regex"] for m in load_launcher().METRIC_DEFINITIONS}
    odd = metric_lines("test", report(0.5, types=("eval", "EVAL", "x_eval"))) + metric_lines(
        "eval", report(0.5, types=("eval",)))
    matched = {line for line in odd for regex in definitions.values() if re.search(regex, line)}
    assert matched == {"eval_precision = 0.4800", "eval_recall = 0.5200", "eval_f1 = 0.5000"}
