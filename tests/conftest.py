"""Shared fixtures: paths to the data kept beside the project (never committed)."""
import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ALBERT_NER_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        if os.environ.get("ALBERT_NER_REQUIRE_SHARED"):
            pytest.fail(f"shared data directory not found: {SHARED}")
        pytest.skip(f"shared data directory not found: {SHARED} (set ALBERT_NER_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def msra_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "msra"


@pytest.fixture(scope="session")
def vocab_path(shared_dir: Path) -> Path:
    return shared_dir / "pretrained" / "vocab.txt"


@pytest.fixture(autouse=True)
def environment_restored():
    """Put os.environ back as it was after every test: code under test may write to it (the SageMaker entry point
    sets TF_CONFIG for several hosts), and a value left behind reaches every later subprocess (a TF_CONFIG naming
    a second host makes each later training job wait for that host forever)."""
    saved = dict(os.environ)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)
