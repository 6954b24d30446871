"""Proof that loaded encoders compute what the originals compute.

Each test makes a Hugging Face reference model (torch, CPU) from a real published config with
random weights, writes those weights in one published format with the exact real tensor names
(TF1 checkpoints, safetensors, pytorch_model.bin, ERNIE params/ LoDTensor files, PaddleNLP
.pdparams, the ernie pip package's saved_weights.pdparams), loads them through `read_source` +
`assign_encoder_weights`, and compares sequence outputs on a padded batch. Name tables for writing
come from ../shared/notes/formats.md and are spelled out here independently of
albert_ner/weights/names.py.
"""
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.config import EncoderConfig
from albert_ner.model.encoder import TransformerEncoder
from albert_ner.weights.loader import assign_encoder_weights
from albert_ner.weights.sources import read_source
from tests.weights.test_paddle import lod_tensor_bytes
from tests.weights.test_tensor_files import write_tf1_checkpoint

if os.environ.get("ALBERT_NER_REQUIRE_REFERENCE"):  # CI: these checks must run, never skip
    import torch
    import transformers
else:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

ATOL = 1e-4
LENGTHS = (13, 7)  # two rows, the second padded


def randomize(model, seed=0):
    """Every parameter random (LayerNorm gains near 1), so that a misplaced tensor cannot pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.05
            p.copy_(1.0 + noise if name.endswith("LayerNorm.weight") or "layer_norm.weight" in name else noise)
    return model.eval()


def batch(vocab_size, seed=1):
    rng = np.random.default_rng(seed)
    t = max(LENGTHS)
    ids = np.zeros((len(LENGTHS), t), np.int32)
    mask = np.zeros((len(LENGTHS), t), np.int32)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = rng.integers(5, vocab_size, n)
        mask[row, :n] = 1
    return ids, mask


def hf_output(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask))
    return out.last_hidden_state.numpy()


def state_dict(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def load_and_run(source_path, ids, mask):
    """Our side: read the source, build the encoder from its config, load, run."""
    source = read_source(source_path)
    assert source.config_file is not None, "the source's config file was not found"
    config = EncoderConfig.from_pretrained_json(source.config_file)
    encoder = TransformerEncoder(config, name="encoder")
    encoder(tf.constant(ids), tf.constant(mask, tf.bool))
    report = assign_encoder_weights(encoder, source.tensors, str(source_path), source.skipped_by_kind())
    out = encoder(tf.constant(ids), tf.constant(mask, tf.bool), training=False).numpy()
    return out, report, config


def assert_same_on_real_tokens(ours, ref, mask):
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], ref[real], atol=ATOL, rtol=0)


def shared_config(shared_dir, relative):
    return json.loads((shared_dir / "pretrained" / relative).read_text())


# ---- ALBERT -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def google_albert_zh(shared_dir):
    """HF AlbertModel with Google's albert_base_zh config (relu, E=128, one shared group)."""
    raw = shared_config(shared_dir, "albert_base_zh_google/albert_config.json")
    config = transformers.AlbertConfig(**{k: v for k, v in raw.items() if k != "layers_to_keep"})
    model = randomize(transformers.AlbertModel(config, add_pooling_layer=False))
    ids, mask = batch(config.vocab_size)
    return raw, model, ids, mask, hf_output(model, ids, mask)


def hf_albert_to_google_tf1(sd, groups=1):
    """The state dict under Google's TF1 names (formats.md §2.3), kernels back to [in, out]; one
    `group_{g}/inner_group_0` scope per HF `albert_layer_groups.{g}`."""
    out = {
        "bert/embeddings/word_embeddings": sd["embeddings.word_embeddings.weight"],
        "bert/embeddings/position_embeddings": sd["embeddings.position_embeddings.weight"],
        "bert/embeddings/token_type_embeddings": sd["embeddings.token_type_embeddings.weight"],
        "bert/embeddings/LayerNorm/gamma": sd["embeddings.LayerNorm.weight"],
        "bert/embeddings/LayerNorm/beta": sd["embeddings.LayerNorm.bias"],
        "bert/encoder/embedding_hidden_mapping_in/kernel": sd["encoder.embedding_hidden_mapping_in.weight"].T,
        "bert/encoder/embedding_hidden_mapping_in/bias": sd["encoder.embedding_hidden_mapping_in.bias"],
        # pretraining leftovers a real release carries
        "bert/pooler/dense/kernel": np.zeros((768, 768), np.float32),
        "cls/predictions/output_bias": np.zeros(21128, np.float32),
    }
    for group in range(groups):
        g = f"bert/encoder/transformer/group_{group}/inner_group_0/"
        layer = f"encoder.albert_layer_groups.{group}.albert_layers.0."
        out.update({
            g + "LayerNorm/gamma": sd[layer + "attention.LayerNorm.weight"],
            g + "LayerNorm/beta": sd[layer + "attention.LayerNorm.bias"],
            g + "LayerNorm_1/gamma": sd[layer + "full_layer_layer_norm.weight"],
            g + "LayerNorm_1/beta": sd[layer + "full_layer_layer_norm.bias"],
            g + "ffn_1/intermediate/dense/kernel": sd[layer + "ffn.weight"].T,
            g + "ffn_1/intermediate/dense/bias": sd[layer + "ffn.bias"],
            g + "ffn_1/intermediate/output/dense/kernel": sd[layer + "ffn_output.weight"].T,
            g + "ffn_1/intermediate/output/dense/bias": sd[layer + "ffn_output.bias"],
            g + "attention_1/output/dense/kernel": sd[layer + "attention.dense.weight"].T,
            g + "attention_1/output/dense/bias": sd[layer + "attention.dense.bias"],
        })
        for x in ("query", "key", "value"):
            out[g + f"attention_1/self/{x}/kernel"] = sd[layer + f"attention.{x}.weight"].T
            out[g + f"attention_1/self/{x}/bias"] = sd[layer + f"attention.{x}.bias"]
    return out


