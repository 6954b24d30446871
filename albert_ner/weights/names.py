"""Published tensor names -> the encoder's canonical slots, one table per checkpoint family.

A canonical slot names one encoder weight independently of Keras' variable paths:
  embeddings/{word,word_projection,position,token_type,task_type}
  embeddings/LayerNorm/{gamma,beta}            embeddings/projection/{kernel,bias}  (Google ALBERT)
  group_{g}/attention/{query,key,value,output}/{kernel,bias}
  group_{g}/{attention_LayerNorm,output_LayerNorm}/{gamma,beta}
  group_{g}/{intermediate,output}/{kernel,bias}
Kernels are [in, out] as in TF1, Keras and Paddle; torch `nn.Linear` weights ([out, in]) are
transposed on the way in. Sources: ../shared/notes/formats.md (tables per format).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rule:
    """`pattern` (full match on a source name) -> canonical `template` (re.sub style), maybe transposed."""

    pattern: str
    template: str
    transpose: bool = False


@dataclasses.dataclass(frozen=True)
class NameMap:
    """How one checkpoint family's tensor names map onto the encoder, and which names are expected leftovers."""

    name: str
    description: str
    rules: Tuple[Rule, ...]
    leftovers: Tuple[str, ...]  # regexes for pretraining heads, poolers and buffers nobody loads

    def canonical(self, source_name: str) -> Optional[Tuple[str, bool]]:
        """(canonical slot, transpose?) for a source name, or None when no rule matches."""
        for rule in self.rules:
            m = re.fullmatch(rule.pattern, source_name)
            if m:
                return m.expand(rule.template), rule.transpose
        return None

    def is_leftover(self, source_name: str) -> bool:
        return any(re.fullmatch(p, source_name) for p in self.leftovers)


_KB = r"(kernel|bias)"
_LN_TF1 = r"(gamma|beta)"

# TF1 BERT layout: brightmart albert_zh (layer_shared or layer_N, word_embeddings_2) and Google BERT.
TF1_BERT = NameMap("tf1-bert", "TF1 BERT/brightmart albert_zh checkpoint", (
    Rule(r"bert/embeddings/word_embeddings", "embeddings/word"),
    Rule(r"bert/embeddings/word_embeddings_2", "embeddings/word_projection"),
    Rule(r"bert/embeddings/position_embeddings", "embeddings/position"),
    Rule(r"bert/embeddings/token_type_embeddings", "embeddings/token_type"),
    Rule(rf"bert/embeddings/LayerNorm/{_LN_TF1}", r"embeddings/LayerNorm/\1"),
    Rule(rf"bert/encoder/layer_shared/attention/self/(query|key|value)/{_KB}", r"group_0/attention/\1/\2"),
    Rule(rf"bert/encoder/layer_shared/attention/output/dense/{_KB}", r"group_0/attention/output/\1"),
    Rule(rf"bert/encoder/layer_shared/attention/output/LayerNorm/{_LN_TF1}", r"group_0/attention_LayerNorm/\1"),
    Rule(rf"bert/encoder/layer_shared/intermediate/dense/{_KB}", r"group_0/intermediate/\1"),
    Rule(rf"bert/encoder/layer_shared/output/dense/{_KB}", r"group_0/output/\1"),
    Rule(rf"bert/encoder/layer_shared/output/LayerNorm/{_LN_TF1}", r"group_0/output_LayerNorm/\1"),
    Rule(rf"bert/encoder/layer_(\d+)/attention/self/(query|key|value)/{_KB}", r"group_\1/attention/\2/\3"),
    Rule(rf"bert/encoder/layer_(\d+)/attention/output/dense/{_KB}", r"group_\1/attention/output/\2"),
    Rule(rf"bert/encoder/layer_(\d+)/attention/output/LayerNorm/{_LN_TF1}", r"group_\1/attention_LayerNorm/\2"),
    Rule(rf"bert/encoder/layer_(\d+)/intermediate/dense/{_KB}", r"group_\1/intermediate/\2"),
    Rule(rf"bert/encoder/layer_(\d+)/output/dense/{_KB}", r"group_\1/output/\2"),
    Rule(rf"bert/encoder/layer_(\d+)/output/LayerNorm/{_LN_TF1}", r"group_\1/output_LayerNorm/\2"),
), leftovers=(r"bert/pooler/.*", r"cls/.*"))

