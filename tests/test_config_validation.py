"""Configs are checked when read: a bad field is a clear error naming the file and field, before anything is built."""
import dataclasses
import json

import pytest

from albert_ner.config import (ENCODER_INT_LIMITS, PRESETS, EncoderConfig, HeadConfig, ModelConfig, from_dict,
                               preset_encoder)

BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "vocab_size": 21128,
        "intermediate_size": 3072}


def write_config(tmp_path, **changes):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BASE, **changes}))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 1.2e9, "intermediate_size": 3072},
     r"hidden_size 1200000000 is larger than the supported 16384"),
    ({"vocab_size": 1e11}, r"vocab_size 100000000000 is larger than the supported 2000000"),
    ({"num_hidden_layers": 1e8}, r"num_hidden_layers 100000000 is larger than the supported 256"),
    ({"num_attention_heads": 7}, r"hidden_size 768 is not divisible by num_attention_heads 7"),
    ({"num_attention_heads": 0}, r"num_attention_heads 0 is smaller than the supported 1"),
    ({"hidden_size": "abc"}, r"hidden_size must be a whole number, got 'abc'"),
    ({"vocab_size": "12abc"}, r"vocab_size must be a whole number, got '12abc'"),
    ({"num_hidden_layers": True}, r"num_hidden_layers must be a whole number, got True"),
    ({"hidden_size": 768.5}, r"hidden_size must be a whole number, got 768.5"),
    ({"hidden_dropout_prob": -0.1}, r"hidden_dropout_prob must be in \[0, 1\), got -0.1"),
    ({"attention_probs_dropout_prob": 1.0}, r"attention_probs_dropout_prob must be in \[0, 1\), got 1.0"),
    ({"hidden_dropout_prob": "high"}, r"hidden_dropout_prob must be a number, got 'high'"),
    ({"initializer_range": None}, r"initializer_range must be a number, got None"),
    ({"layer_norm_eps": -1e-12}, r"layer_norm_eps must be in \(0, 1\], got -1e-12"),
    ({"max_position_embeddings": -512}, r"max_position_embeddings -512 is smaller than the supported 1"),
    ({"vocab_size": 2_000_000, "hidden_size": 16384, "num_attention_heads": 16, "intermediate_size": 16384},
     r"the encoder would hold 194.1 GiB of float32 parameters, more than the 8.0 GiB allowed "
     r"\(\$ALBERT_NER_MAX_PARAM_BYTES\); the largest part is the word embeddings: vocab_size 2000000 x "
     r"embedding_size 16384"),
])
def test_bad_published_config_names_file_and_field(tmp_path, changes, message):
    path = write_config(tmp_path, **changes)
    with pytest.raises(ValueError, match=f"^{path}: " + r"(invalid encoder config: )?(.*; )?" + message):
        EncoderConfig.from_pretrained_json(path)


def test_published_and_preset_configs_stay_valid(shared_dir):
    configs = sorted((shared_dir / "pretrained").rglob("*config*.json"))
    assert len(configs) >= 10
    for path in configs:
        if path.name == "albert_config_tiny_google_fast.json":  # num_hidden_groups 12 > 4 layers: refused, as before
            continue
        cfg = EncoderConfig.from_pretrained_json(path)
        assert 0 < cfg.num_parameters() * 4 < 2**32, path  # xxlarge's 235M parameters included
    for name in PRESETS:
        preset_encoder(name, 21128)
    # integral floats and digit strings pass, as int() let them before
    assert EncoderConfig.from_pretrained_dict({**BASE, "hidden_size": 768.0, "vocab_size": "21128"}) == \
        EncoderConfig.from_pretrained_dict(BASE)


def test_encoder_fields_are_checked_on_construction():
    with pytest.raises(ValueError, match=r"hidden_size must be an integer, got True"):
        EncoderConfig(hidden_size=True)
    with pytest.raises(ValueError, match=r"num_attention_heads 0 is smaller"):  # not a ZeroDivisionError
        EncoderConfig(num_attention_heads=0)
    with pytest.raises(ValueError, match=r"vocab_size must be an integer, got 21128.0"):
        EncoderConfig(vocab_size=21128.0)
    with pytest.raises(ValueError, match=r"layer_norm_eps must be a finite number, got nan"):
        EncoderConfig(layer_norm_eps=float("nan"))
    for field, (low, high) in ENCODER_INT_LIMITS.items():
        with pytest.raises(ValueError, match=f"{field} {high + 1} is larger than the supported {high}"):
            EncoderConfig(**{field: high + 1})
    with pytest.raises(ValueError, match=r"^x/encoder_config.json: invalid encoder config: type_vocab_size 0"):
        from_dict(EncoderConfig, {"type_vocab_size": 0}, "x/encoder_config.json")


