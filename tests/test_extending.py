"""The README's "Add your own model or objective", run as a user would: its module and its YAML file are
written outside the aejax folder, and its three commands run through the console script. The objective
trains as a two-member population sweeping its weight, its setting shows in `--cfg job` and `--help`, and a
bad value is one line with exit 2."""

import json
import re
from pathlib import Path

from conftest import REPO
from test_cli import aejax_train

SECTION = "### Add your own model or objective"


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start)
    return text[start:end]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def commands() -> list[list[str]]:
    """The bash block's aejax-train commands, as argument lists after `uv run --locked aejax-train`."""
    out = []
    for line in blocks("bash")[0].splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith("uv run --locked aejax-train "):
            out.append([a.strip('"') for a in line.removeprefix("uv run --locked aejax-train ").split()])
    return out


def write_files(folder: Path) -> None:
    (folder / "my_objective.py").write_text(blocks("python")[0])
    preset = folder / "my_conf" / "model" / "mean_penalty_vae.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text(blocks("yaml")[0])


def test_the_readme_objective_trains_shows_and_refuses(tmp_path):
    write_files(tmp_path)
    train, show, bad = commands()
    small = ["data.train_size=256", "data.test_size=64", "trainer.batch_size=64", "logger=none",
             "trainer.progress=off", f"hydra.run.dir={tmp_path}/run"]

    result = aejax_train([*train, *small], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    weights = [m["hyperparameters"]["model.mean_weight"] for m in summary["members"]]
    assert weights == [0.0, 1.0] and summary["varied"] == ["model.mean_weight"]
    assert all(m["status"] == "finished" for m in summary["members"])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    penalties = {r["member"]: r["train/mean_sq"] for r in rows if "train/mean_sq" in r}
    assert set(penalties) == {0, 1}
    # The weight does something: the penalised member's posterior means end smaller.
    last = {m: [r["train/mean_sq"] for r in rows if r.get("member") == m and "train/mean_sq" in r][-1] for m in (0, 1)}
    assert last[1] < last[0]

    shown = aejax_train(show, tmp_path)
    assert shown.returncode == 0 and "mean_weight: 0.1" in shown.stdout and "objective: mean_penalty_vae" in shown.stdout
    helped = aejax_train([a for a in show if a not in ("--cfg", "job")] + ["--help"], tmp_path)
    assert helped.returncode == 0 and re.search(r"model\.mean_weight = 0\.1 +weight of the squared posterior means",
                                                helped.stdout), helped.stdout

    refused = aejax_train(bad, tmp_path)
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert errors == ["aejax-train: error: model.mean_weight=-1.0 is not allowed; expected a number >= 0"]
