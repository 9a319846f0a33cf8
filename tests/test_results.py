"""aejax.results: the table of runs and members, grouping statistics, Markdown/CSV and the CLI.

Run directories are written by hand here (the files a run leaves: config.yaml, summary.json,
status.json, provenance.json), except one TINY real run that checks the contract end to end."""

from __future__ import annotations

import copy
import fcntl
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from aejax import results

CONFIG = yaml.safe_load("""
task: train
name: fake
population: {seeds: 1, grid: {}}
model: {family: autoencoder, hidden: [256], code_size: 8, activation: relu, noise_level: 0.0,
        corruption: gaussian, top_k: 0}
data: {name: digits, root: /somewhere, train_size: 256, test_size: 100}
optim: {name: adam, learning_rate: 0.001}
trainer: {epochs: 4, batch_size: 64, resume: false, progress: 'off'}
logger: {name: none, project: aejax}
""")


def config(**changes) -> dict:
    """CONFIG with dotted settings changed, e.g. config(**{"model.code_size": 16})."""
    out = copy.deepcopy(CONFIG)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def write_run(path, cfg=None, members=None, status=None, provenance=None, train_seconds=5.0):
    """A run directory; `members` = [(seed, status, hyperparameters, test metrics)] writes summary.json."""
    path.mkdir(parents=True)
    if cfg is not None:
        (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if status is not None:
        (path / "status.json").write_text(json.dumps({"status": status[0], "epoch": status[1], "epochs": 4,
                                                      "steps_per_epoch": 1, "message": status[2], "updated": "2026-01-01T00:00:00"}))
    if provenance is not None:
        (path / "provenance.json").write_text(json.dumps(provenance))
    if members is not None:
        rows = [{"member": i, "seed": seed, "status": st, "diverged_at_step": 17 if st == "diverged" else None,
                 "hyperparameters": {"optim.learning_rate": 0.001, "model.noise_level": 0.0, **hp},
                 "test": {k: (None if st == "diverged" else v) for k, v in test.items()},
                 "val": {"mse": None if st == "diverged" else 0.5}} for i, (seed, st, hp, test) in enumerate(members)]
        (path / "summary.json").write_text(json.dumps({"name": cfg["name"], "status": "finished",
                                                       "num_members": len(rows), "varied": ["seed"], "steps": 8,
                                                       "train_seconds": train_seconds, "diverged_members": 1,
                                                       "members": rows}))
    return path


SLURM = {"git": {"commit": "abc123", "dirty": True}, "hostname": "node1",
         "slurm": {"job_id": "101", "array_job_id": "100", "array_task_id": "1", "restart_count": 2}}
CODE_MSE = {8: [0.030, 0.034, 0.029], 16: [0.020, 0.018, 0.023]}  # multirun job -> test/mse of seeds 0, 1, 2


@pytest.fixture
def runs(tmp_path):
    """finished (2 members, one diverged), unfinished (checkpoints/3), failed (status.json only;
    failed_early with provenance.json too), and a multirun (two jobs: model.code_size 8 and 16, three seeds each)."""
    write_run(tmp_path / "finished", config(**{"population.seeds": 2, "population.grid": {"model": {"noise_level": [0.3]}}}),
              [(0, "finished", {"model.noise_level": 0.3}, {"mse": 0.01, "sse_per_image": 7.8}),
               (1, "diverged", {"model.noise_level": 0.3}, {"mse": 0.02, "sse_per_image": 9.9})],
              status=("finished", 4, None), provenance=SLURM)
    # The same setting as finished's members (noise 0.3), so grouping the two by name pools nothing else.
    unfinished = write_run(tmp_path / "unfinished", config(**{"population.seeds": [5, 6], "model.noise_level": 0.3}),
                           status=("running", 2, None))
    (unfinished / "checkpoints" / "3").mkdir(parents=True)
    (unfinished / ".lock").write_text("pid 1")
    write_run(tmp_path / "failed", status=("failed", 0, "ConfigError: model.code_size=-1 is not allowed"))
    write_run(tmp_path / "failed_early", status=("failed", 0, "ConfigError: model.code_size=-1 is not allowed"),
              provenance={"overrides": ["model.code_size=-1", "hydra.launcher.x=1"]})
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / ".submitit" / "100_0").mkdir(parents=True)
    (sweep / ".submitit" / "100_0" / "status.json").write_text("{}")  # must not be taken for a run
    for job, code in enumerate(CODE_MSE):
        run = write_run(sweep / str(job), config(**{"model.code_size": code, "population.seeds": 3, "name": "sweep"}),
                        [(s, "finished", {}, {"mse": m, "sse_per_image": m * 784}) for s, m in enumerate(CODE_MSE[code])],
                        status=("finished", 4, None))
        (run / "checkpoints" / "4").mkdir(parents=True)
        (run / "figures").mkdir()
        (run / "figures" / "config.yaml").write_text("not: a run")  # inside a run: not searched
    return tmp_path


