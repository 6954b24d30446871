"""Fine-tuning from a pretrained encoder: `convert`, `train --init` (converted or source), save/restore."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.cli import main
from albert_ner.data.corpus import read_corpus
from albert_ner.infer.predictor import Predictor
from albert_ner.model.store import load_model
from albert_ner.train.loop import Trainer
from tests.train.test_loop import tiny_config
from tests.weights.test_tensor_files import write_tf1_checkpoint

# A tiny Google-format ALBERT (albert_config.json keys) over the real 21,128-token vocab.
TINY_GOOGLE = dict(attention_probs_dropout_prob=0.0, hidden_act="relu", hidden_dropout_prob=0.0,
                   embedding_size=16, hidden_size=32, initializer_range=0.02, intermediate_size=64,
                   max_position_embeddings=512, num_attention_heads=2, num_hidden_layers=3, num_hidden_groups=1,
                   net_structure_type=0, gap_size=0, num_memory_blocks=0, inner_group_num=1, down_scale_factor=1,
                   type_vocab_size=2, vocab_size=21128)


def write_tiny_google_albert(directory, vocab_path, seed=0):
    """A TF1 checkpoint with Google ALBERT's exact names (tiny shapes), its config and vocab."""
    rng = np.random.default_rng(seed)
    c = TINY_GOOGLE
    e, h, i = c["embedding_size"], c["hidden_size"], c["intermediate_size"]
    w = lambda *shape: (rng.normal(size=shape) * 0.1).astype(np.float32)
    g = "bert/encoder/transformer/group_0/inner_group_0/"
    tensors = {"bert/embeddings/word_embeddings": w(c["vocab_size"], e),
               "bert/embeddings/position_embeddings": w(512, e), "bert/embeddings/token_type_embeddings": w(2, e),
               "bert/embeddings/LayerNorm/gamma": 1 + w(e), "bert/embeddings/LayerNorm/beta": w(e),
               "bert/encoder/embedding_hidden_mapping_in/kernel": w(e, h),
               "bert/encoder/embedding_hidden_mapping_in/bias": w(h),
               g + "attention_1/output/dense/kernel": w(h, h), g + "attention_1/output/dense/bias": w(h),
               g + "LayerNorm/gamma": 1 + w(h), g + "LayerNorm/beta": w(h),
               g + "ffn_1/intermediate/dense/kernel": w(h, i), g + "ffn_1/intermediate/dense/bias": w(i),
               g + "ffn_1/intermediate/output/dense/kernel": w(i, h), g + "ffn_1/intermediate/output/dense/bias": w(h),
               g + "LayerNorm_1/gamma": 1 + w(h), g + "LayerNorm_1/beta": w(h),
               "cls/predictions/output_bias": w(c["vocab_size"])}
    for x in ("query", "key", "value"):
        tensors[g + f"attention_1/self/{x}/kernel"] = w(h, h)
        tensors[g + f"attention_1/self/{x}/bias"] = w(h)
    directory.mkdir(parents=True, exist_ok=True)
    write_tf1_checkpoint(directory / "albert_model.ckpt", tensors)
    (directory / "albert_config.json").write_text(json.dumps(c))
    shutil.copy(vocab_path, directory / "vocab_chinese.txt")
    return tensors


def test_convert_then_train_from_the_converted_encoder(msra_slice, tmp_path, vocab_path, capsys):
    tensors = write_tiny_google_albert(tmp_path / "albert_base_zh", vocab_path)
    assert main(["convert", str(tmp_path / "albert_base_zh"), "--out", str(tmp_path / "converted")]) == 0
    printed = capsys.readouterr().out
    assert "loaded 23 encoder weights; 1 pretraining-head/pooler tensors skipped" in printed
    report = json.loads((tmp_path / "converted/conversion_report.json").read_text())
    assert report["kind"] == "tf1" and not report["left_random"] and not report["not_used"]
    assert (tmp_path / "converted/vocab.txt").read_bytes() == vocab_path.read_bytes()

    data = msra_slice(12, max_chars=30)
    cfg = tiny_config(data, tmp_path / "run", tmp_path / "converted/vocab.txt", epochs=2,
                      init=str(tmp_path / "converted"), encoder_preset="unused-with-init", lexicon_dim=4, jit=False)
    trainer = Trainer(cfg)
    trainer._setup()
    word = trainer.model.encoder.embeddings.word_embeddings.numpy()
    np.testing.assert_array_equal(word, tensors["bert/embeddings/word_embeddings"])
    assert trainer.model_config.encoder.hidden_act == "relu"
    assert trainer.model_config.encoder.embedding_layout == "project_last"
    # a pretrained encoder keeps its tokenizer's ids (exact_first); from scratch characters are folded
    assert trainer.model_config.head.char_lookup == "exact_first" and trainer.vocab.char_lookup == "exact_first"
    scratch = Trainer(tiny_config(data, tmp_path / "scratch", vocab_path))
    scratch._setup()
    assert scratch.model_config.head.char_lookup == "fold" and scratch.vocab.char_lookup == "fold"
    # no warmup in tiny_config: step 0 runs at the peak, 5e-5 by default for a pretrained encoder
    assert float(trainer.encoder_opt.learning_rate) == pytest.approx(5e-5)
    assert float(trainer.head_opt.learning_rate) == pytest.approx(cfg.head_lr)

    results = Trainer(cfg).run()
    assert results["pretrained_init"]["layout"] == "Google ALBERT TF1 checkpoint"
    sentences, _ = read_corpus(data)
    model, featurizer = load_model(tmp_path / "run")
    before = Predictor(model, featurizer, batch_size=8).predict_sentences(sentences)
    again, featurizer2 = load_model(tmp_path / "run")
    assert Predictor(again, featurizer2, batch_size=8).predict_sentences(sentences) == before
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_train_init_reads_a_published_checkpoint_and_its_vocab_directly(msra_slice, tmp_path, vocab_path):
    tensors = write_tiny_google_albert(tmp_path / "src", vocab_path, seed=5)
    data = msra_slice(8, max_chars=30)
    code = main(["train", "--train-file", str(data), "--dev-file", str(data), "--init", str(tmp_path / "src"),
                 "--output-dir", str(tmp_path / "run"), "--epochs", "1", "--lstm-units", "8", "--max-seq-len", "64",
                 "--batch-size", "4", "--jit", "false"])
    assert code == 0
    saved = json.loads((tmp_path / "run/train_config.json").read_text())
    assert saved["vocab_file"].endswith("vocab_chinese.txt") and saved["init"] == str(tmp_path / "src")
    results = json.loads((tmp_path / "run/eval_results.json").read_text())
    assert len(results["pretrained_init"]["loaded"]) == 23
    assert results["unseen_types"] == {}  # dev is train here: no type is missing from train
    # the saved model holds the fine-tuned encoder, readable without the source checkpoint
    shutil.rmtree(tmp_path / "src")
    model, _ = load_model(tmp_path / "run")
    assert model.encoder.embeddings.word_embeddings.shape == tensors["bert/embeddings/word_embeddings"].shape
    assert tf.reduce_any(model.encoder.embeddings.word_embeddings != 0)
