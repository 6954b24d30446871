"""What shapes a training run, saved beside its checkpoint so that a resume continues only the same run.

A checkpoint is resumed only when every setting that decides the steps taken so far is unchanged and
every file read (corpora, vocabulary, encoder config, pretrained source, character vectors) has the same
content. Files are compared by content (sha256), not by path: the same data in another place resumes.
The settings in MAY_DIFFER are the only ones a resume may change. `--init` is fingerprinted by the files its
loader reads (init_files), not by everything in its folder: a pretraining run's lock, logs, checkpoints and
shards, or a trained model's checkpoints beside its published folder, change without changing the encoder.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from albert_ner.config import TrainConfig, load_json
from albert_ner.model.modeldir import file_sha256

RUN_FILE = "run.json"  # in the checkpoint folder
RUN_FORMAT = 1

# TrainConfig fields a resumed run may change, and why that is safe.
MAY_DIFFER: Dict[str, str] = {
    "output_dir": "the same directory, however it is spelled",
    "epochs": "raising it continues training (the learning-rate schedule is re-stretched over the new total)",
    "patience": "when to stop, not how to step",
    "eval_batch_size": "rows per prediction call",
    "jit": "compilation only (e.g. resuming a GPU run on a CPU)",
    "strict_tags": "only turns repairs into errors: a run that reads the data at all reads the same data",
    "log_every": "bookkeeping",
    "checkpoint_every": "bookkeeping",
    "resume": "how this run starts",
}
# Fields naming files: compared by the files' content.
FILE_FIELDS = ("train_file", "dev_file", "test_file", "vocab_file", "encoder_config", "init", "char_embeddings")
LOCK_SUFFIX = ".lock"  # lock files (pid and time of whoever holds a folder) are never content
INIT_SCHEME = "files read"  # marks an init fingerprint over the loader's files (older records hashed the folder)


class ResumeMismatch(ValueError):
    """The checkpoint in the output directory belongs to another run."""


def _listing_fingerprint(path: str, root: Path, files: Iterable[Path]) -> Dict[str, Any]:
    """sha256 over "relpath<TAB>size<TAB>sha256" lines (relative to root, in path order as sorted() puts Path
    objects, which older records used): the same files elsewhere match."""
    rows = sorted(((f.relative_to(root), f) for f in dict.fromkeys(files)), key=lambda row: row[0])
    sizes = [f.stat().st_size for _, f in rows]
    listing = [f"{rel.as_posix()}\t{size}\t{file_sha256(f)}" for (rel, f), size in zip(rows, sizes)]
    digest = hashlib.sha256("\n".join(listing).encode("utf-8")).hexdigest()
    return {"path": str(path), "bytes": sum(sizes), "sha256": digest, "files": len(rows)}


def path_fingerprint(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """Content fingerprint of a file, or of a directory (every file's relative path, size and sha256; lock files
    left out: they change whenever a process takes the folder)."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        return {"path": str(path), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
    if p.is_dir():
        return _listing_fingerprint(path, p, (f for f in p.rglob("*") if f.is_file()
                                              and not f.name.endswith(LOCK_SUFFIX)))
    return {"path": str(path), "bytes": None, "sha256": None}  # e.g. a name resolved elsewhere


def _present(files: Iterable[Path], what: str) -> List[Path]:
    """The files, each required to exist: a missing one is named with what it is."""
    files = list(files)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing ({what})")
    return files


def _trained_model_files(folder: Path) -> List[Path]:
    """A trained model's files: its manifest and what the manifest lists (open_files verifies them all), or, for the
    flat layout of older versions (no manifest), its config, vocabularies, train_config.json and weights/."""
    from albert_ner.config import MODEL_CONFIG_FILE
    from albert_ner.data.features import FEATURIZER_FILES
    from albert_ner.model import modeldir
    from albert_ner.model.warm_start import TRAIN_CONFIG_FILE

    manifest = modeldir.read_manifest(folder)
    if manifest is not None:
        return _present([folder / modeldir.MANIFEST_FILE] + [folder / rel for rel in manifest["files"]],
                        f"listed in {folder / modeldir.MANIFEST_FILE}")
    named = [folder / n for n in (MODEL_CONFIG_FILE,) + FEATURIZER_FILES + (TRAIN_CONFIG_FILE,)]
    weights = folder / modeldir.WEIGHTS_DIR
    return [f for f in named if f.is_file()] + (sorted(f for f in weights.rglob("*") if f.is_file())
                                                if weights.is_dir() else [])


