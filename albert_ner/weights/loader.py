"""Put pretrained tensors into a TransformerEncoder, accounting for every tensor on both sides.

Each encoder weight has a canonical slot name (see names.py); a checkpoint's tensors are mapped
onto slots, shape-checked, and assigned. The report lists what was loaded, which checkpoint
tensors were not used (expected heads apart), what the reader skipped by kind (optimizer slots,
non-tensor entries), and which encoder weights kept their random init.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from albert_ner.model.encoder import TransformerEncoder
from albert_ner.weights.names import detect_name_map, map_tensors

log = logging.getLogger(__name__)


def encoder_slots(encoder: TransformerEncoder) -> Dict[str, tf.Variable]:
    """Canonical slot name -> variable, for every weight of a built encoder."""
    e = encoder.embeddings
    if not e.built:
        raise ValueError("build the encoder (call it once) before loading weights")
    slots = {"embeddings/word": e.word_embeddings, "embeddings/position": e.position_embeddings,
             "embeddings/token_type": e.token_type_embeddings,
             "embeddings/LayerNorm/gamma": e.layer_norm.gamma, "embeddings/LayerNorm/beta": e.layer_norm.beta}
    if getattr(e, "word_projection", None) is not None:
        slots["embeddings/word_projection"] = e.word_projection
    if e.task_type_embeddings is not None:
        slots["embeddings/task_type"] = e.task_type_embeddings
    if e.projection_out is not None:
        slots["embeddings/projection/kernel"] = e.projection_out.kernel
        slots["embeddings/projection/bias"] = e.projection_out.bias
    for g, block in enumerate(encoder.groups):
        a = block.attention
        dense = {"attention/query": a.query, "attention/key": a.key, "attention/value": a.value,
                 "attention/output": a.output_dense, "intermediate": block.intermediate, "output": block.ffn_output}
        for name, layer in dense.items():
            slots[f"group_{g}/{name}/kernel"] = layer.kernel
            slots[f"group_{g}/{name}/bias"] = layer.bias
        for name, layer in (("attention_LayerNorm", block.attention_layer_norm),
                            ("output_LayerNorm", block.output_layer_norm)):
            slots[f"group_{g}/{name}/gamma"] = layer.gamma
            slots[f"group_{g}/{name}/beta"] = layer.beta
    return slots


@dataclasses.dataclass
class LoadReport:
    """What a load did: counts and names on both sides."""

    source: str
    layout: str
    loaded: List[str]
    not_used: List[str]  # checkpoint tensors that fit no encoder weight (and are not known heads)
    expected_leftovers: List[str]  # pretraining heads, poolers, buffers
    left_random: List[str]  # encoder weights no tensor filled
    # entries the reader left out unread, by kind (e.g. "optimizer/bookkeeping": adam_m, global_step)
    skipped: Dict[str, List[str]] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        expected = [f"{len(self.expected_leftovers)} pretraining-head/pooler tensors"]
        expected += [f"{len(names)} {kind} entries" for kind, names in sorted(self.skipped.items()) if names]
        lines = [f"{self.source}: {self.layout}: loaded {len(self.loaded)} encoder weights; "
                 f"{' and '.join(expected)} skipped as expected"]
        if self.not_used:
            lines.append(f"  {len(self.not_used)} checkpoint tensors NOT used: " + ", ".join(self.not_used))
        if self.left_random:
            lines.append(f"  {len(self.left_random)} encoder weights left at random init: "
                         + ", ".join(self.left_random))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def assign_encoder_weights(encoder: TransformerEncoder, tensors: Dict[str, np.ndarray],
                           source: str = "<checkpoint>",
                           skipped: Optional[Mapping[str, Sequence[str]]] = None) -> LoadReport:
    """Map `tensors` onto the encoder's weights and assign them; a shape mismatch is an error naming both.

    `skipped` (kind -> names) is what the reader left out unread; the report counts it as expected.
    """
    name_map = detect_name_map(list(tensors))
    mapped, unmatched, leftovers = map_tensors(tensors, name_map)
    slots = encoder_slots(encoder)
    loaded, not_used = [], list(unmatched)
    for slot, (name, array) in sorted(mapped.items()):
        var = slots.get(slot)
        if var is None:
            not_used.append(name)
            continue
        if tuple(array.shape) != tuple(var.shape):
            raise ValueError(f"{source}: tensor {name} has shape {list(array.shape)}, but encoder weight {slot} "
                             f"needs {var.shape.as_list()} (does the config match the checkpoint?)")
        var.assign(array.astype(var.dtype.as_numpy_dtype, copy=False))
        loaded.append(slot)
    left_random = sorted(set(slots) - set(loaded))
    report = LoadReport(source, name_map.description, loaded, sorted(not_used), leftovers, left_random,
                        {kind: sorted(names) for kind, names in (skipped or {}).items()})
    (log.warning if report.not_used or report.left_random else log.info)("%s", report.summary())
    return report
