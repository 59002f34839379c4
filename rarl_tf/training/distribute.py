"""tf.distribute strategies by name, and who among the workers writes files.

    default       one device (the first GPU if any, else the CPU)
    mirrored      all local GPUs (or `num_cpu_devices` logical CPUs), synchronous all-reduce
    multi_worker  MultiWorkerMirroredStrategy over the machines listed in TF_CONFIG
    tpu           TPUStrategy on the TPU named by `tpu` ("" = the local one)

The model's losses are averaged over the *global* batch (`tf.nn.compute_average_loss`), so N
replicas apply the same update as one device with the same global batch.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from rarl_tf.config.experiment import STRATEGIES


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (tests and laptops; before any op)."""
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def make_strategy(name: str, num_cpu_devices: int = 1, tpu: str = "") -> tf.distribute.Strategy:
    """The strategy called `name` (see the module docstring)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable "
                "(cluster and task, as TensorFlow defines it)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy={name} is not allowed: expected one of {STRATEGIES}")


def task() -> tuple[str, int]:
    """(task type, index) of this process from TF_CONFIG; ("chief", 0) without a cluster."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    info = config.get("task", {})
    return info.get("type", "chief"), int(info.get("index", 0))


def is_chief() -> bool:
    """The process that writes the run's files: the chief, else worker 0 if there is no chief."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    kind, index = task()
    if "chief" in config.get("cluster", {}):
        return kind == "chief"
    return kind in ("chief", "worker") and index == 0


def worker_dir(model_dir: str) -> str:
    """Where this process writes: `model_dir` for the chief, a scratch folder for the others.

    Under MultiWorkerMirroredStrategy every worker must take part in saving a checkpoint (the
    save is a collective), but only the chief's copy is kept.
    """
    if is_chief():
        return model_dir
    kind, index = task()
    return os.path.join(model_dir, ".workers", f"{kind}_{index}")


def replica_values(strategy: tf.distribute.Strategy, value_fn) -> list[int]:
    """`value_fn(replica_id)` of every replica of `strategy`, on every worker, gathered (a
    collective: every worker must call it), in replica order."""
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([value_fn(context.replica_id_in_sync_group)], tf.int64)
    )
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]


def check_same_step(strategy: tf.distribute.Strategy, step: int, value_fn=None) -> None:
    """Stops the run (cli.RunFailed, on every worker at once) unless all workers restored the
    same global step.

    Each worker restores the newest checkpoint it can read; a worker that sees another copy of
    the folder (its own disk, a lagging network file system) would start from another step,
    and then the workers' collectives no longer pair up: wrong updates, or a wait forever.

    Args:
      value_fn: replica id -> its step (tests); default every local replica has `step`.
    """
    from rarl_tf import cli

    if strategy.num_replicas_in_sync <= 1:
        return
    steps = replica_values(strategy, value_fn or (lambda replica: step))
    if len(set(steps)) > 1:
        raise cli.RunFailed(
            f"the workers restored different steps {steps} (one per replica, in replica "
            f"order): they must all read the same checkpoints folder; make MODEL_DIR/"
            f"checkpoints the same shared folder on every worker, then rerun the same command"
        )
