"""W&B offline runs: real .wandb files, read back with wandb's own protobuf records."""

import json

import pytest

from aejax.run import train_and_evaluate
from aejax.wandb_records import history_rows, run_config
from conftest import TINY, compose, pretend_killed


def wandb_files(run_dir):
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


def metrics_by_member(run_dir):
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    out = {}
    for r in rows:
        out.setdefault(r["member"], []).append(r)
    return out


def test_offline_run_files_match_metrics_jsonl(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    config = compose([o for o in TINY if o != "logger=none"] + [
        "logger=wandb", "trainer.log_every=2", "population.seeds=[0,1]", "+population.grid.model.noise_level=[0.0,0.3]"])
    train_and_evaluate(config, tmp_path)
    files = wandb_files(tmp_path)
    assert len(files) == 4  # one offline run per member: W&B's sweep views see each member's settings
    expected = metrics_by_member(tmp_path)
    seen = set()
    for path in files:
        member = run_config(path)["member"]
        seen.add(member["member"])
        logged = [r for r in history_rows(path) if "train/loss" in r]
        mine = expected[member["member"]]
        assert len(logged) == 4  # 8 steps, a line every 2
        assert [r["_step"] for r in logged] == [r["step"] for r in mine]
        for a, b in zip(logged, mine):
            assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-6)
            assert a["train/sse"] == pytest.approx(b["train/sse"], rel=1e-6)
        assert member["model.noise_level"] in (0.0, 0.3)
    assert seen == {0, 1, 2, 3}
    assert not [r for r in caplog.records if "W&B failed" in r.getMessage()]


def test_large_population_logs_one_run_with_a_members_table(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = compose([o for o in TINY if o != "logger=none"] + [
        "logger=wandb", "trainer.log_every=4", "logger.max_member_runs=2", "population.seeds=3"])
    train_and_evaluate(config, tmp_path)
    (path,) = wandb_files(tmp_path)
    rows = history_rows(path)
    per_member = metrics_by_member(tmp_path)
    logged = [r for r in rows if "train/loss" in r]
    mean_first = sum(per_member[m][0]["train/loss"] for m in range(3)) / 3
    assert logged[0]["train/loss"] == pytest.approx(mean_first, rel=1e-6)
    table = [r for r in rows if "members/_type" in r]
    assert table and table[0]["members/_type"] == "table-file" and table[0]["members/nrows"] == 3
    assert run_config(path)["population_size"] == 3


def run_record(path):
    from aejax.wandb_records import read_records

    return next(r.run for r in read_records(path) if r.WhichOneof("record_type") == "run")


def test_each_member_run_carries_its_own_settings_name_and_provenance(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = compose([o for o in TINY if o != "logger=none"] + [
        "logger=wandb", "population.seeds=[0,1]", "+population.grid.model.noise_level=[0.1,0.3]"])
    train_and_evaluate(config, tmp_path)
    names = set()
    for path in wandb_files(tmp_path):
        logged = run_config(path)
        member = logged["member"]
        # The usual keys hold the member's own values (W&B's sweep and parallel-coordinates views read them).
        assert logged["model"]["noise_level"] == member["model.noise_level"]
        assert logged["seed"] == member["seed"]
        assert logged["provenance"]["git"]["commit"] and logged["provenance"]["hostname"]
        names.add(run_record(path).display_name)
    assert names == {"test-noise0.1-s0", "test-noise0.3-s0", "test-noise0.1-s1", "test-noise0.3-s1"}
    figures = [r for p in wandb_files(tmp_path) for r in history_rows(p) if "figures/reconstructions/_type" in r]
    assert len(figures) == 4  # every member's run has the figures, under figures/ (its Media panels)


def test_a_resumed_run_continues_the_same_wandb_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = compose([o for o in TINY if o != "logger=none"] + ["logger=wandb", "trainer.checkpoint_every=1"])
    train_and_evaluate(config, tmp_path)
    first = run_record(wandb_files(tmp_path)[0]).run_id
    pretend_killed(tmp_path, 1)
    train_and_evaluate({**config, "trainer": {**config["trainer"], "resume": True}}, tmp_path)
    ids = [run_record(p).run_id for p in wandb_files(tmp_path)]
    assert len(ids) == 2 and ids[0] == ids[1] == first