def test_parameter_memory_limit_follows_the_environment(monkeypatch):
    big = dict(vocab_size=1_000_000, hidden_size=2048, num_attention_heads=16, embedding_size=2048)
    monkeypatch.setenv("ALBERT_NER_MAX_PARAM_BYTES", str(20 * 2**30))
    assert EncoderConfig(**big).num_parameters() == 2_401_636_352
    monkeypatch.setenv("ALBERT_NER_MAX_PARAM_BYTES", str(2**20))
    with pytest.raises(ValueError, match=r"387.9 MiB of float32 parameters, more than the 1.0 MiB allowed .*; "
                                         r"the largest part is the feed-forward: num_layer_groups 12 x 2 x "
                                         r"hidden_size 768 x intermediate_size 3072 = 56,669,184 parameters$"):
        EncoderConfig()
    monkeypatch.setenv("ALBERT_NER_MAX_PARAM_BYTES", "lots")
    with pytest.raises(ValueError, match=r"ALBERT_NER_MAX_PARAM_BYTES='lots': expected a whole number of bytes"):
        EncoderConfig()
    monkeypatch.delenv("ALBERT_NER_MAX_PARAM_BYTES")
    with pytest.raises(ValueError, match=r"8.9 GiB of float32 parameters, more than the 8.0 GiB allowed"):
        EncoderConfig(**big)


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(embedding_layout="project_last", embedding_size=8, num_layer_groups=1),
    dict(embedding_layout="none", embedding_size=32, num_layer_groups=2, task_type_vocab_size=3),
    dict(num_hidden_layers=0),
])
def test_parameter_estimate_matches_the_built_encoder(overrides):
    import tensorflow as tf

    from albert_ner.model.encoder import TransformerEncoder

    config = preset_encoder("tiny", 50, **overrides)
    encoder = TransformerEncoder(config)
    encoder(tf.zeros([1, 4], tf.int32), tf.ones([1, 4], tf.bool))
    assert config.num_parameters() == encoder.count_params()


def test_head_config_fields():
    HeadConfig(lstm_units=0, bigram_dim=8, bigram_vocab_size=100)
    for kwargs, message in [(dict(lstm_units=-1), r"lstm_units -1 is smaller than the supported 0"),
                            (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
                            (dict(input_dropout=-0.5), r"input_dropout must be in \[0, 1\), got -0.5"),
                            (dict(lexicon_dim="8"), r"lexicon_dim must be an integer, got '8'"),
                            (dict(bigram_dim=8), r"bigram_dim 8 needs bigram_vocab_size >= 1")]:
        with pytest.raises(ValueError, match=r"^invalid head config: " + message):
            HeadConfig(**kwargs)


def test_model_config_from_dict_names_the_field():
    config = ModelConfig(preset_encoder("tiny", 50), HeadConfig(), ("O", "B-PER", "I-PER"), 64)
    good = json.loads(json.dumps(config.to_dict()))
    assert ModelConfig.from_dict(good) == config
    src = "m/model_config.json"
    for change, message in [({"labels": None}, r"labels must be a non-empty list of tag names, got None"),
                            ({"labels": "O B-PER"}, r"labels must be a non-empty list"),
                            ({"labels": []}, r"labels must be a non-empty list"),
                            ({"max_seq_len": 2}, r"max_seq_len 2 is smaller than the supported 3"),
                            ({"max_seq_len": "128"}, r"max_seq_len must be an integer"),
                            ({"head": dict(good["head"], dropout=2)}, r"head: invalid head config: dropout must be"),
                            ({"encoder": dict(good["encoder"], hidden_size=-8)},
                             r"encoder: invalid encoder config: hidden_size -8 is smaller")]:
        with pytest.raises(ValueError, match=f"^{src}: {message}"):
            ModelConfig.from_dict({**good, **change}, src)
    for field in ("labels", "max_seq_len", "encoder"):
        raw = {k: v for k, v in good.items() if k != field}
        with pytest.raises(ValueError, match=f"^{src}: missing field\\(s\\) {field}$"):
            ModelConfig.from_dict(raw, src)
    with pytest.raises(ValueError, match=r"^model config: expected a JSON object, got list"):
        ModelConfig.from_dict([1, 2])
    assert dataclasses.asdict(config)["labels"] == ("O", "B-PER", "I-PER")
