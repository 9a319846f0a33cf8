"""The metrics' classifiers on every core: one job per member (and per factor for DCI's boosted trees)
in worker processes, while the caller goes on encoding the next family's observations.

The classifiers (scikit-learn's boosted trees, logistic regressions, linear SVMs) run on one core
each, and a member's scores depend only on its own codes and the family's common draw, so members
and factors are independent jobs: each fits the same estimator on the same rows with the same seed,
on one BLAS thread wherever it runs (`one_thread`), so the numbers do not depend on `workers`.

Workers are separate processes (loky: fork then exec, safe beside JAX's threads), with one BLAS or
OpenMP thread each, so W workers use W cores. They ignore SIGINT and SIGTERM: a signal is the
caller's to answer (aejax.rundir.catch_signals), which it does within a second while it waits
(`Jobs.wait`), and stopping kills the workers with their unfinished fits. `workers=1` runs every
job in the calling process when it is submitted, with no pool.
"""

from __future__ import annotations

import os
import queue
import signal
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
POLL_SECONDS = 0.5  # how often a waiting caller looks for a stop request


def available_cores() -> int:
    """The cores this process may run on (a SLURM allocation's, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def resolve(workers: int) -> int:
    """`metrics.workers`: 0 means one per available core."""
    return available_cores() if workers == 0 else workers


def one_thread(fn, *args):
    """`fn(*args)` on one BLAS and OpenMP thread, wherever it runs: the classifiers' numbers then do not
    depend on the workers or the machine's cores (scikit-learn's lbfgs, stopped at 100 iterations as
    disentanglement_lib's, moves in the fifth decimal with the BLAS thread count)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return fn(*args)


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Jobs:
    """Submit `fn(*args)` jobs; `wait(futures)` returns their results in submission order.

    `between()` (a stop check that may raise) runs every POLL_SECONDS while waiting, and before each
    in-process job; if it raises, or anything else does, the workers are killed before the exception
    goes on.
    """

    def __init__(self, workers: int, between=None):
        self.workers = resolve(workers)
        self.between = between  # in-process jobs: a stop check before each
        self._pool = None
        self.futures: list[Future] = []

    def submit(self, fn, *args) -> Future:
        if self.workers <= 1:
            if self.between is not None:
                self.between()
            future = Future()
            future.set_result(one_thread(fn, *args))
        else:
            if self._pool is None:
                from joblib.externals.loky import get_reusable_executor

                self._pool = get_reusable_executor(max_workers=self.workers, initializer=_ignore_signals,
                                                   env=ONE_THREAD, reuse=True)
            future = self._pool.submit(one_thread, fn, *args)
        self.futures.append(future)
        return future

    def wait(self, futures=None) -> list:
        futures = list(self.futures if futures is None else futures)
        try:
            pending = {f for f in futures if not f.done()}
            while pending:
                if self.between is not None:
                    self.between()
                _, pending = wait_futures(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            return [f.result() for f in futures]
        except BaseException:
            self.kill()
            raise

    def poll(self) -> None:
        """Wait up to POLL_SECONDS for any job to finish, after a stop check (`between`)."""
        if self.between is not None:
            self.between()
        pending = [f for f in self.futures if not f.done()]
        if pending:
            wait_futures(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)

    def kill(self) -> None:
        """Stop every worker now (their unfinished jobs are lost); the next submit starts new ones.

        Two races in loky's shutdown(kill_workers=True) print a traceback from its manager thread, each
        under aejax-train's one-line stop in a test run: a future cancelled here first (InvalidStateError
        when loky sets its exception), so none is; and a job whose id still waits in the executor's
        `_work_ids` queue (KeyError: loky drops the pending jobs, then moves that id to its call queue),
        so the ids are drained first. The dropped jobs' futures still end, with loky's shutdown error."""
        if self._pool is not None:
            waiting = getattr(self._pool, "_work_ids", None)
            while waiting is not None:
                try:
                    waiting.get_nowait()
                except queue.Empty:
                    break
            self._pool.shutdown(wait=False, kill_workers=True)
            self._pool = None
