"""Continual pretraining: published MLM heads, poolers and SOP/NSP classifiers load into PretrainingModel.

Each family's files are written the way the real ones are (transformers *ForPreTraining with random
weights saved by save_pretrained or torch.save; TF1 checkpoints with the exact TF1 names; ERNIE's
static params/ LoDTensor files and .pdparams pickles), loaded through `load_pretraining_init`, and our
MLM logits (and SOP/NSP logits) compared with transformers' on a padded two-segment batch. Head names
for writing come from ../shared/notes/formats.md, spelled out here apart from head_names.py.
"""
import json
import pickle
import shutil

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import EncoderConfig, HeadConfig, ModelConfig
from albert_ner.model.pretraining import PretrainingModel
from albert_ner.model.tagger import NerTagger
from albert_ner.weights.convert import load_pretrained, pretrained_encoder_config
from albert_ner.weights.heads import HeadReport, load_pretraining_init, save_pretrained_dir
from tests.weights.test_paddle import lod_tensor_bytes
from tests.weights.test_reference import (ERNIE_3_NANO, bert_to_google_tf1, brightmart_checkpoint,
                                          hf_albert_to_google_tf1, hf_ernie_to_pip, hf_ernie_to_static, randomize,
                                          shared_config, shared_layer_state_dict, state_dict, torch, transformers)
from tests.weights.test_tensor_files import write_tf1_checkpoint

ATOL = 1e-4
LENGTHS = (13, 7)
MLM, POOLER, SOP = "MLM head", "pooler", "SOP classifier"


def two_segment_batch(vocab_size, seed=1):
    """[CLS] A [SEP] B [SEP]-like rows: ids, attention mask, segment ids (1 for the second half), lengths."""
    rng = np.random.default_rng(seed)
    t = max(LENGTHS)
    ids = np.zeros((len(LENGTHS), t), np.int32)
    segments = np.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = rng.integers(5, vocab_size, n)
        segments[row, n // 2:n] = 1
    mask = (np.arange(t)[None, :] < np.array(LENGTHS)[:, None]).astype(np.int32)
    return ids, mask, segments


def hf_logits(model, ids, mask, segments):
    """(MLM logits [B,T,V], sentence-pair logits [B,2]) of a transformers *ForPreTraining model."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                    token_type_ids=torch.tensor(segments, dtype=torch.long))
    pair = out.sop_logits if hasattr(out, "sop_logits") else out.seq_relationship_logits
    return out.prediction_logits.numpy(), pair.numpy()


def our_logits(path, ids, mask, segments, sop=True):
    """Build a PretrainingModel from the source's config, load encoder and heads, run it."""
    config, _ = pretrained_encoder_config(path)
    model = PretrainingModel(config, sop=sop)
    model.build_weights()
    report = load_pretraining_init(model, path)
    out = model({"token_ids": tf.constant(ids), "segment_ids": tf.constant(segments),
                 "lengths": tf.constant(mask.sum(1), tf.int32)}, training=False)
    return out, report, model


def assert_logits_match(out, ref_mlm, ref_pair, mask):
    real = mask.astype(bool)
    assert np.abs(ref_mlm[real]).max() > 0.1  # the reference is not trivially zero
    np.testing.assert_allclose(out["mlm_logits"].numpy()[real], ref_mlm[real], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out["sop_logits"].numpy(), ref_pair, atol=ATOL, rtol=0)


def assert_all_heads_loaded(report, **expected_names):
    heads = report["heads"]
    assert set(heads["loaded"]) == {MLM, POOLER, SOP}, heads
    assert not {MLM, POOLER} & set(heads["fresh"]) and not heads["not_used"]
    for part, names in expected_names.items():
        assert sorted(heads["loaded"][part]) == sorted(names)
    enc = report["encoder"]
    assert not enc["not_used"] and not enc["left_random"]


# ---- Hugging Face BERT / ERNIE ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_pretraining(shared_dir):
    raw = shared_config(shared_dir, "bert-base-chinese/bert_config.json")
    raw.update(num_hidden_layers=2)
    model = randomize(transformers.BertForPreTraining(transformers.BertConfig(**raw)), seed=11)
    ids, mask, segments = two_segment_batch(raw["vocab_size"])
    return model, ids, mask, segments, hf_logits(model, ids, mask, segments)


def test_hf_bert_save_pretrained_heads_match_transformers(bert_pretraining, tmp_path):
    model, ids, mask, segments, (ref_mlm, ref_nsp) = bert_pretraining
    model.save_pretrained(tmp_path)
    out, report, _ = our_logits(tmp_path, ids, mask, segments)
    assert report["heads"]["layout"] == "Hugging Face BERT/ERNIE weights"
    assert_all_heads_loaded(report, **{POOLER: ["bert.pooler.dense.bias", "bert.pooler.dense.weight"],
                                       SOP: ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]})
    assert "next-sentence" in report["heads"]["notes"][SOP]
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