_G = r"bert/encoder/transformer/group_(\d+)/inner_group_0"
# Google's official ALBERT (incl. albert_base_zh and brightmart's *_google releases).
TF1_ALBERT = NameMap("tf1-albert", "Google ALBERT TF1 checkpoint", (
    Rule(r"bert/embeddings/word_embeddings", "embeddings/word"),
    Rule(r"bert/embeddings/position_embeddings", "embeddings/position"),
    Rule(r"bert/embeddings/token_type_embeddings", "embeddings/token_type"),
    Rule(rf"bert/embeddings/LayerNorm/{_LN_TF1}", r"embeddings/LayerNorm/\1"),
    Rule(rf"bert/encoder/embedding_hidden_mapping_in/{_KB}", r"embeddings/projection/\1"),
    Rule(rf"{_G}/attention_1/self/(query|key|value)/{_KB}", r"group_\1/attention/\2/\3"),
    Rule(rf"{_G}/attention_1/output/dense/{_KB}", r"group_\1/attention/output/\2"),
    Rule(rf"{_G}/LayerNorm/{_LN_TF1}", r"group_\1/attention_LayerNorm/\2"),
    Rule(rf"{_G}/ffn_1/intermediate/dense/{_KB}", r"group_\1/intermediate/\2"),
    Rule(rf"{_G}/ffn_1/intermediate/output/dense/{_KB}", r"group_\1/output/\2"),
    Rule(rf"{_G}/LayerNorm_1/{_LN_TF1}", r"group_\1/output_LayerNorm/\2"),
), leftovers=(r"bert/pooler/.*", r"cls/.*"))

_WB = r"(weight|bias)"
_LN_HF = r"(weight|bias|gamma|beta)"
_A = r"(?:albert\.)?encoder\.albert_layer_groups\.(\d+)\.albert_layers\.0"
# Hugging Face AlbertModel / AlbertForMaskedLM state dicts (optional "albert." prefix).
HF_ALBERT = NameMap("hf-albert", "Hugging Face ALBERT weights", (
    Rule(r"(?:albert\.)?embeddings\.word_embeddings\.weight", "embeddings/word"),
    Rule(r"(?:albert\.)?embeddings\.position_embeddings\.weight", "embeddings/position"),
    Rule(r"(?:albert\.)?embeddings\.token_type_embeddings\.weight", "embeddings/token_type"),
    Rule(rf"(?:albert\.)?embeddings\.LayerNorm\.{_LN_HF}", r"embeddings/LayerNorm/\1"),
    Rule(r"(?:albert\.)?encoder\.embedding_hidden_mapping_in\.weight", "embeddings/projection/kernel", True),
    Rule(r"(?:albert\.)?encoder\.embedding_hidden_mapping_in\.bias", "embeddings/projection/bias"),
    Rule(rf"{_A}\.attention\.(query|key|value)\.weight", r"group_\1/attention/\2/kernel", True),
    Rule(rf"{_A}\.attention\.(query|key|value)\.bias", r"group_\1/attention/\2/bias"),
    Rule(rf"{_A}\.attention\.dense\.weight", r"group_\1/attention/output/kernel", True),
    Rule(rf"{_A}\.attention\.dense\.bias", r"group_\1/attention/output/bias"),
    Rule(rf"{_A}\.attention\.LayerNorm\.{_LN_HF}", r"group_\1/attention_LayerNorm/\2"),
    Rule(rf"{_A}\.ffn\.weight", r"group_\1/intermediate/kernel", True),
    Rule(rf"{_A}\.ffn\.bias", r"group_\1/intermediate/bias"),
    Rule(rf"{_A}\.ffn_output\.weight", r"group_\1/output/kernel", True),
    Rule(rf"{_A}\.ffn_output\.bias", r"group_\1/output/bias"),
    Rule(rf"{_A}\.full_layer_layer_norm\.{_LN_HF}", r"group_\1/output_LayerNorm/\2"),
), leftovers=(r"(albert\.)?pooler\..*", r"predictions\..*", r"sop_classifier\..*",
              r"(albert\.)?embeddings\.position_ids"))