def test_one_row_per_run_and_member_with_its_status(runs):
    table = results.collect([runs])
    by_dir = {d: part for d, part in table.groupby("run_dir")}
    dirs = ("failed", "failed_early", "finished", "sweep/0", "sweep/1", "unfinished")
    assert list(table["run_dir"].drop_duplicates()) == [str(runs / d) for d in dirs]
    finished = by_dir[str(runs / "finished")]
    assert list(finished["status"]) == ["finished", "diverged"]
    assert finished["message"].isna().iloc[0] and finished["message"].iloc[1] == "diverged at step 17"
    assert finished["test/mse"].iloc[0] == 0.01 and math.isnan(finished["test/mse"].iloc[1])
    assert list(finished["model.noise_level"]) == [0.3, 0.3]  # the member's value, not the config's 0.0
    assert list(finished[["slurm_job_id", "slurm_array_job_id", "slurm_array_task_id"]].iloc[0]) == ["101", "100", "1"]
    assert finished["requeue_count"].iloc[0] == 2 and finished["commit"].iloc[0] == "abc123-dirty"
    unfinished = by_dir[str(runs / "unfinished")]
    assert list(unfinished["status"]) == ["unfinished at epoch 3"] * 2 and list(unfinished["seed"]) == [5, 6]
    failed = by_dir[str(runs / "failed")]
    assert list(failed["status"]) == ["failed"] and failed["message"].iloc[0].startswith("ConfigError")
    assert failed["model.code_size"].isna().all() and failed["seed"].isna().all()
    assert by_dir[str(runs / "failed_early")]["model.code_size"].iloc[0] == -1  # from its recorded overrides
    assert len(table) == 2 + 2 + 1 + 1 + 3 + 3