def test_hf_bert_torch_save_with_tied_copies_matches_transformers(bert_pretraining, tmp_path):
    """torch.save(state_dict()) keeps the tied decoder weight and both bias names (one shared tensor)."""
    model, ids, mask, segments, (ref_mlm, ref_nsp) = bert_pretraining
    sd = model.state_dict()
    assert {"cls.predictions.decoder.weight", "cls.predictions.bias"} <= set(sd)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    model.config.to_json_file(tmp_path / "config.json")
    out, report, _ = our_logits(tmp_path, ids, mask, segments)
    assert_all_heads_loaded(report)
    assert report["heads"]["tied"] == ["cls.predictions.decoder.weight"]
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


def test_google_bert_tf1_heads_match_transformers(shared_dir, tmp_path):
    """chinese_L-12_H-768_A-12's bert_model.ckpt: cls/predictions/*, cls/seq_relationship (output_weights
    stored [2,H]) and bert/pooler beside the encoder; a TF1 config whose "gelu" is the tanh form."""
    raw = shared_config(shared_dir, "bert-base-chinese/bert_config.json")
    raw.update(num_hidden_layers=2)
    model = randomize(transformers.BertForPreTraining(transformers.BertConfig(**dict(raw, hidden_act="gelu_new"))),
                      seed=12)
    ids, mask, segments = two_segment_batch(raw["vocab_size"])
    ref_mlm, ref_nsp = hf_logits(model, ids, mask, segments)
    write_tf1_checkpoint(tmp_path / "bert_model.ckpt", bert_to_google_tf1(state_dict(model), 2))
    (tmp_path / "bert_config.json").write_text(json.dumps(raw))
    out, report, _ = our_logits(tmp_path, ids, mask, segments)
    assert_all_heads_loaded(report, **{MLM: ["cls/predictions/output_bias", "cls/predictions/transform/LayerNorm/beta",
                                             "cls/predictions/transform/LayerNorm/gamma",
                                             "cls/predictions/transform/dense/bias",
                                             "cls/predictions/transform/dense/kernel"]})
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


@pytest.fixture(scope="module")
def ernie_3_pretraining():
    """ERNIE 3.0 nano (task-type table, gelu) as transformers' ErnieForPreTraining."""
    config = transformers.ErnieConfig(**ERNIE_3_NANO, layer_norm_eps=1e-5)
    model = randomize(transformers.ErnieForPreTraining(config), seed=13)
    ids, mask, segments = two_segment_batch(config.vocab_size)
    return model, ids, mask, segments, hf_logits(model, ids, mask, segments)


def test_hf_ernie_save_pretrained_heads_match_transformers(ernie_3_pretraining, tmp_path):
    model, ids, mask, segments, (ref_mlm, ref_nsp) = ernie_3_pretraining
    model.save_pretrained(tmp_path)
    out, report, loaded = our_logits(tmp_path, ids, mask, segments)
    assert loaded.config.task_type_vocab_size == 16
    assert report["heads"]["layout"] == "Hugging Face BERT/ERNIE weights"
    assert_all_heads_loaded(report, **{POOLER: ["ernie.pooler.dense.bias", "ernie.pooler.dense.weight"]})
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


