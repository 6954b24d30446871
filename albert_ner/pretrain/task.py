"""The pretraining task on the generic runner: corpus shards -> masked batches -> PretrainingModel (MLM + SOP).

train/runner.py does the stepping, checkpoints, resume and signals; this module says what is trained
(an encoder with its tied MLM head and optional sentence-order head), on which batches (the shards of
pretrain/preprocess.py, masked by pretrain/examples.py anew every pass over the data), how an epoch is judged
(MLM accuracy and perplexity on the held-out documents) and what is published:
    OUT/pretrained/   encoder + heads (weights/heads.py): `albert-ner train --init OUT` reads it
    OUT/hf/           the same weights as BertForMaskedLM / AlbertForMaskedLM (pretrain/hf_export.py)
    OUT/pretrain_results.json  held-out metrics before and after, speed, corpus counts
An "epoch" is one pass over the training chunks; with --max-steps it is instead a fixed share of that budget
(max_steps / epochs steps, running on through as many passes as needed), so evaluation rounds stay regular.

Under tf.distribute (train/distribute.py) --batch-size is per replica and every worker reads the same global
batches, masked before they are split, so the masks do not depend on the replicas. With several workers only the
chief writes the output directory (OUT/data included): it preprocesses first; another worker then reads the
chief's shards where it sees them (one machine, one folder) and otherwise (a host with its own disk, e.g. on
SageMaker, where OUT is the synced checkpoint folder) preprocesses into a private temporary folder, deleted at
the end. Every worker checks that it holds the chief's chunks in the chief's order before training.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from albert_ner.config import EncoderConfig, preset_encoder, save_json
from albert_ner.data.vocab import Vocab
from albert_ner.model.modeldir import file_sha256
from albert_ner.model.pretraining import PretrainingModel
from albert_ner.pretrain import shards as shardfiles
from albert_ner.pretrain.config import PretrainConfig
from albert_ner.pretrain.examples import ExampleSpec, batch_counts, make_batches, sop_rows
from albert_ner.pretrain.inputs import corpus_fingerprint, expand_corpus, input_names
from albert_ner.train import distribute
from albert_ner.train.runner import (Batch, EpochEval, ParamGroup, Runner, RunSettings, RunSummary, Task,
                                     Trainable, emit)

log = logging.getLogger(__name__)

CHAR_LOOKUP = "exact_first"  # the ids `train --init` gives a pretrained encoder's characters
PRETRAINED_DIR = "pretrained"
HF_DIR = "hf"
DATA_DIR = "data"
RESULTS_FILE = "pretrain_results.json"
CONFIG_FILE = "pretrain_config.json"
BEFORE_FILE = "heldout_before.json"
# PretrainConfig fields a resumed run may change: bookkeeping, compilation and how shards are made.
MAY_DIFFER = ("output_dir", "jit", "log_every", "checkpoint_every", "resume", "workers", "eval_batches", "data_dir")
FILE_FIELDS = ("vocab_file", "encoder_config", "user_dict")
# With several replicas each training row carries its global batch's (masked tokens, sentence pairs), float32 [2].
GLOBAL_COUNTS = "global_counts"


def run_settings(cfg: PretrainConfig) -> RunSettings:
    """The runner's part of a PretrainConfig (no early stopping: the budget decides)."""
    return RunSettings(output_dir=cfg.output_dir, epochs=cfg.epochs, seed=cfg.seed, precision=cfg.precision,
                       jit=cfg.jit, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                       clip_norm=cfg.clip_norm, patience=0, log_every=cfg.log_every,
                       checkpoint_every=cfg.checkpoint_every, resume=cfg.resume)


def sop_enabled(choice: str, encoder: EncoderConfig) -> bool:
    """--sop auto: on for the ALBERT layouts (factorised embedding), off for BERT/ERNIE, as each was pretrained."""
    if choice == "auto":
        return encoder.embedding_layout in ("project_first", "project_last")
    return choice == "on"


def _file_id(path: Optional[str]) -> Optional[str]:
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    return f"path:{os.path.abspath(path)}"  # a directory or known name: by where it is


def _same_inputs(saved: Any, now: Any) -> bool:
    """The corpus a checkpoint recorded is the one given now: names and sizes in order; a record of an older
    version (absolute path and size) by its sizes and base names, so a checkpoint of a moved corpus resumes."""
    if saved == now:
        return True
    if not (isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now)):
        return False
    return all(isinstance(a, dict) and "name" not in a and a.get("bytes") == b.get("bytes")
               and os.path.basename(str(a.get("path"))) == os.path.basename(b.get("name", ""))
               for a, b in zip(saved, now))


