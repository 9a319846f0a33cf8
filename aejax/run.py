"""`train_and_evaluate(config, workdir)`: one run (one population) from config to outputs.

Outputs in `workdir`: config.yaml (resolved), metrics.jsonl, summary.json, figures/*.png,
checkpoints/ (Orbax). summary.json is written last and atomically, so its presence means
the run finished.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from aejax import figures
from aejax.checkpoint import PopulationCheckpointer
from aejax.config import ConfigError, RunSpec, parse_run
from aejax.data import Dataset, load_dataset
from aejax.errors import Diverged
from aejax.evaluate import evaluate_population
from aejax.loggers import MetricsFile, make_logger
from aejax.models import count_params, init_params, member_model, model_graph
from aejax.objectives import make_loss
from aejax.optim import make_optimizer
from aejax.population import hyperparameter_arrays, members, varied_settings
from aejax.progress import Progress
from aejax.train import (NORM_TERMS, check_finite, compile_population, init_population, make_member_program,
                         make_step, member_keys)

STEPS_PER_CALL = 500  # steps fused into one compiled call when epochs are short


def chunk_epochs(epochs: int, steps_per_epoch: int, checkpoint_every: int) -> int:
    """Epochs per compiled call: about STEPS_PER_CALL steps, dividing both the run and the
    checkpoint interval so every call has the same shape (one compilation)."""
    period = math.gcd(epochs, checkpoint_every) if checkpoint_every else epochs
    target = max(1, STEPS_PER_CALL // steps_per_epoch)
    return max(d for d in range(1, period + 1) if period % d == 0 and d <= target)


def _log_rows(terms: dict, first_step: int, log_every: int, last_step: int, seconds_per_step: float,
              batch: int) -> list[list[dict]]:
    """Average the `(E, T)` terms over windows ending at multiples of `log_every` (and the last step)."""
    n_steps = next(iter(terms.values())).shape[1]
    out = []
    for end in range(n_steps):
        step = first_step + end + 1
        if step % log_every and step != last_step:
            continue
        lo = max(0, end + 1 - log_every)
        # Norms exist only at multiples of log_every (see make_step); the rest are window means.
        means = {k: v[:, end] if k in NORM_TERMS else v[:, lo:end + 1].mean(axis=1) for k, v in terms.items()}
        out.append([{"step": step, "member": m, **{f"train/{k}": float(v[m]) for k, v in means.items()},
                     "perf/ms_per_step": 1e3 * seconds_per_step,
                     "perf/samples_per_s": batch / seconds_per_step}
                    for m in range(len(next(iter(means.values()))))])
    return out


def train_and_evaluate(config: dict, workdir: str | Path, return_params: bool = False, analyse=None):
    """Train, evaluate and write every output; returns the summary (and the final
    population parameters, leading axis = member, when `return_params`).

    `analyse(spec, data, graph, params, summaries, workdir) -> (per_member, figures)` lets a
    study add its own test metrics (one dict per member, merged into each member's "test")
    and figures before the summary is logged and summary.json, the last file, is written."""
    spec = parse_run(config)
    workdir = Path(workdir)
    data = load_dataset(spec.data)
    check_data_fits(spec, data)
    rows = members(spec)
    hp = hyperparameter_arrays(rows)
    keys = member_keys([r["seed"] for r in rows])

    steps_per_epoch = len(data.train) // spec.trainer.batch_size
    total_steps = steps_per_epoch * spec.trainer.epochs
    graph = model_graph(spec.model, data.dim, data.image_shape)
    loss = make_loss(spec.model, graph, use_contractive=max(r["model.contractive_weight"] for r in rows) > 0,
                     use_corruption=max(r["model.noise_level"] for r in rows) > 0,
                     binarize_batches=spec.data.binarize == "dynamic")
    optimizer = make_optimizer(spec.optim, total_steps)
    program = compile_population(
        make_member_program(make_step(loss, optimizer), len(data.train), spec.trainer.batch_size,
                            norms_every=spec.trainer.log_every, last_step=total_steps), shared_data=True)
    params, opt_state = init_population(
        lambda k: init_params(spec.model, data.dim, data.image_shape, k), optimizer, keys)

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    checkpoints = PopulationCheckpointer(workdir / "checkpoints")
    start_epoch = 0
    if spec.trainer.resume and checkpoints.latest_epoch() is not None:
        start_epoch = checkpoints.latest_epoch()
        params, opt_state = checkpoints.restore(start_epoch, params, opt_state)
    metrics = MetricsFile(workdir / "metrics.jsonl", start_epoch * steps_per_epoch if start_epoch else None)
    logger = make_logger(spec.logger, workdir, config, rows, spec.name)
    x_train = jnp.asarray(data.train)
    per_call = chunk_epochs(spec.trainer.epochs, steps_per_epoch, spec.trainer.checkpoint_every)
    progress = Progress(total_steps, spec.trainer.progress)
    started = time.perf_counter()
    try:
        for epoch in range(start_epoch, spec.trainer.epochs, per_call):
            tic = time.perf_counter()
            new_params, new_opt_state, terms = program(params, opt_state, keys, x_train, hp, epoch, per_call)
            # Host copy: the one device-host sync per call.
            terms = {k: np.asarray(v).reshape(len(rows), -1) for k, v in terms.items()}
            seconds_per_step = (time.perf_counter() - tic) / terms["loss"].shape[1]
            first_step = epoch * steps_per_epoch
            try:
                check_finite(terms["loss"], first_step)
            except Diverged:
                if checkpoints.latest_epoch() != epoch:
                    checkpoints.save(epoch, params, opt_state)  # the last good state
                checkpoints.close()
                raise
            params, opt_state = new_params, new_opt_state
            for step_rows in _log_rows(terms, first_step, spec.trainer.log_every, total_steps, seconds_per_step,
                                       spec.trainer.batch_size * len(rows)):
                metrics.write(step_rows)
                logger.log(step_rows)
            done = epoch + per_call
            if spec.trainer.checkpoint_every and done % spec.trainer.checkpoint_every == 0:
                checkpoints.save(done, params, opt_state)
            progress.update(done * steps_per_epoch, float(terms["loss"][:, -1].mean()),
                            spec.trainer.batch_size * len(rows) / seconds_per_step)
        progress.close()
        metrics.close()
        train_seconds = time.perf_counter() - started  # includes the one compilation
        if checkpoints.latest_epoch() != spec.trainer.epochs:
            checkpoints.save(spec.trainer.epochs, params, opt_state)
        checkpoints.close()
        results = evaluate_population(spec.model, graph, params, data.test, keys, hp)
        val = evaluate_population(spec.model, graph, params, data.val, keys, hp) if len(data.val) else {}
        summaries = [{"member": r["member"], "seed": r["seed"],
                      "hyperparameters": {k: v for k, v in r.items() if "." in k},
                      "test": {k: float(v[i]) for k, v in results.items()},
                      "val": {k: float(v[i]) for k, v in val.items()}} for i, r in enumerate(rows)]
        figure_paths = make_figures(spec, data, graph, params, workdir)
        if analyse is not None:
            extra, extra_figures = analyse(spec, data, graph, params, summaries, workdir)
            for member_summary, metrics_of_member in zip(summaries, extra):
                member_summary["test"].update(metrics_of_member)
            figure_paths.update(extra_figures)
        summary = {"name": spec.name, "num_members": len(rows), "varied": varied_settings(rows),
                   "num_params_per_member": count_params(jax.tree.map(lambda a: a[0], params)),
                   "steps": total_steps, "train_seconds": train_seconds, "members": summaries}
        logger.summarize(summaries, figure_paths)
        tmp = workdir / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(workdir / "summary.json")
        logger.finish(0)
        return (summary, params) if return_params else summary
    except BaseException:
        progress.close()
        metrics.close()
        logger.finish(1)
        raise


def check_data_fits(spec: RunSpec, data: Dataset) -> None:
    if spec.trainer.batch_size > len(data.train):
        raise ConfigError(f"trainer.batch_size={spec.trainer.batch_size} is not allowed; expected at most "
                          f"the {len(data.train)} training examples of data.name={spec.data.name}")


def make_figures(spec: RunSpec, data: Dataset, graph, params, workdir: Path) -> dict:
    out_dir = workdir / "figures"
    out_dir.mkdir(exist_ok=True)
    model = member_model(graph, params, 0, members(spec)[0]["model.top_k"])
    x = data.test[:10]
    recon = np.asarray(model.decode(model.encode(jnp.asarray(x))))
    paths = {"training_curves": figures.training_curves(workdir / "metrics.jsonl", out_dir / "training_curves.png")}
    if data.image_shape:
        paths["reconstructions"] = figures.image_grid([x, recon], data.image_shape, out_dir / "reconstructions.png",
                                                      ["test input", "reconstruction (member 0)"])
    else:
        paths["reconstructions"] = figures.vectors_plot([x[:4], recon[:4]], out_dir / "reconstructions.png",
                                                        ["input", "reconstruction"])
    if spec.model.code_size == 2:
        codes = np.asarray(model.encode(jnp.asarray(data.test)))
        paths["latent_scatter"] = figures.latent_scatter(codes, data.test_labels, out_dir / "latent_scatter.png")
    if spec.model.family == "vae" and data.image_shape:
        samples = np.asarray(model.sample(jax.random.key(0), 30))
        paths["samples"] = figures.image_grid([samples[i:i + 10] for i in (0, 10, 20)], data.image_shape,
                                              out_dir / "samples.png")
    return paths
