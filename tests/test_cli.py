"""The real entry point: `aejax-train` in a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY

BAD_INPUTS = {
    "model.code_size=0": "model.code_size=0",
    "model.foo=1": "model.foo is not a setting",
    "+model.foo=1": "model.foo is not a setting",
    "model.noise_level=-0.5": "model.noise_level=-0.5",
    "model.corruption=mask model.noise_level=1.5": "model.noise_level=1.5",
    "model=sparse model.sparsity=kl model.code_activation=sigmoid model.sparsity_target=1.2": "model.sparsity_target=1.2",
    "model=sparse model.sparsity=kl": "model.code_activation='relu'",
    "trainer.batch_size=5000": "trainer.batch_size=5000",
    "data=mnist data.root=/nonexistent/mnist data.download=false": "train-images-idx3-ubyte.gz is missing",
    "model=nonexistent": "Could not find 'model/nonexistent'",
    "+population.grid.model.code_size=[2,4]": "population.grid key='model.code_size'",
    "+population.grid.model.noise_level=[0.1,-1]": "population.grid.model.noise_level=-1.0",
    "+population.grid.model.top_k=[5,10]": "model.sparsity='none' is not allowed; expected topk",
    "model=sparse model.sparsity=topk model.top_k=5 +population.grid.model.top_k=[5,2.5]":
        "population.grid.model.top_k=2.5 is not allowed; expected integers",
    "experiment=mnist_sparse_codes data=synthetic": "data.name='synthetic' is not allowed with task=sparse_codes",
}


def aejax_train(args, cwd, env=None):
    exe = Path(sys.executable).parent / "aejax-train"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", BAD_INPUTS)
def test_bad_input_is_one_line_and_writes_no_result(args, tmp_path):
    result = aejax_train([*args.split(), "logger=none", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert result.returncode == 2
    errors = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("aejax-train: error: "), result.stderr
    assert BAD_INPUTS[args] in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.rglob("summary.json"))


def test_corrupted_mnist_file_names_file_and_checksum(tmp_path, mnist_root):
    for f in mnist_root.glob("*.gz"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    result = aejax_train(["data=mnist", f"data.root={tmp_path}", "logger=none", f"hydra.run.dir={tmp_path}/run"],
                         tmp_path)
    assert result.returncode == 2
    assert "t10k-labels-idx1-ubyte.gz is corrupted" in result.stderr
    assert "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6" in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_diverged_run_exits_3_and_keeps_checkpoint(tmp_path):
    result = aejax_train([*TINY, "optim=sgd", "optim.learning_rate=1e12", "model.output_activation=linear",
                          f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "diverged" in result.stderr and "member 0" in result.stderr
    assert (tmp_path / "run" / "checkpoints" / "0").is_dir()
    assert not (tmp_path / "run" / "summary.json").exists()


def test_end_to_end_run_writes_every_output(tmp_path):
    result = aejax_train([*TINY, "model.code_size=2", "population.seeds=2", "trainer.checkpoint_every=1",
                          "logger=wandb", f"hydra.run.dir={tmp_path}/run"], tmp_path)  # no WANDB_* set: offline, no prompt
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_members"] == 2 and summary["varied"] == ["seed"]
    for member in summary["members"]:
        assert 0 < member["test"]["mse"] < 0.2
        assert member["test"]["sse_per_image"] == pytest.approx(64 * member["test"]["mse"], rel=1e-5)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert {l["member"] for l in lines} == {0, 1} and all("train/loss" in l for l in lines)
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    assert {p.name for p in (run / "figures").iterdir()} == {
        "training_curves.png", "reconstructions.png", "latent_scatter.png"}
    assert (run / "config.yaml").exists()
    assert len(list(run.glob("wandb/offline-run-*/run-*.wandb"))) == 2


def test_wandb_never_prompts_even_on_a_terminal(tmp_path):
    """With a terminal, no API key and no WANDB_MODE, wandb would ask for a login; aejax must not."""
    command = " ".join([str(Path(sys.executable).parent / "aejax-train"), *TINY[:-2], "logger=wandb",
                        "trainer.progress=on", f"hydra.run.dir={tmp_path}/run"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc with a key
    result = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "step 8/8" in result.stdout  # the progress line, shown on a terminal
    assert (tmp_path / "run" / "summary.json").exists()
    assert list((tmp_path / "run").glob("wandb/offline-run-*"))


def test_multirun_jobs_share_a_wandb_group(tmp_path):
    from aejax.wandb_records import read_records

    result = aejax_train(["-m", *TINY[:-2], "logger=wandb", "model.code_size=2,3",
                          f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    groups = []
    for path in sorted(tmp_path.glob("sweep/*/wandb/offline-run-*/run-*.wandb")):
        run = next(r.run for r in read_records(path) if r.WhichOneof("record_type") == "run")
        groups.append(run.run_group)
    assert len(groups) == 2 and groups[0] == groups[1] == "default-sweep"
