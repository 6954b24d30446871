"""The generic training run of a Task: precision and XLA, one AdamW per parameter group under one loss scale,
the compiled step, checkpoints and exact resume, stop signals, metric lines and TensorBoard, epochs, patience.

What is trained, on which batches, how an epoch is scored and what is published is the task's (NER:
train/ner_task.py). The runner only steps, counts and keeps the run resumable: the output directory is
locked (train/lock.py), a checkpoint is resumed only when its run record matches (train/fingerprint.py).

A hand-written loop rather than model.fit: resuming mid-epoch at the exact batch, several learning rates
under one loss scale, and fixed-shape bucketed batches are all simpler to get right here.
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import logging
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from albert_ner.model.noise import step_seed
from albert_ner.train import distribute, fingerprint
from albert_ner.train.lock import hold_output_dir
from albert_ner.train.optim import DynamicLossScale, make_optimizer
from albert_ner.train.precision import apply_precision, resolve_jit

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
Batch = Dict[str, tf.Tensor]
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def emit(line: str) -> None:
    """Print one metric line to stdout at once (log scrapers such as SageMaker's read these)."""
    print(line, flush=True)


def step_line(step: int, loss: float, samples_per_sec: float, metrics: Optional[Dict[str, float]] = None) -> str:
    """'step = 50; train_loss = 1.2345; samples_per_sec = 812.3', then '; name = value' per task metric."""
    return (f"step = {step}; train_loss = {loss:.4f}; samples_per_sec = {samples_per_sec:.1f}"
            + "".join(f"; {k} = {v:.4f}" for k, v in (metrics or {}).items()))


def epoch_line(epoch: int, loss: float, values: Dict[str, float], seconds: float) -> str:
    """'epoch = 1; epoch_train_loss = 2.3456; ' + 'name = value; ' per evaluation value + 'epoch_seconds = 123.4'."""
    return (f"epoch = {epoch}; epoch_train_loss = {loss:.4f}; "
            + "".join(f"{k} = {v:.4f}; " for k, v in values.items()) + f"epoch_seconds = {seconds:.1f}")


# ---- stop signals --------------------------------------------------------------------------------------------
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


# ---- what a task gives the runner ----------------------------------------------------------------------------
class TrainState(tf.Module):
    """Where training stands; checkpointed with the model and optimizers for exact resume.

    `best_f1` holds the best epoch score of any task (the name is kept: it is a key of existing checkpoints);
    it starts at -inf so that any first score, negative ones too, is an improvement."""

    def __init__(self):
        super().__init__(name="train_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_f1 = tf.Variable(float("-inf"), dtype=tf.float32, trainable=False)
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.samples = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The epoch's loss so far, so that a resumed epoch reports the mean over all its batches.
        self.epoch_loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.epoch_loss_batches = tf.Variable(0, dtype=tf.int64, trainable=False)


class TrainTiming(tf.Module):
    """Seconds, rows and tokens of a run's timed train steps over all its processes (each process's first,
    compiling step left out): checkpointed, so a resumed run, or a finished one run again, reports the speed of
    its whole training. Its own checkpoint key, so checkpoints written before it existed still restore."""

    def __init__(self):
        super().__init__(name="train_timing")
        self.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.rows = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.tokens = tf.Variable(0, dtype=tf.int64, trainable=False)


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """Variables trained by one AdamW at one peak learning rate; checkpointed as `<name>_optimizer`."""
    name: str
    variables: Tuple[tf.Variable, ...]
    peak_lr: float


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The runner's configuration (a task maps its own config onto it)."""
    output_dir: str
    epochs: int
    seed: int = 42
    precision: str = "auto"        # float32 | mixed_float16 | mixed_bfloat16 | auto
    jit: Optional[bool] = None     # None: XLA when a GPU is visible
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    clip_norm: float = 1.0
    patience: int = 0              # epochs without a better score before stopping; 0: never
    log_every: int = 50
    checkpoint_every: int = 200
    resume: bool = True


@dataclasses.dataclass(frozen=True)
class EpochEval:
    """An epoch's evaluation: the score selected on (higher is better), the values printed in the epoch line
    (name -> value, between epoch_train_loss and epoch_seconds, 4 decimals) and TensorBoard scalars (tag -> value)."""
    score: float
    line: Dict[str, float]
    summaries: Dict[str, float]


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What the runner knows at the end, for the task's final report."""
    run_id: str
    started: float                 # time.time() when run() began
    best_epoch: int                # -1 when no epoch improved the score
    epochs_run: int
    steps: int
    precision_policy: str
    jit: bool
    train_samples_per_sec: Optional[float]
    train_tokens_per_sec: Optional[float]
    replicas: int = 1              # in sync, over all workers: a step's batch is the task's batch x replicas
    workers: int = 1


class Trainable(abc.ABC):
    """What the train step reads: the model, its parameter groups, the loss, and optional gradient hooks.

    Everything here is called while the step is traced, so it must be TensorFlow code (no host syncs)."""

    model: tf.Module  # checkpointed as `model`

    @abc.abstractmethod
    def parameter_groups(self) -> Sequence[ParamGroup]:
        """Every trainable variable in exactly one group; each group gets its own AdamW."""

    @abc.abstractmethod
    def loss_and_metrics(self, batch: Batch, training: bool) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """(scalar float32 loss, {name: float32 scalar}) for one batch; the names appear in step lines."""

    def adjust_gradients(self, grads: List, variables: Sequence[tf.Variable]) -> List:
        """Change the (still loss-scaled) gradients before unscaling and clipping; by default none."""
        return grads

    def after_update(self) -> None:
        """Runs after the optimizers applied the step (e.g. to restore frozen values); by default nothing.
        With several replicas it runs in cross-replica context: write variables with assign/scatter_update
        (which update every copy), not scatter_nd_update."""
        return None

    def loss_weight(self, batch: Batch) -> tf.Tensor:
        """How many units the loss of `batch` is a mean over (e.g. real rows): with several replicas the global
        loss is the mean over all replicas' units. By default 1: the mean of the replicas' losses."""
        return tf.constant(1.0)


class Task(abc.ABC):
    """A training task the Runner drives. Call order: open, fingerprint, [resume check], prepare, [model-config
    check], prepare_batches, build, [restore or fresh record], start, then per epoch train_batches/batch_size
    per step, evaluate (+ publish on a better score), and final_report.

    Under a distribution strategy every worker calls open .. build and train_batches (each reads the same
    global batches; the runner gives each replica its rows); start, evaluate, publish and final_report are
    called on the chief only (the chief's score is sent to the other workers)."""

    score_name: str = "score"  # in log lines, e.g. "dev F1"
    replicas: int = 1  # set by the runner before prepare_batches: replicas in sync (a task may size its batches by it)

    def open(self) -> None:
        """Cheap checks of the sources before anything else (e.g. that an init model is not the output)."""

    @abc.abstractmethod
    def fingerprint(self) -> Dict[str, Any]:
        """JSON: the settings and file contents that must match for a checkpoint to be resumed."""

    @abc.abstractmethod
    def fingerprint_differences(self, saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
        """One 'what: old (checkpoint) vs new (now)' line per difference; empty when a resume is safe."""

    @abc.abstractmethod
    def prepare(self) -> Dict[str, Any]:
        """Read and check the inputs; return the model configuration as JSON (stored in run.json, must match
        on resume)."""

    @abc.abstractmethod
    def prepare_batches(self) -> int:
        """Plan the training batches; return the number of steps per epoch."""

    @abc.abstractmethod
    def build(self, jit: bool) -> Trainable:
        """Build the model (weights created, pretrained ones loaded) under the run's precision policy."""

    @abc.abstractmethod
    def train_batches(self, epoch: int, skip: int) -> Iterable[Batch]:
        """Epoch `epoch`'s batches after the first `skip`, the same for the same (seed, epoch) in every run."""

    @abc.abstractmethod
    def batch_size(self, batch: Batch) -> Tuple[int, int]:
        """(real rows, real tokens) of a batch, for samples/s and tokens/s."""

    def start(self, run_id: str) -> None:
        """The run is recorded (restored or fresh): e.g. save the task's config beside the checkpoints."""

    @abc.abstractmethod
    def evaluate(self, epoch: int) -> EpochEval:
        """Evaluate the current weights after epoch `epoch` (1-based)."""

    @abc.abstractmethod
    def publish(self, epoch: int, score: float, step: int) -> Path:
        """Publish the current weights as the run's best model; returns where."""

    @abc.abstractmethod
    def final_report(self, summary: RunSummary) -> Dict[str, Any]:
        """After training: report on the best model (write files, emit lines); returns the results."""


# ---- the step ---------------------------------------------------------------------------------------------------
class StepResult(NamedTuple):
    loss: tf.Tensor       # unscaled
    grad_norm: tf.Tensor  # the global norm before clipping
    finite: tf.Tensor     # False when a float16 overflow skipped the update
    metrics: Dict[str, tf.Tensor]


@dataclasses.dataclass
class Training:
    """The objects one run trains with, made in one place (build_training), and its step function."""
    trainable: Trainable
    groups: Tuple[ParamGroup, ...]
    optimizers: Dict[str, tf.keras.optimizers.Optimizer]  # by group name, in group order
    state: TrainState
    loss_scale: Optional[DynamicLossScale]
    step: Callable[[Batch], StepResult]  # a pure function of the batch: compile it, or run it per replica
    timing: TrainTiming

    @property
    def iterations(self) -> tf.Variable:
        """The step counter (every group's optimizer steps together)."""
        return self.optimizers[self.groups[0].name].iterations

    def checkpoint(self, timing: bool = True) -> tf.train.Checkpoint:
        """model, `<group>_optimizer` per group, state, timing (unless told not: to restore a checkpoint written
        before it existed) and (float16) loss_scale."""
        tracked: Dict[str, Any] = dict(model=self.trainable.model)
        tracked.update({f"{name}_optimizer": opt for name, opt in self.optimizers.items()})
        tracked["state"] = self.state
        if timing:
            tracked["timing"] = self.timing
        if self.loss_scale is not None:
            tracked["loss_scale"] = self.loss_scale
        return tf.train.Checkpoint(**tracked)


def _check_groups(groups: Sequence[ParamGroup]) -> Tuple[ParamGroup, ...]:
    if not groups:
        raise ValueError("the task gave no parameter groups")
    seen_names, owner = set(), {}
    for g in groups:
        if not _GROUP_NAME.match(g.name) or g.name in seen_names:
            raise ValueError(f"parameter group name {g.name!r}: must be unique, lowercase letters, digits and _")
        seen_names.add(g.name)
        if not g.variables:
            raise ValueError(f"parameter group {g.name!r} has no variables")
        for v in g.variables:
            if id(v) in owner:
                raise ValueError(f"variable {v.name} is in parameter groups {owner[id(v)]!r} and {g.name!r}")
            owner[id(v)] = g.name
    return tuple(groups)


def _first_replica_aggregation(next_creator, **kwargs):
    """Non-trainable variables written inside the step (loss scale) take replica 0's value: every replica
    computes the same one after the gradient all-reduce."""
    if not kwargs.get("trainable", True) and kwargs.get("aggregation") in (None, tf.VariableAggregation.NONE):
        kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
    return next_creator(**kwargs)


def _scaled(grad, factor: tf.Tensor):
    """A gradient (dense or IndexedSlices) times a scalar."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * tf.cast(factor, grad.values.dtype), grad.indices, grad.dense_shape)
    return grad * tf.cast(factor, grad.dtype)


def build_training(trainable: Trainable, *, seed: int, policy: str, clip_norm: float, weight_decay: float,
                   warmup_steps: int, total_steps: int, strategy: Optional[tf.distribute.Strategy] = None,
                   jit: bool = False) -> Training:
    """Optimizers (one AdamW per group), loss scale (mixed_float16 only), train state, and the step that
    `albert-ner train` runs; benchmarks build exactly that step here. All of them are made in `strategy`'s
    scope (default: the current strategy); the model must have been built in it too.

    The step: forward and backward under a dropout seed of (seed, epoch, batch in epoch), the trainable's
    gradient hook, unscaling, global-norm clipping, one update per group (skipped on a float16 overflow),
    the after-update hook. It reads and writes only variables, so it can run under a distribution strategy.

    With several replicas each runs the step on its slice of the global batch: its loss is weighted by its
    share of the global loss weight (Trainable.loss_weight: NER's real rows), the gradients are summed over
    all replicas before the clip, so one update equals one device's on the whole global batch. Dropout seeds
    are folded with the replica id (masks differ from one device's; with dropout 0 the runs are equal). There
    `jit` compiles the forward and backward pass only (collectives and updates stay outside XLA); with one
    replica compile_step compiles the whole step."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        groups = _check_groups(trainable.parameter_groups())
        optimizers = {g.name: make_optimizer(g.peak_lr, weight_decay, warmup_steps, total_steps, g.variables,
                                             f"{g.name}_adamw") for g in groups}
        with tf.variable_creator_scope(_first_replica_aggregation):
            loss_scale = DynamicLossScale() if policy == "mixed_float16" else None
            state = TrainState()
            timing = TrainTiming()
    variables = [v for g in groups for v in g.variables]
    bounds = np.cumsum([0] + [len(g.variables) for g in groups])

    def forward_backward(batch: Batch, s: tf.Tensor):
        """(loss, loss weight, metrics, loss-scaled gradients) of this replica's batch; with several replicas
        the gradients are of loss * weight / rows (a sum over the replicas, divided by the global weight later)."""
        with tf.GradientTape() as tape, step_seed(s):
            loss, metrics = trainable.loss_and_metrics(batch, training=True)
            if replicas > 1:
                weight = tf.cast(trainable.loss_weight(batch), tf.float32)
                part = loss * weight / float(_rows(batch))
            else:
                weight, part = tf.constant(1.0), loss
            scaled = part * loss_scale.scale if loss_scale is not None else part
        grads = tape.gradient(scaled, variables)
        return loss, weight, metrics, list(trainable.adjust_gradients(grads, variables))

    local = tf.function(forward_backward, jit_compile=True) if (jit and replicas > 1) else forward_backward

    def step(batch: Batch) -> StepResult:
        # Dropout masks are a function of (seed, epoch, batch), all in the checkpoint: a resumed run draws
        # exactly the masks the uninterrupted one would have.
        s = tf.stack([tf.constant(seed, tf.int64), state.epoch])
        s = tf.random.experimental.stateless_fold_in(s, state.batch_in_epoch)
        if replicas > 1:
            s = tf.random.experimental.stateless_fold_in(s, distribute.replica_id())
        loss, weight, metrics, grads = local(batch, s)
        metrics = {k: tf.cast(v, tf.float32) for k, v in metrics.items()}
        if replicas > 1:
            # Sum over replicas, then make it the mean over the global batch's loss weight.
            present = [i for i, g in enumerate(grads) if g is not None]
            names = sorted(metrics)
            sums = distribute.all_reduce_sum([weight, loss * weight] + [metrics[k] * weight for k in names]
                                             + [grads[i] for i in present])
            total = sums[0]
            inv = tf.where(total > 0, 1.0 / tf.maximum(total, 1e-30), 0.0)
            loss = sums[1] * inv
            metrics = {k: v * inv for k, v in zip(names, sums[2:2 + len(names)])}
            factor = float(_rows(batch)) * inv
            for i, g in zip(present, sums[2 + len(names):]):
                grads[i] = _scaled(g, factor)
        finite = tf.constant(True)
        if loss_scale is not None:
            grads, finite = loss_scale.unscale(grads)
        grads, norm = tf.clip_by_global_norm(grads, clip_norm)

        def apply():
            for g, lo, hi in zip(groups, bounds[:-1], bounds[1:]):
                optimizers[g.name].apply_gradients(zip(grads[lo:hi], g.variables),
                                                   skip_gradients_aggregation=replicas > 1)
            return tf.constant(True)

        if loss_scale is not None:
            tf.cond(finite, apply, lambda: tf.constant(False))  # skip the update on overflow
            loss_scale.update(finite)
        else:
            apply()
        if replicas > 1:  # the hook writes variables: in cross-replica context, once for every copy
            tf.distribute.get_replica_context().merge_call(lambda _: trainable.after_update())
        else:
            trainable.after_update()
        return StepResult(loss, norm, finite, metrics)

    return Training(trainable, groups, optimizers, state, loss_scale, step, timing)


def _rows(batch: Batch) -> int:
    """The (static) number of rows of a replica's batch."""
    return int(next(iter(batch.values())).shape[0])


def compile_step(step: Callable[[Batch], StepResult], jit: bool):
    """The step as train runs it: one tf.function, XLA-compiled when `jit`."""
    return tf.function(step, jit_compile=jit, reduce_retracing=True)


# ---- the run ----------------------------------------------------------------------------------------------------
class Runner:
    """Runs one Task end to end under the output directory's lock; returns the task's final report."""

    def __init__(self, task: Task, settings: RunSettings):
        self.task = task
        self.settings = settings
        self.out = Path(settings.output_dir)
        self._dist: Optional[distribute.Distribution] = None
        self._worker_dir: Optional[Path] = None

    @property
    def dist(self) -> distribute.Distribution:
        """The process's distribution strategy and this worker's place in it (distribute.setup)."""
        if self._dist is None:
            self._dist = distribute.setup()
        return self._dist

    def run(self) -> Dict[str, Any]:
        """Train, select on the task's epoch score, report. The output directory is locked for the whole run:
        a second run into it fails at once. Under several workers only the chief locks and writes it; the
        others save their (required) checkpoint copies to a temporary folder, deleted after each save."""
        started = time.time()
        lock = hold_output_dir(self.out) if self.dist.is_chief else contextlib.nullcontext()
        try:
            with lock:
                self._setup()
                with stop_on_signals() as stop:
                    return self._train(started, stop)
        finally:
            if self._worker_dir is not None:
                shutil.rmtree(self._worker_dir, ignore_errors=True)

    # ---- setup ---------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Check that a checkpoint to resume is of this run, then data, model, optimizers; runs under the lock."""
        s = self.settings
        tf.keras.utils.set_random_seed(s.seed)
        self.policy = apply_precision(s.precision)
        self.jit = resolve_jit(s.jit)
        log.info("XLA compilation of train/predict steps: %s", "on" if self.jit else "off")
        self.task.open()
        self._check_resume()
        model_config = json.loads(json.dumps(self.task.prepare()))
        if self.run_record is not None and self.run_record.get("model_config") != model_config:
            raise fingerprint.ResumeMismatch(fingerprint.mismatch_message(
                self.out / CHECKPOINT_DIR, ["model configuration (model_config in run.json) differs"]))
        self.task.replicas = self.dist.replicas
        self.steps_per_epoch = int(self.task.prepare_batches())
        if self.steps_per_epoch < 1:
            raise ValueError(f"{self.out}: the training data make no batches")
        self._build()
        self._start_run(model_config)

    def _check_resume(self) -> None:
        """Before any work: resume only a checkpoint whose run record matches this run's settings and files."""
        ckpt_dir = self.out / CHECKPOINT_DIR
        self.run_fingerprint = self.task.fingerprint()
        latest = tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        self.run_record: Optional[Dict[str, Any]] = None
        if not (self.settings.resume and latest):
            return
        record = fingerprint.load_run_record(ckpt_dir)
        diffs = self.task.fingerprint_differences(record["fingerprint"], self.run_fingerprint)
        saved_replicas = record.get("distribution", {}).get("replicas", 1)  # records before distribution: 1
        if saved_replicas != self.dist.replicas:
            diffs = list(diffs) + [f"replicas: {saved_replicas} (checkpoint) vs {self.dist.replicas} (now): the "
                                   "global batch (batch size x replicas) would differ"]
        if diffs:
            raise fingerprint.ResumeMismatch(fingerprint.mismatch_message(ckpt_dir, diffs))
        self.run_record = record

    def _build(self) -> None:
        """The task's model, then optimizers, state, checkpoint and the compiled step."""
        s, dist = self.settings, self.dist
        with dist.strategy.scope():  # model, optimizers, loss scale and state: one copy per replica
            self.trainable = self.task.build(self.jit)
        self.model = self.trainable.model
        total = self.steps_per_epoch * s.epochs
        self.training = build_training(self.trainable, seed=s.seed, policy=self.policy, clip_norm=s.clip_norm,
                                       weight_decay=s.weight_decay, warmup_steps=int(s.warmup_ratio * total),
                                       total_steps=total, strategy=dist.strategy, jit=self.jit)
        self.optimizers = self.training.optimizers
        self.loss_scale = self.training.loss_scale
        self.state = self.training.state
        self.checkpoint = self.training.checkpoint()
        self.manager = self._checkpoint_manager()
        if dist.replicas > 1:
            self.train_step = distribute.distributed_step(dist, self.training.step)
        else:
            self.train_step = compile_step(self.training.step, self.jit)

    def _checkpoint_manager(self) -> tf.train.CheckpointManager:
        """The chief saves into the output directory; another worker into its own temporary folder."""
        if self.dist.is_chief:
            folder = self.out / CHECKPOINT_DIR
        else:
            if self._worker_dir is None:
                import tempfile
                self._worker_dir = Path(tempfile.mkdtemp(prefix=f"albert-ner-worker{self.dist.worker_index}-"))
            folder = self._worker_dir
        return tf.train.CheckpointManager(self.checkpoint, str(folder), max_to_keep=1)

    def _save(self, step: int) -> str:
        """Every worker saves (collective ops may take part); a non-chief's copy is deleted at once."""
        path = self.manager.save(checkpoint_number=step)
        if not self.dist.is_chief and self._worker_dir is not None:
            for item in self._worker_dir.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        return path

    def _start_run(self, model_config: Dict[str, Any]) -> None:
        """Restore the checkpoint of this run, or discard any other and record this run's fingerprint."""
        s, ckpt_dir, dist = self.settings, self.out / CHECKPOINT_DIR, self.dist
        if self.run_record is not None:
            latest = tf.train.latest_checkpoint(str(ckpt_dir))
            if any(name.startswith("timing/") for name, _ in tf.train.list_variables(latest)):
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            else:
                self.training.checkpoint(timing=False).restore(latest).assert_existing_objects_matched()
                log.info("%s predates the checkpointed step timing: train speed counts this process's steps only",
                         latest)
            saved_epochs = self.run_record.get("epochs")
            if saved_epochs is not None and saved_epochs != s.epochs:
                log.warning("resuming with --epochs %d (the checkpoint's run had %d): the learning-rate schedule "
                            "is stretched over the new total from here on", s.epochs, saved_epochs)
            log.info("resumed from %s at epoch %d, batch %d", latest, int(self.state.epoch.numpy()),
                     int(self.state.batch_in_epoch.numpy()))
        else:
            if ckpt_dir.is_dir() and dist.is_chief:
                if tf.train.latest_checkpoint(str(ckpt_dir)):
                    log.info("starting over: the checkpoint in %s is discarded (--no-resume)", ckpt_dir)
                shutil.rmtree(ckpt_dir)
                self.manager = self._checkpoint_manager()
            self.run_record = fingerprint.new_run_record(self.run_fingerprint, model_config)
        if not distribute.same_on_all_workers(dist, self.step_count):
            raise RuntimeError(f"{ckpt_dir}: the workers start from different steps (this one: {self.step_count}); "
                               "every host must see the chief's checkpoint folder (or none)")
        self.run_id: str = self.run_record["run_id"]
        if not dist.is_chief:
            return
        saved = fingerprint.load_run_record(ckpt_dir) if (ckpt_dir / fingerprint.RUN_FILE).is_file() else None
        self.run_record["epochs"] = s.epochs
        self.run_record["distribution"] = {"replicas": dist.replicas, "workers": dist.workers}
        if saved != self.run_record:  # unchanged on a plain resume: other workers may be reading it
            fingerprint.save_run_record(ckpt_dir, self.run_record)
        self.task.start(self.run_id)

    # ---- training ------------------------------------------------------------------------------------------
    @property
    def step_count(self) -> int:
        return int(self.training.iterations.numpy())

    def _train(self, started: float, stop: StopRequest) -> Dict[str, Any]:
        s, state, dist = self.settings, self.state, self.dist
        writer = (tf.summary.create_file_writer(str(self.out / TENSORBOARD_DIR)) if dist.is_chief
                  else tf.summary.create_noop_writer())
        speed = _Speed(self.training.timing)
        per_replica = None
        from tqdm import tqdm

        while int(state.epoch.numpy()) < s.epochs and not self._should_stop():
            epoch, skip = int(state.epoch.numpy()), int(state.batch_in_epoch.numpy())
            bar = tqdm(total=self.steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{s.epochs}",
                       unit="batch", disable=None, mininterval=2.0)
            window: List[Tuple[float, Dict[str, float]]] = []  # this process's steps since the last step line
            t_epoch = time.time()
            for batch in self.task.train_batches(epoch, skip):
                t0 = time.time()
                if per_replica is None:
                    per_replica = _rows(batch) // dist.replicas
                    log.info("global batch %d rows = %d per replica x %d replica(s)", _rows(batch), per_replica,
                             dist.replicas)
                result = self.train_step(distribute.split_batch(dist, batch) if dist.replicas > 1 else batch)
                loss = float(result.loss)
                rows, tokens = self.task.batch_size(batch)
                speed.add(time.time() - t0, rows, tokens)
                state.samples.assign_add(rows)
                state.batch_in_epoch.assign_add(1)
                state.epoch_loss_sum.assign_add(loss)
                state.epoch_loss_batches.assign_add(1)
                window.append((loss, {k: float(v) for k, v in result.metrics.items()}))
                step = self.step_count
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss} at step {step}")
                if step % s.log_every == 0:
                    self._log_step(writer, step, window, result, speed)
                    window = []
                if step % s.checkpoint_every == 0:
                    self._save(step)
                if distribute.any_worker(dist, stop.signum is not None):  # all workers stop after the same step
                    bar.close()
                    path = self._save(step)
                    writer.flush()
                    signum = stop.signum if stop.signum is not None else signal.SIGTERM
                    where = f"checkpoint saved to {path}" if dist.is_chief else "the chief saved a checkpoint"
                    batch_no = int(state.batch_in_epoch.numpy())
                    raise TrainingInterrupted(signum, f"signal {signum}{'' if stop.signum else ' on another worker'} "
                                                      f"at epoch {epoch + 1}, batch {batch_no}: {where}; "
                                                      "run again to resume")
            bar.close()
            self._end_epoch(writer, epoch, time.time() - t_epoch)
        writer.flush()
        if not dist.is_chief:  # the chief reports and publishes
            return {"chief": False, "worker": dist.worker_index, "steps": self.step_count,
                    "epochs_run": int(state.epoch.numpy()), "best_epoch": int(state.best_epoch.numpy())}
        return self.task.final_report(RunSummary(
            run_id=self.run_id, started=started, best_epoch=int(state.best_epoch.numpy()),
            epochs_run=int(state.epoch.numpy()),
            steps=self.step_count, precision_policy=self.policy, jit=self.jit,
            train_samples_per_sec=speed.samples_per_sec(), train_tokens_per_sec=speed.tokens_per_sec(),
            replicas=dist.replicas, workers=dist.workers))

    def _log_step(self, writer, step: int, window: List[Tuple[float, Dict[str, float]]], result: StepResult,
                  speed: "_Speed") -> None:
        """The step line (loss and the task's metrics averaged over the steps since the last line) and
        TensorBoard scalars."""
        metrics = {k: float(np.mean([m[k] for _, m in window if k in m])) for k in window[-1][1]}
        if not self.dist.is_chief:
            return
        emit(step_line(step, float(np.mean([l for l, _ in window])), speed.samples_per_sec() or 0.0, metrics))
        with writer.as_default(step=step):
            tf.summary.scalar("train/loss", result.loss)
            tf.summary.scalar("train/grad_norm", result.grad_norm)
            for name, opt in self.optimizers.items():
                tf.summary.scalar(f"train/{name}_lr", opt.learning_rate)
            tf.summary.scalar("train/samples_per_sec", speed.samples_per_sec() or 0.0)
            tf.summary.scalar("train/tokens_per_sec", speed.tokens_per_sec() or 0.0)
            for k, v in metrics.items():
                tf.summary.scalar(f"train/{k}", v)

    def _end_epoch(self, writer, epoch: int, seconds: float) -> None:
        """Evaluate, print the epoch line, publish on a better score, then checkpoint the epoch's end."""
        state, chief = self.state, self.dist.is_chief
        ev = self.task.evaluate(epoch + 1) if chief else None  # evaluated on the chief, its score sent to all
        score = distribute.chief_value(self.dist, ev.score if ev is not None else 0.0)
        batches = int(state.epoch_loss_batches.numpy())  # the whole epoch's, also across a resume
        epoch_loss = float(state.epoch_loss_sum.numpy()) / batches if batches else float("nan")
        if ev is not None:
            emit(epoch_line(epoch + 1, epoch_loss, ev.line, seconds))
            with writer.as_default(step=self.step_count):
                for tag, value in ev.summaries.items():
                    tf.summary.scalar(tag, value)
        if score > float(state.best_f1.numpy()):
            state.best_f1.assign(score)
            state.best_epoch.assign(epoch + 1)
            state.bad_epochs.assign(0)
            if chief:
                folder = self.task.publish(epoch + 1, score, self.step_count)
                log.info("new best %s %.4f at epoch %d: model published as %s", self.task.score_name, score,
                         epoch + 1, folder)
        else:
            state.bad_epochs.assign_add(1)
        state.epoch.assign_add(1)
        state.batch_in_epoch.assign(0)
        state.epoch_loss_sum.assign(0.0)
        state.epoch_loss_batches.assign(0)
        self._save(self.step_count)

    def _should_stop(self) -> bool:
        if self.settings.patience and int(self.state.bad_epochs.numpy()) >= self.settings.patience:
            log.info("early stopping: no %s improvement for %d epochs", self.task.score_name,
                     int(self.state.bad_epochs.numpy()))
            return True
        return False


class _Speed:
    """Rows and tokens per second of the run's train steps, leaving out each process's first (compiling) step;
    the totals live in the checkpointed TrainTiming, so they span resumes."""

    def __init__(self, timing: TrainTiming):
        self.timing = timing
        self.process_steps = 0

    def add(self, seconds: float, rows: int, tokens: int) -> None:
        self.process_steps += 1
        if self.process_steps > 1:
            self.timing.seconds.assign_add(seconds)
            self.timing.rows.assign_add(rows)
            self.timing.tokens.assign_add(tokens)

    def samples_per_sec(self) -> Optional[float]:
        return self._per_second(self.timing.rows)

    def tokens_per_sec(self) -> Optional[float]:
        return self._per_second(self.timing.tokens)

    def _per_second(self, count: tf.Variable) -> Optional[float]:
        seconds = float(self.timing.seconds.numpy())
        return int(count.numpy()) / seconds if seconds else None
