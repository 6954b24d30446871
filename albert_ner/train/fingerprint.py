"""What shapes a training run, saved beside its checkpoint so that a resume continues only the same run.

A checkpoint is resumed only when every setting that decides the steps taken so far is unchanged and
every file read (corpora, vocabulary, encoder config, pretrained source, character vectors) has the same
content. Files are compared by content (sha256), not by path: the same data in another place resumes.
The settings in MAY_DIFFER are the only ones a resume may change.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

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


class ResumeMismatch(ValueError):
    """The checkpoint in the output directory belongs to another run."""


def path_fingerprint(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """Content fingerprint of a file, or of a directory (every file's relative path, size and sha256)."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        return {"path": str(path), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        listing = [f"{f.relative_to(p).as_posix()}\t{f.stat().st_size}\t{file_sha256(f)}" for f in files]
        digest = hashlib.sha256("\n".join(listing).encode("utf-8")).hexdigest()
        return {"path": str(path), "bytes": sum(f.stat().st_size for f in files), "sha256": digest,
                "files": len(files)}
    return {"path": str(path), "bytes": None, "sha256": None}  # e.g. a name resolved elsewhere


def files_fingerprint(path: str, files: List[Path]) -> Dict[str, Any]:
    """Content fingerprint of the several files one setting names (e.g. X.npy and its token list)."""
    listing = [f"{i}\t{f.stat().st_size}\t{file_sha256(f)}" for i, f in enumerate(files)]  # names may change
    return {"path": str(path), "bytes": sum(f.stat().st_size for f in files),
            "sha256": hashlib.sha256("\n".join(listing).encode("utf-8")).hexdigest(), "files": len(files)}


def _field_fingerprint(key: str, path: Optional[str]) -> Optional[Dict[str, Any]]:
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
        if not same:
            out.append(f"{key}: {_short(a)} (checkpoint) vs {_short(b)} (now)")
    return out


def mismatch_message(checkpoint_dir: Path, diffs: List[str]) -> str:
    """One line: what differs and how to proceed."""
    return (f"{checkpoint_dir}: the checkpoint is of another run, and resuming it would mix the two: "
            + "; ".join(diffs) + ". Pass --no-resume to start over (the checkpoint is discarded; the published "
            "model stays until the new run publishes its own), or use another --output-dir")
