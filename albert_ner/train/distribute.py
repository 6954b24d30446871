"""The tf.distribute strategy a training run uses, chosen from the environment, and the per-process facts the
runner needs from it (replicas, workers, chief).

  several hosts   TF_CONFIG with more than one worker (set by the SageMaker TensorFlow container for its
                  multi_worker_mirrored_strategy distribution, or by you), or SM_HOSTS with more than one host
                  (a custom container: TF_CONFIG is built here, port ALBERT_NER_PORT, default 8890)
                  -> MultiWorkerMirroredStrategy over every GPU of every host (one CPU replica per host without)
  several devices ALBERT_NER_DEVICES=N (N logical CPU devices: for tests and CPU machines), or more than one
                  visible GPU -> MirroredStrategy over them
  otherwise       the default strategy (one device; nothing changes)

The strategy is made once per process, before the first TensorFlow op (logical devices and the collective
runtime can only be set up then).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

log = logging.getLogger(__name__)

ENV_DEVICES = "ALBERT_NER_DEVICES"
ENV_PORT = "ALBERT_NER_PORT"
DEFAULT_PORT = 8890  # the worker port in a TF_CONFIG built from SM_HOSTS


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A strategy and where this process stands in it."""
    strategy: tf.distribute.Strategy
    kind: str            # default | mirrored | multi_worker
    replicas: int        # in sync over the whole cluster
    workers: int
    worker_index: int
    is_chief: bool

    def describe(self) -> str:
        return (f"{self.kind} strategy: {self.replicas} replica(s) on {self.workers} worker(s); this process is "
                f"worker {self.worker_index}{' (chief)' if self.is_chief else ''}")


def parse_hosts(value: str) -> List[str]:
    """SM_HOSTS ('["algo-1","algo-2"]', JSON) as a list; a plain comma-separated list is accepted too."""
    value = value.strip()
    if not value:
        return []
    try:
        hosts = json.loads(value)
    except json.JSONDecodeError:
        hosts = [h.strip(' "[]') for h in value.split(",")]
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError(f"SM_HOSTS: expected a JSON list of host names, got {value!r}")
    return [h for h in hosts if h]


