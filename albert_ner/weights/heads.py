"""Pretraining heads in and out: continual pretraining from any source, and the pretrained directory we write.

Loading fills a PretrainingModel's encoder the way `train --init` does (weights/convert.py) and its
MLM head, pooler and SOP classifier from the same source where it has them (head_names.py); a part
the source lacks starts fresh and the report says so ("MLM head: fresh (the source has none)").
Saving writes a converted directory (convert.py's layout, so `albert-ner train --init DIR` reads it)
plus the heads, so a later run continues pretraining with them:
    DIR/encoder_config.json, DIR/vocab.txt, DIR/encoder/ckpt.*, DIR/conversion_report.json
    DIR/pretraining_heads/ckpt.*      one TF2 checkpoint entry per head slot (see head_names.py)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

from albert_ner.config import save_json
from albert_ner.data.features import VOCAB_FILE
from albert_ner.data.vocab import vocab_file_bytes
from albert_ner.model import warm_start
from albert_ner.model.pretraining import PretrainingModel
from albert_ner.weights.convert import (ENCODER_CONFIG, ENCODER_PREFIX, REPORT_FILE, is_converted, load_pretrained,
                                        pretraining_output)
from albert_ner.weights.head_names import HEAD_NAME_MAPS, HEAD_PARTS, is_brightmart, map_head_tensors
from albert_ner.weights.loader import assign_encoder_weights
from albert_ner.weights.names import detect_name_map
from albert_ner.weights.paddle import CheckpointFormatError
from albert_ner.weights.sources import read_source
from pretrained.cache import unpacked_local

log = logging.getLogger(__name__)

HEADS_PREFIX = "pretraining_heads/ckpt"
OURS = "albert-ner pretrained directory"


def head_slots(model: PretrainingModel) -> Dict[str, tf.Variable]:
    """Head slot -> variable for a built model (pooler and SOP only when the model has them)."""
    if not model.mlm_decoder.built:
        raise ValueError("build the pretraining model (model.build_weights()) before loading or saving heads")
    t = model.mlm_transform
    slots = {"mlm/transform/kernel": t.dense.kernel, "mlm/transform/bias": t.dense.bias,
             "mlm/LayerNorm/gamma": t.layer_norm.gamma, "mlm/LayerNorm/beta": t.layer_norm.beta,
             "mlm/output_bias": model.mlm_decoder.output_bias}
    if model.sop:
        slots.update({"pooler/kernel": model.pooler.kernel, "pooler/bias": model.pooler.bias,
                      "sop/kernel": model.sop_classifier.kernel, "sop/bias": model.sop_classifier.bias})
    return slots


def _checkpoint_key(slot: str) -> str:
    return slot.replace("/", "_")  # mlm/LayerNorm/gamma -> mlm_LayerNorm_gamma (unique over HEAD_PARTS)


@dataclasses.dataclass
class HeadReport:
    """Which head parts came from the source (tensor names), which start fresh and why, what was not used."""

    source: str
    layout: str
    loaded: Dict[str, List[str]]  # part -> source tensor names
    fresh: Dict[str, str]  # part -> why it starts from random init
    not_used: List[str]  # head tensors of the source the model has no place for (no SOP head)
    tied: List[str]  # decoder weights tied to the word table: never read
    notes: Dict[str, str] = dataclasses.field(default_factory=dict)  # part -> what else to know

    def summary(self) -> str:
        lines = []
        for part in HEAD_PARTS:
            if part in self.loaded:
                extra = "".join(f"; {d[part]}" for d in (self.fresh, self.notes) if part in d)
                lines.append(f"{part}: loaded from {self.source} ({', '.join(self.loaded[part])}){extra}")
            elif part in self.fresh:
                lines.append(f"{part}: fresh ({self.fresh[part]})")
        if self.not_used:
            lines.append(f"{len(self.not_used)} head tensors not used (the model has no place for them): "
                         + ", ".join(self.not_used))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def assign_head_weights(model: PretrainingModel, mapped: Mapping[str, Tuple[str, np.ndarray]], source: str,
                        layout: str, tied: Optional[List[str]] = None, nsp: bool = False) -> HeadReport:
    """Assign {head slot: (source name, array)} to the model's heads, part by part; a shape mismatch is an
    error naming the tensor and both shapes. `nsp`: the source's classifier predicts next sentences."""
    slots = head_slots(model)
    loaded: Dict[str, List[str]] = {}
    fresh: Dict[str, str] = {}
    not_used: List[str] = []
    for part, part_slots in HEAD_PARTS.items():
        present = [s for s in part_slots if s in mapped]
        if not all(s in slots for s in part_slots):  # the model has no such part (SOP off)
            not_used += [mapped[s][0] for s in present]
            continue
        if not present:
            fresh[part] = "the source has none"
            continue
        for slot in present:
            name, array = mapped[slot]
            var = slots[slot]
            if tuple(array.shape) != tuple(var.shape):
                raise ValueError(f"{source}: tensor {name} has shape {list(array.shape)}, but head weight {slot} "
                                 f"needs {var.shape.as_list()} (does the config match the checkpoint?)")
            var.assign(array.astype(var.dtype.as_numpy_dtype, copy=False))
        loaded[part] = sorted(mapped[s][0] for s in present)
        missing = [s for s in part_slots if s not in present]
        if missing:
            fresh[part] = f"partly: {', '.join(missing)} not in the source, left at random init"
    notes = {}
    if nsp and "SOP classifier" in loaded:
        notes["SOP classifier"] = "the source's next-sentence classifier, a start for sentence order"
    report = HeadReport(source, layout, loaded, fresh, sorted(not_used), sorted(tied or []), notes)
    log.info("%s", report.summary())
    return report