def _converted_files(folder: Path) -> List[Path]:
    """A converted (or `albert-ner pretrain`-published) encoder as load_pretrained reads it: config, vocabulary,
    the encoder checkpoint and the report; the pretraining heads beside it are not read."""
    from albert_ner.data.features import VOCAB_FILE
    from albert_ner.weights.convert import ENCODER_CONFIG, ENCODER_PREFIX, REPORT_FILE

    prefix = folder / ENCODER_PREFIX
    files = _present([folder / ENCODER_CONFIG, Path(f"{prefix}.index")], f"the converted encoder in {folder}")
    files += sorted(prefix.parent.glob(prefix.name + ".data-*"))
    files += [folder / n for n in (VOCAB_FILE, REPORT_FILE) if (folder / n).is_file()]
    return files + sorted(f for f in folder.glob("*.model") if f.is_file())


def _source_files(path: Path) -> List[Path]:
    """A published checkpoint as read_source reads it: the weights (a TF1 prefix's .index and .data-* files, a
    Paddle params/ folder, or one file) and the config, vocabulary and sentencepiece model found beside them."""
    from albert_ner.weights.sources import locate_source
    from albert_ner.weights.tensor_files import resolve_tf1_prefix

    source = locate_source(path)
    if source.kind == "tf1":
        prefix = Path(resolve_tf1_prefix(source.weights))
        weights = _present([Path(f"{prefix}.index")], f"the index of TF1 checkpoint {prefix}")
        weights += sorted(prefix.parent.glob(prefix.name + ".data-*"))
    elif source.weights.is_dir():  # Paddle params/: one file per variable
        weights = sorted(f for f in source.weights.rglob("*") if f.is_file() and not f.name.endswith(LOCK_SUFFIX))
    else:
        weights = [source.weights]
    return weights + [f for f in (source.config_file, source.vocab_file, source.spm_file) if f is not None]


def init_files(init: str) -> Tuple[Path, List[Path]]:
    """(folder, files) that initialisation from `init` reads, resolved by the loaders' own functions in their order
    (ner_task.open, then convert.load_pretrained): an archive is unpacked (cached); a trained model's published
    folder; a pretraining output's pretrained/; a converted encoder; else a published checkpoint."""
    from albert_ner.model import modeldir, warm_start
    from albert_ner.weights.convert import is_converted, pretraining_output
    from pretrained.cache import unpacked_local

    source = Path(unpacked_local(init))
    trained = warm_start.find_trained_model(source)
    if trained is None:
        source = pretraining_output(source)
        trained = warm_start.find_trained_model(source)
    if trained is not None:
        files = _trained_model_files(modeldir.resolve(trained))
    elif is_converted(source):
        files = _converted_files(source)
    else:
        files = _source_files(source)
    files = list(dict.fromkeys(files))
    return Path(os.path.commonpath([str(f.parent) for f in files])), files


def init_fingerprint(init: Optional[str]) -> Optional[Dict[str, Any]]:
    """Content fingerprint of the files `--init` loads (init_files), marked with INIT_SCHEME."""
    if not init or not Path(init).exists():
        return path_fingerprint(init)  # none, or a path that is not there (recorded as missing)
    root, files = init_files(init)
    return dict(_listing_fingerprint(init, root, files), read_from=str(root), scheme=INIT_SCHEME)


