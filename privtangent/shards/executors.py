"""Where shard models are trained: in this process, a local process pool, or a Ray cluster.

A ``ShardJob`` is everything one shard needs (its data, the ``TrainConfig``, the base model,
the feature-cache folder); ``run_job`` trains it with ``privtangent.train.fit`` and returns
the trained parameters. Jobs never write into the model directory: the driver writes each
checkpoint as its result arrives, so workers need no shared file system (the feature cache
is shared when they have one).

Every job sets ``torch.set_num_threads(job.threads)`` for its duration: the number of
threads changes the order of floating-point reductions, so a fixed count is what makes a
shard's Δw bit-identical whichever executor trained it (and when it is retrained later).

- ``SerialExecutor``: one job after another in this process (forget requests, tests).
- ``LocalPoolExecutor``: a ``spawn`` process pool on this machine (the default).
- ``RayExecutor``: Ray tasks, on a local Ray or a cluster (``address``); the base model goes
  to the object store once, not once per shard.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError, PrivtangentError
from privtangent.features import FeatureCache
from privtangent.io.hashing import tensor_hash
from privtangent.models.vit import build_vit
from privtangent.train.config import TrainConfig
from privtangent.train.trainer import fit

EXECUTORS = ("local", "serial", "ray")


@dataclass(frozen=True)
class BaseSpec:
    """How to rebuild the base model in a worker: timm name + kwargs + state (by hash)."""

    name: str
    kwargs: dict[str, Any]
    sha256: str  # privtangent.io.hashing.tensor_hash of the state dict


@dataclass
class ShardJob:
    shard: int
    version: int  # 0: first training; n: retrained by forget request n
    data: LabeledData  # the shard's training samples (forgotten IDs already removed)
    config: TrainConfig
    base: BaseSpec
    cache_dir: str | None = None
    threads: int = 1


@dataclass
class ShardOutput:
    shard: int
    version: int
    trainable: dict[str, Tensor]
    metrics: dict[str, Any]
    seconds: float
    num_samples: int
    ids_sha256: str
    data_sha256: str
    worker: str = field(default="")


_BASES: dict[str, VisionTransformer] = {}


def build_base(spec: BaseSpec, state: dict[str, Tensor]) -> VisionTransformer:
    """The base model (cached per process by its hash)."""
    if spec.sha256 not in _BASES:

        if tensor_hash(state) != spec.sha256:
            raise PrivtangentError("the base model's weights do not match the sharded model's record")
        model = build_vit(spec.name, **spec.kwargs)
        model.load_state_dict(state)
        _BASES.clear()
        _BASES[spec.sha256] = model.eval()
    return _BASES[spec.sha256]


def run_job(job: ShardJob, base_state: dict[str, Tensor] | None = None) -> ShardOutput:
    """Train one shard (in whatever process this runs)."""

    if base_state is None:
        base_state = _WORKER_STATE.get("base_state")
    if base_state is None and job.base.sha256 not in _BASES:
        raise PrivtangentError("run_job needs the base model's state")
    base = build_base(job.base, base_state or {})
    previous = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        start = time.perf_counter()
        result = fit(base, job.data, job.config, cache=FeatureCache(job.cache_dir), progress=False)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return ShardOutput(
        shard=job.shard, version=job.version, trainable=result.model.trainable_state_dict(),
        metrics=dict(result.metrics), seconds=seconds, num_samples=len(job.data),
        ids_sha256=ids_hash(job.data.ids.tolist()), data_sha256=job.data.content_hash(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


def ids_hash(ids: Iterable[int]) -> str:
    """sha256 of a set of sample IDs (sorted, int64): what a shard was trained on."""
    return tensor_hash({"ids": torch.tensor(sorted(int(i) for i in ids), dtype=torch.int64)})


_WORKER_STATE: dict[str, Any] = {}


def _init_worker(base_state: dict[str, Tensor]) -> None:
    _WORKER_STATE["base_state"] = base_state


def _ping(delay: float) -> int:
    time.sleep(delay)
    return os.getpid()


class SerialExecutor:
    """Jobs one after another, in this process."""

    name = "serial"

    def run(self, jobs: list[ShardJob], base_state: dict[str, Tensor]) -> Iterator[ShardOutput]:
        for job in jobs:
            yield run_job(job, base_state)


class LocalPoolExecutor:
    """A ``spawn`` process pool of ``workers`` processes on this machine.

    Used as a context manager (``with LocalPoolExecutor(2) as ex: ...``) the pool stays up
    across ``run`` calls (workers import torch once); otherwise each ``run`` starts and
    stops its own pool.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be ≥ 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._base_sha: str | None = None
        self._keep = False

    def __enter__(self) -> "LocalPoolExecutor":
        self._keep = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._keep = False
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._base_sha = None, None

    def _get_pool(self, base_state: dict[str, Tensor], base_sha: str, num_jobs: int) -> ProcessPoolExecutor:
        if self._pool is not None and self._base_sha == base_sha:
            return self._pool
        self.close()
        workers = self.workers or os.cpu_count() or 1
        if not self._keep:
            workers = min(workers, num_jobs)
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(base_state,))
        self._base_sha = base_sha
        return self._pool

    def warm_up(self, base_state: dict[str, Tensor], base_sha: str) -> set[int]:
        """Start every worker now (each imports torch once); returns their process IDs."""
        workers = self.workers or os.cpu_count() or 1
        pool = self._get_pool(base_state, base_sha, workers)
        return {f.result() for f in [pool.submit(_ping, 1.0) for _ in range(workers)]}

    def run(self, jobs: list[ShardJob], base_state: dict[str, Tensor]) -> Iterator[ShardOutput]:
        if not jobs:
            return
        pool = self._get_pool(base_state, jobs[0].base.sha256, len(jobs))
        pending = {pool.submit(run_job, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        self._pool = None
                        raise PrivtangentError(
                            "a shard worker process died (out of memory? or a script that starts the pool "
                            "without an `if __name__ == '__main__':` guard)") from None
        finally:
            for future in pending:
                future.cancel()
            if not self._keep:
                self.close()


class RayExecutor:
    """Ray tasks (one CPU each by default) on a local Ray instance or a cluster.

    ``address`` is passed to ``ray.init`` ("auto", "ray://head:10001", ...) unless Ray is
    already initialized in this process; a Ray started here is shut down afterwards.
    Workers must be able to import privtangent (install it on every node).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def run(self, jobs: list[ShardJob], base_state: dict[str, Tensor]) -> Iterator[ShardOutput]:
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is in the lock file
            raise ConfigError("--executor ray needs Ray: pip install 'privtangent[ray]'") from None
        if not jobs:
            return
        started = False
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise ConfigError(f"cannot connect to Ray at {self.address or '(local)'}: {err}") from None
            started = True
        try:
            remote = ray.remote(num_cpus=self.num_cpus or max(j.threads for j in jobs))(run_job)
            state_ref = ray.put(base_state)
            # ray's overloads type run_job as one-argument (its second argument has a default)
            refs = [remote.remote(job, state_ref) for job in jobs]  # type: ignore[call-arg]
            while refs:
                done, refs = ray.wait(refs, num_returns=1)
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = err.as_instanceof_cause()
                        raise cause if isinstance(cause, PrivtangentError) else PrivtangentError(f"a Ray shard task failed: {err}") from None
        finally:
            if started:
                ray.shutdown()


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None):
    """An executor by CLI name: local (process pool), serial, ray."""
    if name == "local":
        return LocalPoolExecutor(workers)
    if name == "serial":
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise ConfigError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