def ernie_to_paddlenlp(sd, layers):
    """ErnieForPreTraining's state dict under PaddleNLP's ErnieForPretraining names (formats.md §4.2),
    paddle Linear weights [in, out]."""
    e = "ernie.embeddings."
    out = {e + "word_embeddings.weight": sd[e + "word_embeddings.weight"],
           e + "position_embeddings.weight": sd[e + "position_embeddings.weight"],
           e + "token_type_embeddings.weight": sd[e + "token_type_embeddings.weight"],
           e + "task_type_embeddings.weight": sd[e + "task_type_embeddings.weight"],
           e + "layer_norm.weight": sd[e + "LayerNorm.weight"], e + "layer_norm.bias": sd[e + "LayerNorm.bias"],
           "ernie.pooler.dense.weight": sd["ernie.pooler.dense.weight"].T,
           "ernie.pooler.dense.bias": sd["ernie.pooler.dense.bias"],
           "cls.predictions.transform.weight": sd["cls.predictions.transform.dense.weight"].T,
           "cls.predictions.transform.bias": sd["cls.predictions.transform.dense.bias"],
           "cls.predictions.layer_norm.weight": sd["cls.predictions.transform.LayerNorm.weight"],
           "cls.predictions.layer_norm.bias": sd["cls.predictions.transform.LayerNorm.bias"],
           "cls.predictions.decoder_bias": sd["cls.predictions.bias"],
           "cls.seq_relationship.weight": sd["cls.seq_relationship.weight"].T,
           "cls.seq_relationship.bias": sd["cls.seq_relationship.bias"]}
    for i in range(layers):
        d, l = f"ernie.encoder.layers.{i}.", f"ernie.encoder.layer.{i}."
        for short, x in (("q", "query"), ("k", "key"), ("v", "value")):
            out[d + f"self_attn.{short}_proj.weight"] = sd[l + f"attention.self.{x}.weight"].T
            out[d + f"self_attn.{short}_proj.bias"] = sd[l + f"attention.self.{x}.bias"]
        out[d + "self_attn.out_proj.weight"] = sd[l + "attention.output.dense.weight"].T
        out[d + "self_attn.out_proj.bias"] = sd[l + "attention.output.dense.bias"]
        for paddle, hf in (("norm1", "attention.output.LayerNorm"), ("norm2", "output.LayerNorm")):
            out[d + paddle + ".weight"] = sd[l + hf + ".weight"]
            out[d + paddle + ".bias"] = sd[l + hf + ".bias"]
        for paddle, hf in (("linear1", "intermediate.dense"), ("linear2", "output.dense")):
            out[d + paddle + ".weight"] = sd[l + hf + ".weight"].T
            out[d + paddle + ".bias"] = sd[l + hf + ".bias"]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def test_paddlenlp_ernie_3_pdparams_heads_match_transformers(ernie_3_pretraining, tmp_path):
    model, ids, mask, segments, (ref_mlm, ref_nsp) = ernie_3_pretraining
    pd = ernie_to_paddlenlp(state_dict(model), ERNIE_3_NANO["num_hidden_layers"])
    payload = dict(pd, **{"StructuredToParameterName@@": {k: f"param_{n}" for n, k in enumerate(pd)}})
    (tmp_path / "model_state.pdparams").write_bytes(pickle.dumps(payload, protocol=4))
    (tmp_path / "model_config.json").write_text(json.dumps(
        {"init_args": [dict(ERNIE_3_NANO, layer_norm_eps=1e-5)], "init_class": "ErnieForPretraining"}))
    out, report, _ = our_logits(tmp_path, ids, mask, segments)
    assert report["heads"]["layout"] == "PaddleNLP ERNIE .pdparams"
    assert_all_heads_loaded(report, **{MLM: ["cls.predictions.decoder_bias", "cls.predictions.layer_norm.bias",
                                             "cls.predictions.layer_norm.weight", "cls.predictions.transform.bias",
                                             "cls.predictions.transform.weight"]})
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


@pytest.fixture(scope="module")
def ernie_1_pretraining(shared_dir):
    """ERNIE 1.0 (relu, 513 positions, 18,000 rows, eps 1e-5), 2 layers, as ErnieForPreTraining."""
    raw = shared_config(shared_dir, "ernie-1.0/ernie_config.json")
    raw.update(num_hidden_layers=2)
    config = transformers.ErnieConfig(**raw, intermediate_size=4 * raw["hidden_size"], layer_norm_eps=1e-5)
    model = randomize(transformers.ErnieForPreTraining(config), seed=14)
    ids, mask, segments = two_segment_batch(17964)
    return raw, model, ids, mask, segments, hf_logits(model, ids, mask, segments)


