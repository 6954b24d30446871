"""Entity-level evaluation with seqeval, and metric lines that log scrapers can pick up."""
from __future__ import annotations

from typing import Dict, List, Sequence

from albert_ner.data.tags import convert_scheme, detect_scheme


def entity_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Dict:
    """Micro and per-type precision/recall/F1 over entities (seqeval), plus counts."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOBES

    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted tag sequences differ in shape")
    gold_l, pred_l = [list(g) for g in gold], [list(p) for p in pred]
    scheme = detect_scheme(t for g in gold_l for t in g)
    if detect_scheme(t for p in pred_l for t in p) != scheme:  # a model trained in the other scheme
        pred_l = [convert_scheme(p, scheme) for p in pred_l]
    if scheme == "BIOES":
        raw = classification_report(gold_l, pred_l, output_dict=True, zero_division=0, mode="strict", scheme=IOBES)
    else:  # conlleval-compatible (the published MSRA numbers are computed this way)
        raw = classification_report(gold_l, pred_l, output_dict=True, zero_division=0)
    per_type = {k: _clean(v) for k, v in raw.items() if not k.endswith(" avg")}
    micro = _clean(raw["micro avg"])
    return {
        "precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1"], "support": micro["support"],
        "per_type": per_type,
        "sentences": len(gold_l), "chars": sum(len(g) for g in gold_l),
    }


def _clean(row: Dict) -> Dict:
    return {"precision": float(row["precision"]), "recall": float(row["recall"]),
            "f1": float(row["f1-score"]), "support": int(row["support"])}


def metric_lines(prefix: str, report: Dict) -> List[str]:
    """`eval_f1 = 0.9123` style lines: micro P/R/F1, then per type (`eval_PER_f1 = ...`)."""
    lines = [f"{prefix}_{k} = {report[k]:.4f}" for k in ("precision", "recall", "f1")]
    for etype, row in sorted(report["per_type"].items()):
        lines += [f"{prefix}_{etype}_{k} = {row[k]:.4f}" for k in ("precision", "recall", "f1")]
    return lines


def format_table(report: Dict) -> str:
    """A readable per-type table."""
    rows = [f"{'type':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for etype, r in sorted(report["per_type"].items()):
        rows.append(f"{etype:<10}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1']:>10.4f}{r['support']:>9}")
    rows.append(f"{'micro':<10}{report['precision']:>10.4f}{report['recall']:>10.4f}{report['f1']:>10.4f}"
                f"{report['support']:>9}")
    return "\n".join(rows)
