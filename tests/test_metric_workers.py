"""The metrics' classifiers in worker processes and the table of distinct codes change how fast a
population is scored, never its numbers; a stop while the workers fit is answered within a second."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aejax import disentanglement
from aejax.metrics import FAMILIES, METRICS, draw_for, member_jobs
from aejax.metrics.workers import Jobs, resolve
from conftest import compose

SIZES = {"num_train": 120, "num_test": 60, "num_eval": 20, "batch_size": 8, "num_variance_estimate": 100}


@pytest.fixture(scope="module")
def shapes_toy():
    from aejax.config import parse_run
    from aejax.data import load_dataset

    truth = load_dataset(parse_run(compose(["data=shapes_toy"])).data).ground_truth
    weights = np.random.default_rng(1).normal(size=(3, 256, 4)).astype(np.float32)

    def encode(x):  # 3 members: fixed linear encoders (a member's codes do not depend on its batch)
        return np.einsum("nd,mdk->mnk", x, weights), np.full((3, len(x), 4), -1.0, np.float32)

    return truth, encode


def serial(truth, encode, mode: str) -> dict:
    """Every family's `score` on all its codes, in this process: the numbers to match."""
    out = {}
    for family, mod in FAMILIES.items():
        draw = draw_for(family, truth, 5, SIZES)
        mean, logvar = encode(truth.observations(draw.factors))
        out.update(mod.score(mean, draw, mode=mode, posterior=(mean, logvar), names=mod.NAMES))
    return out


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_two_workers_and_the_code_table_give_the_serial_scores(shapes_toy, mode, monkeypatch):
    truth, encode = shapes_toy
    expected = serial(truth, encode, mode)
    for workers in (1, 2) if mode == "fast" else (2,):  # exact mode's boosted trees: the slow half of this test
        got = disentanglement.score_population(encode, truth, tuple(METRICS), seed=5, mode=mode, sizes=SIZES,
                                               workers=workers)
        for name in METRICS:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name}, workers={workers}")
    if mode == "exact":
        return
    monkeypatch.setattr(disentanglement, "TABLE_BYTES", 0)  # every draw's rows encoded as they come
    got = disentanglement.score_population(encode, truth, tuple(METRICS), seed=5, mode=mode, sizes=SIZES, workers=2)
    for name in METRICS:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name}, no table")


def test_dci_exact_splits_into_one_job_per_member_and_factor(shapes_toy):
    truth, encode = shapes_toy
    draw = draw_for("dci", truth, 5, SIZES)
    codes = encode(truth.observations(draw.factors))[0]
    work, combine = member_jobs("dci", codes, draw, "exact")
    assert len(work) == 3 * truth.num_factors
    classes = [len(np.unique(args[1])) for _, args in work[:truth.num_factors]]
    assert classes == sorted(classes, reverse=True)  # the factors with the most trees first
    got = combine([fn(*args) for fn, args in work])
    expected = FAMILIES["dci"].score(codes, draw, mode="exact")
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


class Stop(Exception):
    pass


def test_a_stop_while_the_workers_fit_is_answered_within_a_second_and_kills_them():
    asked = []

    def between():
        asked.append(time.perf_counter())
        if len(asked) > 2:
            raise Stop

    jobs = Jobs(2, between)
    futures = [jobs.submit(time.sleep, 60) for _ in range(3)]
    workers = list(jobs._pool._processes.values())
    assert len(workers) == 2
    tic = time.perf_counter()
    with pytest.raises(Stop):
        jobs.wait(futures)
    assert time.perf_counter() - tic < 10  # not the 60 s a job takes
    assert jobs._pool is None
    deadline = time.perf_counter() + 10
    while any(p.is_alive() for p in workers) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert not any(p.is_alive() for p in workers), "a worker outlived the stop"


def test_a_stop_with_jobs_still_queued_leaves_no_traceback(monkeypatch):
    """A stop with more jobs than workers, in the state that exposed both of loky's shutdown races (Jobs.kill):
    a quick first job has finished and its worker has taken the next one from loky's call queue, which loky
    refills only when a result comes, so job ids still wait in its queue of ids. Without the drain in
    Jobs.kill, 6 of 6 tries printed a KeyError traceback from loky's thread; cancelling the futures there
    printed an InvalidStateError."""
    import threading

    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    jobs = Jobs(2, lambda: None)
    futures = [jobs.submit(time.sleep, 0.01)] + [jobs.submit(time.sleep, 60) for _ in range(9)]
    deadline = time.perf_counter() + 30
    while not futures[0].done() and time.perf_counter() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # its worker takes the next job
    assert futures[0].done() and not futures[-1].running()
    manager = jobs._pool._executor_manager_thread
    jobs.kill()
    manager.join(timeout=30)
    assert not manager.is_alive()
    assert not raised, raised
    assert all(f.done() for f in futures)


def test_in_process_jobs_check_for_a_stop_before_each_and_workers_0_means_every_core():
    calls = []
    jobs = Jobs(1, lambda: calls.append("check"))
    assert [f.result() for f in (jobs.submit(pow, 2, 5), jobs.submit(pow, 3, 2))] == [32, 9]
    assert calls == ["check", "check"] and jobs._pool is None
    assert resolve(0) >= 1 and resolve(3) == 3


def test_metrics_workers_below_0_is_refused_in_one_line():
    from aejax.config import MetricsSpec, parse_section
    from aejax.errors import ConfigError

    with pytest.raises(ConfigError, match=r"metrics\.workers=-1 is not allowed; expected an integer >= 0"):
        parse_section("metrics", MetricsSpec, {"workers": -1})


def test_aejax_metrics_workers_below_0_is_one_line_and_exit_2(tmp_path, capsys):
    assert disentanglement.main([str(tmp_path), "--workers", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["aejax-metrics: error: metrics.workers=-1 is not allowed; expected an integer >= 0"]
    assert list(tmp_path.iterdir()) == []


def test_larger_populations_encode_fewer_rows_between_two_stop_checks():
    def encode(x):
        return x

    assert disentanglement._segment(encode) == disentanglement.SEGMENT  # no member count: one member
    for members, rows in ((1, 8192), (2, 8192), (16, 1024), (10_000, 256)):
        encode.members = members
        assert disentanglement._segment(encode) == rows