def test_ernie_1_static_params_heads_match_transformers(ernie_1_pretraining, shared_dir, tmp_path):
    """ERNIE_stable-1.0.1's params/: mask_lm_trans_fc, mask_lm_trans_layer_norm_*, mask_lm_out_fc.b_0,
    pooled_fc and next_sent_fc (fluid fc weights [in, out]), one LoDTensor file each."""
    raw, model, ids, mask, segments, (ref_mlm, ref_nsp) = ernie_1_pretraining
    sd = state_dict(model)
    params = hf_ernie_to_static(state_dict(model.ernie), 2)
    params.update({"mask_lm_trans_fc.w_0": sd["cls.predictions.transform.dense.weight"].T,
                   "mask_lm_trans_fc.b_0": sd["cls.predictions.transform.dense.bias"],
                   "mask_lm_trans_layer_norm_scale": sd["cls.predictions.transform.LayerNorm.weight"],
                   "mask_lm_trans_layer_norm_bias": sd["cls.predictions.transform.LayerNorm.bias"],
                   "mask_lm_out_fc.b_0": sd["cls.predictions.bias"],
                   "pooled_fc.w_0": sd["ernie.pooler.dense.weight"].T, "pooled_fc.b_0": sd["ernie.pooler.dense.bias"],
                   "next_sent_fc.w_0": sd["cls.seq_relationship.weight"].T,
                   "next_sent_fc.b_0": sd["cls.seq_relationship.bias"]})
    release = tmp_path / "ERNIE_stable-1.0.1"
    (release / "params").mkdir(parents=True)
    for name, array in params.items():
        (release / "params" / name).write_bytes(lod_tensor_bytes(np.ascontiguousarray(array, np.float32)))
    (release / "ernie_config.json").write_text(json.dumps(raw))
    shutil.copy(shared_dir / "pretrained/ernie-1.0/vocab.txt", release)
    out, report, _ = our_logits(release, ids, mask, segments)
    assert report["heads"]["layout"] == "ERNIE static-graph params/"
    assert_all_heads_loaded(report, **{SOP: ["next_sent_fc.b_0", "next_sent_fc.w_0"]})
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


def test_ernie_pip_saved_weights_heads_match_transformers(ernie_1_pretraining, tmp_path):
    """The `ernie` pip package's ErnieModelForPretraining: mlm, mlm_ln, mlm_bias, pooler, pooler_heads.0.nsp."""
    raw, model, ids, mask, segments, (ref_mlm, ref_nsp) = ernie_1_pretraining
    sd = state_dict(model)
    tensors = hf_ernie_to_pip(state_dict(model.ernie), 2)
    tensors.update({"mlm.weight": sd["cls.predictions.transform.dense.weight"].T,
                    "mlm.bias": sd["cls.predictions.transform.dense.bias"],
                    "mlm_ln.weight": sd["cls.predictions.transform.LayerNorm.weight"],
                    "mlm_ln.bias": sd["cls.predictions.transform.LayerNorm.bias"],
                    "mlm_bias": sd["cls.predictions.bias"],
                    "pooler.weight": sd["ernie.pooler.dense.weight"].T, "pooler.bias": sd["ernie.pooler.dense.bias"],
                    "pooler_heads.0.nsp.weight": sd["cls.seq_relationship.weight"].T,
                    "pooler_heads.0.nsp.bias": sd["cls.seq_relationship.bias"]})
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    (tmp_path / "saved_weights.pdparams").write_bytes(pickle.dumps(tensors, protocol=4))
    (tmp_path / "ernie_config.json").write_text(json.dumps(raw))
    out, report, _ = our_logits(tmp_path, ids, mask, segments)
    assert report["heads"]["layout"] == "ERNIE pip-package saved_weights.pdparams"
    assert_all_heads_loaded(report)
    assert_logits_match(out, ref_mlm, ref_nsp, mask)


# ---- ALBERT -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def albert_pretraining(shared_dir):
    """AlbertForPreTraining with albert_base_zh's widths (E=128, relu), 4 layers in 2 weight groups."""
    raw = shared_config(shared_dir, "albert_base_zh_google/albert_config.json")
    raw.update(num_hidden_layers=4, num_hidden_groups=2)
    config = transformers.AlbertConfig(**{k: v for k, v in raw.items() if k != "layers_to_keep"})
    model = randomize(transformers.AlbertForPreTraining(config), seed=15)
    ids, mask, segments = two_segment_batch(config.vocab_size)
    return raw, model, ids, mask, segments, hf_logits(model, ids, mask, segments)


