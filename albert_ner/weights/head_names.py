"""Published pretraining-head tensor names -> the pretraining model's canonical head slots, per family.

Head slots (kernels [in, out], as in names.py; torch `nn.Linear` and TF1 `output_weights` [out, in]
are transposed on the way in):
  mlm/transform/{kernel,bias}   [H,W] / [W]   W = E for Google ALBERT, else H
  mlm/LayerNorm/{gamma,beta}    [W]
  mlm/output_bias               [V]           the decoder itself is tied to the word table
  pooler/{kernel,bias}          [H,H] / [H]
  sop/{kernel,bias}             [H,2] / [2]   ALBERT's SOP or BERT/ERNIE's next-sentence classifier
The families are the encoder name maps of names.py (same `name`), so a source's family is detected
once, from its encoder tensors. Sources: ../shared/notes/formats.md (§1.4, §2.3, §3.1, §4.1-4.4).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.weights.names import Rule, normalize_slot

# The three parts of the heads, each loaded or started fresh as a whole, and the slots of each.
HEAD_PARTS: Dict[str, Tuple[str, ...]] = {
    "MLM head": ("mlm/transform/kernel", "mlm/transform/bias", "mlm/LayerNorm/gamma", "mlm/LayerNorm/beta",
                 "mlm/output_bias"),
    "pooler": ("pooler/kernel", "pooler/bias"),
    "SOP classifier": ("sop/kernel", "sop/bias"),
}


@dataclasses.dataclass(frozen=True)
class HeadNameMap:
    """One family's head names: rules onto head slots, and names that are the tied decoder (never read)."""

    family: str  # names.NameMap.name of the same checkpoint family
    rules: Tuple[Rule, ...]
    tied: Tuple[str, ...] = ()  # regexes: decoder weights tied to (copies of) the word table
    nsp: bool = False  # the family's [*, 2] classifier is next-sentence prediction, not sentence order

    def slot(self, name: str) -> Optional[Tuple[str, bool]]:
        """(head slot, transpose?) for a tensor name, or None."""
        for rule in self.rules:
            m = re.fullmatch(rule.pattern, name)
            if m:
                return normalize_slot(m.expand(rule.template)), rule.transpose
        return None

    def is_tied(self, name: str) -> bool:
        return any(re.fullmatch(p, name) for p in self.tied)


_KB = r"(kernel|bias)"
_LN = r"(weight|bias|gamma|beta)"

# TF1 BERT/ALBERT (brightmart albert_zh, Google ALBERT incl. albert_base_zh, Google BERT):
# run_pretraining.py's get_masked_lm_output and get_next_sentence_output; output_weights is [2,H].
_TF1 = (
    Rule(rf"cls/predictions/transform/dense/{_KB}", r"mlm/transform/\1"),
    Rule(r"cls/predictions/transform/LayerNorm/(gamma|beta)", r"mlm/LayerNorm/\1"),
    Rule(r"cls/predictions/output_bias", "mlm/output_bias"),
    Rule(rf"bert/pooler/dense/{_KB}", r"pooler/\1"),
    Rule(r"cls/seq_relationship/output_weights", "sop/kernel", True),
    Rule(r"cls/seq_relationship/output_bias", "sop/bias"),
)
TF1_BERT_HEADS = HeadNameMap("tf1-bert", _TF1, nsp=True)  # brightmart trained SOP, Google BERT NSP: see below
TF1_ALBERT_HEADS = HeadNameMap("tf1-albert", _TF1)

_P = r"(?:bert\.|ernie\.|model\.)?"
# Hugging Face BertForPreTraining / ErnieForPreTraining / BertForMaskedLM (and nghuyong's gamma/beta ports).
HF_BERT_HEADS = HeadNameMap("hf-bert", (
    Rule(r"cls\.predictions\.transform\.dense\.weight", "mlm/transform/kernel", True),
    Rule(r"cls\.predictions\.transform\.dense\.bias", "mlm/transform/bias"),
    Rule(rf"cls\.predictions\.transform\.LayerNorm\.{_LN}", r"mlm/LayerNorm/\1"),
    Rule(r"cls\.predictions\.(?:decoder\.)?bias", "mlm/output_bias"),
    Rule(rf"{_P}pooler\.dense\.weight", "pooler/kernel", True),
    Rule(rf"{_P}pooler\.dense\.bias", "pooler/bias"),
    Rule(r"cls\.seq_relationship\.weight", "sop/kernel", True),
    Rule(r"cls\.seq_relationship\.bias", "sop/bias"),
), tied=(r"cls\.predictions\.decoder\.weight",), nsp=True)

# Hugging Face AlbertForPreTraining / AlbertForMaskedLM.
HF_ALBERT_HEADS = HeadNameMap("hf-albert", (
    Rule(r"predictions\.dense\.weight", "mlm/transform/kernel", True),
    Rule(r"predictions\.dense\.bias", "mlm/transform/bias"),
    Rule(rf"predictions\.LayerNorm\.{_LN}", r"mlm/LayerNorm/\1"),
    Rule(r"predictions\.(?:decoder\.)?bias", "mlm/output_bias"),
    Rule(r"(?:albert\.)?pooler\.weight", "pooler/kernel", True),
    Rule(r"(?:albert\.)?pooler\.bias", "pooler/bias"),
    Rule(r"sop_classifier\.classifier\.weight", "sop/kernel", True),
    Rule(r"sop_classifier\.classifier\.bias", "sop/bias"),
), tied=(r"predictions\.decoder\.weight",))

