"""Opening a finished run: its checkpoint and config give back the members the summary describes."""

import numpy as np
import pytest

from aejax.errors import ConfigError
from aejax.run import train_and_evaluate
from aejax.trained import load_run
from conftest import TINY, compose


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    overrides = TINY + ["population.seeds=2", "model.code_size=8", "model.sparsity=topk", "model.top_k=6",
                        "+population.grid.model.top_k=[3,6]", "trainer.checkpoint_every=1"]
    return workdir, train_and_evaluate(compose(overrides), workdir)


def test_loaded_members_reproduce_their_test_metrics(finished_run):
    workdir, summary = finished_run
    for row in summary["members"]:
        run = load_run(workdir, member=row["member"])
        assert run.epoch == 2 and run.member["seed"] == row["seed"]
        x = run.data.test
        codes = run.encode(x)
        assert codes.shape == (len(x), 8)
        # The member's own k is restored, not the config's.
        assert np.max(np.sum(np.abs(codes) > 1e-3, axis=1)) <= row["hyperparameters"]["model.top_k"]
        mse = np.mean((run.reconstruct(x) - x) ** 2)
        np.testing.assert_allclose(mse, row["test"]["mse"], rtol=1e-4)
        np.testing.assert_allclose(run.decode(codes), run.reconstruct(x), atol=1e-6)


def test_earlier_checkpoint_and_bad_requests(finished_run, tmp_path):
    workdir, summary = finished_run
    first = load_run(workdir, member=0, epoch=1)
    last = load_run(workdir, member=0)
    x = last.data.test
    assert first.epoch == 1
    assert not np.allclose(first.encode(x), last.encode(x))  # one more epoch of training
    with pytest.raises(ConfigError, match=r"member=4 is not allowed; expected 0 to 3"):
        load_run(workdir, member=4)
    with pytest.raises(ConfigError, match=r"epoch=7 is not allowed; expected one of \[1, 2\]"):
        load_run(workdir, epoch=7)
    with pytest.raises(ConfigError, match="is not a run directory"):
        load_run(tmp_path)
    (tmp_path / "config.yaml").write_text((workdir / "config.yaml").read_text())
    with pytest.raises(ConfigError, match="has no checkpoint"):
        load_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # nothing written


@pytest.mark.parametrize("report", ["retrieval", "semi_supervised", "compression"])
def test_report_scripts_refuse_a_bad_member_in_one_line(report, finished_run, monkeypatch, capsys):
    from conftest import run_report

    workdir, _ = finished_run
    status, _, err = run_report(report, [str(workdir), "--member", "9", "--out", str(workdir / "never.json")],
                                monkeypatch, capsys)
    assert status == 2
    assert err == "make_report.py: error: member=9 is not allowed; expected 0 to 3 (members in this run: 4)\n"
    assert not (workdir / "never.json").exists()