def test_hf_albert_save_pretrained_heads_match_transformers(albert_pretraining, tmp_path):
    raw, model, ids, mask, segments, (ref_mlm, ref_sop) = albert_pretraining
    model.save_pretrained(tmp_path)
    out, report, loaded = our_logits(tmp_path, ids, mask, segments)
    assert loaded.config.embedding_layout == "project_last"
    assert loaded.mlm_transform.dense.kernel.shape.as_list() == [768, 128]  # ALBERT's transform projects to E
    assert report["heads"]["layout"] == "Hugging Face ALBERT weights"
    assert_all_heads_loaded(report, **{POOLER: ["albert.pooler.bias", "albert.pooler.weight"],
                                       SOP: ["sop_classifier.classifier.bias", "sop_classifier.classifier.weight"]})
    assert SOP not in report["heads"]["notes"]  # a real sentence-order head
    assert_logits_match(out, ref_mlm, ref_sop, mask)


def test_google_albert_tf1_heads_match_transformers(albert_pretraining, tmp_path):
    """albert_base_zh's TF1 names: cls/predictions/transform/dense [H,E], cls/seq_relationship (SOP, [2,H])."""
    raw, model, ids, mask, segments, (ref_mlm, ref_sop) = albert_pretraining
    sd = state_dict(model)
    tensors = hf_albert_to_google_tf1(state_dict(model.albert), groups=2)
    tensors.update({"cls/predictions/transform/dense/kernel": sd["predictions.dense.weight"].T,
                    "cls/predictions/transform/dense/bias": sd["predictions.dense.bias"],
                    "cls/predictions/transform/LayerNorm/gamma": sd["predictions.LayerNorm.weight"],
                    "cls/predictions/transform/LayerNorm/beta": sd["predictions.LayerNorm.bias"],
                    "cls/predictions/output_bias": sd["predictions.bias"],
                    "bert/pooler/dense/kernel": sd["albert.pooler.weight"].T,
                    "bert/pooler/dense/bias": sd["albert.pooler.bias"],
                    "cls/seq_relationship/output_weights": sd["sop_classifier.classifier.weight"],
                    "cls/seq_relationship/output_bias": sd["sop_classifier.classifier.bias"]})
    tensors["cls/predictions/output_bias/adam_m"] = np.zeros(21128, np.float32)  # optimizer slots ride along
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", tensors)
    (tmp_path / "albert_config.json").write_text(json.dumps(raw))
    out, report, _ = our_logits(tmp_path, ids, mask, segments)
    assert report["heads"]["layout"] == "Google ALBERT TF1 checkpoint"
    assert_all_heads_loaded(report, **{SOP: ["cls/seq_relationship/output_bias",
                                             "cls/seq_relationship/output_weights"]})
    assert_logits_match(out, ref_mlm, ref_sop, mask)