def test_google_albert_base_zh_tf1_checkpoint_matches_hf(google_albert_zh, shared_dir, tmp_path):
    raw, model, ids, mask, ref = google_albert_zh
    tensors = hf_albert_to_google_tf1(state_dict(model))
    # what a real pretraining checkpoint also holds: optimizer slots and the step counter
    tensors["bert/embeddings/word_embeddings/adam_m"] = np.zeros((21128, 128), np.float32)
    tensors["global_step"] = np.array(125000, np.int64)
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", tensors)
    shutil.copy(shared_dir / "pretrained/albert_base_zh_google/albert_config.json", tmp_path)
    ours, report, config = load_and_run(tmp_path, ids, mask)
    assert config.hidden_act == "relu" and config.embedding_layout == "project_last"
    assert report.layout == "Google ALBERT TF1 checkpoint"
    assert len(report.loaded) == 23 and not report.not_used and not report.left_random
    assert report.expected_leftovers == ["bert/pooler/dense/kernel", "cls/predictions/output_bias"]
    assert_same_on_real_tokens(ours, ref, mask)


def test_hf_albert_safetensors_matches_hf(google_albert_zh, tmp_path):
    raw, model, ids, mask, ref = google_albert_zh
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    ours, report, _ = load_and_run(tmp_path, ids, mask)
    assert report.layout == "Hugging Face ALBERT weights" and not report.not_used and not report.left_random
    assert_same_on_real_tokens(ours, ref, mask)


@pytest.fixture(scope="module")
def google_albert_zh_2_groups(shared_dir):
    """HF AlbertForPreTraining with albert_base_zh's widths (E=128, H=768, relu) but 4 layers in 2 weight
    groups. HF runs layers 0-1 with group 0 and layers 2-3 with group 1; any other layer-to-group order
    gives different outputs, since the two groups hold different random weights."""
    raw = shared_config(shared_dir, "albert_base_zh_google/albert_config.json")
    raw.update(num_hidden_layers=4, num_hidden_groups=2)
    config = transformers.AlbertConfig(**{k: v for k, v in raw.items() if k != "layers_to_keep"})
    model = randomize(transformers.AlbertForPreTraining(config), seed=5)
    ids, mask = batch(config.vocab_size)
    return raw, model, ids, mask, hf_output(model.albert, ids, mask)


def test_google_albert_two_groups_tf1_checkpoint_matches_hf(google_albert_zh_2_groups, tmp_path):
    raw, model, ids, mask, ref = google_albert_zh_2_groups
    tensors = hf_albert_to_google_tf1(state_dict(model.albert), groups=2)
    assert "bert/encoder/transformer/group_1/inner_group_0/LayerNorm_1/gamma" in tensors
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", tensors)
    (tmp_path / "albert_config.json").write_text(json.dumps(raw))
    ours, report, config = load_and_run(tmp_path, ids, mask)
    assert config.num_layer_groups == 2 and config.num_hidden_layers == 4
    assert [TransformerEncoder(config).group_of_layer(i) for i in range(4)] == [0, 0, 1, 1]
    assert report.layout == "Google ALBERT TF1 checkpoint"
    assert len(report.loaded) == 7 + 16 * 2 and not report.not_used and not report.left_random
    assert_same_on_real_tokens(ours, ref, mask)


def test_hf_albert_pytorch_bin_with_albert_prefix_matches_hf(google_albert_zh_2_groups, tmp_path):
    """The hub's ALBERT pytorch_model.bin (voidful/albert_chinese_*): a torch.save'd pretraining state dict,
    `albert.`-prefixed, with the MLM (`predictions.*`, decoder tied to the word table) and SOP heads and,
    as older transformers saved it, the position_ids buffer."""
    raw, model, ids, mask, ref = google_albert_zh_2_groups
    sd = model.state_dict()
    assert all(k.startswith(("albert.", "predictions.", "sop_classifier.")) for k in sd)
    sd["albert.embeddings.position_ids"] = torch.arange(raw["max_position_embeddings"])[None]
    torch.save(sd, tmp_path / "pytorch_model.bin")
    model.config.to_json_file(tmp_path / "config.json")
    ours, report, config = load_and_run(tmp_path, ids, mask)
    assert config.num_layer_groups == 2 and config.embedding_layout == "project_last"
    assert report.layout == "Hugging Face ALBERT weights"
    assert len(report.loaded) == 7 + 16 * 2 and not report.not_used and not report.left_random
    heads = {k for k in sd if k.startswith(("albert.pooler.", "predictions.", "sop_classifier."))}
    assert {"predictions.decoder.weight", "sop_classifier.classifier.weight"} <= heads
    assert set(report.expected_leftovers) == heads | {"albert.embeddings.position_ids"}
    assert_same_on_real_tokens(ours, ref, mask)