class PretrainTrainable(Trainable):
    """The train step's view of a PretrainingModel: encoder and heads at one peak learning rate each."""

    def __init__(self, model: PretrainingModel, learning_rate: float):
        self.model = model
        self.learning_rate = learning_rate

    def parameter_groups(self) -> List[ParamGroup]:
        return [ParamGroup("encoder", tuple(self.model.encoder.trainable_variables), self.learning_rate),
                ParamGroup("head", tuple(self.model.head_variables), self.learning_rate)]

    def loss_weight(self, batch: Batch) -> tf.Tensor:
        """The MLM loss is a mean over masked tokens: with several replicas each weighs by its share of them
        (the SOP term, a mean over sentence pairs, is rescaled to its own share in loss_and_metrics)."""
        return tf.reduce_sum(tf.cast(batch["mlm_labels"] >= 0, tf.float32))

    def loss_and_metrics(self, batch: Batch, training: bool):
        loss, metrics = self.model.loss_and_metrics(batch, training=training)
        keep = ("mlm_accuracy", "sop_accuracy") if self.model.sop else ("mlm_accuracy",)
        out = {k: metrics[k] for k in keep}
        if self.model.sop and GLOBAL_COUNTS in batch:  # one replica's slice of a global batch
            share = self.sop_share(batch)
            loss = metrics["mlm_loss"] + metrics["sop_loss"] * share
            out["sop_accuracy"] = metrics["sop_accuracy"] * share
        return loss, out

    @staticmethod
    def sop_share(batch: Batch) -> tf.Tensor:
        """The runner weighs a replica by its share of the global batch's masked tokens (loss_weight); for the SOP
        mean the right weight is its share of the sentence pairs. This factor turns the one into the other, so the
        replicas' weighted sum is the global batch's MLM mean + SOP mean, as on one device (0 without pairs)."""
        masked = tf.reduce_sum(tf.cast(batch["mlm_labels"] >= 0, tf.float32))
        pairs = tf.reduce_sum(tf.cast(sop_rows(batch), tf.float32))
        total = batch[GLOBAL_COUNTS][0]
        return tf.math.divide_no_nan(pairs * total[0], masked * total[1])


