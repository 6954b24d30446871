"""Small training corpora cut from MSRA for end-to-end tests."""
from pathlib import Path

import pytest


def write_slice(src: Path, dest: Path, n: int, with_entities: bool = True) -> Path:
    """The first n sentences of src (optionally only ones with an entity), as a BIO file."""
    blocks, current = [], []
    with open(src, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                current.append(line)
            elif current:
                if not with_entities or any("\tB-" in l for l in current):
                    blocks.append(current)
                current = []
                if len(blocks) == n:
                    break
    dest.write_text("\n".join("".join(b) for b in blocks), encoding="utf-8")
    return dest


@pytest.fixture
def msra_slice(msra_dir, tmp_path):
    def make(n: int, name: str = "slice.txt", split: str = "train.txt", with_entities: bool = True) -> Path:
        return write_slice(msra_dir / split, tmp_path / name, n, with_entities)
    return make
