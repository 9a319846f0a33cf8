"""Disentanglement metrics in runs (aejax/disentanglement.py): summary.json at the end of training on
ground-truth data, `metrics.*` settings, `aejax-metrics` and `load_run(...).disentanglement()` on a finished
run, `aejax-collect` columns, and the study config's six jobs. Tiny: shapes_toy, a 3-latent MLP VAE, one
epoch (5 steps), metric sizes of a few hundred points in fast mode."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from aejax import disentanglement, results
from aejax.metrics import FAMILIES, METRICS, MODES, NEEDS_POSTERIOR, draw_for
from conftest import compose

SIZES = {"num_train": 100, "num_test": 50, "num_eval": 20, "batch_size": 8, "num_variance_estimate": 100}
SIZES_ARG = "{" + ",".join(f"{k}:{v}" for k, v in SIZES.items()) + "}"
RUN = ["data=shapes_toy", "model=vae", "model.hidden=[32]", "model.code_size=3", "trainer.epochs=1",
       "trainer.batch_size=32", "logger=none", "trainer.progress=off", "+population.grid.model.beta=[1,4]",
       "metrics.mode=fast", f"metrics.sizes={SIZES_ARG}"]
STUDY = {"beta_vae": ("beta", [1, 2, 4, 6, 8, 16]), "factor_vae": ("gamma", [10, 20, 30, 40, 50, 100]),
         "dip_vae_i": ("lambda_od", [1, 2, 5, 10, 20, 50]), "dip_vae_ii": ("lambda_od", [1, 2, 5, 10, 20, 50]),
         "beta_tc_vae": ("beta", [1, 2, 4, 6, 8, 10]), "annealed_vae": ("c_max", [5, 10, 25, 50, 75, 100])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished 2-member runs (beta 1 and 4) on shapes_toy: metrics on (auto), and off."""
    from aejax.run import train_and_evaluate

    root = tmp_path_factory.mktemp("disentanglement")
    for name, extra in (("on", []), ("off", ["metrics.disentanglement=false"])):
        train_and_evaluate(compose(RUN + extra), root / name)
    return root


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_a_run_on_ground_truth_data_scores_every_member(runs):
    got = summary(runs / "on")
    assert got["metrics_provenance"] == {"metrics_seed": 0, "metrics_mode": "fast", "metrics_sizes": SIZES,
                                         "metrics_preset": "paper",
                                         **{k: v for k, v in got["metrics_provenance"].items()
                                            if k in ("metrics_sklearn_version", "metrics_numpy_version",
                                                     "metrics_representation")}}
    assert got["metrics_provenance"]["metrics_sklearn_version"] and got["metrics_seconds"] > 0
    for member in got["members"]:
        assert set(METRICS) <= set(member["test"]) and "mse" in member["test"]
        assert all(np.isfinite(member["test"][name]) for name in METRICS)
    # Every member is scored on the same factors, so members that differ differ in their scores.
    assert got["members"][0]["test"]["mig"] != got["members"][1]["test"]["mig"]


def test_metrics_disentanglement_false_turns_them_off(runs):
    got = summary(runs / "off")
    assert "metrics_provenance" not in got
    assert not set(METRICS) & set(got["members"][0]["test"]) and "mse" in got["members"][0]["test"]


def test_aejax_metrics_scores_a_finished_run_the_same_and_leaves_its_files_alone(runs, tmp_path, capsys):
    run = tmp_path / "on"
    shutil.copytree(runs / "on", run)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob("*") if p.is_file()}
    assert disentanglement.main([str(run), "--mode", "fast", "--sizes", ",".join(f"{k}={v}" for k, v in SIZES.items())]) == 0
    assert f"2 member(s) scored" in capsys.readouterr().out
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob("*") if p.is_file()}
    assert after.pop(run / "disentanglement.json") and after == before  # summary.json byte-identical
    record = json.loads((run / "disentanglement.json").read_text())
    assert record["provenance"] == summary(run)["metrics_provenance"]
    # The same run scored twice (fixed seeds, the same compiled population encoder): the same numbers.
    for mine, trained in zip(record["members"], summary(run)["members"]):
        assert mine["member"] == trained["member"] and mine["status"] == "finished"
        assert mine["test"] == {k: trained["test"][k] for k in METRICS}


def test_a_preset_gives_the_mode_and_sizes_that_metrics_mode_and_sizes_leave_unset():
    from aejax.config import METRIC_PRESETS, MetricsSpec, parse_section

    def spec(**raw):
        return parse_section("metrics", MetricsSpec, raw)

    quick = METRIC_PRESETS["quick"]["sizes"]
    assert spec().resolved_mode() == "exact" and spec().size_overrides() == {}  # paper: the study's, as before
    assert spec(preset="quick").resolved_mode() == "fast" and spec(preset="quick").size_overrides() == quick
    assert spec(preset="quick", mode="exact").resolved_mode() == "exact"
    # A family's size adds to the preset's; a flat size replaces the preset's for every family.
    assert spec(preset="quick", sizes={"dci": {"num_train": 50}}).size_overrides() == {**quick, "dci.num_train": 50}
    flat = spec(preset="quick", sizes={"num_train": 50}).size_overrides()
    assert flat["num_train"] == 50 and "beta_vae.num_train" not in flat and flat["num_test"] == quick["num_test"]
    with pytest.raises(disentanglement.ConfigError, match="metrics.preset='huge' is not allowed; expected one of "
                       "paper, quick"):
        spec(preset="huge")


