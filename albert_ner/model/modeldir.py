"""The trained-model directory on disk: published folders, the CURRENT pointer, the manifest, and their checks.

Training publishes a model as a whole: config, vocabularies and weights are written into a staging
folder with a manifest (size and sha256 of every file), the folder is renamed to `model-N`, and only
then does the one-line pointer file CURRENT switch to it (os.replace: readers see the old model or the
new one, never a mix). The previous folder is kept so a reader that has just read CURRENT can finish.

    OUTPUT_DIR/CURRENT                  "model-N"
    OUTPUT_DIR/model-N/manifest.json    format, run, epoch, vocab_tokens, files: {path: {bytes, sha256}}
    OUTPUT_DIR/model-N/model_config.json, vocab.txt | vocab.model, [bigrams.txt], weights/model.*, train_config.json

A folder without CURRENT that holds model_config.json is read as it is: a published folder itself, an
export's code/model/, or the flat layout of older versions (no manifest: only the structural checks).
TensorFlow-free: `export` checks a model with it before anything is written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from albert_ner.config import MODEL_CONFIG_FILE, ModelConfig, load_json
from albert_ner.data.features import BIGRAM_FILE, FEATURIZER_FILES, SPM_VOCAB_FILE, VOCAB_FILE, Featurizer
from albert_ner.data.tags import parse_tag
from albert_ner.writable import fsync_directory

CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
WEIGHTS_DIR = "weights"
PUBLISHED_RE = re.compile(r"model-([0-9]{1,9})")
STAGING_PREFIX = ".staging-"
# Files of the flat layout written by older versions straight into the output directory.
FLAT_FILES = (MODEL_CONFIG_FILE,) + FEATURIZER_FILES
# Published encoders pad their embedding table by a few rows at most (ERNIE 1.0: 17,964 tokens for
# 18,000 rows). Without a manifest, a vocabulary that fills less than this share of the rows is taken
# for another model's (a 4-token vocab.txt would otherwise tag garbage without a word).
LEGACY_MIN_VOCAB_SHARE = 0.9
POINTER_RETRIES = 5


class ModelDirError(ValueError):
    """A model directory that cannot be used as it is; the message names the file and the field."""


@dataclasses.dataclass
class ModelFiles:
    """A checked model folder: where its files are, its config and featurizer, and its manifest (None: legacy)."""

    folder: Path
    config: ModelConfig
    featurizer: Featurizer
    manifest: Optional[Dict[str, Any]]


# ---- where the files are -------------------------------------------------------------------------
def current_folder(out: str | Path) -> Optional[Path]:
    """The published folder CURRENT names, or None when there is no CURRENT (nothing published yet)."""
    out = Path(out)
    pointer = out / CURRENT_FILE
    name = ""
    for attempt in range(POINTER_RETRIES):
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelDirError(f"{pointer}: cannot read the pointer to the published model: {exc}") from None
        if not PUBLISHED_RE.fullmatch(name):
            raise ModelDirError(f"{pointer}: expected the name of a model-N folder, got {name[:80]!r}")
        if (out / name).is_dir():
            return out / name
        time.sleep(0.05 * (attempt + 1))  # a publisher may have switched CURRENT and pruned since we read it
    raise ModelDirError(f"{pointer}: names {name}, but {out / name} is missing: the model directory is damaged")


def resolve(model_dir: str | Path) -> Path:
    """The folder holding a model's files: the one CURRENT names, else `model_dir` itself if it holds a config."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    folder = current_folder(model_dir)
    if folder is not None:
        return folder
    if (model_dir / MODEL_CONFIG_FILE).is_file():
        return model_dir
    raise FileNotFoundError(f"{model_dir}: not a model directory (no {CURRENT_FILE} and no {MODEL_CONFIG_FILE}; "
                            "a training run publishes its model at the end of its first epoch)")


