"""Export a pretrained encoder + MLM head in Hugging Face format: config.json, model.safetensors, vocab.txt.

Post-LN encoders without a factorised embedding (BERT, ERNIE) and brightmart's project_first ALBERT become
`BertForMaskedLM`; Google ALBERT's project_last layout (any number of layer groups) becomes
`AlbertForMaskedLM`. Exact folds, so that transformers computes the same MLM logits:
- brightmart: the word table is W @ P ([V,E] @ [E,H]); its MLM decoder h . P^T . W^T equals h . (W P)^T.
- ERNIE 3.0's task-type table: every token adds row 0 (embeddings.py), so row 0 is added to every row of
  the token-type table, which every token adds too.
- shared layer groups (brightmart, ALBERT exported as BERT): layer i gets its group's weights.
The pooler and SOP classifier are not part of a *ForMaskedLM model and are not exported. Pre-LN
encoders (albert_zh xxlarge) have no such model class: a clear error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from albert_ner.config import EncoderConfig
from albert_ner.data.vocab import Vocab
from albert_ner.model.pretraining import PretrainingModel
from albert_ner.weights.heads import head_slots
from albert_ner.weights.loader import encoder_slots
from albert_ner.weights.safetensors_write import write_safetensors

HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
WEIGHTS_FILE = "model.safetensors"


def _config_common(config: EncoderConfig, vocab: Vocab) -> Dict[str, object]:
    return {
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size, "hidden_act": HF_ACTIVATIONS[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range, "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": vocab.pad_id, "position_embedding_type": "absolute",
        "tokenizer_class": "BertTokenizer",  # vocab.txt, one token per line
    }


def _type_table(enc: Dict[str, np.ndarray]) -> np.ndarray:
    """Token-type table with the task-type row 0 folded in (ERNIE 3.0), else as it is."""
    table = enc["embeddings/token_type"]
    if "embeddings/task_type" in enc:
        table = table + enc["embeddings/task_type"][0][None, :]
    return table


def _group_tensors(enc: Dict[str, np.ndarray], g: int) -> Dict[str, np.ndarray]:
    """One layer group's weights under short keys, torch layout ([out, in] for dense weights)."""
    p = f"group_{g}/"
    out = {}
    for part in ("attention/query", "attention/key", "attention/value", "attention/output", "intermediate", "output"):
        out[part + ".weight"] = enc[p + part + "/kernel"].T
        out[part + ".bias"] = enc[p + part + "/bias"]
    for part in ("attention_LayerNorm", "output_LayerNorm"):
        out[part + ".weight"] = enc[p + part + "/gamma"]
        out[part + ".bias"] = enc[p + part + "/beta"]
    return out


def bert_tensors(model: PretrainingModel, enc: Dict[str, np.ndarray], heads: Dict[str, np.ndarray]
                 ) -> Dict[str, np.ndarray]:
    """BertForMaskedLM state dict (decoder weight and bias tied, so not written)."""
    word = enc["embeddings/word"]
    if "embeddings/word_projection" in enc:  # brightmart: fold the projection into the table
        word = (word.astype(np.float64) @ enc["embeddings/word_projection"].astype(np.float64)).astype(np.float32)
    out = {"bert.embeddings.word_embeddings.weight": word,
           "bert.embeddings.position_embeddings.weight": enc["embeddings/position"],
           "bert.embeddings.token_type_embeddings.weight": _type_table(enc),
           "bert.embeddings.LayerNorm.weight": enc["embeddings/LayerNorm/gamma"],
           "bert.embeddings.LayerNorm.bias": enc["embeddings/LayerNorm/beta"]}
    names = {"attention/query": "attention.self.query", "attention/key": "attention.self.key",
             "attention/value": "attention.self.value", "attention/output": "attention.output.dense",
             "attention_LayerNorm": "attention.output.LayerNorm", "intermediate": "intermediate.dense",
             "output": "output.dense", "output_LayerNorm": "output.LayerNorm"}
    for i in range(model.config.num_hidden_layers):
        group = _group_tensors(enc, model.encoder.group_of_layer(i))
        for key, array in group.items():
            part, kind = key.split(".")
            out[f"bert.encoder.layer.{i}.{names[part]}.{kind}"] = array
    out.update({"cls.predictions.transform.dense.weight": heads["mlm/transform/kernel"].T,
                "cls.predictions.transform.dense.bias": heads["mlm/transform/bias"],
                "cls.predictions.transform.LayerNorm.weight": heads["mlm/LayerNorm/gamma"],
                "cls.predictions.transform.LayerNorm.bias": heads["mlm/LayerNorm/beta"],
                "cls.predictions.bias": heads["mlm/output_bias"]})
    return out