def brightmart_checkpoint(raw, seed):
    """Random arrays under brightmart's exact names (formats.md §1.4) for a config dict."""
    h, e, v, i = raw["hidden_size"], raw["embedding_size"], raw["vocab_size"], raw["intermediate_size"]
    rng = np.random.default_rng(seed)
    normal = lambda *shape: (rng.normal(size=shape) * 0.05).astype(np.float32)
    gain = lambda n: (1 + rng.normal(size=n) * 0.05).astype(np.float32)
    p = "bert/encoder/layer_shared/"
    ckpt = {"bert/embeddings/word_embeddings": normal(v, e), "bert/embeddings/word_embeddings_2": normal(e, h),
            "bert/embeddings/position_embeddings": normal(512, h), "bert/embeddings/token_type_embeddings": normal(2, h),
            "bert/embeddings/LayerNorm/gamma": gain(h), "bert/embeddings/LayerNorm/beta": normal(h),
            p + "attention/output/dense/kernel": normal(h, h), p + "attention/output/dense/bias": normal(h),
            p + "attention/output/LayerNorm/gamma": gain(h), p + "attention/output/LayerNorm/beta": normal(h),
            p + "intermediate/dense/kernel": normal(h, i), p + "intermediate/dense/bias": normal(i),
            p + "output/dense/kernel": normal(i, h), p + "output/dense/bias": normal(h),
            p + "output/LayerNorm/gamma": gain(h), p + "output/LayerNorm/beta": normal(h),
            "cls/predictions/transform/dense/kernel": normal(h, h)}
    for x in ("query", "key", "value"):
        ckpt[p + f"attention/self/{x}/kernel"] = normal(h, h)
        ckpt[p + f"attention/self/{x}/bias"] = normal(h)
    return ckpt


def shared_layer_state_dict(ckpt, layers, layer_norms, position_offset=0):
    """HF BERT-layout state dict: word table W @ W2 and the one shared layer copied into every layer.
    `layer_norms` maps HF LayerNorm names onto brightmart's two LayerNorm scopes."""
    p = "bert/encoder/layer_shared/"
    pos = ckpt["bert/embeddings/position_embeddings"]
    if position_offset:  # RoBERTa-style models count positions from padding_idx + 1
        pos = np.concatenate([np.zeros((position_offset, pos.shape[1]), np.float32), pos])
    sd = {"embeddings.word_embeddings.weight": ckpt["bert/embeddings/word_embeddings"]
          @ ckpt["bert/embeddings/word_embeddings_2"],
          "embeddings.position_embeddings.weight": pos,
          "embeddings.token_type_embeddings.weight": ckpt["bert/embeddings/token_type_embeddings"],
          "embeddings.LayerNorm.weight": ckpt["bert/embeddings/LayerNorm/gamma"],
          "embeddings.LayerNorm.bias": ckpt["bert/embeddings/LayerNorm/beta"]}
    parts = {"attention.self.query": "attention/self/query", "attention.self.key": "attention/self/key",
             "attention.self.value": "attention/self/value", "attention.output.dense": "attention/output/dense",
             "intermediate.dense": "intermediate/dense", "output.dense": "output/dense"}
    for layer in range(layers):
        for hf, tf1 in parts.items():
            sd[f"encoder.layer.{layer}.{hf}.weight"] = ckpt[p + tf1 + "/kernel"].T
            sd[f"encoder.layer.{layer}.{hf}.bias"] = ckpt[p + tf1 + "/bias"]
        for hf, tf1 in layer_norms.items():
            sd[f"encoder.layer.{layer}.{hf}.weight"] = ckpt[p + tf1 + "/gamma"]
            sd[f"encoder.layer.{layer}.{hf}.bias"] = ckpt[p + tf1 + "/beta"]
    return sd


def load_state(model, sd):
    """Load every encoder tensor into the HF model; fail if any encoder weight is left out."""
    result = model.load_state_dict({k: torch.tensor(a) for k, a in sd.items()}, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(("embeddings.", "encoder."))]
    assert not missing and not result.unexpected_keys, (missing, result.unexpected_keys)
    return model.eval()


def test_brightmart_albert_base_tf1_checkpoint_matches_shared_layer_bert(shared_dir, tmp_path):
    """brightmart projects E->H before adding positions; a BertModel whose word table is W @ W2 and
    whose 12 layers all hold the one shared layer computes the same thing."""
    raw = shared_config(shared_dir, "albert_config/albert_config_base.json")
    ckpt = brightmart_checkpoint(raw, seed=3)
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", ckpt)
    shutil.copy(shared_dir / "pretrained/albert_config/albert_config_base.json", tmp_path)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"], num_hidden_layers=raw["num_hidden_layers"],
        num_attention_heads=raw["num_attention_heads"], intermediate_size=raw["intermediate_size"],
        hidden_act="gelu_new", layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        add_pooling_layer=False)
    load_state(bert, shared_layer_state_dict(ckpt, raw["num_hidden_layers"], {
        "attention.output.LayerNorm": "attention/output/LayerNorm", "output.LayerNorm": "output/LayerNorm"}))
    ids, mask = batch(raw["vocab_size"])
    ref = hf_output(bert, ids, mask)

    ours, report, config = load_and_run(tmp_path, ids, mask)
    assert config.embedding_layout == "project_first" and config.num_layer_groups == 1
    assert report.layout == "TF1 BERT/brightmart albert_zh checkpoint"
    assert len(report.loaded) == 22 and not report.not_used and not report.left_random
    assert_same_on_real_tokens(ours, ref, mask)