def heads_from_tensors(model: PretrainingModel, tensors: Dict[str, np.ndarray], source: str) -> HeadReport:
    """Fill the heads from a published source's tensors (family detected from its encoder names)."""
    name_map = detect_name_map(list(tensors))
    mapped, tied = map_head_tensors(tensors, name_map.name)
    nsp = HEAD_NAME_MAPS[name_map.name].nsp and not is_brightmart(list(tensors))
    return assign_head_weights(model, mapped, source, name_map.description, tied, nsp)


def read_saved_heads(directory: str | Path) -> Dict[str, Tuple[str, np.ndarray]]:
    """{head slot: (checkpoint entry, array)} of a directory we wrote; empty when it holds no heads."""
    prefix = str(Path(directory) / HEADS_PREFIX)
    if not tf.io.gfile.exists(prefix + ".index"):
        return {}
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointFormatError(f"{prefix}.index: cannot read the pretraining heads: "
                                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                                    ) from None
    out = {}
    for slots in HEAD_PARTS.values():
        for slot in slots:
            key = f"{_checkpoint_key(slot)}/.ATTRIBUTES/VARIABLE_VALUE"
            if reader.has_tensor(key):
                out[slot] = (key.split("/")[0], reader.get_tensor(key))
    return out


def load_pretraining_init(model: PretrainingModel, path: str | Path) -> Dict[str, Any]:
    """Continual pretraining: fill a built model's encoder and heads from `path` (any source `train --init`
    takes); returns {"encoder": load report, "heads": head report}."""
    path = pretraining_output(unpacked_local(path))
    if warm_start.find_trained_model(path) is not None:  # an NER model: its encoder, no pretraining heads
        encoder_report = load_pretrained(model.encoder, path)
        heads = assign_head_weights(model, {}, str(path), "albert-ner trained NER model")
    elif is_converted(path):
        encoder_report = load_pretrained(model.encoder, path)
        heads = assign_head_weights(model, read_saved_heads(path), str(path), OURS)
    else:
        source = read_source(path)
        encoder_report = assign_encoder_weights(model.encoder, source.tensors, str(source.path),
                                                source.skipped_by_kind()).to_dict()
        heads = heads_from_tensors(model, source.tensors, str(source.path))
    return {"encoder": encoder_report, "heads": heads.to_dict()}


def save_pretrained_dir(model: PretrainingModel, vocab_file: str | Path, out_dir: str | Path,
                        info: Optional[Dict[str, Any]] = None) -> Path:
    """Write encoder config, vocabulary, encoder and head weights and a report to `out_dir`; returns it.

    `albert-ner train --init OUT_DIR` reads the encoder; `load_pretraining_init` reads encoder and heads.
    """
    out = Path(out_dir)
    vocab = Path(vocab_file)
    if not vocab.is_file():
        raise FileNotFoundError(f"{vocab}: vocabulary file not found")
    slots = head_slots(model)
    out.mkdir(parents=True, exist_ok=True)
    save_json(model.config, out / ENCODER_CONFIG)
    if vocab.suffix == ".model":  # a SentencePiece model keeps its own name, as convert.py does
        shutil.copyfile(vocab, out / vocab.name)
    else:
        (out / VOCAB_FILE).write_bytes(vocab_file_bytes(vocab))
    tf.train.Checkpoint(encoder=model.encoder).write(str(out / ENCODER_PREFIX))
    tf.train.Checkpoint(**{_checkpoint_key(s): v for s, v in slots.items()}).write(str(out / HEADS_PREFIX))
    report = dict(info or {}, source=OURS, sop=model.sop,
                  heads={part: [s for s in part_slots if s in slots] for part, part_slots in HEAD_PARTS.items()
                         if all(s in slots for s in part_slots)})
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