class PretrainTask(Task):
    """MLM (+ SOP) pretraining of one encoder on preprocessed corpus shards."""

    score_name = "held-out MLM loss (negated)"  # selection on the objective itself: accuracy ties early on

    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.data_dir = Path(cfg.data_dir) if cfg.data_dir else self.out / DATA_DIR

    # ---- before the model ------------------------------------------------------------------------------------
    def open(self) -> None:
        cfg = self.cfg
        if cfg.init:
            here, there = self.out.resolve(), Path(cfg.init).resolve()
            if here == there or there in here.parents:
                raise ValueError(f"--init {cfg.init} and --output-dir {self.out} overlap: this run would overwrite "
                                 "the encoder it starts from; write into another --output-dir")

    def fingerprint(self) -> Dict[str, Any]:
        cfg = self.cfg
        values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in MAY_DIFFER and k != "inputs"}
        for key in FILE_FIELDS:
            values[key] = _file_id(getattr(cfg, key))
        values["init"] = _file_id(cfg.init)
        # Inputs by name (relative to their common folder) and size: the corpus may be copied afresh or moved
        # between runs (a new SageMaker job downloads it anew); its content is checked by preprocessing.
        stats = corpus_fingerprint(expand_corpus(cfg.inputs))
        values["inputs"] = [{"name": name, **{k: f[k] for k in ("bytes",) if k in f}}
                            for f, name in zip(stats, input_names([f["path"] for f in stats]))]
        return values

    def fingerprint_differences(self, saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
        out = []
        for key in sorted(set(saved) | set(now)):
            if key == "inputs" and _same_inputs(saved.get(key), now.get(key)):
                continue
            if saved.get(key) != now.get(key):
                old, new = json.dumps(saved.get(key))[:120], json.dumps(now.get(key))[:120]
                out.append(f"{key}: {old} (checkpoint) vs {new} (now)")
        return out

    def prepare(self) -> Dict[str, Any]:
        """Vocabulary, encoder config, preprocessing (cached), the example spec; returns the model config."""
        cfg = self.cfg
        self.vocab = Vocab.from_file(cfg.vocab_file, char_lookup=CHAR_LOOKUP)
        self.encoder_config = self._encoder_config()
        if self.encoder_config.vocab_size < len(self.vocab):
            raise ValueError(f"{cfg.vocab_file}: {len(self.vocab)} tokens, but the encoder has only "
                             f"{self.encoder_config.vocab_size} embedding rows")
        if cfg.max_seq_len > self.encoder_config.max_position_embeddings:
            raise ValueError(f"max_seq_len {cfg.max_seq_len} exceeds the encoder's "
                             f"{self.encoder_config.max_position_embeddings} positions")
        self.sop = sop_enabled(cfg.sop, self.encoder_config)
        if self.sop and self.encoder_config.type_vocab_size < 2:
            raise ValueError("--sop on needs two token types (segment A and B); this encoder has "
                             f"type_vocab_size {self.encoder_config.type_vocab_size}")
        self.spec = ExampleSpec.for_vocab(self.vocab, cfg.max_seq_len, mask_prob=cfg.mask_prob,
                                          whole_word=cfg.whole_word, char_mask_share=cfg.char_mask_share, sop=self.sop)
        t0 = time.time()
        self.manifest = self._preprocess(distribute.setup())
        log.info("corpus ready in %s (%.1fs)", self.data_dir, time.time() - t0)
        return {"encoder": dataclasses.asdict(self.encoder_config), "sop": self.sop,
                "spec": json.loads(json.dumps(dataclasses.asdict(self.spec)))}

    def _preprocess_into(self, folder: Path) -> Dict[str, Any]:
        from albert_ner.pretrain.preprocess import preprocess

        cfg = self.cfg
        return preprocess(cfg.inputs, str(folder), cfg.vocab_file, cfg.max_seq_len, user_dict=cfg.user_dict,
                          doc_per=cfg.doc_per, workers=cfg.workers or None, heldout_fraction=cfg.heldout_fraction,
                          encoding=cfg.encoding, char_lookup=CHAR_LOOKUP)

    def _preprocess(self, dist: distribute.Distribution) -> Dict[str, Any]:
        """The manifest of the shards this process reads (see the module docstring for several workers). No
        worker waits for ever on another's failure: each failure is sent to all before it is raised."""
        if dist.workers == 1:
            return self._preprocess_into(self.data_dir)
        if dist.is_chief:
            try:
                manifest = self._preprocess_into(self.data_dir)
                digest = chunks_digest(self.data_dir, manifest)
            except BaseException:
                distribute.any_worker(dist, True)
                raise
            distribute.any_worker(dist, False)
            distribute.chief_value(dist, float(digest))
            if distribute.any_worker(dist, False):
                raise RuntimeError(f"{self.data_dir}: another worker could not read or make the same training "
                                   "chunks as the chief (see its log); stopping")
            return manifest
        if distribute.any_worker(dist, False):
            raise RuntimeError(f"worker {dist.worker_index}: the chief could not preprocess the corpus (see its "
                               "log); stopping too")
        want = int(distribute.chief_value(dist, 0.0))
        try:
            manifest = self._chief_shards(want)
            if manifest is None:
                self.data_dir = self._private_data_dir(dist.worker_index)
                manifest = self._preprocess_into(self.data_dir)
            differs = chunks_digest(self.data_dir, manifest) != want
        except BaseException:
            distribute.any_worker(dist, True)
            raise
        if distribute.any_worker(dist, differs):
            raise RuntimeError(f"worker {dist.worker_index}: the corpus preprocessed in {self.data_dir} is not the "
                               "chief's (other chunks or another order): are the inputs the same on every host?")
        return manifest

    def _chief_shards(self, digest: int) -> Optional[Dict[str, Any]]:
        """The manifest in data_dir when its shards hold the chief's chunks (one folder for both), read only; else
        None (no manifest, another corpus's, or damaged shards)."""
        try:
            manifest = shardfiles.load_manifest(self.data_dir, "train")
            same = chunks_digest(self.data_dir, manifest) == digest
        except (OSError, ValueError, KeyError) as exc:
            log.info("%s: no readable preprocessed corpus here (%s)", self.data_dir, exc)
            return None
        if same:
            log.info("this worker reads the chief's preprocessed corpus in %s (read only)", self.data_dir)
            return manifest
        return None

    def _private_data_dir(self, worker_index: int) -> Path:
        """A temporary folder for this worker's own shards, removed when the task goes (or the process ends)."""
        folder = Path(tempfile.mkdtemp(prefix=f"albert-ner-worker{worker_index}-data-"))
        weakref.finalize(self, shutil.rmtree, str(folder), ignore_errors=True)
        log.info("worker %d: %s does not hold the chief's preprocessed corpus (a disk of its own): preprocessing "
                 "into a private folder %s, deleted at the end", worker_index, self.data_dir, folder)
        return folder

    def _encoder_config(self) -> EncoderConfig:
        cfg = self.cfg
        overrides = {}
        if cfg.encoder_dropout is not None:
            overrides = dict(hidden_dropout_prob=cfg.encoder_dropout, attention_probs_dropout_prob=cfg.encoder_dropout)
        if cfg.init:
            from albert_ner.weights.convert import pretrained_encoder_config

            return pretrained_encoder_config(cfg.init, **overrides)[0]
        if cfg.encoder_config:
            return EncoderConfig.from_pretrained_json(cfg.encoder_config, **overrides)
        return preset_encoder(cfg.encoder_preset, vocab_size=len(self.vocab), **overrides)

    def prepare_batches(self) -> int:
        """Batches per pass over the training chunks (exact: bucket counts from the shards' chunk lengths), and
        the steps of one epoch."""
        cfg = self.cfg
        self.batches_per_pass = self._batches_per_pass("train")
        if self.batches_per_pass < 1:
            raise ValueError(f"{self.data_dir}: the corpus made no training chunks")
        if cfg.max_steps:
            self.steps_per_epoch = math.ceil(cfg.max_steps / cfg.epochs)
        else:
            self.steps_per_epoch = self.batches_per_pass
        log.info("%d training chunks -> %d batches of %d per pass over the data; %d epochs of %d steps (%.2f passes)",
                 shardfiles.count_examples(self.data_dir, "train"), self.batches_per_pass, self.global_batch, cfg.epochs,
                 self.steps_per_epoch, cfg.epochs * self.steps_per_epoch / self.batches_per_pass)
        return self.steps_per_epoch

    def _chunk_lengths(self, split: str) -> np.ndarray:
        manifest = shardfiles.load_manifest(self.data_dir, split)
        lengths = [np.diff(shardfiles.load_shard(self.data_dir / s["file"])["offsets"])
                   for s in manifest["splits"][split]["shards"] if s["examples"] > 0]
        return np.concatenate(lengths) if lengths else np.zeros([0], np.int64)

    def _batches_per_pass(self, split: str) -> int:
        """How many batches make_batches yields for `split`: per bucket, ceil(examples / batch size)."""
        chunk = self._chunk_lengths(split)
        rows = chunk + np.where(self.sop & (chunk >= 2), 3, 2)  # [CLS] A [SEP] B [SEP], or [CLS] x [SEP]
        buckets = np.asarray(self.spec.buckets)
        bucket = np.sum(buckets[None, :] < rows[:, None], axis=1)
        counts = np.bincount(bucket, minlength=len(buckets))
        return int(sum(math.ceil(c / self.global_batch) for c in counts))

    # ---- the model -------------------------------------------------------------------------------------------
    def build(self, jit: bool) -> Trainable:
        cfg = self.cfg
        self.model = PretrainingModel(self.encoder_config, sop=self.sop)
        self.model.build_weights()
        self.init_report = None
        if cfg.init:
            from albert_ner.weights.heads import load_pretraining_init

            self.init_report = load_pretraining_init(self.model, cfg.init)
            heads = self.init_report.get("heads", {})
            log.info("--init %s: encoder loaded; heads loaded: %s; fresh: %s", cfg.init,
                     ", ".join(heads.get("loaded") or {}) or "none",
                     "; ".join(f"{k} ({v})" for k, v in (heads.get("fresh") or {}).items()) or "none")
        log.info("pretraining model: %s encoder parameters, %s head parameters; objectives: MLM%s",
                 f"{_count(self.model.encoder.trainable_variables):,}", f"{_count(self.model.head_variables):,}",
                 " + sentence order" if self.sop else "")
        self.eval_step = tf.function(lambda b: self.model.loss_and_metrics(b, training=False), jit_compile=jit,
                                     reduce_retracing=True)
        return PretrainTrainable(self.model, cfg.learning_rate)

    def start(self, run_id: str) -> None:
        """Save the config; measure the held-out set once before any training (kept across resumes)."""
        self.run_id = run_id
        save_json(self.cfg, self.out / CONFIG_FILE)
        before = self.out / BEFORE_FILE
        saved = json.loads(before.read_text(encoding="utf-8")) if before.is_file() else None
        if saved is None or saved.get("run_id") != run_id:
            metrics = self.heldout_metrics()
            before.write_text(json.dumps({"run_id": run_id, **metrics}, indent=2) + "\n", encoding="utf-8")
            if metrics:
                log.info("held-out before pretraining: %s", _describe(metrics))

    # ---- batches ---------------------------------------------------------------------------------------------
    def _pass_batches(self, split: str, pass_index: int, shuffle: bool) -> tf.data.Dataset:
        examples = shardfiles.read_examples(self.data_dir, split, self.cfg.shuffle_buffer if shuffle else 0,
                                            seed=self.cfg.seed, epoch=pass_index)
        return make_batches(examples, self.spec, self.cfg.seed, pass_index, self.global_batch)

    @property
    def global_batch(self) -> int:
        """--batch-size is per replica (as in `train`): a step takes batch_size x replicas chunks."""
        return self.cfg.batch_size * getattr(self, "replicas", 1)

    def train_batches(self, epoch: int, skip: int) -> Iterator[Batch]:
        """The epoch's batches after `skip`: global batch g = epoch * steps_per_epoch + skip is batch g % P of
        pass g // P (P batches per pass), whose masks and order are fixed by (seed, pass)."""
        g, left = epoch * self.steps_per_epoch + skip, self.steps_per_epoch - skip
        while left > 0:
            p, offset = divmod(g, self.batches_per_pass)
            n = min(left, self.batches_per_pass - offset)
            if offset:
                log.info("positioning at batch %d of pass %d over the data", offset, p + 1)
            ds = self._pass_batches("train", p, shuffle=True).skip(offset).take(n)
            if getattr(self, "replicas", 1) > 1:
                ds = ds.map(_with_global_counts)
            for batch in ds.prefetch(2):
                yield batch
            g, left = g + n, left - n

    def batch_size(self, batch: Batch) -> Tuple[int, int]:
        lengths = batch["lengths"].numpy()
        return int(np.count_nonzero(lengths)), int(lengths.sum())

    # ---- judging and publishing ------------------------------------------------------------------------------
    def heldout_metrics(self) -> Dict[str, float]:
        """MLM loss/accuracy/perplexity (and SOP accuracy) on the held-out chunks with fixed masks (pass 0), over
        at most eval_batches batches; {} without held-out chunks."""
        if shardfiles.count_examples(self.data_dir, "heldout") == 0:
            return {}
        ds = self._pass_batches("heldout", 0, shuffle=False)
        if self.cfg.eval_batches:
            ds = ds.take(self.cfg.eval_batches)
        loss = correct = masked = sop_hits = pairs = 0.0
        for batch in ds:
            _, m = self.eval_step(batch)
            n = float(m["masked_tokens"])
            loss, correct, masked = loss + float(m["mlm_loss"]) * n, correct + float(m["mlm_accuracy"]) * n, masked + n
            if self.sop:
                rows = float(tf.reduce_sum(tf.cast(tf.logical_and(
                    batch["lengths"] > 0, tf.reduce_any(tf.equal(batch["segment_ids"], 1), axis=1)), tf.float32)))
                sop_hits, pairs = sop_hits + float(m["sop_accuracy"]) * rows, pairs + rows
        if not masked:
            return {}
        out = {"heldout_mlm_loss": loss / masked, "heldout_mlm_accuracy": correct / masked,
               "heldout_perplexity": math.exp(min(loss / masked, 50.0)), "heldout_masked_tokens": masked}
        if self.sop and pairs:
            out["heldout_sop_accuracy"] = sop_hits / pairs
        return out

    def evaluate(self, epoch: int) -> EpochEval:
        metrics = self.heldout_metrics()
        if not metrics:
            log.warning("no held-out chunks (heldout_fraction %s): every epoch's weights are published",
                        self.cfg.heldout_fraction)
            return EpochEval(score=float(epoch), line={}, summaries={})
        line = {k: v for k, v in metrics.items() if k != "heldout_masked_tokens"}
        self.last_heldout = metrics
        return EpochEval(score=-metrics["heldout_mlm_loss"], line=line,
                         summaries={f"heldout/{k[len('heldout_'):]}": v for k, v in line.items()})

    def publish(self, epoch: int, score: float, step: int) -> Path:
        """Write the weights and heads to OUT/pretrained (staged, then swapped in whole)."""
        from albert_ner.weights.heads import save_pretrained_dir

        final, staging, old = self.out / PRETRAINED_DIR, self.out / f".{PRETRAINED_DIR}.staging", \
            self.out / f".{PRETRAINED_DIR}.old"
        for leftover in (staging, old):
            if leftover.exists():
                shutil.rmtree(leftover)
        info = {"run_id": self.run_id, "epoch": epoch, "step": step, "char_lookup": CHAR_LOOKUP,
                "init": self.cfg.init, "heldout": getattr(self, "last_heldout", None)}
        save_pretrained_dir(self.model, self.cfg.vocab_file, staging, info)
        if final.exists():
            final.rename(old)
        staging.rename(final)
        if old.exists():
            shutil.rmtree(old)
        return final

    def final_report(self, summary: RunSummary) -> Dict[str, Any]:
        """Reload the published weights, export them for Hugging Face, write pretrain_results.json, print lines."""
        from albert_ner.pretrain.hf_export import export_hf
        from albert_ner.weights.heads import load_pretraining_init

        folder = self.out / PRETRAINED_DIR
        if not (folder / "encoder_config.json").is_file():
            folder = self.publish(summary.epochs_run, float("nan"), summary.steps)
        load_pretraining_init(self.model, folder)
        hf = export_hf(self.model, self.cfg.vocab_file, self.out / HF_DIR)
        before_file = self.out / BEFORE_FILE
        before = json.loads(before_file.read_text(encoding="utf-8")) if before_file.is_file() else {}
        before.pop("run_id", None)
        after = self.heldout_metrics()
        results = {"pretrained": str(folder), "hf_export": str(hf), "best_epoch": summary.best_epoch,
                   "epochs_run": summary.epochs_run, "steps": summary.steps, "sop": self.sop,
                   "precision_policy": summary.precision_policy, "jit": summary.jit,
                   "train_samples_per_sec": summary.train_samples_per_sec,
                   "train_tokens_per_sec": summary.train_tokens_per_sec,
                   "heldout_before": before, "heldout_after": after, "corpus": self.manifest.get("counts"),
                   "init": self.cfg.init, "init_report": self.init_report,
                   "wall_seconds": time.time() - summary.started}
        save_json(results, self.out / RESULTS_FILE)
        for key, value in after.items():
            if key != "heldout_masked_tokens":
                emit(f"pretrain_{key} = {value:.4f}")
        log.info("held-out before: %s; after: %s. Fine-tune NER on it: albert-ner train --init %s",
                 _describe(before) or "-", _describe(after) or "-", folder)
        return results


def _with_global_counts(batch: Batch) -> Batch:
    """The batch with GLOBAL_COUNTS on every row: its masked tokens and sentence pairs (PretrainTrainable.sop_share)."""
    counts = batch_counts(batch)
    total = tf.cast(tf.stack([counts["masked_tokens"], counts.get("sop_pairs", tf.constant(0, tf.int32))]),
                    tf.float32)
    rows = tf.ones_like(batch["lengths"], tf.float32)[:, None]  # keeps the static batch size
    return dict(batch, **{GLOBAL_COUNTS: rows * total[None]})


def chunks_digest(folder: Path, manifest: Dict[str, Any]) -> int:
    """48 bits (exact in a float64 broadcast) of sha256 over every chunk of both splits, shard by shard in the
    manifest's order: equal for the same chunks in the same shards, whatever the folder, file times or
    preprocessing processes. Reads every shard (its arrays, not the file's bytes); a damaged one raises
    ValueError naming it."""
    digest = hashlib.sha256()
    for split in shardfiles.SPLITS:
        for shard in manifest["splits"].get(split, {}).get("shards", []):
            digest.update(f"{split} {shard['examples']}\n".encode("utf-8"))
            if shard["examples"]:
                arrays = shardfiles.load_shard(Path(folder) / shard["file"])
                for name in shardfiles.ARRAYS:
                    digest.update(arrays[name].tobytes())
    return int(digest.hexdigest()[:12], 16)


def _describe(metrics: Dict[str, float]) -> str:
    return ", ".join(f"{k[len('heldout_'):]} {v:.4f}" for k, v in metrics.items() if k != "heldout_masked_tokens")


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def pretrain(cfg: PretrainConfig) -> Dict[str, Any]:
    """Run one pretraining configuration end to end; see PretrainTask."""
    return Runner(PretrainTask(cfg), run_settings(cfg)).run()
