"""Tasks on a Dask cluster (``--executor dask:local:N`` or ``dask:tcp://scheduler:8786``).

Inputs travel by content: the client scatters each input file's bytes once
(keyed by sha256, broadcast to every worker); a worker writes them to its own
cache, checks every hash and refuses a mismatch with a failed row — it never
trains on other bytes. Each task is one worker process with the profile's
thread count (`eval.bench.executors.run_task_process`); the Dask resource
``rbm_task=1`` keeps one task per Dask worker. A worker's task process is not pinned to cores (workers on one
machine do not see each other's tasks): start a worker under ``taskset`` to hold its tasks to its cores.
Results come back as bytes and only the client writes the run folder. A lost
worker (``KilledWorker``: Dask's own retries are off) or a killed task
process is retried by the client up to ``run.retries`` times.

The scheduler unpickles every task (the function `remote_task` is named by its module), so the scheduler, like
each worker, must import the project: start both from the checkout's root with its root on ``PYTHONPATH``::

    PYTHONPATH=$PWD dask scheduler
    PYTHONPATH=$PWD dask worker ADDRESS --nthreads 1 --resources rbm_task=1

`check_cluster` refuses, in one line and before any task is sent, a scheduler or worker that cannot.
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
    outcome = run_task_process(task, root, pin=False)  # its neighbours' tasks are started by other workers
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


# What the scheduler and the workers import to unpickle a task; resolving it imports the module and returns a name.
PROBE = f"{__name__}:RESOURCE"
_HOW_TO_START = (
    "start {who} from a checkout of this commit, at its root, with the root on PYTHONPATH and the project's "
    "dependencies installed: cd rbm-music-bench && PYTHONPATH=$PWD .tox/bench/bin/dask {what} (README: a remote "
    "scheduler)"
)
_WORKER = "worker ADDRESS --nthreads 1 --resources rbm_task=1"
WORKER_WAIT_S = 30.0  # how long the check waits for a first worker (one starting beside the scheduler)


def _cannot_import(answer: object) -> bool:
    return answer != RESOURCE


def check_cluster(client) -> None:
    """Refuse a scheduler or workers that cannot import the project, before any task is sent.

    The scheduler unpickles each task, and a worker runs it: without the project either fails every task, which
    Dask reports as a lost worker, again at every retry. The probe is `pkgutil.resolve_name` of `PROBE` (a function
    every Python has), which imports this module with everything it imports.
    """
    import pkgutil

    try:
        answer = client.run_on_scheduler(pkgutil.resolve_name, PROBE)
    except Exception as error:  # its ImportError (or whatever importing raised there), sent back
        answer = error
    if _cannot_import(answer):
        why = " ".join(f"{type(answer).__name__}: {answer}".split())[:160]
        raise ConfigError(
            f"dask: the scheduler at {client.scheduler.address} cannot import the project ({why}), so it cannot "
            f"unpickle a task; {_HOW_TO_START.format(who='it', what='scheduler')}"
        )
    try:  # with no worker every task would wait for one forever: a scheduler nobody serves is refused
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise ConfigError(
            f"dask: no worker joined the scheduler at {client.scheduler.address} in {WORKER_WAIT_S:.0f} s, so no "
            f"task would run; {_HOW_TO_START.format(who='a worker', what=_WORKER)}"
        ) from None
    answers = client.run(pkgutil.resolve_name, PROBE, on_error="return")
    missing = sorted(address for address, answer in answers.items() if _cannot_import(answer))
    if missing:
        raise ConfigError(
            f"dask: {len(missing)} of {len(answers)} workers cannot import the project ({', '.join(missing)[:200]}); "
            f"{_HOW_TO_START.format(who='each worker', what=_WORKER)}"
        )


def _resources(client) -> dict | None:
    workers = client.scheduler_info().get("workers", {}).values()
    return {RESOURCE: 1} if workers and all(RESOURCE in w.get("resources", {}) for w in workers) else None


def _failure(error: BaseException) -> tuple[str, bool]:
    """What a task's exception means: a scheduler or worker that cannot import the project (no retry helps), or a
    lost worker. `check_cluster` refuses both before any task is sent; this names one that changed since."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if "deserialization of the task graph" in text:  # the scheduler could not unpickle the task
        how = _HOW_TO_START.format(who="it", what="scheduler")
        return f"dask scheduler cannot unpickle the task ({text[:160]}); {how}", False
    if isinstance(error, ImportError) or "No module named" in text:
        how = _HOW_TO_START.format(who="each worker", what=_WORKER)
        return f"dask worker cannot import the project ({text[:160]}); {how}", False
    return f"dask worker lost ({text})"[:300], True


def run_dask(tasks: list[Task], root: Path, spec: ExecutorSpec) -> Iterator[Outcome]:
    """Submit every task to the cluster; yield outcomes as they finish (retries included)."""
    if not tasks:
        return
    from distributed import as_completed

    client, cluster = _client(spec)
    futures: dict = {}
    try:
        check_cluster(client)
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
