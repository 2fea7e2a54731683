"""Tasks on a Dask cluster (``--executor dask:local:N`` or ``dask:tcp://scheduler:8786``).

Inputs travel by content: the client scatters each input file's bytes once
(keyed by sha256, broadcast to every worker); a worker writes them to its own
cache, checks every hash and refuses a mismatch with a failed row — it never
trains on other bytes. Each task is one worker process with the profile's
thread count (`eval.bench.executors.run_task_process`); the Dask resource
``rbm_task=1`` keeps one task per Dask worker, so tasks never share cores.
Results come back as bytes and only the client writes the run folder. A lost
worker (``KilledWorker``: Dask's own retries are off) or a killed task
process is retried by the client up to ``run.retries`` times.

Start workers for this executor with ``dask worker ADDRESS --nthreads 1 --resources rbm_task=1``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from core.files import atomic_write_bytes, sha256_bytes, sha256_file
from eval.bench.executors import ExecutorSpec, Outcome, run_task_process
from eval.config import ConfigError
from eval.contract.task import Task

RESOURCE = "rbm_task"


def remote_task(task_json: str, blobs: dict[str, bytes]) -> dict:
    """On a Dask worker: materialise the inputs by content, check them, run the task's process."""
    task = Task.from_json(task_json)
    root = (
        Path(os.environ.get("RBM_BENCH_WORKER_CACHE") or tempfile.gettempdir())
        / "rbm-bench-inputs"
        / task.context.run_id
    )
    for name, item in task.inputs.items():
        path = root / item.path
        if path.is_file() and sha256_file(path) == item.sha256:
            continue
        data = blobs.get(item.sha256)
        digest = sha256_bytes(data) if data is not None else "nothing"
        if digest != item.sha256:
            reason = f"InputMismatch: input {name} arrived with sha256 {digest[:12]}, not {item.sha256[:12]}; refused"
            return {"files": {}, "failure": reason, "retry": False}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    outcome = run_task_process(task, root)
    return {"files": outcome.files, "failure": outcome.failure, "retry": outcome.retry}


def _client(spec: ExecutorSpec):
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": 0})  # the client retries, and counts the attempts
    if spec.address is None:
        cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                               resources={RESOURCE: 1}, dashboard_address=":0")  # fmt: skip
        return Client(cluster), cluster
    if spec.address.startswith("tls://") and not dask.config.get("distributed.comm.tls.client.cert", None):
        raise ConfigError(
            f"dask:{spec.address}: TLS needs this client's certificate; set distributed.comm.tls.ca-file, "
            "distributed.comm.tls.client.cert and .key in Dask's configuration (README: a remote scheduler)"
        )
    return Client(spec.address, timeout="30s"), None


def check_workers(client) -> None:
    """Refuse a cluster whose workers cannot import the project, before any task is sent.

    A worker without the project cannot even unpickle a task: Dask drops its connection and the task would be
    reported as a lost worker, again at every retry. The probe (``importlib.util.find_spec`` of this module, a
    function every Python has) says which workers lack it.
    """
    import importlib.util

    answers = client.run(importlib.util.find_spec, __name__, on_error="return")
    missing = sorted(address for address, spec in answers.items() if spec is None or isinstance(spec, BaseException))
    if missing:
        raise ConfigError(
            f"dask: {len(missing)} of {len(answers)} workers cannot import the project ({', '.join(missing)[:200]}); "
            "start each worker in a checkout of this commit with its root on PYTHONPATH and the project's "
            "dependencies installed (README: a remote scheduler)"
        )


def _resources(client) -> dict | None:
    workers = client.scheduler_info().get("workers", {}).values()
    return {RESOURCE: 1} if workers and all(RESOURCE in w.get("resources", {}) for w in workers) else None


def _failure(error: BaseException) -> tuple[str, bool]:
    """What a task's exception means: a worker that cannot import the project (no retry helps), or a lost worker."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if isinstance(error, ImportError) or "No module named" in text:
        where = "the project (eval, impls, datasets, core)"
        return (
            f"dask worker cannot import {where} ({text[:160]}); start each worker in a checkout of this commit with "
            "its root on PYTHONPATH and the project's dependencies installed (README: a remote scheduler)",
            False,
        )
    return f"dask worker lost ({text})"[:300], True


def run_dask(tasks: list[Task], root: Path, spec: ExecutorSpec) -> Iterator[Outcome]:
    """Submit every task to the cluster; yield outcomes as they finish (retries included)."""
    if not tasks:
        return
    from distributed import as_completed

    client, cluster = _client(spec)
    futures: dict = {}
    try:
        check_workers(client)
        blobs = {item.sha256: (root / item.path).read_bytes() for task in tasks for item in task.inputs.values()}
        scattered = client.scatter(blobs, broadcast=True, hash=False)
        resources = _resources(client)

        def submit(task: Task):
            needed = {item.sha256: scattered[item.sha256] for item in task.inputs.values()}
            if task.attempt > 1:  # the worker that died may have held the inputs' last copy: send them again
                needed = client.scatter({key: blobs[key] for key in needed}, hash=False)
            key = f"{task.task_id}-attempt{task.attempt}-{task.context.run_id}"
            future = client.submit(remote_task, task.to_json(), needed, key=key, resources=resources, pure=False)
            futures[future] = task
            return future

        pending = as_completed([submit(task) for task in tasks])
        for future in pending:
            task = futures.pop(future)
            try:
                result = future.result()
                outcome = Outcome(task, result["files"], result["failure"], result["retry"])
            except Exception as error:  # KilledWorker, a lost connection: the worker died under the task
                outcome = Outcome(task, {}, *_failure(error))
            if outcome.retry and task.attempt <= task.retries:
                pending.add(submit(replace(task, attempt=task.attempt + 1)))
                continue
            yield outcome
    except BaseException:
        client.cancel(list(futures), force=True)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