def test_brightmart_tf1_heads_match_shared_layer_bert(shared_dir, tmp_path):
    """brightmart's head transforms H->H and decodes through word_embeddings_2: h . W2^T . W^T + b, which a
    BertForPreTraining with word table W @ W2 and the shared layer in every layer computes."""
    raw = shared_config(shared_dir, "albert_config/albert_config_base.json")
    raw.update(num_hidden_layers=2)
    ckpt = brightmart_checkpoint(raw, seed=16)
    h, v = raw["hidden_size"], raw["vocab_size"]
    rng = np.random.default_rng(17)
    normal = lambda *shape: (rng.normal(size=shape) * 0.05).astype(np.float32)
    ckpt.update({"cls/predictions/transform/dense/bias": normal(h),
                 "cls/predictions/transform/LayerNorm/gamma": 1 + normal(h),
                 "cls/predictions/transform/LayerNorm/beta": normal(h), "cls/predictions/output_bias": normal(v),
                 "bert/pooler/dense/kernel": normal(h, h), "bert/pooler/dense/bias": normal(h),
                 "cls/seq_relationship/output_weights": normal(2, h), "cls/seq_relationship/output_bias": normal(2)})
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", ckpt)
    (tmp_path / "albert_config_base.json").write_text(json.dumps(raw))
    bert = transformers.BertForPreTraining(transformers.BertConfig(
        vocab_size=v, hidden_size=h, num_hidden_layers=2, num_attention_heads=raw["num_attention_heads"],
        intermediate_size=raw["intermediate_size"], hidden_act="gelu_new", layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    sd = {"bert." + k: a for k, a in shared_layer_state_dict(ckpt, 2, {
        "attention.output.LayerNorm": "attention/output/LayerNorm", "output.LayerNorm": "output/LayerNorm"}).items()}
    sd.update({"bert.pooler.dense.weight": ckpt["bert/pooler/dense/kernel"].T,
               "bert.pooler.dense.bias": ckpt["bert/pooler/dense/bias"],
               "cls.predictions.transform.dense.weight": ckpt["cls/predictions/transform/dense/kernel"].T,
               "cls.predictions.transform.dense.bias": ckpt["cls/predictions/transform/dense/bias"],
               "cls.predictions.transform.LayerNorm.weight": ckpt["cls/predictions/transform/LayerNorm/gamma"],
               "cls.predictions.transform.LayerNorm.bias": ckpt["cls/predictions/transform/LayerNorm/beta"],
               "cls.predictions.bias": ckpt["cls/predictions/output_bias"],
               "cls.seq_relationship.weight": ckpt["cls/seq_relationship/output_weights"],
               "cls.seq_relationship.bias": ckpt["cls/seq_relationship/output_bias"]})
    result = bert.load_state_dict({k: torch.tensor(np.ascontiguousarray(a)) for k, a in sd.items()}, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) <= {"cls.predictions.decoder.weight",
                                                                       "cls.predictions.decoder.bias"}
    bert.tie_weights()
    ids, mask, segments = two_segment_batch(v)
    ref_mlm, ref_sop = hf_logits(bert.eval(), ids, mask, segments)
    out, report, loaded = our_logits(tmp_path, ids, mask, segments)
    assert loaded.config.embedding_layout == "project_first"
    assert report["heads"]["layout"] == "TF1 BERT/brightmart albert_zh checkpoint"
    assert_all_heads_loaded(report)
    assert SOP not in report["heads"]["notes"]  # brightmart trained sentence order, not next sentence
    assert_logits_match(out, ref_mlm, ref_sop, mask)


def test_head_shape_mismatch_names_tensor_and_both_shapes(shared_dir, tmp_path):
    raw = shared_config(shared_dir, "albert_config/albert_config_tiny.json")
    ckpt = brightmart_checkpoint(raw, seed=18)
    ckpt["cls/predictions/transform/dense/kernel"] = np.zeros((raw["hidden_size"], raw["embedding_size"]), np.float32)
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", ckpt)
    shutil.copy(shared_dir / "pretrained/albert_config/albert_config_tiny.json", tmp_path)
    config, _ = pretrained_encoder_config(tmp_path)
    model = PretrainingModel(config, sop=False)
    model.build_weights()
    with pytest.raises(ValueError, match=r"tensor cls/predictions/transform/dense/kernel has shape \[312, 128\], "
                                         r"but head weight mlm/transform/kernel needs \[312, 312\]"):
        load_pretraining_init(model, tmp_path)


def test_differing_copies_of_the_output_bias_are_an_error(bert_pretraining, tmp_path):
    model, *_ = bert_pretraining
    sd = dict(model.state_dict())
    sd["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"] + 1.0
    torch.save(sd, tmp_path / "pytorch_model.bin")
    model.config.to_json_file(tmp_path / "config.json")
    config, _ = pretrained_encoder_config(tmp_path)
    ours = PretrainingModel(config, sop=True)
    ours.build_weights()
    with pytest.raises(ValueError, match=r"'cls.predictions.bias' and 'cls.predictions.decoder.bias' both hold "
                                         r"head weight mlm/output_bias but differ"):
        load_pretraining_init(ours, tmp_path)


# ---- sources without heads, and our own directory -----------------------------------------------

def test_source_without_mlm_head_starts_fresh_and_says_so(tmp_path):
    """m3e-small's layout: a bare BertModel state dict (no prefix) with its pooler and no MLM head."""
    config = transformers.BertConfig(vocab_size=21128, hidden_size=512, num_hidden_layers=2, num_attention_heads=8,
                                     intermediate_size=2048, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bert = randomize(transformers.BertModel(config), seed=19)
    bert.save_pretrained(tmp_path)
    ids, mask, segments = two_segment_batch(21128)
    with torch.no_grad():
        pooled = bert(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                      token_type_ids=torch.tensor(segments, dtype=torch.long)).pooler_output.numpy()
    out, report, model = our_logits(tmp_path, ids, mask, segments)
    heads = report["heads"]
    assert heads["fresh"] == {MLM: "the source has none", SOP: "the source has none"}
    assert heads["loaded"] == {POOLER: ["pooler.dense.bias", "pooler.dense.weight"]}
    text = HeadReport(**heads).summary()  # the log lines a user reads
    assert "MLM head: fresh (the source has none)" in text and "SOP classifier: fresh (the source has none)" in text
    hidden = model.encode({"token_ids": tf.constant(ids), "segment_ids": tf.constant(segments),
                           "lengths": tf.constant(mask.sum(1), tf.int32)})
    np.testing.assert_allclose(model.pooled(hidden).numpy(), pooled, atol=ATOL, rtol=0)
    # the fresh head: zero output bias, a unit LayerNorm, a random transform
    np.testing.assert_array_equal(model.mlm_decoder.output_bias.numpy(), 0.0)
    assert np.isfinite(out["mlm_logits"].numpy()).all()


def test_saved_directory_resumes_pretraining_and_feeds_ner_training(shared_dir, tmp_path):
    """save_pretrained_dir writes convert.py's layout plus the heads: a new PretrainingModel continues with
    identical logits, one without SOP reports the SOP tensors as not used, and `train --init DIR`'s loader
    fills a NerTagger's encoder with the same weights."""
    raw = shared_config(shared_dir, "albert_base_zh_google/albert_config.json")
    raw.update(num_hidden_layers=2, num_hidden_groups=2)
    config = EncoderConfig.from_pretrained_dict(raw)
    first = PretrainingModel(config, sop=True)
    first.build_weights()
    rng = np.random.default_rng(20)
    for var in first.weights:  # every weight random, so nothing passes by its initial value
        var.assign(rng.normal(size=var.shape).astype(np.float32) * 0.05)
    out_dir = save_pretrained_dir(first, shared_dir / "pretrained/vocab.txt", tmp_path / "pretrained",
                                  info={"steps": 7})
    assert {p.name for p in out_dir.iterdir()} >= {"encoder_config.json", "vocab.txt", "encoder",
                                                   "pretraining_heads", "conversion_report.json"}
    ids, mask, segments = two_segment_batch(config.vocab_size)
    batch = {"token_ids": tf.constant(ids), "segment_ids": tf.constant(segments),
             "lengths": tf.constant(mask.sum(1), tf.int32)}
    want = first(batch)

    out, report, second = our_logits(out_dir, ids, mask, segments)
    assert report["heads"]["layout"] == "albert-ner pretrained directory"
    assert set(report["heads"]["loaded"]) == {MLM, POOLER, SOP} and not report["heads"]["fresh"]
    assert report["encoder"]["steps"] == 7
    for key in ("mlm_logits", "sop_logits"):
        np.testing.assert_array_equal(out[key].numpy(), want[key].numpy())

    _, report, _ = our_logits(out_dir, ids, mask, segments, sop=False)
    assert set(report["heads"]["loaded"]) == {MLM}
    assert report["heads"]["not_used"] == ["pooler_bias", "pooler_kernel", "sop_bias", "sop_kernel"]

    enc_config, vocab = pretrained_encoder_config(out_dir)
    assert enc_config == config and vocab == out_dir / "vocab.txt"
    tagger = NerTagger(ModelConfig(encoder=enc_config, head=HeadConfig(), labels=("O", "B-PER", "I-PER")))
    tagger.build_weights()
    load_pretrained(tagger.encoder, out_dir)
    mask_t = tf.constant(mask, tf.bool)
    np.testing.assert_array_equal(tagger.encoder(tf.constant(ids), mask_t, tf.constant(segments)).numpy(),
                                  first.encoder(tf.constant(ids), mask_t, tf.constant(segments)).numpy())