def test_brightmart_preln_checkpoint_matches_prelayernorm_reference(shared_dir, tmp_path):
    """albert_config_xxlarge.json is pre-LN (ln_type "preln"): the same variable names, but
    attention/output/LayerNorm runs before attention and output/LayerNorm before the FFN, with no final
    LayerNorm. Hugging Face's RoBERTa-PreLayerNorm is that block; the output of its encoder stack
    (before the model's closing LayerNorm) is the reference. Widths are cut from 4096 to 64 to keep the test small."""
    raw = shared_config(shared_dir, "albert_config/albert_config_xxlarge.json")
    assert raw["ln_type"] == "preln"
    raw.update(hidden_size=64, num_attention_heads=4, intermediate_size=128, embedding_size=16, num_hidden_layers=3)
    ckpt = brightmart_checkpoint(raw, seed=4)
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", ckpt)
    (tmp_path / "albert_config_xxlarge.json").write_text(json.dumps(raw))
    ref_model = transformers.RobertaPreLayerNormModel(transformers.RobertaPreLayerNormConfig(
        vocab_size=raw["vocab_size"], hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=128, hidden_act="gelu_new", layer_norm_eps=1e-12, max_position_embeddings=514,
        type_vocab_size=2, pad_token_id=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        add_pooling_layer=False)
    load_state(ref_model, shared_layer_state_dict(ckpt, 3, {
        "attention.LayerNorm": "attention/output/LayerNorm", "intermediate.LayerNorm": "output/LayerNorm"},
        position_offset=2))
    ids, mask = batch(raw["vocab_size"])
    captured = {}  # the encoder stack's output, before the model's closing LayerNorm

    def keep(module, args, out):  # returns None, so the model's own output is left alone
        captured["x"] = out[0]

    ref_model.encoder.register_forward_hook(keep)
    final_ln = hf_output(ref_model, ids, mask)
    ref = captured["x"].numpy()
    assert np.abs(final_ln - ref).max() > 0.1  # so the hook really took the pre-LayerNorm tensor

    ours, report, config = load_and_run(tmp_path, ids, mask)
    assert config.ln_type == "preln" and config.embedding_layout == "project_first"
    assert not report.not_used and not report.left_random
    assert_same_on_real_tokens(ours, ref, mask)


# ---- BERT ---------------------------------------------------------------------------------------

def test_hf_bert_pytorch_bin_matches_hf(shared_dir, tmp_path):
    raw = shared_config(shared_dir, "bert-base-chinese/bert_config.json")
    raw.update(num_hidden_layers=2)  # the layer code is the same for all 12; keep the test quick
    config = transformers.BertConfig(**raw)
    model = randomize(transformers.BertForMaskedLM(config))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    config.to_json_file(tmp_path / "config.json")
    ids, mask = batch(config.vocab_size)
    ref = hf_output(model.bert, ids, mask)
    ours, report, _ = load_and_run(tmp_path, ids, mask)
    assert report.layout == "Hugging Face BERT/ERNIE weights" and not report.left_random
    assert not report.not_used and any(n.startswith("cls.") for n in report.expected_leftovers)
    assert_same_on_real_tokens(ours, ref, mask)


def bert_to_google_tf1(sd, layers):
    """A BertForPreTraining state dict under Google BERT's TF1 names (chinese_L-12_H-768_A-12's
    bert_model.ckpt), kernels [in, out]; pooler and pretraining heads ride along as in the release."""
    out = {"bert/embeddings/word_embeddings": sd["bert.embeddings.word_embeddings.weight"],
           "bert/embeddings/position_embeddings": sd["bert.embeddings.position_embeddings.weight"],
           "bert/embeddings/token_type_embeddings": sd["bert.embeddings.token_type_embeddings.weight"],
           "bert/embeddings/LayerNorm/gamma": sd["bert.embeddings.LayerNorm.weight"],
           "bert/embeddings/LayerNorm/beta": sd["bert.embeddings.LayerNorm.bias"],
           "bert/pooler/dense/kernel": sd["bert.pooler.dense.weight"].T,
           "bert/pooler/dense/bias": sd["bert.pooler.dense.bias"],
           "cls/predictions/transform/dense/kernel": sd["cls.predictions.transform.dense.weight"].T,
           "cls/predictions/transform/dense/bias": sd["cls.predictions.transform.dense.bias"],
           "cls/predictions/transform/LayerNorm/gamma": sd["cls.predictions.transform.LayerNorm.weight"],
           "cls/predictions/transform/LayerNorm/beta": sd["cls.predictions.transform.LayerNorm.bias"],
           "cls/predictions/output_bias": sd["cls.predictions.bias"],
           "cls/seq_relationship/output_weights": sd["cls.seq_relationship.weight"],  # stored [2, H]
           "cls/seq_relationship/output_bias": sd["cls.seq_relationship.bias"]}
    dense = {"attention/self/query": "attention.self.query", "attention/self/key": "attention.self.key",
             "attention/self/value": "attention.self.value", "attention/output/dense": "attention.output.dense",
             "intermediate/dense": "intermediate.dense", "output/dense": "output.dense"}
    norms = {"attention/output/LayerNorm": "attention.output.LayerNorm", "output/LayerNorm": "output.LayerNorm"}
    for i in range(layers):
        t, l = f"bert/encoder/layer_{i}/", f"bert.encoder.layer.{i}."
        for tf1, hf in dense.items():
            out[t + tf1 + "/kernel"] = sd[l + hf + ".weight"].T
            out[t + tf1 + "/bias"] = sd[l + hf + ".bias"]
        for tf1, hf in norms.items():
            out[t + tf1 + "/gamma"] = sd[l + hf + ".weight"]
            out[t + tf1 + "/beta"] = sd[l + hf + ".bias"]
    return out


def test_google_bert_tf1_checkpoint_matches_hf(shared_dir, tmp_path):
    """Google's chinese_L-12_H-768_A-12 layout: `bert/encoder/layer_N/...`, no `checkpoint` file beside
    bert_model.ckpt, and a TF1 config whose "gelu" is the tanh approximation (HF: gelu_new)."""
    raw = shared_config(shared_dir, "bert-base-chinese/bert_config.json")
    raw.update(num_hidden_layers=2)  # every layer has the same names but its index; keep the test quick
    model = randomize(transformers.BertForPreTraining(transformers.BertConfig(**dict(raw, hidden_act="gelu_new"))),
                      seed=6)
    ids, mask = batch(raw["vocab_size"])
    ref = hf_output(model.bert, ids, mask)
    tensors = bert_to_google_tf1(state_dict(model), raw["num_hidden_layers"])
    tensors["bert/encoder/layer_1/output/dense/kernel/adam_v"] = np.zeros((3072, 768), np.float32)
    tensors["global_step"] = np.array(1000000, np.int64)
    write_tf1_checkpoint(tmp_path / "bert_model.ckpt", tensors)
    (tmp_path / "checkpoint").unlink()  # the release zip has none; the one *.index is the checkpoint
    (tmp_path / "bert_config.json").write_text(json.dumps(raw))
    ours, report, config = load_and_run(tmp_path, ids, mask)
    assert config.hidden_act == "gelu_tanh" and config.embedding_layout == "none" and config.num_layer_groups == 2
    assert report.layout == "TF1 BERT/brightmart albert_zh checkpoint"
    assert len(report.loaded) == 5 + 16 * 2 and not report.not_used and not report.left_random
    assert report.expected_leftovers == sorted(n for n in tensors if n.startswith(("bert/pooler/", "cls/")))
    assert report.skipped == {"optimizer/bookkeeping": ["bert/encoder/layer_1/output/dense/kernel/adam_v",
                                                        "global_step"]}  # counted, never read
    assert_same_on_real_tokens(ours, ref, mask)


# ---- ERNIE --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ernie_1(shared_dir):
    """HF ErnieModel with the ERNIE 1.0 config (relu, 513 positions, 18,000 rows, LayerNorm eps 1e-5)."""
    raw = shared_config(shared_dir, "ernie-1.0/ernie_config.json")
    config = transformers.ErnieConfig(**raw, intermediate_size=4 * raw["hidden_size"], layer_norm_eps=1e-5)
    model = randomize(transformers.ErnieModel(config, add_pooling_layer=False))
    ids, mask = batch(17964)
    return raw, model, ids, mask, hf_output(model, ids, mask)


def hf_ernie_to_static(sd, layers):
    """ERNIE 1.0 static-graph parameter names (formats.md §4.1); fluid fc weights are [in, out]."""
    out = {"word_embedding": sd["embeddings.word_embeddings.weight"],
           "pos_embedding": sd["embeddings.position_embeddings.weight"],
           "sent_embedding": sd["embeddings.token_type_embeddings.weight"],
           "pre_encoder_layer_norm_scale": sd["embeddings.LayerNorm.weight"],
           "pre_encoder_layer_norm_bias": sd["embeddings.LayerNorm.bias"],
           "pooled_fc.w_0": np.zeros((768, 768), np.float32), "mask_lm_out_fc.b_0": np.zeros(18000, np.float32)}
    for i in range(layers):
        s, l = f"encoder_layer_{i}_", f"encoder.layer.{i}."
        for x in ("query", "key", "value"):
            out[s + f"multi_head_att_{x}_fc.w_0"] = sd[l + f"attention.self.{x}.weight"].T
            out[s + f"multi_head_att_{x}_fc.b_0"] = sd[l + f"attention.self.{x}.bias"]
        out[s + "multi_head_att_output_fc.w_0"] = sd[l + "attention.output.dense.weight"].T
        out[s + "multi_head_att_output_fc.b_0"] = sd[l + "attention.output.dense.bias"]
        out[s + "post_att_layer_norm_scale"] = sd[l + "attention.output.LayerNorm.weight"]
        out[s + "post_att_layer_norm_bias"] = sd[l + "attention.output.LayerNorm.bias"]
        out[s + "ffn_fc_0.w_0"] = sd[l + "intermediate.dense.weight"].T
        out[s + "ffn_fc_0.b_0"] = sd[l + "intermediate.dense.bias"]
        out[s + "ffn_fc_1.w_0"] = sd[l + "output.dense.weight"].T
        out[s + "ffn_fc_1.b_0"] = sd[l + "output.dense.bias"]
        out[s + "post_ffn_layer_norm_scale"] = sd[l + "output.LayerNorm.weight"]
        out[s + "post_ffn_layer_norm_bias"] = sd[l + "output.LayerNorm.bias"]
    return out


def test_ernie_1_static_params_dir_matches_hf(ernie_1, shared_dir, tmp_path):
    raw, model, ids, mask, ref = ernie_1
    release = tmp_path / "ERNIE_stable-1.0.1"
    (release / "params").mkdir(parents=True)
    for name, array in hf_ernie_to_static(state_dict(model), raw["num_hidden_layers"]).items():
        (release / "params" / name).write_bytes(lod_tensor_bytes(np.ascontiguousarray(array, np.float32)))
    for name in ("ernie_config.json", "vocab.txt"):
        shutil.copy(shared_dir / "pretrained/ernie-1.0" / name, release)
    source = read_source(tmp_path)  # descends into the one folder the archive unpacked to
    assert source.kind == "paddle-params" and source.vocab_file.name == "vocab.txt"
    ours, report, config = load_and_run(release / "params", ids, mask)
    assert config.hidden_act == "relu" and config.layer_norm_eps == 1e-5 and config.vocab_size == 18000
    assert report.layout == "ERNIE static-graph params/"
    assert len(report.loaded) == 5 + 16 * 12 and not report.not_used and not report.left_random
    assert sorted(report.expected_leftovers) == ["mask_lm_out_fc.b_0", "pooled_fc.w_0"]
    assert_same_on_real_tokens(ours, ref, mask)


def test_hf_ernie_port_with_bert_prefix_matches_hf(ernie_1, tmp_path):
    """nghuyong/ernie-1.0 ports before 2022 saved `bert.*` names with gamma/beta LayerNorms."""
    raw, model, ids, mask, ref = ernie_1
    sd = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
          for k, v in state_dict(model).items()}
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    model.config.to_json_file(tmp_path / "config.json")
    ours, report, _ = load_and_run(tmp_path, ids, mask)
    assert report.layout == "Hugging Face BERT/ERNIE weights" and not report.left_random
    assert_same_on_real_tokens(ours, ref, mask)