def test_a_locked_run_is_running(runs):
    with open(runs / "unfinished" / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a live run holds it
        assert set(results.collect([runs / "unfinished"])["status"]) == {"running"}
    assert set(results.collect([runs / "unfinished"])["status"]) == {"unfinished at epoch 3"}


def test_interrupted_and_diverged_runs_say_so_unless_running_again(runs):
    run = runs / "unfinished"
    for state in ("interrupted", "diverged", "failed"):
        (run / "status.json").write_text(json.dumps({"status": state, "epoch": 2, "message": f"{state} at 2"}))
        table = results.collect([run])
        assert list(table["status"]) == [state] * 2 and list(table["message"]) == [f"{state} at 2"] * 2
    with open(run / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # resumed: a live run again
        assert set(results.collect([run])["status"]) == {"running"}


def test_multirun_jobs_come_in_job_order(tmp_path):
    for job in (10, 2, 1):
        write_run(tmp_path / "sweep" / str(job), status=("failed", 0, None))
    assert [p.name for p in results.find_runs([tmp_path])] == ["1", "2", "10"]


def test_columns_are_the_settings_that_vary(runs):
    sweep = results.collect([runs / "sweep"])
    assert list(sweep.columns) == ["name", "status", "message", "seed", "member", "model.code_size",
                                   "test/mse", "test/sse_per_image", "val/mse", *results.LAST]
    everything = results.collect([runs])
    varied = [c for c in everything.columns if "." in c]
    # name, seed counts, data.root and logger.* are not settings; code size and noise level vary
    assert varied == ["model.code_size", "model.noise_level"]
    only = results.collect([runs], status=["unfinished", "failed"])
    assert set(only["status"]) == {"unfinished at epoch 3", "failed"} and "model.code_size" in only


def test_group_by_matches_numpy(runs):
    grouped = results.collect([runs / "sweep"], group_by=["model.code_size"])
    assert list(grouped["model.code_size"]) == [8, 16] and list(grouped["n"]) == [3, 3]
    for code, got in zip(CODE_MSE, grouped.to_dict("records")):
        values = np.array(CODE_MSE[code])
        assert got["test/mse:mean"] == pytest.approx(values.mean())
        assert got["test/mse:std"] == pytest.approx(np.sqrt(((values - values.mean()) ** 2).sum() / 2))
        assert got["test/sse_per_image:mean"] == pytest.approx(values.mean() * 784)
        # The bootstrap interval of the mean: inside the sample's range, around the mean.
        assert values.min() - 1e-12 <= got["test/mse:ci_low"] < values.mean() < got["test/mse:ci_high"] <= values.max() + 1e-12
    again = results.collect([runs / "sweep"], group_by=["model.code_size"])
    pd.testing.assert_frame_equal(grouped, again)


def test_bootstrap_interval_is_the_percentile_bootstrap_of_the_mean():
    values = np.array([1.0, 2.0, 4.0, 8.0, 9.0])
    rng = np.random.default_rng(0)  # the fixed seed: the same interval every time
    means = [values[rng.integers(0, 5, 5)].mean() for _ in range(2000)]
    assert results.bootstrap_interval(values) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert results.bootstrap_interval([3.0]) == (3.0, 3.0)


def test_group_counts_unfinished_and_diverged_members_but_averages_only_results(runs):
    grouped = results.collect([runs / "finished", runs / "unfinished"], group_by=["name"], metrics=["test/mse"])
    row = grouped.iloc[0]
    assert (row["n"], row["n_finished"], row["test/mse:mean"]) == (4, 1, 0.01) and math.isnan(row["test/mse:std"])
    assert list(grouped.columns) == ["name", "n", "n_finished", "test/mse:mean", "test/mse:std", "test/mse:ci_low",
                                     "test/mse:ci_high"]


@pytest.fixture
def newcomer(tmp_path):
    """The issue's outputs/: a 10-epoch run (seeds 0, 1) and a 2-epoch population (2 seeds x noise
    0, 0.1). Grouping by noise level alone would pool 10- and 2-epoch rows into n=4."""
    write_run(tmp_path / "outputs" / "long", config(**{"trainer.epochs": 10, "trainer.checkpoint_every": 5,
                                                       "population.seeds": 2}),
              [(s, "finished", {}, {"mse": m}) for s, m in enumerate((0.02, 0.03))], status=("finished", 10, None))
    grid = {"model": {"noise_level": [0.0, 0.1]}}
    write_run(tmp_path / "outputs" / "short", config(**{"trainer.epochs": 2, "population.seeds": 2, "population.grid": grid}),
              [(s, "finished", {"model.noise_level": n}, {"mse": m})
               for s, n, m in [(0, 0.0, 0.08), (0, 0.1, 0.09), (1, 0.0, 0.07), (1, 0.1, 0.1)]],
              status=("finished", 2, None))
    return tmp_path / "outputs"


def test_a_group_never_pools_rows_that_differ_in_another_setting(newcomer, capsys):
    says = ("--group-by model.noise_level would average rows that differ in trainer.epochs (2, 10); add it to the "
            "groups (--group-by model.noise_level,trainer.epochs) or keep one value (e.g. --where trainer.epochs=10)")
    with pytest.raises(ValueError, match=r"^" + re.escape(says) + "$"):
        results.collect([newcomer], group_by=["model.noise_level"])
    with pytest.raises(SystemExit) as exit_:
        results.main([str(newcomer), "--group-by", "model.noise_level"])
    assert exit_.value.code == 2 and capsys.readouterr().err == f"aejax-collect: error: {says}\n"
    # Either way out that the line offers; trainer.checkpoint_every (how it was saved) is no reason to refuse.
    both = results.collect([newcomer], group_by=["model.noise_level", "trainer.epochs"], metrics=["test/mse"])
    assert [(r["model.noise_level"], r["trainer.epochs"], r["n"]) for _, r in both.iterrows()] == [
        (0.0, 2, 2), (0.0, 10, 2), (0.1, 2, 2)]
    assert both["test/mse:mean"].tolist() == pytest.approx([0.075, 0.025, 0.095])
    assert results.main([str(newcomer), "--group-by", "model.noise_level", "--where", "trainer.epochs=10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| model.noise_level | n | n_finished | test/mse | val/mse |" and len(out) == 3
    assert out[2].startswith("| 0 | 2 | 2 | 0.025 ± ")
    # A grouping that pools seeds of one configuration only is as before.
    assert list(results.collect([newcomer / "short"], group_by=["model.noise_level"])["n"]) == [2, 2]


def metrics_run(path, sizes, provenance=None, later=None, mig=(0.4, 0.5)):
    """A 2-seed shapes_toy run whose config sets metrics.sizes=`sizes`; its scores in summary.json with
    `provenance` (as training writes them), or in disentanglement.json with `later` (as aejax-metrics does)."""
    cfg = config(**{"data": {"name": "shapes_toy", "train_size": None, "test_size": 128}, "population.seeds": 2,
                    "metrics": {"disentanglement": "auto", "mode": "fast", "seed": 0, "sizes": sizes}})
    scores = [{"mse": 0.01, **({} if later else {"mig": m})} for m in mig]
    write_run(path, cfg, [(s, "finished", {}, test) for s, test in enumerate(scores)], status=("finished", 4, None))
    summary = json.loads((path / "summary.json").read_text())
    if provenance:
        (path / "summary.json").write_text(json.dumps({**summary, "metrics_provenance": provenance}))
    if later:
        (path / "disentanglement.json").write_text(json.dumps(
            {"provenance": later, "seconds": 1.0, "epoch": 4,
             "members": [{"member": i, "seed": i, "status": "finished", "test": {"mig": m}} for i, m in enumerate(mig)]}))
    return path


def recorded(sizes, sklearn="1.5.0"):
    return {"metrics_seed": 0, "metrics_mode": "fast", "metrics_sizes": sizes, "metrics_sklearn_version": sklearn,
            "metrics_numpy_version": "2.0.0", "metrics_representation": "posterior mean"}


def test_scores_computed_with_other_metric_settings_are_columns_and_never_pooled(tmp_path, capsys):
    """The study's sizes (null), explicit sizes nested or flat, and a run scored later by aejax-metrics
    at other sizes with another scikit-learn: each a value of metrics.sizes (and metrics.sklearn_version)."""
    metrics_run(tmp_path / "study", None, recorded({}))
    metrics_run(tmp_path / "small", {"dci": {"num_train": 100}}, recorded({"dci.num_train": 100}), mig=(0.2, 0.3))
    metrics_run(tmp_path / "later", None, later=recorded({"num_test": 50}, sklearn="1.6.1"), mig=(0.6, 0.7))
    table = results.collect([tmp_path])
    assert [c for c in table.columns if c.startswith("metrics.")] == ["metrics.sizes", "metrics.sklearn_version"]
    assert list(table["metrics.sizes"]) == ['{"num_test": 50}'] * 2 + ['{"dci.num_train": 100}'] * 2 + ["{}"] * 2
    assert list(table["metrics.sklearn_version"]) == ["1.6.1"] * 2 + ["1.5.0"] * 4
    says = ('--group-by name would average rows that differ in metrics.sizes ({"dci.num_train": 100}, '
            '{"num_test": 50}, {}); metrics.sklearn_version (1.5.0, 1.6.1); add them to the groups (--group-by '
            'name,metrics.sizes,metrics.sklearn_version) or keep one value (e.g. --where metrics.sizes={})')
    with pytest.raises(ValueError, match=r"^" + re.escape(says) + "$"):
        results.collect([tmp_path], group_by=["name"])
    with pytest.raises(SystemExit) as exit_:
        results.main([str(tmp_path), "--group-by", "name"])
    assert exit_.value.code == 2 and capsys.readouterr().err == f"aejax-collect: error: {says}\n"
    # Grouped by them, each group is one setting; --where picks the study's sizes however they are written.
    grouped = results.collect([tmp_path], group_by=["metrics.sizes", "metrics.sklearn_version"], metrics=["test/mig"])
    assert grouped["test/mig:mean"].tolist() == pytest.approx([0.25, 0.65, 0.45]) and list(grouped["n"]) == [2, 2, 2]
    for where in ({"metrics.sizes": {}}, {"metrics.sizes": None}):
        study = results.collect([tmp_path], group_by=["name"], where=where, metrics=["test/mig"])
        assert study["test/mig:mean"].tolist() == pytest.approx([0.45])
    # Runs scored with one setting: no metrics column, one group.
    same = results.collect([tmp_path / "study", tmp_path / "small"], where={"metrics.sizes": {"dci.num_train": 100}})
    assert not [c for c in same.columns if c.startswith("metrics.")] and len(same) == 2


@pytest.mark.parametrize("args, says", [
    (["--where", "model.nope=1"], "--where model.nope is not a column; allowed: name, status"),
    (["--where", "trainer.epochs"], "--where trainer.epochs is not allowed; expected KEY=VALUE"),
    (["--where", "trainer.epochs=3"], "no runs (a folder with config.yaml or status.json) under"),
])
def test_where_errors_are_one_line(newcomer, capsys, args, says):
    with pytest.raises(SystemExit) as exit_:
        results.main([str(newcomer), *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(f"aejax-collect: error: {says}"), err


def test_markdown_tables():
    grouped = pd.DataFrame({"model.code_size": [8, 16], "n": [3, 3], "n_finished": [3, 2],
                            "test/mse:mean": [0.0310012, 123456.7], "test/mse:std": [0.00264575, float("nan")],
                            "test/mse:ci_low": [0.029, 1.0], "test/mse:ci_high": [0.034, 2.0]})
    assert results.to_markdown(grouped) == (
        "| model.code_size | n | n_finished | test/mse |\n| --- | --- | --- | --- |\n"
        "| 8 | 3 | 3 | 0.031 ± 0.002646 |\n| 16 | 3 | 2 | 123457 |\n")
    assert "| 8 | 3 | 3 | 0.031 [0.029, 0.034] |" in results.to_markdown(grouped, interval="ci")
    plain = pd.DataFrame({"name": ["a|b"], "message": [None], "seed": [0], "test/mse": [1e-5], "run_dir": ["/x"]})
    assert results.to_markdown(plain) == "| name | seed | test/mse |\n| --- | --- | --- |\n| a\\|b | 0 | 1e-05 |\n"


def test_cli_prints_markdown_and_writes_csv(runs, tmp_path, capsys):
    assert results.main([str(runs / "sweep"), "--group-by", "model.code_size", "--metrics", "test/mse"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| model.code_size | n | n_finished | test/mse |" and out[2].startswith("| 8 | 3 | 3 | 0.031 ± ")
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    assert results.main([str(runs), "--csv", str(csv), "--markdown", str(md), "--status", "finished,diverged"]) == 0
    assert capsys.readouterr().out == ""
    table = pd.read_csv(csv)
    assert len(table) == 8 and set(table["status"]) == {"finished", "diverged"}
    assert md.read_text().count("\n") == 2 + 8


@pytest.mark.parametrize("args, says", [
    (["/no/such/dir"], "/no/such/dir: no such directory"),
    (["{runs}", "--group-by", "model.nope"], "--group-by model.nope is not a column; allowed: name, status"),
    (["{runs}", "--metrics", "test/nope"], "--metrics test/nope is not a metric of these runs; allowed: test/mse"),
    (["{runs}", "--status", "done"], "--status done is not a status; allowed: finished"),
    (["{runs}", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "the following arguments are required: DIR"),
    (["{runs}/empty"], "no runs (a folder with config.yaml or status.json) under"),
])
def test_cli_errors_are_one_line_and_exit_2(runs, capsys, args, says):
    (runs / "empty" / "figures").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        results.main([a.format(runs=runs) for a in args])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"aejax-collect: error: {says}")


def test_a_real_run(finished_digits_run):
    """The TINY run the report tests share (trained once per session): the table reads what
    training wrote."""
    summary = json.loads((finished_digits_run / "summary.json").read_text())
    table = results.collect([finished_digits_run])
    assert len(table) == 1 and table["status"].iloc[0] == "finished" and table["seed"].iloc[0] == 0
    assert table["test/mse"].iloc[0] == summary["members"][0]["test"]["mse"]
    assert table["train_seconds"].iloc[0] == summary["train_seconds"] and table["commit"].notna().all()


def test_members_of_an_unfinished_run_are_the_ones_training_makes():
    from conftest import TINY, compose

    from aejax.config import parse_run
    from aejax.population import members

    cfg = compose(TINY + ["population.seeds=[3,1]", "+population.grid.model.noise_level=[0.0,0.2]",
                          "+population.grid.optim.learning_rate=[0.1,0.01]"])
    expected = [{"member": r["member"], "seed": r["seed"],
                 "hyperparameters": {k: r[k] for k in ("model.noise_level", "optim.learning_rate")}}
                for r in members(parse_run(cfg))]
    assert results.population_members(cfg) == expected