def _whole_path_sha256(path: str) -> Optional[str]:
    """The init fingerprint of records written before INIT_SCHEME: a file's sha256, or a folder's over EVERY file
    under it (lock files included), as sorted "relpath<TAB>size<TAB>sha256" lines joined by newlines."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    return _listing_fingerprint(path, p, (f for f in p.rglob("*") if f.is_file()))["sha256"] if p.is_dir() else None


def _same_by_old_scheme(key: str, saved: Optional[Dict[str, Any]], now: Optional[Dict[str, Any]]) -> bool:
    """Fallback for run.json written before INIT_SCHEME: its init sha256 covered the whole --init path, so a record
    of the same content still resumes (compared once more the old way; a change since, even of a lock file that
    the old scheme counted, still differs)."""
    if key != "init" or not saved or not now or "scheme" in saved or not saved.get("sha256"):
        return False
    return _whole_path_sha256(now["path"]) == saved["sha256"]


def files_fingerprint(path: str, files: List[Path]) -> Dict[str, Any]:
    """Content fingerprint of the several files one setting names (e.g. X.npy and its token list)."""
    listing = [f"{i}\t{f.stat().st_size}\t{file_sha256(f)}" for i, f in enumerate(files)]  # names may change
    return {"path": str(path), "bytes": sum(f.stat().st_size for f in files),
            "sha256": hashlib.sha256("\n".join(listing).encode("utf-8")).hexdigest(), "files": len(files)}


def _field_fingerprint(key: str, path: Optional[str]) -> Optional[Dict[str, Any]]:
    if key == "init":
        return init_fingerprint(path)
    if key == "char_embeddings" and path and Path(path).is_file():
        from albert_ner.data.char_vectors import source_files

        files = source_files(path)
        if len(files) > 1:  # an .npy with its token list
            return files_fingerprint(path, files)
    return path_fingerprint(path)


def run_fingerprint(cfg: TrainConfig) -> Dict[str, Any]:
    """The settings and file contents that must match for a resume."""
    values = json.loads(json.dumps(dataclasses.asdict(cfg)))
    settings = {k: v for k, v in values.items() if k not in MAY_DIFFER and k not in FILE_FIELDS}
    files = {k: _field_fingerprint(k, values.get(k)) for k in FILE_FIELDS}
    return {"settings": settings, "files": files}


def new_run_record(fingerprint: Dict[str, Any], model_config: Dict[str, Any]) -> Dict[str, Any]:
    """What a fresh run writes beside its checkpoint: an id, the start time and what shapes it."""
    return {"format": RUN_FORMAT, "run_id": uuid.uuid4().hex,
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "fingerprint": fingerprint, "model_config": model_config}


def save_run_record(checkpoint_dir: Path, record: Dict[str, Any]) -> None:
    """Write run.json into the checkpoint folder."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (checkpoint_dir / RUN_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_run_record(checkpoint_dir: Path) -> Dict[str, Any]:
    """run.json of the checkpoint folder; a checkpoint without one cannot be verified and is not resumed."""
    path = checkpoint_dir / RUN_FILE
    if not path.is_file():
        raise ResumeMismatch(f"{checkpoint_dir}: the checkpoint has no {RUN_FILE} (written by an older albert-ner, "
                             "or damaged), so it cannot be checked to be of this run; pass --no-resume to start "
                             "over, or use another --output-dir")
    record = load_json(path)
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT or not isinstance(
            record.get("fingerprint"), dict) or not isinstance(record.get("run_id"), str):
        raise ResumeMismatch(f"{path}: not a run record of format {RUN_FORMAT}; pass --no-resume to start over, "
                             "or use another --output-dir")
    return record


def _short(fp: Optional[Dict[str, Any]]) -> str:
    if fp is None:
        return "none"
    digest = fp.get("sha256")
    return f"{fp['path']} (sha256 {digest[:12]}...)" if digest else f"{fp['path']} (missing)"


def _defaults() -> Dict[str, Any]:
    """TrainConfig's default values, as JSON: a setting added after a checkpoint was written ran at its default."""
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps(fields))


def differences(saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """'field: X (checkpoint) vs Y (now)' for every setting and file that differs."""
    out = []
    old_settings, new_settings, defaults = saved.get("settings", {}), now["settings"], _defaults()
    for key in sorted(set(old_settings) | set(new_settings)):
        a = old_settings.get(key, defaults.get(key, "unset"))
        b = new_settings.get(key, defaults.get(key, "unset"))
        if a != b:
            out.append(f"{key}: {json.dumps(a)} (checkpoint) vs {json.dumps(b)} (now)")
    old_files, new_files = saved.get("files", {}), now["files"]
    for key in FILE_FIELDS:
        a, b = old_files.get(key), new_files.get(key)
        same = (a is None and b is None) or (a is not None and b is not None and a.get("sha256") == b.get("sha256")
                                             and a.get("sha256") is not None)
        if not same and not _same_by_old_scheme(key, a, b):
            out.append(f"{key}: {_short(a)} (checkpoint) vs {_short(b)} (now)")
    return out


def mismatch_message(checkpoint_dir: Path, diffs: List[str]) -> str:
    """One line: what differs and how to proceed."""
    return (f"{checkpoint_dir}: the checkpoint is of another run, and resuming it would mix the two: "
            + "; ".join(diffs) + ". Pass --no-resume to start over (the checkpoint is discarded; the published "
            "model stays until the new run publishes its own), or use another --output-dir")