_P = r"(?:bert\.|ernie\.|model\.)?"
_L = rf"{_P}encoder\.layer\.(\d+)"
# Hugging Face BertModel / ErnieModel (nghuyong/ernie-* ports: "bert." before 2022, "ernie." since).
HF_BERT = NameMap("hf-bert", "Hugging Face BERT/ERNIE weights", (
    Rule(rf"{_P}embeddings\.word_embeddings\.weight", "embeddings/word"),
    Rule(rf"{_P}embeddings\.position_embeddings\.weight", "embeddings/position"),
    Rule(rf"{_P}embeddings\.token_type_embeddings\.weight", "embeddings/token_type"),
    Rule(rf"{_P}embeddings\.task_type_embeddings\.weight", "embeddings/task_type"),
    Rule(rf"{_P}embeddings\.LayerNorm\.{_LN_HF}", r"embeddings/LayerNorm/\1"),
    Rule(rf"{_L}\.attention\.self\.(query|key|value)\.weight", r"group_\1/attention/\2/kernel", True),
    Rule(rf"{_L}\.attention\.self\.(query|key|value)\.bias", r"group_\1/attention/\2/bias"),
    Rule(rf"{_L}\.attention\.output\.dense\.weight", r"group_\1/attention/output/kernel", True),
    Rule(rf"{_L}\.attention\.output\.dense\.bias", r"group_\1/attention/output/bias"),
    Rule(rf"{_L}\.attention\.output\.LayerNorm\.{_LN_HF}", r"group_\1/attention_LayerNorm/\2"),
    Rule(rf"{_L}\.intermediate\.dense\.weight", r"group_\1/intermediate/kernel", True),
    Rule(rf"{_L}\.intermediate\.dense\.bias", r"group_\1/intermediate/bias"),
    Rule(rf"{_L}\.output\.dense\.weight", r"group_\1/output/kernel", True),
    Rule(rf"{_L}\.output\.dense\.bias", r"group_\1/output/bias"),
    Rule(rf"{_L}\.output\.LayerNorm\.{_LN_HF}", r"group_\1/output_LayerNorm/\2"),
), leftovers=(rf"{_P}pooler\..*", r"cls\..*", rf"{_P}embeddings\.position_ids"))