def hf_ernie_to_pip(sd, layers):
    """The `ernie` pip package's structured names (ernie/modeling_ernie.py: ErnieModel and the
    ErnieModelForPretraining heads), paddle Linear weights [in, out]."""
    out = {"word_emb.weight": sd["embeddings.word_embeddings.weight"],
           "pos_emb.weight": sd["embeddings.position_embeddings.weight"],
           "sent_emb.weight": sd["embeddings.token_type_embeddings.weight"],
           "ln.weight": sd["embeddings.LayerNorm.weight"], "ln.bias": sd["embeddings.LayerNorm.bias"]}
    for i in range(layers):
        b, l = f"encoder_stack.block.{i}.", f"encoder.layer.{i}."
        for short, x in (("q", "query"), ("k", "key"), ("v", "value")):
            out[b + f"attn.{short}.weight"] = sd[l + f"attention.self.{x}.weight"].T
            out[b + f"attn.{short}.bias"] = sd[l + f"attention.self.{x}.bias"]
        out[b + "attn.o.weight"] = sd[l + "attention.output.dense.weight"].T
        out[b + "attn.o.bias"] = sd[l + "attention.output.dense.bias"]
        out[b + "ln1.weight"] = sd[l + "attention.output.LayerNorm.weight"]
        out[b + "ln1.bias"] = sd[l + "attention.output.LayerNorm.bias"]
        out[b + "ffn.i.weight"] = sd[l + "intermediate.dense.weight"].T
        out[b + "ffn.i.bias"] = sd[l + "intermediate.dense.bias"]
        out[b + "ffn.o.weight"] = sd[l + "output.dense.weight"].T
        out[b + "ffn.o.bias"] = sd[l + "output.dense.bias"]
        out[b + "ln2.weight"] = sd[l + "output.LayerNorm.weight"]
        out[b + "ln2.bias"] = sd[l + "output.LayerNorm.bias"]
    h, v = out["ln.weight"].shape[0], out["word_emb.weight"].shape[0]
    rng = np.random.default_rng(7)
    for name, shape in (("pooler.weight", (h, h)), ("pooler.bias", (h,)), ("pooler_heads.0.nsp.weight", (h, 2)),
                        ("pooler_heads.0.nsp.bias", (2,)), ("mlm.weight", (h, h)), ("mlm.bias", (h,)),
                        ("mlm_ln.weight", (h,)), ("mlm_ln.bias", (h,)), ("mlm_bias", (v,))):
        out[name] = rng.normal(size=shape).astype(np.float32)
    return out


