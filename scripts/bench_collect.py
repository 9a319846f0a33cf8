"""How long `aejax.results.collect` takes on N run directories.

    uv run python scripts/bench_collect.py 2000 [--keep DIR]

Writes N fake but realistically sized run directories into a temporary folder -- each with a
resolved config.yaml (the ~75-line config `aejax-train` writes), a 4-member summary.json
(2 seeds x 2 noise levels, one member diverged in every tenth run), status.json, a
provenance.json with a 3 kB git diff, checkpoints/ and figures/ -- laid out as multirun sweeps of
100 jobs (multirun.yaml, .submitit/), with every 50th run unfinished and every 100th failed. Then
it times collect() (directory walk, file reads, table) and the grouped table, best of 3.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import yaml

from aejax import results

CONFIG = yaml.safe_load("""
task: train
name: bench
population: {seeds: 2, grid: {model: {noise_level: [0.1, 0.3]}}}
model: {family: autoencoder, architecture: mlp, hidden: [1000, 500, 250], channels: [16, 32], code_size: 30,
  activation: relu, code_activation: linear, output_activation: sigmoid, reconstruction_loss: squared_error,
  tied_weights: false, init_scale: 1.0, sparsity: none, sparsity_weight: 0.0, sparsity_target: 0.05, top_k: 0,
  corruption: gaussian, noise_level: 0.0, contractive_weight: 0.0, beta: 1.0, likelihood: bernoulli}
data: {name: mnist, root: /data/mnist, download: true, train_size: 60000, val_fraction: 0.1, test_size: 10000,
  binarize: none, generator: manifold, dim: 64, intrinsic_dim: 2, num_samples: 2000, noise: 0.05,
  similarity: 0.9, seed: 0}
optim: {name: adam, learning_rate: 0.001, schedule: constant, warmup_steps: 0, momentum: 0.9,
  weight_decay: 0.0001, clip_norm: null}
trainer: {epochs: 10, batch_size: 128, log_every: 100, checkpoint_every: 5, resume: false, progress: auto,
  on_divergence: auto}
logger: {name: wandb, mode: null, project: aejax, entity: null, group: null, max_member_runs: 16}
""")
METRICS = ("dead_fraction", "denoise_mse", "mean_l0", "mse", "sse_per_image")


def write_run(path: Path, i: int) -> None:
    path.mkdir(parents=True)
    (path / "checkpoints" / "5").mkdir(parents=True)
    (path / "figures").mkdir()
    config = copy.deepcopy(CONFIG)
    config["model"]["code_size"] = (2, 8, 30, 64)[i % 4]
    config["optim"]["learning_rate"] = (1e-3, 3e-3)[i // 4 % 2]
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    state = "failed" if i % 100 == 99 else "running" if i % 50 == 49 else "finished"
    (path / "status.json").write_text(json.dumps({"status": state, "epoch": 5 if state != "finished" else 10,
                                                  "epochs": 10, "message": None, "updated": "2026-01-01T00:00:00"},
                                                 indent=1))
    attempt = {"git": {"commit": "2d0742d4083329740e156021ff8f852595807f4f", "dirty": True, "diff": "+x\n" * 1000},
               "uv_lock_sha256": "0" * 64, "versions": {"python": "3.11.9", "jax": "0.6.2"},
               "devices": {"platform": "gpu", "kind": "NVIDIA H100", "count": 1}, "hostname": f"node{i % 16}",
               "slurm": {"job_id": str(1000 + i), "array_job_id": "999", "array_task_id": str(i % 100),
                         "restart_count": i % 3}, "argv": ["aejax-train", "-m"], "overrides": [f"model.code_size={i}"],
               "started": "2026-01-01T00:00:00", "ended": "2026-01-01T00:10:00"}
    (path / "provenance.json").write_text(json.dumps({"run_id": f"{i:08x}", "attempts": [attempt], **attempt}, indent=1))
    if state != "finished":
        return
    members = []
    for m, (seed, level) in enumerate((s, lv) for s in (0, 1) for lv in (0.1, 0.3)):
        diverged = i % 10 == 0 and m == 3
        value = lambda k: None if diverged else 0.01 * (1 + m) + 1e-5 * i
        members.append({"member": m, "seed": seed, "status": "diverged" if diverged else "finished",
                        "diverged_at_step": 123 if diverged else None,
                        "hyperparameters": {"optim.learning_rate": config["optim"]["learning_rate"],
                                            "model.sparsity_weight": 0.0, "model.noise_level": level,
                                            "model.beta": 1.0, "model.contractive_weight": 0.0, "model.top_k": 0.0},
                        "test": {k: value(k) for k in METRICS}, "val": {k: value(k) for k in METRICS}})
    (path / "summary.json").write_text(json.dumps({
        "name": "bench", "status": "finished", "num_members": 4, "varied": ["seed", "model.noise_level"],
        "num_params_per_member": 2833170, "steps": 4690, "train_seconds": 390.0 + i, "diverged_members": int(i % 10 == 0),
        "members": members}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=2000, help="run directories (default 2000)")
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        tic = time.perf_counter()
        for i in range(args.n):
            sweep = root / f"sweep{i // 100}"
            if i % 100 == 0:
                (sweep / ".submitit").mkdir(parents=True)
                (sweep / "multirun.yaml").write_text("hydra: {}\n")
            write_run(sweep / str(i % 100), i)
        print(f"wrote {args.n} run dirs in {time.perf_counter() - tic:.1f} s")
        for label, kwargs in (("collect", {}), ("collect --group-by model.code_size,model.noise_level",
                                                 {"group_by": ["model.code_size", "model.noise_level"]})):
            times = []
            for _ in range(3):
                tic = time.perf_counter()
                table = results.collect([root], **kwargs)
                times.append(time.perf_counter() - tic)
            print(f"{label}: {len(table)} rows x {table.shape[1]} columns, best of 3 {min(times):.2f} s "
                  f"(all: {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