def albert_tensors(model: PretrainingModel, enc: Dict[str, np.ndarray], heads: Dict[str, np.ndarray]
                   ) -> Dict[str, np.ndarray]:
    """AlbertForMaskedLM state dict (decoder weight and bias tied, so not written)."""
    out = {"albert.embeddings.word_embeddings.weight": enc["embeddings/word"],
           "albert.embeddings.position_embeddings.weight": enc["embeddings/position"],
           "albert.embeddings.token_type_embeddings.weight": _type_table(enc),
           "albert.embeddings.LayerNorm.weight": enc["embeddings/LayerNorm/gamma"],
           "albert.embeddings.LayerNorm.bias": enc["embeddings/LayerNorm/beta"],
           "albert.encoder.embedding_hidden_mapping_in.weight": enc["embeddings/projection/kernel"].T,
           "albert.encoder.embedding_hidden_mapping_in.bias": enc["embeddings/projection/bias"]}
    names = {"attention/query": "attention.query", "attention/key": "attention.key",
             "attention/value": "attention.value", "attention/output": "attention.dense",
             "attention_LayerNorm": "attention.LayerNorm", "intermediate": "ffn", "output": "ffn_output",
             "output_LayerNorm": "full_layer_layer_norm"}
    for g in range(len(model.encoder.groups)):
        for key, array in _group_tensors(enc, g).items():
            part, kind = key.split(".")
            out[f"albert.encoder.albert_layer_groups.{g}.albert_layers.0.{names[part]}.{kind}"] = array
    out.update({"predictions.dense.weight": heads["mlm/transform/kernel"].T,
                "predictions.dense.bias": heads["mlm/transform/bias"],
                "predictions.LayerNorm.weight": heads["mlm/LayerNorm/gamma"],
                "predictions.LayerNorm.bias": heads["mlm/LayerNorm/beta"],
                "predictions.bias": heads["mlm/output_bias"]})
    return out


def hf_config(config: EncoderConfig, vocab: Vocab) -> Tuple[str, Dict[str, object]]:
    """("bert" | "albert", config.json contents) for an encoder; a pre-LN encoder is an error."""
    if config.ln_type != "postln":
        raise ValueError(f"cannot export a pre-LN encoder (ln_type {config.ln_type!r}, as albert_zh xxlarge) in "
                         "Hugging Face format: BertForMaskedLM and AlbertForMaskedLM are post-LN; use the "
                         "converted directory instead")
    common = _config_common(config, vocab)
    if config.embedding_layout != "project_last":
        return "bert", dict(common, architectures=["BertForMaskedLM"], model_type="bert")
    if config.num_hidden_layers == 0:
        raise ValueError("cannot export an ALBERT encoder with 0 layers in Hugging Face format "
                         "(AlbertForMaskedLM needs at least one layer group)")
    return "albert", dict(common, architectures=["AlbertForMaskedLM"], model_type="albert",
                          embedding_size=config.embedding_size, num_hidden_groups=config.num_layer_groups,
                          inner_group_num=1, bos_token_id=vocab.cls_id, eos_token_id=vocab.sep_id)


def vocab_lines(vocab: Vocab, vocab_size: int) -> str:
    """vocab.txt for BertTokenizer: token of id i on line i (ids no token uses get a [unused_id_i] line)."""
    if len(vocab) > vocab_size:
        raise ValueError(f"{vocab.source}: {len(vocab)} token ids, more than the model's {vocab_size} "
                         "embedding rows")
    lines = [token or f"[unused_id_{i}]" for i, token in enumerate(vocab.tokens)]
    bad = next((t for t in lines if any(c in t for c in "\t\n\r")), None)
    if bad is not None:
        raise ValueError(f"{vocab.source}: token {bad!r} holds a tab or line break; it cannot be a line of vocab.txt")
    if len(set(lines)) != len(lines):
        raise ValueError(f"{vocab.source}: tokens are not unique once unused ids are named; cannot write vocab.txt")
    return "\n".join(lines) + "\n"


def export_hf(model: PretrainingModel, vocab_file: str | Path, out_dir: str | Path) -> Path:
    """Write `model`'s encoder and MLM head as a Hugging Face *ForMaskedLM directory; returns it."""
    config = model.config
    vocab = Vocab.from_file(vocab_file)
    kind, hf = hf_config(config, vocab)
    text = vocab_lines(vocab, config.vocab_size)
    enc = {slot: var.numpy() for slot, var in encoder_slots(model.encoder).items()}
    heads = {slot: var.numpy() for slot, var in head_slots(model).items() if slot.startswith("mlm/")}
    tensors = (albert_tensors if kind == "albert" else bert_tensors)(model, enc, heads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / WEIGHTS_FILE, {k: np.asarray(v, np.float32) for k, v in tensors.items()},
                      metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "vocab.txt").write_text(text, encoding="utf-8")
    return out