_S = r"encoder_layer_(\d+)"
# ERNIE 1.0 static-graph params/ (one LoDTensor file per variable; fluid fc weights are [in, out]).
PADDLE_STATIC = NameMap("paddle-static", "ERNIE static-graph params/", (
    Rule(r"word_embedding", "embeddings/word"),
    Rule(r"pos_embedding", "embeddings/position"),
    Rule(r"sent_embedding", "embeddings/token_type"),
    Rule(r"task_embedding", "embeddings/task_type"),
    Rule(r"pre_encoder_layer_norm_scale", "embeddings/LayerNorm/gamma"),
    Rule(r"pre_encoder_layer_norm_bias", "embeddings/LayerNorm/beta"),
    Rule(rf"{_S}_multi_head_att_(query|key|value)_fc\.w_0", r"group_\1/attention/\2/kernel"),
    Rule(rf"{_S}_multi_head_att_(query|key|value)_fc\.b_0", r"group_\1/attention/\2/bias"),
    Rule(rf"{_S}_multi_head_att_output_fc\.w_0", r"group_\1/attention/output/kernel"),
    Rule(rf"{_S}_multi_head_att_output_fc\.b_0", r"group_\1/attention/output/bias"),
    Rule(rf"{_S}_post_att_layer_norm_scale", r"group_\1/attention_LayerNorm/gamma"),
    Rule(rf"{_S}_post_att_layer_norm_bias", r"group_\1/attention_LayerNorm/beta"),
    Rule(rf"{_S}_ffn_fc_0\.w_0", r"group_\1/intermediate/kernel"),
    Rule(rf"{_S}_ffn_fc_0\.b_0", r"group_\1/intermediate/bias"),
    Rule(rf"{_S}_ffn_fc_1\.w_0", r"group_\1/output/kernel"),
    Rule(rf"{_S}_ffn_fc_1\.b_0", r"group_\1/output/bias"),
    Rule(rf"{_S}_post_ffn_layer_norm_scale", r"group_\1/output_LayerNorm/gamma"),
    Rule(rf"{_S}_post_ffn_layer_norm_bias", r"group_\1/output_LayerNorm/beta"),
), leftovers=(r"pooled_fc\..*", r"mask_lm_.*", r"next_sent_.*", r"cls_.*"))

_D = r"(?:ernie\.)?encoder\.layers\.(\d+)"
# PaddleNLP dygraph .pdparams (ernie-1.0-base-zh, ernie-3.0-*-zh); paddle.nn.Linear weights are [in, out].
PADDLENLP = NameMap("paddlenlp", "PaddleNLP ERNIE .pdparams", (
    Rule(r"(?:ernie\.)?embeddings\.word_embeddings\.weight", "embeddings/word"),
    Rule(r"(?:ernie\.)?embeddings\.position_embeddings\.weight", "embeddings/position"),
    Rule(r"(?:ernie\.)?embeddings\.token_type_embeddings\.weight", "embeddings/token_type"),
    Rule(r"(?:ernie\.)?embeddings\.task_type_embeddings\.weight", "embeddings/task_type"),
    Rule(r"(?:ernie\.)?embeddings\.layer_norm\.weight", "embeddings/LayerNorm/gamma"),
    Rule(r"(?:ernie\.)?embeddings\.layer_norm\.bias", "embeddings/LayerNorm/beta"),
    Rule(rf"{_D}\.self_attn\.(q|k|v)_proj\.weight", r"group_\1/attention/\2/kernel"),
    Rule(rf"{_D}\.self_attn\.(q|k|v)_proj\.bias", r"group_\1/attention/\2/bias"),
    Rule(rf"{_D}\.self_attn\.out_proj\.{_WB}", r"group_\1/attention/output/\2"),
    Rule(rf"{_D}\.norm1\.weight", r"group_\1/attention_LayerNorm/gamma"),
    Rule(rf"{_D}\.norm1\.bias", r"group_\1/attention_LayerNorm/beta"),
    Rule(rf"{_D}\.linear1\.{_WB}", r"group_\1/intermediate/\2"),
    Rule(rf"{_D}\.linear2\.{_WB}", r"group_\1/output/\2"),
    Rule(rf"{_D}\.norm2\.weight", r"group_\1/output_LayerNorm/gamma"),
    Rule(rf"{_D}\.norm2\.bias", r"group_\1/output_LayerNorm/beta"),
), leftovers=(r"(ernie\.)?pooler\..*", r"cls\..*"))