def tf_config_from_sagemaker(env: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    """The TF_CONFIG of this host in a SageMaker cluster (SM_HOSTS, SM_CURRENT_HOST), or None for one host.

    Every host is a worker, in SM_HOSTS order (SageMaker sorts them: algo-1 first), so algo-1 is the chief
    (worker 0)."""
    hosts = parse_hosts(env.get("SM_HOSTS", ""))
    if len(hosts) < 2:
        return None
    current = env.get("SM_CURRENT_HOST", "")
    if current not in hosts:
        raise ValueError(f"SM_CURRENT_HOST {current!r} is not one of SM_HOSTS {hosts}")
    port = env.get(ENV_PORT, str(DEFAULT_PORT))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{ENV_PORT}: expected a TCP port, got {port!r}")
    return {"cluster": {"worker": [f"{h}:{port}" for h in hosts]},
            "task": {"type": "worker", "index": hosts.index(current)}}


def read_tf_config(env: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    """TF_CONFIG as a dict when it describes more than one worker (a one-worker TF_CONFIG is ignored)."""
    raw = env.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
        workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
        task = config["task"]
        task["type"], int(task["index"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"TF_CONFIG: not a cluster with a task ({exc}): {raw[:200]}") from None
    return config if len(workers) > 1 else None


def requested_devices(env: Mapping[str, str]) -> Optional[int]:
    """ALBERT_NER_DEVICES as a positive count, or None when unset."""
    raw = env.get(ENV_DEVICES, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{ENV_DEVICES}: expected a positive number of logical CPU devices, got {raw!r}")
    return int(raw)


def _split_cpu(count: int) -> None:
    """Make `count` logical CPU devices; only possible before TensorFlow's runtime starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as exc:
        raise RuntimeError(f"{ENV_DEVICES}={count}: TensorFlow had already started, so no logical CPU devices can "
                           f"be made now; set it before the process starts ({exc})") from None


_CURRENT: Optional[Distribution] = None


def setup(env: Optional[Mapping[str, str]] = None) -> Distribution:
    """This process's Distribution: made at the first call, the same one afterwards."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = _make(os.environ if env is None else env)
        log.info("%s", _CURRENT.describe())
    return _CURRENT


def _make(env: Mapping[str, str]) -> Distribution:
    devices = requested_devices(env)
    cluster = read_tf_config(env)
    if cluster is None:
        built = tf_config_from_sagemaker(env)
        if built is not None:
            os.environ["TF_CONFIG"] = json.dumps(built)  # the strategy's cluster resolver reads the environment
            log.info("TF_CONFIG from SM_HOSTS: %s", os.environ["TF_CONFIG"])
            cluster = built
    if cluster is not None:
        if devices and devices > 1:
            _split_cpu(devices)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        index = int(resolver.task_id)
        is_chief = resolver.task_type == "chief" or (resolver.task_type == "worker" and index == 0
                                                     and "chief" not in cluster["cluster"])
        workers = len(cluster["cluster"].get("worker", [])) + len(cluster["cluster"].get("chief", []))
        return Distribution(strategy, "multi_worker", strategy.num_replicas_in_sync, workers, index, is_chief)
    if devices and devices > 1:
        _split_cpu(devices)
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        return Distribution(tf.distribute.MirroredStrategy(names), "mirrored", len(names), 1, 0, True)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy([d.name for d in gpus])
        return Distribution(strategy, "mirrored", strategy.num_replicas_in_sync, 1, 0, True)
    return Distribution(tf.distribute.get_strategy(), "default", 1, 1, 0, True)


# ---- inside the step (replica context) ----------------------------------------------------------------------------
def all_reduce_sum(values: Sequence):
    """Sum tensors (or IndexedSlices) over every replica of the cluster; each replica gets the sums."""
    ctx = tf.distribute.get_replica_context()
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(values))


def replica_id() -> tf.Tensor:
    """This replica's index in the cluster (0 outside a strategy)."""
    return tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)


# ---- between steps (cross-replica context) ------------------------------------------------------------------------
def split_batch(dist: Distribution, batch: Dict[str, tf.Tensor]):
    """A global batch as per-replica slices: replica r (of the whole cluster) gets rows [r*B, (r+1)*B).
    Every worker reads the same global batches, so no data is sent between hosts."""
    rows = int(next(iter(batch.values())).shape[0])
    if rows % dist.replicas:
        raise ValueError(f"a global batch of {rows} rows cannot be split evenly over {dist.replicas} replicas")
    per = rows // dist.replicas

    def value(ctx: tf.distribute.experimental.ValueContext):
        lo = ctx.replica_id_in_sync_group * per
        return {k: v[lo:lo + per] for k, v in batch.items()}

    return dist.strategy.experimental_distribute_values_from_function(value)


def chief_value(dist: Distribution, value: float) -> float:
    """The chief's `value` on every worker (a broadcast through a SUM all-reduce); `value` as is on one worker."""
    if dist.workers == 1:
        return value
    send = float(value) if dist.is_chief else 0.0

    def local(ctx):
        return tf.constant(send if ctx.replica_id_in_sync_group == 0 else 0.0, tf.float64)  # worker 0's first

    summed = dist.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                  dist.strategy.experimental_distribute_values_from_function(local), axis=None)
    return float(summed)


def any_worker(dist: Distribution, flag: bool) -> bool:
    """True on every worker when `flag` is True on any (e.g. a stop signal that reached one host)."""
    if dist.workers == 1:
        return flag
    value = 1.0 if flag else 0.0
    per = dist.strategy.experimental_distribute_values_from_function(lambda ctx: tf.constant(value, tf.float32))
    return float(dist.strategy.reduce(tf.distribute.ReduceOp.SUM, per, axis=None)) > 0


def same_on_all_workers(dist: Distribution, value: int) -> bool:
    """Whether every worker holds the same number as the chief (e.g. the step it resumed at)."""
    if dist.workers == 1:
        return True
    return not any_worker(dist, chief_value(dist, value) != value)


def distributed_step(dist: Distribution, replica_step: Callable):
    """A tf.function running `replica_step` on every replica of a split batch; returns this worker's first
    replica's result (the step's outputs are all-reduced: the same on every replica)."""
    strategy = dist.strategy

    def run(per_replica_batch):
        result = strategy.run(replica_step, (per_replica_batch,))
        return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], result)

    return tf.function(run, reduce_retracing=True)
