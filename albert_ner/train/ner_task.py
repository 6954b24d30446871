"""The NER task on the generic runner: corpora and featurizer, NerTagger with its CRF loss, frozen character
rows, dev-F1 selection, publishing model-N folders, and the final eval_results.json.

train/runner.py does the stepping, checkpoints and resume; this module says what is trained and how it is
judged. NerTrainable alone is the train step's view of a NerTagger, which benchmarks build directly.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from albert_ner.config import PRESETS, EncoderConfig, HeadConfig, ModelConfig, TrainConfig, preset_encoder, save_json
from albert_ner.data.bigrams import BigramVocab
from albert_ner.data.char_vectors import TableInit, read_char_vectors, table_init
from albert_ner.data.corpus import Sentence
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import EncodedCorpus, labels_from_sentences, make_windows
from albert_ner.data.splits import Splits, load_splits
from albert_ner.data.tags import convert_scheme
from albert_ner.data.vocab import Vocab
from albert_ner.infer.predictor import INPUT_KEYS, Predictor
from albert_ner.model import modeldir, store, warm_start
from albert_ner.model.modeldir import ModelFiles
from albert_ner.model.tagger import NerTagger
from albert_ner.train import fingerprint
from albert_ner.train.report import entity_report, format_table, metric_lines
from albert_ner.train.runner import (Batch, EpochEval, ParamGroup, RunSettings, RunSummary, Task, Trainable,
                                     emit)
from albert_ner.weights.convert import load_pretrained, pretrained_encoder_config
from pretrained.cache import unpacked_local

log = logging.getLogger(__name__)

RESULTS_FILE = "eval_results.json"
TRAIN_CONFIG_FILE = "train_config.json"
PRETRAINED_ENCODER_LR = 5e-5  # default peak LR of a pretrained encoder (the head keeps --head-lr)
DEV_F1 = "dev_f1"  # the epoch line's name for the dev F1 (SageMaker's dev:f1 metric reads it)


def run_settings(cfg: TrainConfig) -> RunSettings:
    """The runner's part of a TrainConfig."""
    return RunSettings(output_dir=cfg.output_dir, epochs=cfg.epochs, seed=cfg.seed, precision=cfg.precision,
                       jit=cfg.jit, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                       clip_norm=cfg.clip_norm, patience=cfg.patience, log_every=cfg.log_every,
                       checkpoint_every=cfg.checkpoint_every, resume=cfg.resume)


def build_model_config(cfg: TrainConfig, vocab: Vocab, labels, bigram_rows: int,
                       char_vector_dim: Optional[int] = None) -> ModelConfig:
    """Encoder from a published config JSON, the --init source or a named preset, plus the head from the run
    config. With pretrained character vectors (`char_vector_dim`) a preset's character table takes their
    width; a config's must already have it."""
    overrides = {}
    if cfg.encoder_dropout is not None:
        overrides = dict(hidden_dropout_prob=cfg.encoder_dropout, attention_probs_dropout_prob=cfg.encoder_dropout)
    if cfg.encoder_config:
        encoder = EncoderConfig.from_pretrained_json(cfg.encoder_config, **overrides)
        if char_vector_dim and encoder.embedding_size != char_vector_dim:
            raise ValueError(f"{cfg.char_embeddings}: {char_vector_dim}-dimensional vectors, but the character "
                             f"table of {cfg.encoder_config} is {encoder.embedding_size} wide (embedding_size)")
    elif cfg.init:
        encoder, _ = pretrained_encoder_config(cfg.init, **overrides)
    else:
        if char_vector_dim:
            overrides.update(_preset_width(cfg.encoder_preset, char_vector_dim))
        try:
            encoder = preset_encoder(cfg.encoder_preset, vocab_size=len(vocab), **overrides)
        except ValueError as exc:
            if not char_vector_dim:
                raise
            raise ValueError(f"{cfg.char_embeddings}: encoder preset {cfg.encoder_preset} at the vectors' width "
                             f"{char_vector_dim}: {exc}") from None
    if encoder.vocab_size < len(vocab):
        raise ValueError(f"{cfg.vocab_file}: {len(vocab)} tokens, but the encoder has only "
                         f"{encoder.vocab_size} embedding rows")
    if cfg.max_seq_len > encoder.max_position_embeddings:
        raise ValueError(f"max_seq_len {cfg.max_seq_len} exceeds the encoder's "
                         f"{encoder.max_position_embeddings} positions")
    head = HeadConfig(lstm_units=cfg.lstm_units, lexicon_dim=cfg.lexicon_dim, pos_dim=cfg.pos_dim,
                      bigram_dim=cfg.bigram_dim,
                      bigram_vocab_size=bigram_rows if cfg.bigram_dim else 0,
                      input_dropout=cfg.input_dropout, dropout=cfg.head_dropout, char_lookup=vocab.char_lookup)
    return ModelConfig(encoder=encoder, head=head, labels=tuple(labels), max_seq_len=cfg.max_seq_len)