def test_ernie_pip_saved_weights_pdparams_matches_hf(shared_dir, tmp_path):
    """model-ernie1.0.1.tar.gz of the `ernie` pip package: saved_weights.pdparams beside ernie_config.json
    and vocab.txt, written the way paddle.save writes a state dict, pretraining heads included."""
    raw = shared_config(shared_dir, "ernie-1.0/ernie_config.json")
    raw.update(num_hidden_layers=2)  # 12 in the release; the per-layer names differ only by index
    model = randomize(transformers.ErnieModel(transformers.ErnieConfig(
        **raw, intermediate_size=4 * raw["hidden_size"], layer_norm_eps=1e-5), add_pooling_layer=False), seed=10)
    ids, mask = batch(17964)
    ref = hf_output(model, ids, mask)
    tensors = {k: np.ascontiguousarray(a) for k, a in hf_ernie_to_pip(state_dict(model), 2).items()}
    release = tmp_path / "model-ernie1.0.1"
    release.mkdir()
    payload = dict(tensors, **{"StructuredToParameterName@@": {k: f"param_{n}" for n, k in enumerate(tensors)}})
    (release / "saved_weights.pdparams").write_bytes(pickle.dumps(payload, protocol=4))
    (release / "ernie_config.json").write_text(json.dumps(raw))
    shutil.copy(shared_dir / "pretrained/ernie-1.0/vocab.txt", release)
    ours, report, config = load_and_run(tmp_path, ids, mask)  # descends into the unpacked folder
    assert config.hidden_act == "relu" and config.layer_norm_eps == 1e-5 and config.vocab_size == 18000
    assert config.intermediate_size == 3072 and config.max_position_embeddings == 513
    assert report.layout == "ERNIE pip-package saved_weights.pdparams"
    assert len(report.loaded) == 5 + 16 * 2 and not report.not_used and not report.left_random
    assert report.expected_leftovers == sorted(n for n in tensors if n.startswith(("pooler", "mlm")))
    assert_same_on_real_tokens(ours, ref, mask)


