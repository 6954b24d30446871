"""Find and read a pretrained checkpoint: its tensors, config file, vocabulary and sentencepiece model.

A source is a directory as published (an unpacked release archive, a Hugging Face snapshot, an
ERNIE `params/` folder) or a single weights file. The format is decided by file contents and
tensor names, never by the directory's name.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from albert_ner.weights.paddle import CheckpointFormatError, read_lod_tensor, read_params_dir, read_pdparams
from albert_ner.weights.tensor_files import TF1_SKIPPED_KIND, read_safetensors, read_tf1_checkpoint_entries
from albert_ner.weights.torch_files import read_torch_state_dict

CONFIG_NAMES = ("config.json", "albert_config.json", "bert_config.json", "ernie_config.json", "model_config.json")
VOCAB_NAMES = ("vocab.txt", "vocab_chinese.txt")
TOKENIZER_JSON = "tokenizer.json"  # a Hugging Face snapshot's vocabulary when it ships no vocab.txt


@dataclasses.dataclass
class PretrainedSource:
    """What a pretrained checkpoint provides: named tensors plus the files that describe them."""

    path: Path
    kind: str  # how the tensors were stored: tf1, safetensors, pytorch, paddle-params, pdparams
    tensors: Dict[str, np.ndarray]
    config_file: Optional[Path]
    vocab_file: Optional[Path]
    spm_file: Optional[Path]
    skipped: List[str] = dataclasses.field(default_factory=list)  # entries of the weights file not read as weights

    def skipped_by_kind(self) -> Dict[str, List[str]]:
        """The skipped entries grouped the way the load report counts them."""
        if self.kind == "tf1":
            return {TF1_SKIPPED_KIND: list(self.skipped)} if self.skipped else {}
        groups: Dict[str, List[str]] = {}
        for name in self.skipped:  # Paddle keeps a name table ("StructuredToParameterName@@") beside the arrays
            groups.setdefault("Paddle name-table" if name.endswith("@@") else "non-tensor", []).append(name)
        return groups


def read_pytorch_bin(path: Path) -> Dict[str, np.ndarray]:
    """A `pytorch_model.bin` state dict as numpy, floating tensors as float32; read without torch.

    Entries that are not tensors are left out (`read_source` lists them in `skipped`).
    """
    return read_torch_state_dict(path)[0]


def _is_lod_tensor_dir(directory: Path) -> bool:
    files = [p for p in directory.iterdir() if p.is_file()]
    return bool(files) and any(p.name in ("word_embedding", "word_emb") for p in files)


def _single_subdir(directory: Path) -> Optional[Path]:
    """The one folder an archive unpacked into, when the directory holds nothing else."""
    entries = [p for p in directory.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else None


def _weights_in(directory: Path) -> Optional[tuple]:
    """(kind, path) of the weights inside a directory, or None."""
    indexes = sorted(directory.glob("*.index"))
    if indexes:
        return "tf1", directory
    for name, kind in (("model.safetensors", "safetensors"), ("pytorch_model.bin", "pytorch")):
        if (directory / name).is_file():
            return kind, directory / name
    pdparams = sorted(directory.glob("*.pdparams"))
    if len(pdparams) > 1:
        raise CheckpointFormatError(f"{directory}: several .pdparams files ({', '.join(p.name for p in pdparams)}); "
                                    "pass the one to load")
    if pdparams:
        return "pdparams", pdparams[0]
    if (directory / "params").is_dir():
        return "paddle-params", directory / "params"
    if _is_lod_tensor_dir(directory):
        return "paddle-params", directory
    return None


def _first_file(directories: List[Path], names, patterns=()) -> Optional[Path]:
    for d in directories:
        for n in names:
            if (d / n).is_file():
                return d / n
        for pattern in patterns:
            hits = sorted(d.glob(pattern))
            if hits:
                return hits[0]
    return None


@dataclasses.dataclass(frozen=True)
class SourceFiles:
    """Where a checkpoint's weights, config, vocabulary and sentencepiece model are (nothing read yet)."""

    path: Path
    kind: str
    weights: Path
    config_file: Optional[Path]
    vocab_file: Optional[Path]
    spm_file: Optional[Path]


def locate_source(path: str | Path) -> SourceFiles:
    """Find the files of a checkpoint directory or weights file; errors name the path and what is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        while _single_subdir(path) is not None and _weights_in(path) is None:
            path = _single_subdir(path)
        found = _weights_in(path)
        if found is None:
            raise CheckpointFormatError(
                f"{path}: no weights found (looked for *.index, model.safetensors, pytorch_model.bin, "
                "*.pdparams, params/)")
        kind, weights = found
        home = path
    else:
        weights, home = path, path.parent
        suffix = path.name
        if suffix.endswith(".index") or Path(str(path) + ".index").is_file():
            kind = "tf1"
        elif suffix.endswith(".safetensors"):
            kind = "safetensors"
        elif suffix.endswith(".bin") or suffix.endswith(".pt"):
            kind = "pytorch"
        elif suffix.endswith(".pdparams"):
            kind = "pdparams"
        else:
            kind = "paddle-lodtensor"
    search = [home, home.parent] if home.name == "params" else [home]
    vocab, spm = _first_file(search, VOCAB_NAMES, ("vocab*.txt",)), _first_file(search, (), ("*.model",))
    if vocab is None and spm is None:
        vocab = _first_file(search, (TOKENIZER_JSON,))
    return SourceFiles(path=path, kind=kind, weights=weights,
                       config_file=_first_file(search, CONFIG_NAMES, ("albert_config*.json", "*config*.json")),
                       vocab_file=vocab, spm_file=spm)


def read_source(path: str | Path) -> PretrainedSource:
    """Locate a checkpoint and read its tensors."""
    files = locate_source(path)
    readers = {"safetensors": read_safetensors, "paddle-params": read_params_dir,
               "paddle-lodtensor": lambda p: {Path(p).name: read_lod_tensor(p)}}
    # (tensors, names of the entries left out: optimizer slots, non-tensors)
    with_skipped = {"tf1": read_tf1_checkpoint_entries, "pytorch": read_torch_state_dict, "pdparams": read_pdparams}
    if files.kind in with_skipped:
        tensors, skipped = with_skipped[files.kind](files.weights)
    else:
        tensors, skipped = readers[files.kind](files.weights), []
    if not tensors:
        raise CheckpointFormatError(f"{files.weights}: holds no tensors"
                                    + (f" (entries that are not: {', '.join(skipped[:10])})" if skipped else ""))
    return PretrainedSource(path=files.path, kind=files.kind, tensors=tensors, config_file=files.config_file,
                            vocab_file=files.vocab_file, spm_file=files.spm_file, skipped=skipped)
