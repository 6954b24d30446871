"""The training run: data, model, XLA-compiled train step, dev-based selection, resume, final report.

The output directory is locked for the run (train/lock.py); a checkpoint is resumed only when its
run record matches (train/fingerprint.py); each best epoch is published as a whole (model/modeldir.py).

A hand-written loop rather than model.fit: resuming mid-epoch at the exact batch, two learning
rates with one loss scale, and fixed-shape bucketed batches are all simpler to get right here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from albert_ner.config import (PRESETS, EncoderConfig, HeadConfig, ModelConfig, TrainConfig, preset_encoder,
                               save_json)
from albert_ner.data.char_vectors import TableInit, read_char_vectors, table_init
from albert_ner.data.corpus import Sentence
from albert_ner.data.tags import convert_scheme
from albert_ner.data.bigrams import BigramVocab
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import EncodedCorpus, labels_from_sentences, make_windows
from albert_ner.data.splits import Splits, load_splits
from albert_ner.data.vocab import Vocab
from albert_ner.infer.predictor import INPUT_KEYS, Predictor
from albert_ner.model import modeldir, store, warm_start
from albert_ner.model.modeldir import ModelFiles
from albert_ner.model.noise import step_seed
from albert_ner.model.tagger import NerTagger
from albert_ner.train import fingerprint
from albert_ner.train.lock import hold_output_dir
from albert_ner.train.optim import DynamicLossScale, make_optimizer
from albert_ner.train.precision import apply_precision, resolve_jit
from albert_ner.train.report import entity_report, format_table, metric_lines
from albert_ner.weights.convert import load_pretrained, pretrained_encoder_config
from pretrained.cache import unpacked_local

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
RESULTS_FILE = "eval_results.json"
TRAIN_CONFIG_FILE = "train_config.json"
PRETRAINED_ENCODER_LR = 5e-5  # default peak LR of a pretrained encoder (the head keeps --head-lr)


def emit(line: str) -> None:
    """Print one metric line to stdout at once (log scrapers such as SageMaker's read these)."""
    print(line, flush=True)


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


class TrainingInterrupted(RuntimeError):
    """A stop signal arrived mid-training; a resumable checkpoint was written first."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """Set by SIGTERM (e.g. a SageMaker spot interruption) or SIGINT; checked after every train step."""

    def __init__(self):
        self.signum: Optional[int] = None


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """Turn the signals into a StopRequest for the duration (main thread only; elsewhere a no-op)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum, frame):
        log.warning("received signal %d: stopping after this step with a checkpoint", signum)
        stop.signum = signum

    previous = {sig: signal.signal(sig, request) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class TrainState(tf.Module):
    """Where training stands; checkpointed with the model and optimizers for exact resume."""

    def __init__(self):
        super().__init__(name="train_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_f1 = tf.Variable(-1.0, dtype=tf.float32, trainable=False)
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.samples = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The epoch's loss so far, so that a resumed epoch reports the mean over all its batches.
        self.epoch_loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.epoch_loss_batches = tf.Variable(0, dtype=tf.int64, trainable=False)


class Trainer:
    """Runs one TrainConfig end to end and writes a self-contained model directory."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self._dev_corpus: Optional[EncodedCorpus] = None

    # ---- setup -------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Check that a checkpoint to resume is of this run, then data, model, optimizers; runs under the lock."""
        cfg = self.cfg
        tf.keras.utils.set_random_seed(cfg.seed)
        self.policy = apply_precision(cfg.precision)
        self.jit = resolve_jit(cfg.jit)
        log.info("XLA compilation of train/predict steps: %s", "on" if self.jit else "off")
        self._open_init()
        self._check_resume()
        self._prepare_data()
        self._build_model_and_optimizers()
        self._start_run()

    def _open_init(self) -> None:
        """When --init is a model `albert-ner train` wrote (or an archive of one), find and check it."""
        self.init_files: Optional[ModelFiles] = None
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

    def _check_resume(self) -> None:
        """Before any work: resume only a checkpoint whose run record matches this run's settings and files."""
        ckpt_dir = self.out / CHECKPOINT_DIR
        self.fingerprint = fingerprint.run_fingerprint(self.cfg)
        latest = tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        self.run_record: Optional[Dict] = None
        if not (self.cfg.resume and latest):
            return
        record = fingerprint.load_run_record(ckpt_dir)
        diffs = fingerprint.differences(record["fingerprint"], self.fingerprint)
        if diffs:
            raise fingerprint.ResumeMismatch(fingerprint.mismatch_message(ckpt_dir, diffs))
        self.run_record = record

    def _prepare_data(self) -> None:
        """Read and validate the corpora, build the featurizer and the model config, plan batches."""
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
        labels = labels_from_sentences(self.splits.train)
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
        self.model_config = build_model_config(cfg, self.vocab, labels, len(bigrams) if bigrams else 0,
                                               self.char_init.report["dim"] if self.char_init else None)
        if init is not None:
            diffs = warm_start.encoder_differences(self.model_config.encoder, init.config.encoder)
            if diffs:
                raise ValueError(f"--encoder-config {cfg.encoder_config}: not the encoder of the model to continue "
                                 f"from ({init.folder / 'model_config.json'}): " + "; ".join(diffs))
        self._check_resume_model_config()
        unknown = self.vocab.unknown_chars(c for s in self.splits.train for c in s.chars)
        if unknown:
            log.info("%d distinct training characters (%d occurrences) map to [UNK]; most common: %s",
                     len(unknown), sum(unknown.values()), " ".join(c for c, _ in unknown.most_common(10)))

        t0 = time.time()
        train_corpus = self.featurizer.encode(self.splits.train, labels)
        max_chars = cfg.max_seq_len - 2
        windows = make_windows([len(s.chars) for s in self.splits.train], max_chars, cfg.window_overlap)
        split = len(windows) - len(self.splits.train)
        if split:
            log.info("%d long training sentences were split into overlapping windows (%d extra rows)",
                     sum(len(s.chars) > max_chars for s in self.splits.train), split)
        self.planner = self.featurizer.planner(train_corpus, windows, cfg.batch_size, cfg.max_seq_len)
        self.steps_per_epoch = self.planner.num_batches()
        log.info("encoded %d training windows into %d batches/epoch (buckets %s) in %.1fs",
                 len(windows), self.steps_per_epoch, self.planner.buckets, time.time() - t0)

    def _build_model_and_optimizers(self) -> None:
        """The model, its two AdamW groups, the loss scale, the checkpoint and the compiled steps."""
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
        self._set_char_vectors()
        total = self.steps_per_epoch * cfg.epochs
        warmup = int(cfg.warmup_ratio * total)
        encoder_lr = self._encoder_lr()
        self.encoder_opt = make_optimizer(encoder_lr, cfg.weight_decay, warmup, total,
                                          self.model.encoder_variables, "encoder_adamw")
        self.head_opt = make_optimizer(cfg.head_lr, cfg.weight_decay, warmup, total,
                                       self.model.head_variables, "head_adamw")
        self.loss_scale = DynamicLossScale() if self.policy == "mixed_float16" else None
        self.state = TrainState()
        tracked = dict(model=self.model, encoder_optimizer=self.encoder_opt, head_optimizer=self.head_opt,
                       state=self.state)
        if self.loss_scale is not None:
            tracked["loss_scale"] = self.loss_scale
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.out / CHECKPOINT_DIR), max_to_keep=1)
        self.train_step = tf.function(self._train_step, jit_compile=self.jit, reduce_retracing=True)
        self.predictor = Predictor(self.model, self.featurizer, cfg.eval_batch_size, cfg.window_overlap, jit=self.jit)

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

    def _set_char_vectors(self) -> None:
        """Copy the pretrained character vectors into their rows of the table; with freezing, keep the rows'
        values and a gradient mask for the train step."""
        self.frozen_rows = None
        init = self.char_init
        if init is None:
            return
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
        if self.cfg.freeze_char_embeddings and len(init.rows):
            keep = np.ones([int(table.shape[0]), 1], np.float32)
            keep[init.rows] = 0.0
            self.frozen_rows = (tf.constant(init.rows[:, None]), tf.constant(init.values), tf.constant(keep))

    def _model_config_dict(self) -> Dict:
        return json.loads(json.dumps(dataclasses.asdict(self.model_config)))

    def _check_resume_model_config(self) -> None:
        """Same settings and files make the same model; this catches what they cannot (e.g. a label-set change)."""
        if self.run_record is not None and self.run_record.get("model_config") != self._model_config_dict():
            raise fingerprint.ResumeMismatch(fingerprint.mismatch_message(
                self.out / CHECKPOINT_DIR, ["model configuration (model_config in run.json) differs"]))

    def _start_run(self) -> None:
        """Restore the checkpoint of this run, or discard any other and record this run's fingerprint."""
        cfg, ckpt_dir = self.cfg, self.out / CHECKPOINT_DIR
        stale = modeldir.remove_stale_staging(self.out)
        if stale:
            log.info("removed %d staging folder(s) of an interrupted publish: %s", len(stale),
                     ", ".join(p.name for p in stale))
        if self.run_record is not None:
            latest = self.manager.latest_checkpoint
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            saved_epochs = self.run_record.get("epochs")
            if saved_epochs is not None and saved_epochs != cfg.epochs:
                log.warning("resuming with --epochs %d (the checkpoint's run had %d): the learning-rate schedule "
                            "is stretched over the new total from here on", cfg.epochs, saved_epochs)
            log.info("resumed from %s at epoch %d, batch %d", latest, int(self.state.epoch),
                     int(self.state.batch_in_epoch))
        else:
            if ckpt_dir.is_dir():
                if tf.train.latest_checkpoint(str(ckpt_dir)):
                    log.info("starting over: the checkpoint in %s is discarded (--no-resume)", ckpt_dir)
                shutil.rmtree(ckpt_dir)
                self.manager = tf.train.CheckpointManager(self.checkpoint, str(ckpt_dir), max_to_keep=1)
            self.run_record = fingerprint.new_run_record(self.fingerprint, self._model_config_dict())
        self.run_record["epochs"] = cfg.epochs
        fingerprint.save_run_record(ckpt_dir, self.run_record)
        self.run_id: str = self.run_record["run_id"]
        save_json(cfg, self.out / TRAIN_CONFIG_FILE)

    # ---- the compiled step -------------------------------------------------------------------
    def _train_step(self, batch: Dict[str, tf.Tensor]):
        model = self.model
        inputs = {k: batch[k] for k in INPUT_KEYS if k in batch}
        enc_vars, head_vars = model.encoder_variables, model.head_variables
        # Dropout masks are a function of (seed, epoch, batch), all in the checkpoint: a resumed run draws
        # exactly the masks the uninterrupted one would have.
        seed = tf.stack([tf.constant(self.cfg.seed, tf.int64), self.state.epoch])
        seed = tf.random.experimental.stateless_fold_in(seed, self.state.batch_in_epoch)
        with tf.GradientTape() as tape, step_seed(seed):
            loss = model.nll_loss(inputs, batch["labels"], training=True)
            scaled = loss * self.loss_scale.scale if self.loss_scale is not None else loss
        grads = tape.gradient(scaled, enc_vars + head_vars)
        table = model.encoder.embeddings.word_embeddings
        if self.frozen_rows is not None:  # frozen character vectors: no gradient, so no say in the clipping
            grads = [_mask_rows(g, self.frozen_rows[2]) if v is table else g
                     for g, v in zip(grads, enc_vars + head_vars)]
        finite = tf.constant(True)
        if self.loss_scale is not None:
            grads, finite = self.loss_scale.unscale(grads)
        grads, norm = tf.clip_by_global_norm(grads, self.cfg.clip_norm)
        n_enc = len(enc_vars)

        def apply():
            self.encoder_opt.apply_gradients(zip(grads[:n_enc], enc_vars))
            self.head_opt.apply_gradients(zip(grads[n_enc:], head_vars))
            return tf.constant(True)

        if self.loss_scale is not None:
            tf.cond(finite, apply, lambda: tf.constant(False))  # skip the update on overflow
            self.loss_scale.update(finite)
        else:
            apply()
        if self.frozen_rows is not None:  # undo AdamW's weight decay on them
            table.scatter_nd_update(self.frozen_rows[0], self.frozen_rows[1])
        return loss, norm, finite

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, sentences: List[Sentence], corpus: Optional[EncodedCorpus] = None) -> Dict:
        """Entity-level report over every character of every sentence."""
        pred = self.predictor.predict_sentences(sentences, corpus)
        return entity_report([s.tags for s in sentences], pred)

    # ---- the run -----------------------------------------------------------------------------
    def run(self) -> Dict:
        """Train, select on dev, evaluate the best model on dev and test; returns the results.

        The output directory is locked for the whole run: a second run into it fails at once.
        """
        started = time.time()
        with hold_output_dir(self.out):
            self._setup()
            with stop_on_signals() as stop:
                return self._train(started, stop)

    def _train(self, started: float, stop: StopRequest) -> Dict:
        cfg, state = self.cfg, self.state
        writer = tf.summary.create_file_writer(str(self.out / "tensorboard"))
        train_seconds, train_samples = 0.0, 0
        from tqdm import tqdm

        while int(state.epoch) < cfg.epochs and not self._should_stop():
            epoch, skip = int(state.epoch), int(state.batch_in_epoch)
            bar = tqdm(total=self.steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       unit="batch", disable=None, mininterval=2.0)
            losses: List[float] = []  # this process's batches, for the step lines
            t_epoch = time.time()
            for batch in self.planner.dataset(shuffle=True, seed=cfg.seed, epoch=epoch, skip=skip):
                t0 = time.time()
                loss, norm, finite = self.train_step(batch)
                loss = float(loss)
                rows = int(np.count_nonzero(batch["lengths"].numpy()))
                if int(state.samples) > 0:  # leave the first (compiling) step out of the speed
                    train_seconds += time.time() - t0
                    train_samples += rows
                state.samples.assign_add(rows)
                state.batch_in_epoch.assign_add(1)
                state.epoch_loss_sum.assign_add(loss)
                state.epoch_loss_batches.assign_add(1)
                losses.append(loss)
                step = int(self.head_opt.iterations)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss} at step {step}")
                if step % cfg.log_every == 0:
                    speed = train_samples / train_seconds if train_seconds else 0.0
                    emit(f"step = {step}; train_loss = {np.mean(losses[-cfg.log_every:]):.4f}; "
                         f"samples_per_sec = {speed:.1f}")
                    with writer.as_default(step=step):
                        tf.summary.scalar("train/loss", loss)
                        tf.summary.scalar("train/grad_norm", norm)
                        tf.summary.scalar("train/head_lr", self.head_opt.learning_rate)
                if step % cfg.checkpoint_every == 0:
                    self.manager.save(checkpoint_number=step)
                if stop.signum is not None:
                    bar.close()
                    path = self.manager.save(checkpoint_number=step)
                    writer.flush()
                    raise TrainingInterrupted(stop.signum, f"signal {stop.signum} at epoch {epoch + 1}, batch "
                                                           f"{int(state.batch_in_epoch)}: checkpoint saved to {path}; "
                                                           "run again to resume")
            bar.close()
            if self._dev_corpus is None:  # encoded once, evaluated after every epoch
                self._dev_corpus = self.featurizer.encode(self.splits.dev)
            report = self.evaluate(self.splits.dev, self._dev_corpus)
            f1 = report["f1"]
            batches = int(state.epoch_loss_batches)  # the whole epoch's, also across a resume
            epoch_loss = float(state.epoch_loss_sum) / batches if batches else float("nan")
            emit(f"epoch = {epoch + 1}; epoch_train_loss = {epoch_loss:.4f}; "
                 f"dev_f1 = {f1:.4f}; epoch_seconds = {time.time() - t_epoch:.1f}")
            with writer.as_default(step=int(self.head_opt.iterations)):
                tf.summary.scalar("dev/f1", f1)
                tf.summary.scalar("dev/precision", report["precision"])
                tf.summary.scalar("dev/recall", report["recall"])
            if f1 > float(state.best_f1):
                state.best_f1.assign(f1)
                state.best_epoch.assign(epoch + 1)
                state.bad_epochs.assign(0)
                folder = self._publish(epoch=epoch + 1, dev_f1=f1)
                log.info("new best dev F1 %.4f at epoch %d: model published as %s", f1, epoch + 1, folder)
            else:
                state.bad_epochs.assign_add(1)
            state.epoch.assign_add(1)
            state.batch_in_epoch.assign(0)
            state.epoch_loss_sum.assign(0.0)
            state.epoch_loss_batches.assign(0)
            self.manager.save(checkpoint_number=int(self.head_opt.iterations))
        writer.flush()
        return self._final_report(started, train_samples, train_seconds)

    def _should_stop(self) -> bool:
        if self.cfg.patience and int(self.state.bad_epochs) >= self.cfg.patience:
            log.info("early stopping: no dev F1 improvement for %d epochs", int(self.state.bad_epochs))
            return True
        return False

    def _publish(self, epoch: Optional[int], dev_f1: Optional[float]) -> Path:
        """Publish the current weights with config, vocabularies and train config as the output's model."""
        info = {"run_id": self.run_id, "epoch": epoch, "dev_f1": dev_f1, "step": int(self.head_opt.iterations)}
        folder = store.publish_model(self.out, self.model, self.featurizer, self.cfg.vocab_file, info,
                                     extra_files=[self.out / TRAIN_CONFIG_FILE])
        removed = modeldir.remove_flat_files(self.out)
        if removed:
            log.info("removed the previous model's flat-layout files from %s: %s", self.out,
                     ", ".join(p.name for p in removed))
        return folder

    def _best_folder(self) -> Path:
        """The published folder of this run's best epoch (publishing the current weights if there is none)."""
        folder = modeldir.current_folder(self.out)
        manifest = modeldir.read_manifest(folder) if folder is not None else None
        if manifest is None or manifest.get("run_id") != self.run_id:
            folder = self._publish(epoch=None, dev_f1=None)  # e.g. all epochs done before this resume
        return folder

    def _final_report(self, started: float, train_samples: int, train_seconds: float) -> Dict:
        """Reload the best weights, evaluate dev (and test), write eval_results.json, print metric lines."""
        folder = self._best_folder()
        store.restore_weights(self.model, folder)
        results: Dict = {
            "model": str(folder),
            "best_epoch": int(self.state.best_epoch),
            "epochs_run": int(self.state.epoch),
            "steps": int(self.head_opt.iterations),
            "dev_source": self.splits.dev_source,
            "precision_policy": self.policy,
            "jit": self.jit,
            "train_samples_per_sec": (train_samples / train_seconds) if train_seconds else None,
            "corpora": [dataclasses.asdict(s) for s in self.splits.stats],
            "unseen_types": self.splits.unseen_types,  # entity types of dev/test that train lacks, with counts
            "pretrained_init": self.init_report,
            "char_embeddings": self.char_init.report if self.char_init is not None else None,
        }
        for name, sentences in (("dev", self.splits.dev), ("test", self.splits.test)):
            if not sentences:
                continue
            report = self.evaluate(sentences)
            results[name] = report
            log.info("%s (%d sentences, %d chars):\n%s", name, report["sentences"], report["chars"],
                     format_table(report))
            for line in metric_lines(name, report):
                emit(line)
        # The headline: test when there is a test set, else dev.
        headline = results.get("test") or results["dev"]
        for line in metric_lines("eval", headline):
            emit(line)
        results["wall_seconds"] = time.time() - started
        save_json(results, self.out / RESULTS_FILE)
        log.info("results written to %s", self.out / RESULTS_FILE)
        return results


def _mask_rows(grad, keep: tf.Tensor):
    """A table's gradient with the rows where `keep` [V,1] is 0 zeroed (dense or IndexedSlices)."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * tf.cast(tf.gather(keep, grad.indices), grad.values.dtype),
                                grad.indices, grad.dense_shape)
    return grad * tf.cast(keep, grad.dtype)


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def train(cfg: TrainConfig) -> Dict:
    """Run one training configuration; see Trainer."""
    return Trainer(cfg).run()