def published_folders(out: str | Path) -> List[Tuple[int, Path]]:
    """(N, path) of every model-N folder in an output directory, by N."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := PUBLISHED_RE.fullmatch(p.name)) and p.is_dir()]
    return sorted(found)


# ---- the manifest --------------------------------------------------------------------------------
def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_files(folder: Path) -> List[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != MANIFEST_FILE)


def write_manifest(folder: str | Path, info: Dict[str, Any]) -> Dict[str, Any]:
    """manifest.json listing the size and sha256 of every file in `folder`, plus `info`; returns it."""
    folder = Path(folder)
    files = {rel: {"bytes": (folder / rel).stat().st_size, "sha256": file_sha256(folder / rel)}
             for rel in _listed_files(folder)}
    manifest = dict(info, format=MANIFEST_FORMAT, files=files)
    _write_durably(folder / MANIFEST_FILE, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def read_manifest(folder: str | Path) -> Optional[Dict[str, Any]]:
    """The folder's manifest, or None when it has none (older versions wrote none)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.exists():
        return None
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise ModelDirError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format") != MANIFEST_FORMAT:
        raise ModelDirError(f"{path}: format must be {MANIFEST_FORMAT}, got {raw.get('format')!r}")
    files = raw.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str)
            for v in files.values()):
        raise ModelDirError(f"{path}: files must map each path to {{\"bytes\": int, \"sha256\": str}}")
    for rel in files:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise ModelDirError(f"{path}: files: {rel!r} is not a path inside the model folder")
    return raw


def verify_manifest(folder: str | Path, manifest: Dict[str, Any]) -> None:
    """Every listed file present with its size and sha256, and no unlisted model file (a mix of two models)."""
    folder = Path(folder)
    where = folder / MANIFEST_FILE
    for rel, expected in sorted(manifest["files"].items()):
        path = folder / rel
        if not path.is_file():
            raise ModelDirError(f"{path}: missing (listed in {where})")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise ModelDirError(f"{path}: {size:,} bytes where {where} records {expected['bytes']:,}: the file was "
                                "truncated, edited or replaced (a damaged model, or a mix of two)")
        if file_sha256(path) != expected["sha256"]:
            raise ModelDirError(f"{path}: sha256 differs from {where}: the file was damaged, edited or replaced "
                                "(a damaged model, or a mix of two)")
    weights = folder / WEIGHTS_DIR
    candidates = [p for p in weights.rglob("*") if p.is_file()] if weights.is_dir() else []
    candidates += [folder / n for n in FLAT_FILES if (folder / n).is_file()]
    for path in candidates:
        if path.relative_to(folder).as_posix() not in manifest["files"]:
            raise ModelDirError(f"{path}: not listed in {where}: the folder mixes files of two models")


# ---- the checks of config and featurizer -----------------------------------------------------------
def label_errors(labels) -> List[str]:
    """Why a label list is not one training writes: 'O' first, valid BIO/BIOES tags, sorted by type then prefix."""
    errors = []
    for i, tag in enumerate(labels):
        try:
            parse_tag(tag)
        except ValueError:
            errors.append(f"labels[{i}] {tag!r} is not a tag (expected O or B-/I-/E-/S- and an entity type)")
    if errors:
        return errors
    if labels[0] != "O":
        errors.append(f"labels[0] must be 'O', got {labels[0]!r}")
    if len(set(labels)) != len(labels):
        errors.append("labels has duplicates: " + ", ".join(sorted({t for t in labels if labels.count(t) > 1})))
    if errors:
        return errors
    rest = list(labels[1:])
    canonical = sorted(rest, key=lambda t: (t[2:], t[:1]))  # as data.pipeline.labels_from_sentences orders them
    if rest != canonical:
        i = next(i for i, (a, b) in enumerate(zip(rest, canonical)) if a != b) + 1
        errors.append(f"labels are not in the order training writes them ('O', then by type and prefix): "
                      f"labels[{i}] is {labels[i]!r} where {canonical[i - 1]!r} belongs; the labels were "
                      "swapped or edited, and would name the wrong entity types")
    begins = {etype for prefix, etype in map(parse_tag, labels) if prefix == "B"}
    for tag in labels:
        prefix, etype = parse_tag(tag)
        if prefix in ("I", "E") and etype not in begins:
            errors.append(f"labels has {tag!r} but no 'B-{etype}'")
    return errors


def read_config(folder: str | Path) -> ModelConfig:
    """model_config.json, checked: a JSON object with valid fields, labels as training writes them, and a
    max_seq_len the encoder has positions for."""
    path = Path(folder) / MODEL_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (every model folder has one)")
    raw = load_json(path)
    config = ModelConfig.from_dict(raw, str(path))
    errors = label_errors(list(config.labels))
    positions = config.encoder.max_position_embeddings
    if config.max_seq_len > positions:
        errors.append(f"max_seq_len {config.max_seq_len} exceeds encoder.max_position_embeddings {positions}")
    if errors:
        raise ModelDirError(f"{path}: " + "; ".join(errors))
    return config