def test_aejax_metrics_preset_quick_with_sizes_over_it_scores_as_the_run_did(runs, tmp_path, capsys):
    """--preset quick sets fast mode; flat --sizes replace all of its sizes: the run's own settings again."""
    run = tmp_path / "on"
    shutil.copytree(runs / "on", run)
    assert disentanglement.main([str(run), "--preset", "quick", "--sizes",
                                 ",".join(f"{k}={v}" for k, v in SIZES.items())]) == 0
    record = json.loads((run / "disentanglement.json").read_text())
    assert record["provenance"] == {**summary(run)["metrics_provenance"], "metrics_preset": "quick"}
    assert [m["test"] for m in record["members"]] == [{k: m["test"][k] for k in METRICS}
                                                      for m in summary(run)["members"]]


def test_one_loaded_member_gets_its_metrics(runs):
    from aejax.trained import load_run

    run = load_run(runs / "on", member=1)
    got = run.disentanglement(mode="fast", sizes=SIZES)
    assert list(got) == list(METRICS) and got == run.disentanglement(mode="fast", sizes=SIZES)
    trained = summary(runs / "on")["members"][1]["test"]
    # A population of one compiles its own encoder: its codes may differ from the population's in the last bits.
    assert got["gaussian_tc_mean"] == pytest.approx(trained["gaussian_tc_mean"], rel=1e-4)
    with pytest.raises(disentanglement.ConfigError, match="metrics.mode='slow' is not allowed"):
        run.disentanglement(mode="slow")
    with pytest.raises(disentanglement.ConfigError, match="metrics.sizes key='nope' is not allowed"):
        run.disentanglement(sizes={"nope": 3})