_E = r"encoder_stack\.block\.(\d+)"
# The `ernie` pip package (PaddlePaddle/ERNIE develop: saved_weights.pdparams), Paddle [in, out] layout.
ERNIE_PIP = NameMap("ernie-pip", "ERNIE pip-package saved_weights.pdparams", (
    Rule(r"word_emb\.weight", "embeddings/word"),
    Rule(r"pos_emb\.weight", "embeddings/position"),
    Rule(r"sent_emb\.weight", "embeddings/token_type"),
    Rule(r"ln\.weight", "embeddings/LayerNorm/gamma"),
    Rule(r"ln\.bias", "embeddings/LayerNorm/beta"),
    Rule(rf"{_E}\.attn\.(q|k|v)\.weight", r"group_\1/attention/\2/kernel"),
    Rule(rf"{_E}\.attn\.(q|k|v)\.bias", r"group_\1/attention/\2/bias"),
    Rule(rf"{_E}\.attn\.o\.{_WB}", r"group_\1/attention/output/\2"),
    Rule(rf"{_E}\.ln1\.weight", r"group_\1/attention_LayerNorm/gamma"),
    Rule(rf"{_E}\.ln1\.bias", r"group_\1/attention_LayerNorm/beta"),
    Rule(rf"{_E}\.ffn\.i\.{_WB}", r"group_\1/intermediate/\2"),
    Rule(rf"{_E}\.ffn\.o\.{_WB}", r"group_\1/output/\2"),
    Rule(rf"{_E}\.ln2\.weight", r"group_\1/output_LayerNorm/gamma"),
    Rule(rf"{_E}\.ln2\.bias", r"group_\1/output_LayerNorm/beta"),
), leftovers=(r"pooler\..*", r"mlm.*", r"pooler_heads\.\d+\.nsp\..*"))  # ErnieModelForPretraining's heads

NAME_MAPS: Tuple[NameMap, ...] = (TF1_ALBERT, TF1_BERT, HF_ALBERT, HF_BERT, PADDLE_STATIC, PADDLENLP, ERNIE_PIP)


def normalize_slot(slot: str) -> str:
    """Spell a mapped slot canonically: q/k/v -> query/key/value; LayerNorm weight/bias -> gamma/beta;
    a dense layer's weight -> kernel."""
    for short, full in (("/attention/q/", "/attention/query/"), ("/attention/k/", "/attention/key/"),
                        ("/attention/v/", "/attention/value/")):
        slot = slot.replace(short, full)
    if "LayerNorm/" in slot:
        slot = re.sub(r"LayerNorm/weight$", "LayerNorm/gamma", slot)
        return re.sub(r"LayerNorm/bias$", "LayerNorm/beta", slot)
    return re.sub(r"/weight$", "/kernel", slot)


def detect_name_map(names: Sequence[str]) -> NameMap:
    """The family whose rules account for the most names (ties: table order); an error if none fits."""
    names = list(names)
    best, best_hits = None, 0
    for name_map in NAME_MAPS:
        hits = sum(1 for n in names if name_map.canonical(n) is not None)
        if hits > best_hits:
            best, best_hits = name_map, hits
    if best is None or best_hits < 4:
        sample = ", ".join(sorted(names)[:8])
        raise ValueError(f"not a known encoder checkpoint layout ({len(names)} tensors, e.g. {sample}); "
                         f"known: {', '.join(m.description for m in NAME_MAPS)}")
    return best


def map_tensors(tensors: Dict[str, np.ndarray], name_map: NameMap
                ) -> Tuple[Dict[str, Tuple[str, np.ndarray]], List[str], List[str]]:
    """({slot: (source name, array in Keras layout)}, unmatched names, expected leftovers)."""
    mapped: Dict[str, Tuple[str, np.ndarray]] = {}
    unmatched, leftovers = [], []
    for name in sorted(tensors):
        hit = name_map.canonical(name)
        if hit is None:
            (leftovers if name_map.is_leftover(name) else unmatched).append(name)
            continue
        slot, transpose = hit
        slot = normalize_slot(slot)
        if slot in mapped:
            raise ValueError(f"tensors {mapped[slot][0]!r} and {name!r} both map onto encoder weight {slot}")
        array = np.asarray(tensors[name])
        mapped[slot] = (name, array.T if transpose else array)
    return mapped, unmatched, leftovers