def read_featurizer(folder: str | Path, config: ModelConfig, manifest: Optional[Dict[str, Any]]) -> Featurizer:
    """The vocabulary and feature files, checked against the config (and the manifest's token count)."""
    folder = Path(folder)
    vocab_path = folder / VOCAB_FILE
    if not vocab_path.is_file() and (folder / SPM_VOCAB_FILE).is_file():
        vocab_path = folder / SPM_VOCAB_FILE
    if not vocab_path.is_file():
        raise FileNotFoundError(f"{folder / VOCAB_FILE}: missing (the vocabulary the model was trained with)")
    head = config.head
    if head.bigram_dim and not (folder / BIGRAM_FILE).is_file():
        raise FileNotFoundError(f"{folder / BIGRAM_FILE}: missing (head.bigram_dim is {head.bigram_dim})")
    featurizer = Featurizer.for_head(folder, head)
    tokens, rows = len(featurizer.vocab), config.encoder.vocab_size
    config_path = folder / MODEL_CONFIG_FILE
    if tokens > rows:
        raise ModelDirError(f"{vocab_path}: {tokens:,} tokens, but {config_path} encoder.vocab_size has only "
                            f"{rows:,} embedding rows: the vocabulary is not the model's")
    recorded = manifest.get("vocab_tokens") if manifest is not None else None
    if recorded is not None and tokens != recorded:
        raise ModelDirError(f"{vocab_path}: {tokens:,} tokens, but the model was trained with {recorded:,} "
                            f"({folder / MANIFEST_FILE} vocab_tokens): the vocabulary is not the model's")
    if manifest is None and tokens < LEGACY_MIN_VOCAB_SHARE * rows:
        raise ModelDirError(f"{vocab_path}: {tokens:,} tokens for the {rows:,} embedding rows of {config_path} "
                            f"encoder.vocab_size: the vocabulary is not the model's")
    if featurizer.bigrams is not None and len(featurizer.bigrams) != head.bigram_vocab_size:
        raise ModelDirError(f"{folder / BIGRAM_FILE}: {len(featurizer.bigrams) - 2:,} bigrams (+2 reserved ids), but "
                            f"{config_path} head.bigram_vocab_size is {head.bigram_vocab_size:,}")
    return featurizer


def open_files(model_dir: str | Path) -> ModelFiles:
    """Find and check a model's config, vocabularies and (with a manifest) every file's checksum."""
    folder = resolve(model_dir)
    manifest = read_manifest(folder)
    config = read_config(folder)
    featurizer = read_featurizer(folder, config, manifest)
    if manifest is not None:
        verify_manifest(folder, manifest)
    return ModelFiles(folder, config, featurizer, manifest)


# ---- publishing ----------------------------------------------------------------------------------
def publish(out: str | Path, fill: Callable[[Path], None], info: Dict[str, Any]) -> Path:
    """Write a model with `fill(folder)` into a staging folder, add its manifest, rename it to model-N and
    switch CURRENT to it; prunes all but this and the previous folder. The caller holds the output lock."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f"{STAGING_PREFIX}{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    fill(staging)
    write_manifest(staging, info)
    _fsync_tree(staging)
    number = max((n for n, _ in published_folders(out)), default=0) + 1
    final = out / f"model-{number}"
    os.rename(staging, final)
    _write_durably(out / CURRENT_FILE, final.name + "\n")
    fsync_directory(out)
    prune(out)
    return final


def prune(out: str | Path) -> List[Path]:
    """Remove published folders other than the current one and the one before it; returns those removed."""
    out = Path(out)
    current = current_folder(out)
    if current is None:
        return []
    keep_n = int(PUBLISHED_RE.fullmatch(current.name).group(1))
    older = [n for n, _ in published_folders(out) if n < keep_n]
    keep = {keep_n, max(older, default=keep_n)}
    removed = [p for n, p in published_folders(out) if n not in keep]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def remove_stale_staging(out: str | Path) -> List[Path]:
    """Staging folders left by a run that died while publishing (call with the output lock held)."""
    out = Path(out)
    stale = [p for p in out.glob(STAGING_PREFIX + "*") if p.is_dir()] if out.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def remove_flat_files(out: str | Path) -> List[Path]:
    """Once CURRENT exists, the flat-layout model files an older version left in `out` (readers ignore them)."""
    out = Path(out)
    if current_folder(out) is None:
        return []
    removed = [out / n for n in FLAT_FILES if (out / n).is_file()]
    for path in removed:
        path.unlink()
    if (out / WEIGHTS_DIR).is_dir():
        shutil.rmtree(out / WEIGHTS_DIR)
        removed.append(out / WEIGHTS_DIR)
    return removed


def _write_durably(path: Path, text: str) -> None:
    """Write through a temporary file, fsync it and rename it over `path` (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        else:
            fsync_directory(path)
    fsync_directory(folder)