def test_aejax_metrics_refuses_an_unfinished_run_or_data_without_factors(runs, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(runs / "on" / "config.yaml", unfinished)
    (unfinished / "status.json").write_text(json.dumps({"status": "running"}))
    digits = tmp_path / "digits"
    shutil.copytree(runs / "on", digits, ignore=shutil.ignore_patterns("checkpoints", "figures"))
    config = yaml.safe_load((digits / "config.yaml").read_text())
    config["data"] = {**config["data"], "name": "digits"}
    (digits / "config.yaml").write_text(yaml.safe_dump(config))
    for run, says in ((unfinished, "is not a finished run (status: running"),
                      (digits, "data.name=digits has no ground-truth factors")):
        assert disentanglement.main([str(run)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("aejax-metrics: error: ") and says in line
        assert not (run / "disentanglement.json").exists()
    with pytest.raises(SystemExit) as exit_:
        disentanglement.main([str(digits), "--sizes", "num_train=many"])
    assert exit_.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_aejax_collect_shows_the_metrics_from_summary_and_from_disentanglement_json(runs, tmp_path, capsys):
    for name in ("on", "off"):
        shutil.copytree(runs / name, tmp_path / name, ignore=shutil.ignore_patterns("checkpoints", "figures"))
    off = summary(tmp_path / "off")
    # As aejax-metrics writes it: the off run's members scored afterwards (numbers made up here).
    record = {"provenance": summary(tmp_path / "on")["metrics_provenance"], "seconds": 1.0, "epoch": 1,
              "members": [{"member": m["member"], "seed": m["seed"], "status": "finished",
                           "test": {k: 0.5 + m["member"] for k in METRICS}} for m in off["members"]]}
    (tmp_path / "off" / "disentanglement.json").write_text(json.dumps(record))
    (tmp_path / "on" / "disentanglement.json").write_text(json.dumps(record))  # summary.json's values win
    table = results.collect([tmp_path], group_by=["model.beta"])
    assert list(table["model.beta"]) == [1.0, 4.0] and list(table["n"]) == [2, 2]
    on = summary(tmp_path / "on")["members"]
    for i, row in enumerate(table.to_dict("records")):
        for name in METRICS:
            assert row[f"test/{name}:mean"] == pytest.approx((on[i]["test"][name] + 0.5 + i) / 2)
    assert results.main([str(tmp_path), "--group-by", "model.beta"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert all(f"test/{name}" in header for name in METRICS)


def test_the_study_is_six_jobs_of_one_command(capsys):
    from aejax.cli import dry_run

    with pytest.raises(SystemExit) as exit_:
        dry_run(["-m", "experiment=disentanglement"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0, out
    jobs = [line for line in out.splitlines() if line.startswith("job ")]
    assert len(jobs) == 6 and all(line.endswith("[ok]") for line in jobs), out
    assert [line.split("study_objective=")[1].split()[0] for line in jobs] == list(STUDY)
    assert "6 job(s)" in out
    for objective, (weight, values) in STUDY.items():
        config = compose(["experiment=disentanglement", f"study_objective={objective}"])
        assert config["model"]["objective"] == objective and config["data"]["name"] == "dsprites"
        assert config["population"]["grid"] == {"model": {weight: values}}
        assert (config["optim"]["learning_rate"], config["trainer"]["batch_size"]) == (5e-4, 64)
        assert config["model"]["channels"] == [32, 32, 64, 64] and config["model"]["code_size"] == 10
    assert compose(["experiment=disentanglement", "study_objective=annealed_vae"])["model"]["gamma"] == 1000


def test_the_batched_scores_equal_the_packages_on_all_codes():
    """BetaVAE and FactorVAE keep only per-batch reductions of the codes: the same numbers as
    `FAMILIES[family].score` on every code (here a fixed linear encoder of 3 members)."""
    from aejax.config import parse_run
    from aejax.data import load_dataset

    truth = load_dataset(parse_run(compose(["data=shapes_toy"])).data).ground_truth
    weights = np.random.default_rng(0).normal(size=(3, 256, 3)).astype(np.float32)
    encode = lambda x: (np.einsum("nd,mdk->mnk", x, weights), np.full((3, len(x), 3), -1.0, np.float32))
    names = tuple(METRICS)
    got = disentanglement.score_population(encode, truth, names, seed=3, mode="fast", sizes=SIZES)
    for family, mod in FAMILIES.items():
        draw = draw_for(family, truth, 3, SIZES)
        mean, logvar = encode(truth.observations(draw.factors))
        expected = mod.score(mean, draw, mode="fast", posterior=(mean, logvar), names=mod.NAMES)
        for name in mod.NAMES:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_settings_and_resume_rules():
    from aejax.config import METRIC_FAMILY_SIZES, METRIC_MODES, MetricsSpec
    from aejax.rundir import resume_differences

    assert METRIC_FAMILY_SIZES == {fam: tuple(mod.SIZES) for fam, mod in FAMILIES.items()}
    assert METRIC_MODES == MODES and NEEDS_POSTERIOR == ("gaussian_tc_sampled",)
    assert MetricsSpec(sizes={"num_train": 5, "dci": {"num_train": 3}}).size_overrides() == {"num_train": 5,
                                                                                           "dci.num_train": 3}
    saved = compose(RUN)
    changed = compose(RUN + ["metrics.mode=exact", "metrics.seed=4", "metrics.disentanglement=false"])
    assert resume_differences(saved, changed) == []  # metrics only change what is measured at the end


def test_a_signal_in_the_metrics_phase_stops_in_seconds_and_aejax_metrics_scores_the_run(tmp_path, capsys):
    """SIGINT in the metrics phase (status.json says so, and the line saying the codes are ready is out): exit
    130 within seconds, one line naming `aejax-metrics RUN`, no summary.json, the final checkpoint kept;
    `aejax-metrics RUN` then scores every member."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from aejax.rundir import read_json

    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen([str(Path(sys.executable).parent / "aejax-train"), *RUN, f"hydra.run.dir={run}"],
                               cwd=tmp_path, env=env, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    for line in process.stdout:  # Hydra's console log; a line once the codes are ready, then the classifiers fit
        if "metrics: 7 families drawn and encoded in" in line:
            break
    assert re.search(r"metrics: 7 families drawn and encoded in \d+:\d\d; classifiers on \d+ worker process\(es\)$",
                     line.strip()), line
    assert read_json(run / "status.json")["phase"] == "metrics"
    process.send_signal(signal.SIGINT)
    tic = time.perf_counter()
    out, err = process.communicate(timeout=120)
    seconds = time.perf_counter() - tic
    assert process.returncode == 130, err[-3000:]
    assert seconds < 10, seconds  # the next family or encoding segment; measured 1 to 2 s on a busy machine
    lines = [l for l in err.splitlines() if l.startswith("aejax-train:")]
    assert len(lines) == 1 and re.match(r"aejax-train: SIGINT: stopped during the metrics \([0-6] of 7 metric "
                                        r"families scored; no score was written\), before summary.json; training had "
                                        r"ended and its final checkpoint is on disk", lines[0]), err[-3000:]
    assert f"uv run --locked aejax-metrics {run}," in lines[0] and "trainer.resume=true" in lines[0]
    assert "Traceback" not in err
    state = read_json(run / "status.json")
    assert state["status"] == "interrupted" and state["phase"] == "metrics"
    assert lines[0] == f"aejax-train: SIGINT: {state['message']}"
    assert not (run / "summary.json").exists()
    assert (run / "checkpoints" / str(state["step"])).is_dir() and state["step"] == state["steps_per_epoch"]
    capsys.readouterr()
    assert disentanglement.main([str(run), "--mode", "fast", "--sizes", ",".join(f"{k}={v}" for k, v in SIZES.items())]) == 0
    assert "2 member(s) scored" in capsys.readouterr().out
    record = json.loads((run / "disentanglement.json").read_text())
    assert [m["status"] for m in record["members"]] == ["finished", "finished"]
    assert all(np.isfinite(m["test"][name]) for m in record["members"] for name in METRICS)