# ERNIE 3.0 nano (PaddleNLP ERNIE_PRETRAINED_INIT_CONFIGURATION, formats.md §4.2).
ERNIE_3_NANO = dict(vocab_size=40000, hidden_size=312, num_hidden_layers=4, num_attention_heads=12,
                    intermediate_size=1248, hidden_act="gelu", hidden_dropout_prob=0.1,
                    attention_probs_dropout_prob=0.1, max_position_embeddings=2048, type_vocab_size=4,
                    initializer_range=0.02, pad_token_id=0, task_type_vocab_size=16, use_task_id=True)


def test_paddlenlp_ernie_3_pdparams_with_task_embedding_matches_hf(tmp_path):
    config = transformers.ErnieConfig(**ERNIE_3_NANO, layer_norm_eps=1e-12)
    model = randomize(transformers.ErnieModel(config, add_pooling_layer=False))
    ids, mask = batch(config.vocab_size)
    ref = hf_output(model, ids, mask)  # HF adds task_type_embeddings row 0 to every token
    sd = state_dict(model)
    pd = {"ernie.embeddings.word_embeddings.weight": sd["embeddings.word_embeddings.weight"],
          "ernie.embeddings.position_embeddings.weight": sd["embeddings.position_embeddings.weight"],
          "ernie.embeddings.token_type_embeddings.weight": sd["embeddings.token_type_embeddings.weight"],
          "ernie.embeddings.task_type_embeddings.weight": sd["embeddings.task_type_embeddings.weight"],
          "ernie.embeddings.layer_norm.weight": sd["embeddings.LayerNorm.weight"],
          "ernie.embeddings.layer_norm.bias": sd["embeddings.LayerNorm.bias"]}
    for i in range(config.num_hidden_layers):
        d, l = f"ernie.encoder.layers.{i}.", f"encoder.layer.{i}."
        for short, x in (("q", "query"), ("k", "key"), ("v", "value")):
            pd[d + f"self_attn.{short}_proj.weight"] = sd[l + f"attention.self.{x}.weight"].T
            pd[d + f"self_attn.{short}_proj.bias"] = sd[l + f"attention.self.{x}.bias"]
        pd[d + "self_attn.out_proj.weight"] = sd[l + "attention.output.dense.weight"].T
        pd[d + "self_attn.out_proj.bias"] = sd[l + "attention.output.dense.bias"]
        pd[d + "norm1.weight"] = sd[l + "attention.output.LayerNorm.weight"]
        pd[d + "norm1.bias"] = sd[l + "attention.output.LayerNorm.bias"]
        pd[d + "linear1.weight"] = sd[l + "intermediate.dense.weight"].T
        pd[d + "linear1.bias"] = sd[l + "intermediate.dense.bias"]
        pd[d + "linear2.weight"] = sd[l + "output.dense.weight"].T
        pd[d + "linear2.bias"] = sd[l + "output.dense.bias"]
        pd[d + "norm2.weight"] = sd[l + "output.LayerNorm.weight"]
        pd[d + "norm2.bias"] = sd[l + "output.LayerNorm.bias"]
    pd = {k: np.ascontiguousarray(v) for k, v in pd.items()}
    # paddle.save's payload: a plain dict of arrays plus the structured-name table, pickle protocol 4
    payload = dict(pd, **{"StructuredToParameterName@@": {k: f"param_{n}" for n, k in enumerate(pd)}})
    (tmp_path / "model_state.pdparams").write_bytes(pickle.dumps(payload, protocol=4))
    (tmp_path / "model_config.json").write_text(json.dumps(
        {"init_args": [dict(ERNIE_3_NANO, layer_norm_eps=1e-12)], "init_class": "ErnieModel"}))
    ours, report, cfg = load_and_run(tmp_path, ids, mask)
    assert cfg.task_type_vocab_size == 16 and cfg.hidden_act == "gelu" and cfg.type_vocab_size == 4
    assert report.layout == "PaddleNLP ERNIE .pdparams"
    assert "embeddings/task_type" in report.loaded and not report.not_used and not report.left_random
    assert_same_on_real_tokens(ours, ref, mask)