def _preset_width(preset: str, dim: int) -> Dict[str, int]:
    """Preset overrides that make the character table `dim` wide (the hidden size too where the preset has no
    embedding projection)."""
    if PRESETS.get(preset, {}).get("embedding_layout") == "none":
        return dict(embedding_size=dim, hidden_size=dim)
    return dict(embedding_size=dim)


# ---- the step's view of a NerTagger ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FrozenRows:
    """Rows of the character table kept at their pretrained values: ids [n,1], values [n,E], keep mask [V,1]."""
    ids: tf.Tensor
    values: tf.Tensor
    keep: tf.Tensor


class NerTrainable(Trainable):
    """A NerTagger as the train step sees it: encoder and head groups, the mean CRF NLL, frozen rows."""

    def __init__(self, model: NerTagger, encoder_lr: float, head_lr: float, frozen_rows: Optional[FrozenRows] = None):
        self.model = model
        self.encoder_lr, self.head_lr = encoder_lr, head_lr
        self.frozen_rows = frozen_rows

    def parameter_groups(self) -> Sequence[ParamGroup]:
        return (ParamGroup("encoder", tuple(self.model.encoder_variables), self.encoder_lr),
                ParamGroup("head", tuple(self.model.head_variables), self.head_lr))

    def loss_and_metrics(self, batch: Batch, training: bool) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        inputs = {k: batch[k] for k in INPUT_KEYS if k in batch}
        return self.model.nll_loss(inputs, batch["labels"], training=training), {}

    def loss_weight(self, batch: Batch) -> tf.Tensor:
        """The loss is a mean over the real rows (padding rows have length 0)."""
        return tf.reduce_sum(tf.cast(batch["lengths"] > 0, tf.float32))

    def adjust_gradients(self, grads: List, variables: Sequence[tf.Variable]) -> List:
        """Frozen character vectors get no gradient, so they have no say in the clipping either."""
        if self.frozen_rows is None:
            return grads
        table = self.model.encoder.embeddings.word_embeddings
        return [_mask_rows(g, self.frozen_rows.keep) if v is table else g for g, v in zip(grads, variables)]

    def after_update(self) -> None:
        """Undo AdamW's weight decay on the frozen rows (scatter_update: also every copy of a mirrored table)."""
        if self.frozen_rows is not None:
            rows = self.frozen_rows
            self.model.encoder.embeddings.word_embeddings.scatter_update(
                tf.IndexedSlices(rows.values, rows.ids[:, 0]))