# ERNIE 1.0 static-graph params/ (fluid fc weights are [in, out]); mask_lm_out_fc.w_0 exists only untied.
PADDLE_STATIC_HEADS = HeadNameMap("paddle-static", (
    Rule(r"mask_lm_trans_fc\.w_0", "mlm/transform/kernel"),
    Rule(r"mask_lm_trans_fc\.b_0", "mlm/transform/bias"),
    Rule(r"mask_lm_trans_layer_norm_scale", "mlm/LayerNorm/gamma"),
    Rule(r"mask_lm_trans_layer_norm_bias", "mlm/LayerNorm/beta"),
    Rule(r"mask_lm_out_fc\.b_0", "mlm/output_bias"),
    Rule(r"pooled_fc\.w_0", "pooler/kernel"),
    Rule(r"pooled_fc\.b_0", "pooler/bias"),
    Rule(r"next_sent_fc\.w_0", "sop/kernel"),
    Rule(r"next_sent_fc\.b_0", "sop/bias"),
), tied=(r"mask_lm_out_fc\.w_0",), nsp=True)

# PaddleNLP ErnieForPretraining .pdparams (paddle Linear weights are [in, out]).
PADDLENLP_HEADS = HeadNameMap("paddlenlp", (
    Rule(r"cls\.predictions\.transform\.weight", "mlm/transform/kernel"),
    Rule(r"cls\.predictions\.transform\.bias", "mlm/transform/bias"),
    Rule(r"cls\.predictions\.layer_norm\.weight", "mlm/LayerNorm/gamma"),
    Rule(r"cls\.predictions\.layer_norm\.bias", "mlm/LayerNorm/beta"),
    Rule(r"cls\.predictions\.decoder_bias", "mlm/output_bias"),
    Rule(r"(?:ernie\.)?pooler\.dense\.weight", "pooler/kernel"),
    Rule(r"(?:ernie\.)?pooler\.dense\.bias", "pooler/bias"),
    Rule(r"cls\.seq_relationship\.weight", "sop/kernel"),
    Rule(r"cls\.seq_relationship\.bias", "sop/bias"),
), tied=(r"cls\.predictions\.decoder_weight",), nsp=True)

# The `ernie` pip package's ErnieModelForPretraining (saved_weights.pdparams), paddle [in, out].
ERNIE_PIP_HEADS = HeadNameMap("ernie-pip", (
    Rule(r"mlm\.weight", "mlm/transform/kernel"),
    Rule(r"mlm\.bias", "mlm/transform/bias"),
    Rule(r"mlm_ln\.weight", "mlm/LayerNorm/gamma"),
    Rule(r"mlm_ln\.bias", "mlm/LayerNorm/beta"),
    Rule(r"mlm_bias", "mlm/output_bias"),
    Rule(r"pooler\.weight", "pooler/kernel"),
    Rule(r"pooler\.bias", "pooler/bias"),
    Rule(r"pooler_heads\.0\.nsp\.weight", "sop/kernel"),
    Rule(r"pooler_heads\.0\.nsp\.bias", "sop/bias"),
), nsp=True)

HEAD_NAME_MAPS: Dict[str, HeadNameMap] = {m.family: m for m in (
    TF1_BERT_HEADS, TF1_ALBERT_HEADS, HF_BERT_HEADS, HF_ALBERT_HEADS, PADDLE_STATIC_HEADS, PADDLENLP_HEADS,
    ERNIE_PIP_HEADS)}


def is_brightmart(names: Sequence[str]) -> bool:
    """brightmart's albert_zh (trained with SOP) rather than Google BERT (NSP): its word_embeddings_2."""
    return "bert/embeddings/word_embeddings_2" in set(names)


def map_head_tensors(tensors: Dict[str, np.ndarray], family: str
                     ) -> Tuple[Dict[str, Tuple[str, np.ndarray]], List[str]]:
    """({head slot: (source name, array in Keras layout)}, names of tied decoder copies never read).

    Two names for one slot (Hugging Face keeps `cls.predictions.bias` and `cls.predictions.decoder.bias`,
    one tensor shared) are fine when equal, an error naming both when not.
    """
    head_map = HEAD_NAME_MAPS.get(family)
    if head_map is None:
        raise ValueError(f"no pretraining-head names known for checkpoint family {family!r}")
    mapped: Dict[str, Tuple[str, np.ndarray]] = {}
    tied: List[str] = []
    for name in sorted(tensors):
        if head_map.is_tied(name):
            tied.append(name)
            continue
        hit = head_map.slot(name)
        if hit is None:
            continue
        slot, transpose = hit
        array = np.asarray(tensors[name])
        array = array.T if transpose else array
        if slot in mapped:
            first, other = mapped[slot]
            if other.shape != array.shape or not np.array_equal(other, array):
                raise ValueError(f"tensors {first!r} and {name!r} both hold head weight {slot} but differ")
            continue
        mapped[slot] = (name, array)
    return mapped, tied