@pytest.mark.parametrize("variant", ["ernie-1.0", "ernie-3.0-nano"])
def test_hf_ernie_port_with_ernie_prefix_matches_hf(variant, shared_dir, tmp_path):
    """nghuyong/ernie-* ports since 2022 (their convert.py): `ernie.`-prefixed BERT layout with gamma/beta
    LayerNorms, the pooler and the MLM head, torch.save'd; config.json says model_type "ernie" and
    layer_norm_eps 1e-5. ERNIE 1.0 is relu without a task table; ERNIE 3.0 (use_task_id) adds
    task_type_embeddings, whose row 0 HF adds to every token."""
    if variant == "ernie-1.0":
        raw = shared_config(shared_dir, "ernie-1.0/ernie_config.json")
        raw.update(num_hidden_layers=2, intermediate_size=4 * raw["hidden_size"])
    else:
        raw = dict(ERNIE_3_NANO)
    raw.update(layer_norm_eps=1e-5, model_type="ernie", architectures=["ErnieForMaskedLM"])
    model = randomize(transformers.ErnieModel(transformers.ErnieConfig(**raw)), seed=8)
    ids, mask = batch(raw["vocab_size"])
    ref = hf_output(model, ids, mask)
    sd = {"ernie." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"):
          torch.tensor(a) for k, a in state_dict(model).items()}
    h, v = raw["hidden_size"], raw["vocab_size"]
    g = torch.Generator().manual_seed(9)
    t = "cls.predictions.transform."
    for name, shape in ((t + "dense.weight", (h, h)), (t + "dense.bias", (h,)), (t + "LayerNorm.gamma", (h,)),
                        (t + "LayerNorm.beta", (h,)), ("cls.predictions.bias", (v,))):
        sd[name] = torch.randn(shape, generator=g)
    assert ("ernie.embeddings.task_type_embeddings.weight" in sd) == (variant == "ernie-3.0-nano")
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    ours, report, config = load_and_run(tmp_path, ids, mask)
    task = variant == "ernie-3.0-nano"
    assert config.layer_norm_eps == 1e-5 and config.hidden_act == raw["hidden_act"]
    assert config.task_type_vocab_size == (16 if task else 0)
    assert report.layout == "Hugging Face BERT/ERNIE weights"
    assert len(report.loaded) == 5 + task + 16 * raw["num_hidden_layers"]
    assert not report.not_used and not report.left_random
    assert report.expected_leftovers == sorted(n for n in sd if n.startswith(("ernie.pooler.", "cls.")))
    assert_same_on_real_tokens(ours, ref, mask)


# ---- accounting ---------------------------------------------------------------------------------

def test_shape_mismatch_names_tensor_and_both_shapes(google_albert_zh, shared_dir, tmp_path):
    raw, model, ids, mask, _ = google_albert_zh
    tensors = hf_albert_to_google_tf1(state_dict(model))
    tensors["bert/embeddings/position_embeddings"] = tensors["bert/embeddings/position_embeddings"][:256]
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", tensors)
    shutil.copy(shared_dir / "pretrained/albert_base_zh_google/albert_config.json", tmp_path)
    with pytest.raises(ValueError, match=r"bert/embeddings/position_embeddings has shape \[256, 128\], "
                                         r"but encoder weight embeddings/position needs \[512, 128\]"):
        load_and_run(tmp_path, ids, mask)


def test_unknown_and_missing_tensors_are_reported(google_albert_zh, shared_dir, tmp_path):
    raw, model, ids, mask, _ = google_albert_zh
    tensors = hf_albert_to_google_tf1(state_dict(model))
    del tensors["bert/embeddings/token_type_embeddings"]
    tensors["bert/encoder/transformer/group_0/inner_group_0/adapter/kernel"] = np.zeros((4, 4), np.float32)
    write_tf1_checkpoint(tmp_path / "albert_model.ckpt", tensors)
    shutil.copy(shared_dir / "pretrained/albert_base_zh_google/albert_config.json", tmp_path)
    _, report, _ = load_and_run(tmp_path, ids, mask)
    assert report.not_used == ["bert/encoder/transformer/group_0/inner_group_0/adapter/kernel"]
    assert report.left_random == ["embeddings/token_type"]
    assert "1 encoder weights left at random init: embeddings/token_type" in report.summary()