def _mask_rows(grad, keep: tf.Tensor):
    """A table's gradient with the rows where `keep` [V,1] is 0 zeroed (dense or IndexedSlices)."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * tf.cast(tf.gather(keep, grad.indices), grad.values.dtype),
                                grad.indices, grad.dense_shape)
    return grad * tf.cast(keep, grad.dtype)


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


# ---- the task ------------------------------------------------------------------------------------------------------
class NerTask(Task):
    """One TrainConfig's NER training: what `albert-ner train` runs on the Runner."""

    score_name = "dev F1"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self._dev_corpus: Optional[EncodedCorpus] = None
        self.init_files: Optional[ModelFiles] = None
        self.run_id: Optional[str] = None

    def open(self) -> None:
        """When --init is a model `albert-ner train` wrote (or an archive of one), find and check it."""
        if not self.cfg.init:
            return
        source = Path(unpacked_local(self.cfg.init))
        here, there = self.out.resolve(), source.resolve()
        if here == there or here in there.parents or there in here.parents:
            raise ValueError(f"--init {self.cfg.init} and --output-dir {self.out} overlap: this run would change the "
                             "model it starts from. Write into another --output-dir (to go on with the same run, "
                             "run its own command again: it resumes)")
        self.init_files = warm_start.open_trained(source)
        if self.init_files is not None:
            log.info("--init %s: a model trained by albert-ner (%s); its vocabulary, character lookup and encoder "
                     "config are used", self.cfg.init, self.init_files.folder)

    def fingerprint(self) -> Dict[str, Any]:
        return fingerprint.run_fingerprint(self.cfg)

    def fingerprint_differences(self, saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
        return fingerprint.differences(saved, now)

    def prepare(self) -> Dict[str, Any]:
        """Read and validate the corpora, build the featurizer and the model config."""
        cfg, init = self.cfg, self.init_files
        lookup = cfg.char_lookup_mode()
        if init is not None:  # the ids the model was trained with
            lookup = init.config.head.char_lookup
            if cfg.char_lookup and cfg.char_lookup != lookup:
                raise ValueError(f"--char-lookup {cfg.char_lookup}: the model to continue from "
                                 f"({init.folder}) made its ids with {lookup}")
        self.vocab = Vocab.from_file(cfg.vocab_file, char_lookup=lookup)
        if init is not None:
            warm_start.check_vocab(self.vocab, init)
        self.splits: Splits = load_splits(cfg.train_file, cfg.dev_file, cfg.test_file, cfg.dev_fraction, cfg.seed,
                                          strict=cfg.strict_tags, max_train_sentences=cfg.max_train_sentences)
        if cfg.tag_scheme != "keep":  # learn another scheme; dev/test gold stay as they are
            self.splits.train = [dataclasses.replace(s, tags=tuple(convert_scheme(s.tags, cfg.tag_scheme)))
                                 for s in self.splits.train]
        self.labels = labels_from_sentences(self.splits.train)
        bigrams = None
        if cfg.bigram_dim and init is not None and init.config.head.bigram_dim == cfg.bigram_dim:
            bigrams = init.featurizer.bigrams  # its ids index the bigram rows that continue
            log.info("bigram vocabulary of the model to continue from: %d bigrams", len(bigrams) - 2)
        elif cfg.bigram_dim:
            bigrams = BigramVocab.build((s.chars for s in self.splits.train), min_count=cfg.bigram_min_count)
            log.info("bigram vocabulary: %d bigrams seen at least %d times in train", len(bigrams) - 2,
                     cfg.bigram_min_count)
        self.featurizer = Featurizer(self.vocab, lexicon=cfg.lexicon_dim > 0, bigrams=bigrams, pos=cfg.pos_dim > 0)
        self.char_init: Optional[TableInit] = None
        if cfg.char_embeddings:
            vectors = read_char_vectors(cfg.char_embeddings)
            self.char_init = table_init(vectors, self.vocab, (c for s in self.splits.train for c in s.chars),
                                        cfg.char_embeddings)
        self.model_config = build_model_config(cfg, self.vocab, self.labels, len(bigrams) if bigrams else 0,
                                               self.char_init.report["dim"] if self.char_init else None)
        if init is not None:
            diffs = warm_start.encoder_differences(self.model_config.encoder, init.config.encoder)
            if diffs:
                raise ValueError(f"--encoder-config {cfg.encoder_config}: not the encoder of the model to continue "
                                 f"from ({init.folder / 'model_config.json'}): " + "; ".join(diffs))
        return json.loads(json.dumps(dataclasses.asdict(self.model_config)))

    def prepare_batches(self) -> int:
        """Encode the training sentences into windows and plan the bucketed batches."""
        cfg = self.cfg
        unknown = self.vocab.unknown_chars(c for s in self.splits.train for c in s.chars)
        if unknown:
            log.info("%d distinct training characters (%d occurrences) map to [UNK]; most common: %s",
                     len(unknown), sum(unknown.values()), " ".join(c for c, _ in unknown.most_common(10)))
        t0 = time.time()
        train_corpus = self.featurizer.encode(self.splits.train, self.labels)
        max_chars = cfg.max_seq_len - 2
        windows = make_windows([len(s.chars) for s in self.splits.train], max_chars, cfg.window_overlap)
        split = len(windows) - len(self.splits.train)
        if split:
            log.info("%d long training sentences were split into overlapping windows (%d extra rows)",
                     sum(len(s.chars) > max_chars for s in self.splits.train), split)
        # --batch-size is per replica: a step trains batch_size x replicas rows (split evenly over the replicas).
        self.planner = self.featurizer.planner(train_corpus, windows, cfg.batch_size * self.replicas,
                                               cfg.max_seq_len)
        steps = self.planner.num_batches()
        log.info("encoded %d training windows into %d batches/epoch of %d rows (%d per replica x %d replica(s); "
                 "buckets %s) in %.1fs", len(windows), steps, cfg.batch_size * self.replicas, cfg.batch_size,
                 self.replicas, self.planner.buckets, time.time() - t0)
        return steps

    def build(self, jit: bool) -> NerTrainable:
        """NerTagger with pretrained weights or the model to continue from, character vectors, a predictor."""
        cfg = self.cfg
        self.model = NerTagger(self.model_config)
        self.model.build_weights()
        if self.init_files is not None:
            self.init_report = warm_start.continue_from(self.model, self.init_files, cfg.init)
        else:
            self.init_report = load_pretrained(self.model.encoder, cfg.init) if cfg.init else None
        log.info("model: %s encoder parameters (%s), %s head parameters",
                 f"{_count(self.model.encoder_variables):,}", f"pretrained: {cfg.init}" if cfg.init
                 else "random initialization", f"{_count(self.model.head_variables):,}")
        frozen = self._set_char_vectors()
        self.predictor = Predictor(self.model, self.featurizer, cfg.eval_batch_size, cfg.window_overlap, jit=jit)
        return NerTrainable(self.model, self._encoder_lr(), cfg.head_lr, frozen)

    def _encoder_lr(self) -> float:
        """--encoder-lr; by default the rate the init model's encoder was trained at when continuing one, 5e-5
        for another pretrained encoder, else --head-lr."""
        cfg = self.cfg
        if cfg.encoder_lr is not None:
            return cfg.encoder_lr
        if self.init_files is not None:
            lr = warm_start.trained_encoder_lr(self.init_files, PRETRAINED_ENCODER_LR) or PRETRAINED_ENCODER_LR
            log.info("encoder learning rate %g: what the encoder of the model to continue from was trained at "
                     "(--encoder-lr sets another)", lr)
            return lr
        return PRETRAINED_ENCODER_LR if cfg.init else cfg.head_lr

    def _set_char_vectors(self) -> Optional[FrozenRows]:
        """Copy the pretrained character vectors into their rows of the table; with freezing, the rows to keep."""
        init = self.char_init
        if init is None:
            return None
        table = self.model.encoder.embeddings.word_embeddings
        values = table.numpy()
        values[init.rows] = init.values
        table.assign(values)
        r = init.report
        log.info("character vectors %s: %d x %d; %d rows of the character table set from them (%d more share an "
                 "id with an earlier vector: the first kept%s; %d not in the vocabulary; %d not one character); they "
                 "cover %.2f%% of the training characters (%.2f%% of the distinct ones)%s",
                 r["file"], r["vectors"], r["dim"], r["rows_initialised"], r["shared_id_collisions"],
                 f", e.g. {', '.join(r['collision_examples'])}" if r["collision_examples"] else "",
                 r["skipped_not_in_vocab"], r["skipped_not_one_char"], 100 * r["train_token_coverage"],
                 100 * r["train_type_coverage"], "; frozen" if self.cfg.freeze_char_embeddings else "")
        if not (self.cfg.freeze_char_embeddings and len(init.rows)):
            return None
        keep = np.ones([int(table.shape[0]), 1], np.float32)
        keep[init.rows] = 0.0
        return FrozenRows(tf.constant(init.rows[:, None]), tf.constant(init.values), tf.constant(keep))

    def train_batches(self, epoch: int, skip: int):
        return self.planner.dataset(shuffle=True, seed=self.cfg.seed, epoch=epoch, skip=skip)

    def batch_size(self, batch: Batch) -> Tuple[int, int]:
        """Rows with characters, and the tokens the encoder reads for them ([CLS] characters [SEP])."""
        lengths = batch["lengths"].numpy()
        rows = int(np.count_nonzero(lengths))
        return rows, int(lengths.sum()) + 2 * rows

    def start(self, run_id: str) -> None:
        """Clear an interrupted publish's staging folders; save the run config beside the model folders."""
        self.run_id = run_id
        stale = modeldir.remove_stale_staging(self.out)
        if stale:
            log.info("removed %d staging folder(s) of an interrupted publish: %s", len(stale),
                     ", ".join(p.name for p in stale))
        save_json(self.cfg, self.out / TRAIN_CONFIG_FILE)

    # ---- evaluation and publishing ------------------------------------------------------------------------------
    def evaluate_sentences(self, sentences: List[Sentence], corpus: Optional[EncodedCorpus] = None) -> Dict:
        """Entity-level report over every character of every sentence."""
        pred = self.predictor.predict_sentences(sentences, corpus)
        return entity_report([s.tags for s in sentences], pred)

    def evaluate(self, epoch: int) -> EpochEval:
        if self._dev_corpus is None:  # encoded once, evaluated after every epoch
            self._dev_corpus = self.featurizer.encode(self.splits.dev)
        report = self.evaluate_sentences(self.splits.dev, self._dev_corpus)
        return EpochEval(score=report["f1"], line={DEV_F1: report["f1"]},
                         summaries={"dev/f1": report["f1"], "dev/precision": report["precision"],
                                    "dev/recall": report["recall"]})

    def publish(self, epoch: Optional[int], score: Optional[float], step: int) -> Path:
        """Publish the current weights with config, vocabularies and train config as the output's model."""
        info = {"run_id": self.run_id, "epoch": epoch, "dev_f1": score, "step": step}
        folder = store.publish_model(self.out, self.model, self.featurizer, self.cfg.vocab_file, info,
                                     extra_files=[self.out / TRAIN_CONFIG_FILE])
        removed = modeldir.remove_flat_files(self.out)
        if removed:
            log.info("removed the previous model's flat-layout files from %s: %s", self.out,
                     ", ".join(p.name for p in removed))
        return folder

    def _best_folder(self, step: int) -> Path:
        """The published folder of this run's best epoch (publishing the current weights if there is none)."""
        folder = modeldir.current_folder(self.out)
        manifest = modeldir.read_manifest(folder) if folder is not None else None
        if manifest is None or manifest.get("run_id") != self.run_id:
            folder = self.publish(epoch=None, score=None, step=step)  # e.g. all epochs done before this resume
        return folder

    def final_report(self, summary: RunSummary) -> Dict[str, Any]:
        """Reload the best weights, evaluate dev (and test), write eval_results.json, print metric lines."""
        folder = self._best_folder(summary.steps)
        store.restore_weights(self.model, folder)
        results: Dict[str, Any] = {
            "model": str(folder),
            "best_epoch": summary.best_epoch,
            "epochs_run": summary.epochs_run,
            "steps": summary.steps,
            "dev_source": self.splits.dev_source,
            "precision_policy": summary.precision_policy,
            "jit": summary.jit,
            "train_samples_per_sec": summary.train_samples_per_sec,
            # --batch-size is per replica; a step's global batch is it times the replicas of all workers
            "batch_size_per_replica": self.cfg.batch_size,
            "replicas": summary.replicas,
            "workers": summary.workers,
            "global_batch_size": self.cfg.batch_size * summary.replicas,
            "corpora": [dataclasses.asdict(s) for s in self.splits.stats],
            "unseen_types": self.splits.unseen_types,  # entity types of dev/test that train lacks, with counts
            "pretrained_init": self.init_report,
            "char_embeddings": self.char_init.report if self.char_init is not None else None,
        }
        for name, sentences in (("dev", self.splits.dev), ("test", self.splits.test)):
            if not sentences:
                continue
            report = self.evaluate_sentences(sentences)
            results[name] = report
            log.info("%s (%d sentences, %d chars):\n%s", name, report["sentences"], report["chars"],
                     format_table(report))
            for line in metric_lines(name, report):
                emit(line)
        # The headline: test when there is a test set, else dev.
        headline = results.get("test") or results["dev"]
        for line in metric_lines("eval", headline):
            emit(line)
        results["wall_seconds"] = time.time() - summary.started
        save_json(results, self.out / RESULTS_FILE)
        log.info("results written to %s", self.out / RESULTS_FILE)
        return results
