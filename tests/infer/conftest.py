"""A small trained model shared by the tagging and export tests."""
import pytest

from albert_ner.train.loop import train
from tests.train.test_loop import tiny_config


@pytest.fixture(scope="package")
def model_dir(msra_dir, vocab_path, tmp_path_factory):
    """A tiny model that has learned 16 MSRA sentences by heart (so it tags entities): dev (= train) F1 reaches 1.0
    at about epoch 10 of 20, and the best epoch's weights are published."""
    from tests.train.conftest import write_slice

    root = tmp_path_factory.mktemp("tagger")
    data = write_slice(msra_dir / "train.txt", root / "train.txt", 16)
    cfg = tiny_config(data, root / "model", vocab_path, epochs=20, jit=False, max_seq_len=128)
    results = train(cfg)
    assert results["dev"]["f1"] > 0.9
    return root
