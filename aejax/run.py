"""`train_and_evaluate(config, workdir)`: one run (one population) from config to outputs.

Outputs in `workdir`: config.yaml (resolved), metrics.jsonl, summary.json, figures/*.png,
checkpoints/ (Orbax). summary.json is written last and atomically, so its presence means
the run finished.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from aejax import disentanglement, figures, provenance
from aejax.checkpoint import PopulationCheckpointer
from aejax.config import ConfigError, RunSpec, parse_run
from aejax.data import Dataset, load_dataset
from aejax.errors import Diverged
from aejax.evaluate import population_evaluator
from aejax.latents import TRAVERSAL_VALUES, kl_per_latent, latent_order, traverse
from aejax.loggers import MetricsFile, make_logger
from aejax.models import count_params, critic_for, init_params, make_loss, member_model, model_graph
from aejax import schedule
from aejax.optim import make_optimizer
from aejax.population import hyperparameter_arrays, member_label, members, varied_settings
from aejax.progress import Progress
from aejax.rundir import Interrupted, RunDirectory, catch_signals, write_atomic
from aejax.train import (NORM_TERMS, check_finite, compile_population, init_population, make_member_program,
                         make_step, member_keys, population_block)

log = logging.getLogger(__name__)
SHOWN = 4  # members side by side in the reconstruction and sample figures


def _log_rows(terms: dict, first_step: int, log_every: int, last_step: int, seconds_per_step: float,
              batch: int, numbers: list[int]) -> list[list[dict]]:
    """Average the `(E, T)` terms over windows ending at multiples of `log_every` (and the last step).
    Rows carry each member's number in the whole population (`numbers`: a shard's are not 0..E-1)."""
    n_steps = next(iter(terms.values())).shape[1]
    out = []
    for end in range(n_steps):
        step = first_step + end + 1
        if step % log_every and step != last_step:
            continue
        lo = max(0, end + 1 - log_every)
        # Norms exist only at multiples of log_every (see make_step); the rest are window means.
        means = {k: v[:, end] if k in NORM_TERMS else v[:, lo:end + 1].mean(axis=1) for k, v in terms.items()}
        out.append([{"step": step, "member": numbers[m], **{f"train/{k}": float(v[m]) for k, v in means.items()},
                     "perf/ms_per_step": 1e3 * seconds_per_step,
                     "perf/samples_per_s": batch / seconds_per_step}
                    for m in range(len(next(iter(means.values()))))])
    return out


def train_and_evaluate(config: dict, workdir: str | Path, return_params: bool = False, analyse=None):
    """Train, evaluate and write every output; returns the summary (and the final
    population parameters, leading axis = member, when `return_params`).

    The run directory follows `aejax.rundir`: it is locked for the run's life, a directory
    that holds another run is refused, and `trainer.resume=true` continues the run saved
    there (same config). `analyse(spec, data, graph, params, summaries, workdir) ->
    (per_member, figures)` or `(per_member, figures, study)` lets a study add its own test
    metrics (one dict per member, merged into each member's "test"), figures, and results about
    the run as a whole (`study`, a dict: summary.json's "study") before summary.json, the last
    file, is written."""
    spec = parse_run(config)
    data = load_dataset(spec.data)  # data errors stop the run before its directory is touched
    check_data_fits(spec, data)
    disentanglement.wanted(spec, data)  # metrics.disentanglement=true on data without factors: one line now
    rows = members(spec)
    mask = divergence_policy(spec, len(rows)) == "mask"
    keys = member_keys([r["seed"] for r in rows])
    steps_per_epoch = len(data.train) // spec.trainer.batch_size
    total_steps = steps_per_epoch * spec.trainer.epochs
    graph = model_graph(spec.model, data.dim, data.image_shape)
    loss = make_loss(spec.model, graph, use_contractive=max(r["model.contractive_weight"] for r in rows) > 0,
                     use_corruption=max(r["model.noise_level"] for r in rows) > 0,
                     binarize_batches=spec.data.binarize == "dynamic", dataset_size=len(data.train))
    optimizer = make_optimizer(spec.optim, total_steps)
    critic = critic_for(spec.model)
    program = compile_population(
        make_member_program(make_step(loss, optimizer, critic), len(data.train), spec.trainer.batch_size,
                            norms_every=spec.trainer.log_every, last_step=total_steps, mask_divergence=mask,
                            decode=data.train_decode),
        shared_data=True, block=population_block(spec.model.architecture))
    state = init_population(lambda k: init_params(spec.model, data.dim, data.image_shape, k), optimizer, keys, critic)

    run_dir = RunDirectory.open(workdir, config)
    with catch_signals() as stops:
        try:
            checksums = provenance.data_checksums(data_files(spec.data))
            run_dir.check_same_data(checksums)
            run_dir.start()
            devices = jax.devices()
            log.info("training %d member(s) on %d %s device(s) (%s); run dir %s", len(rows), len(devices),
                     devices[0].platform, devices[0].device_kind, run_dir.path)
            run_dir.record(seeds=[r["seed"] for r in rows], data_files=checksums)
            summary, state = _train_and_evaluate(spec, run_dir, data, rows, keys, program, state, steps_per_epoch,
                                                 stops, graph, analyse)
        except Diverged as err:
            run_dir.close("diverged", message=str(err))
            raise
        except Interrupted as err:
            run_dir.close("interrupted", message=str(err))
            raise
        except BaseException as err:
            run_dir.close("failed", message=one_line(err))
            raise
    run_dir.close("finished" if summary["diverged_members"] < len(rows) else "diverged", spec.trainer.epochs)
    return (summary, state["params"]) if return_params else summary


def _train_and_evaluate(spec: RunSpec, run_dir: RunDirectory, data: Dataset, rows, keys, program, state,
                        steps_per_epoch: int, stops, graph, analyse):
    workdir = run_dir.path
    total_steps = steps_per_epoch * spec.trainer.epochs
    hp = hyperparameter_arrays(rows)
    checkpoints = PopulationCheckpointer(workdir / "checkpoints")  # numbered by the steps done
    start_step = 0
    if run_dir.resumed:
        run_dir.check_checkpoint_numbering(steps_per_epoch)
        start_step, restored = checkpoints.restore_newest_readable(state)
        state = restored if restored is not None else state
    metrics = MetricsFile(workdir / "metrics.jsonl", start_step if run_dir.resumed else None)
    logger = make_logger(spec.logger, workdir, run_dir.config, rows, spec.name, run_id=run_dir.run_id,
                         provenance=run_dir.provenance)
    x_train = jnp.asarray(data.train)
    intervals = (spec.trainer.checkpoint_every, spec.trainer.eval_every)
    numbers = [r["member"] for r in rows]
    evaluate = population_evaluator(spec.model, graph)  # compiled once: validation during training reuses it
    eval_every = spec.trainer.eval_every if len(data.val) else 0
    progress = Progress(total_steps, spec.trainer.progress, spec.trainer.progress_interval_s, spec.trainer.epochs,
                        first_step=start_step)
    started, compile_seconds = time.perf_counter(), 0.0
    compiled = {}  # (n_epochs, n_steps) -> the program compiled ahead of its first call

    def compiled_for(call: schedule.Call):
        nonlocal compile_seconds
        if call.shape not in compiled:
            tic = time.perf_counter()
            compiled[call.shape] = program.lower(state, keys, x_train, hp, call.first_step, *call.shape).compile()
            compile_seconds += time.perf_counter() - tic
        return compiled[call.shape]

    diverged_at = np.asarray(state["diverged_at"])
    calls = [schedule.probe_call(start_step, total_steps, steps_per_epoch, *intervals)] if start_step < total_steps else []
    try:
        # The loop honours stop requests (signals) after each compiled call; calls last about
        # trainer.call_seconds, measured on the first one (aejax.schedule).
        while calls:
            call = calls.pop(0)
            run_call = compiled_for(call)
            tic = time.perf_counter()
            new_state, terms = run_call(state, keys, x_train, hp, call.first_step)
            # Host copy: the one device-host sync per call.
            terms = {k: np.asarray(v).reshape(len(rows), -1) for k, v in terms.items()}
            seconds_per_step = (time.perf_counter() - tic) / terms["loss"].shape[1]
            if not calls and call.end < total_steps:  # after the probe: size the rest by time
                calls = schedule.plan(call.end, total_steps, steps_per_epoch,
                                      schedule.steps_for(seconds_per_step, spec.trainer.call_seconds), *intervals)
            try:
                check_finite(terms["loss"], call.first_step, ignore=np.asarray(new_state["diverged_at"]) > 0)
            except Diverged:
                save_unless_saved(checkpoints, call.first_step, state)  # the last good state
                raise
            state, diverged_at = new_state, np.asarray(new_state["diverged_at"])
            for step_rows in _log_rows(terms, call.first_step, spec.trainer.log_every, total_steps, seconds_per_step,
                                       spec.trainer.batch_size * len(rows), numbers):
                step_rows = [r for i, r in enumerate(step_rows) if not 0 < diverged_at[i] <= r["step"]]
                metrics.write(step_rows)
                logger.log(step_rows)
            done, within = divmod(call.end, steps_per_epoch)  # epochs done, steps into the next
            if not within and eval_every and (done % eval_every == 0 or done == spec.trainer.epochs):
                val = evaluate(state["params"], data.val, keys, hp)
                val_rows = [{"step": call.end, "member": r["member"], "epoch": done,
                             **{f"val/{k}": float(v[i]) for k, v in val.items()}}
                            for i, r in enumerate(rows) if diverged_at[i] == 0]
                metrics.write(val_rows)
                logger.log(val_rows)
            if not within and spec.trainer.checkpoint_every and done % spec.trainer.checkpoint_every == 0:
                checkpoints.save(call.end, state)
            run_dir.set_status("running", done, step=call.end, steps_per_epoch=steps_per_epoch)
            healthy = diverged_at == 0
            progress.update(call.end, done, float(terms["loss"][healthy, -1].mean())
                            if healthy.any() else float("nan"),
                            spec.trainer.batch_size * len(rows) / seconds_per_step)
            if stops.requested is not None and call.end < total_steps:
                save_unless_saved(checkpoints, call.end, state)
                where = f"epoch {done}" + (f" (+{within} of its {steps_per_epoch} steps)" if within else "")
                raise Interrupted(stops.requested, f"stopped at {where} of {spec.trainer.epochs} "
                                  f"(checkpoint saved); resume with: uv run --locked aejax-train "
                                  f"hydra.run.dir={workdir} trainer.resume=true")
        progress.close()
        metrics.close()
        train_seconds = time.perf_counter() - started  # includes compilation (compile_seconds of it)
        save_unless_saved(checkpoints, total_steps, state)
        checkpoints.close()
        params = state["params"]
        results = evaluate(params, data.test, keys, hp)
        val = evaluate(params, data.val, keys, hp) if len(data.val) else {}
        summaries = [member_summary(r, i, results, val, int(diverged_at[i])) for i, r in enumerate(rows)]
        # Data with ground-truth factors: each member's disentanglement metrics join its test metrics.
        metrics_record = disentanglement.add_to_summaries(spec, data, graph, params, hp, diverged_at == 0, summaries)
        figure_paths = make_figures(spec, data, graph, params, workdir, diverged_at)
        study = None
        if analyse is not None:
            extra, extra_figures, *rest = analyse(spec, data, graph, params, summaries, workdir)
            study = rest[0] if rest else None
            for member, metrics_of_member in zip(summaries, extra):
                if member["status"] == "finished":
                    member["test"].update(metrics_of_member)
            figure_paths.update(extra_figures)
        summary = {"name": spec.name, "status": "finished", "num_members": len(rows), "varied": varied_settings(rows),
                   "num_params_per_member": count_params(jax.tree.map(lambda a: a[0], params)),
                   "steps": total_steps, "train_seconds": train_seconds, "compile_seconds": compile_seconds,
                   "diverged_members": int((diverged_at > 0).sum()), "members": summaries, **metrics_record}
        if study is not None:
            summary["study"] = study
        logger.summarize(summaries, figure_paths)
        write_atomic(workdir / "summary.json", json.dumps(summary, indent=1))
        logger.finish(0)
        return summary, state
    except BaseException:
        progress.close()
        metrics.close()
        checkpoints.close()
        logger.finish(1)
        raise


def divergence_policy(spec: RunSpec, population: int) -> str:
    """`trainer.on_divergence`: auto means mask for populations, stop for one member."""
    policy = spec.trainer.on_divergence
    return ("mask" if population > 1 else "stop") if policy == "auto" else policy


def member_summary(row: dict, i: int, test: dict, val: dict, diverged_at: int) -> dict:
    """A member's entry in summary.json; a diverged member's metrics are null (its frozen
    parameters are not a result)."""
    value = lambda v: None if diverged_at else float(v[i])
    return {"member": row["member"], "seed": row["seed"], "status": "diverged" if diverged_at else "finished",
            "diverged_at_step": diverged_at or None,
            "hyperparameters": {k: v for k, v in row.items() if "." in k},
            "test": {k: value(v) for k, v in test.items()}, "val": {k: value(v) for k, v in val.items()}}


def save_unless_saved(checkpoints: PopulationCheckpointer, step: int, state: dict) -> None:
    if checkpoints.latest_step() != step:
        checkpoints.save(step, state)


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def data_files(spec) -> dict:
    """Files whose SHA-256 provenance records (MNIST's IDX files; user files when they exist)."""
    from aejax.data.mnist import FILES, resolve_root

    if spec.name == "mnist":
        root = resolve_root(spec.root)
        return {name: str(root / name) for name, _ in FILES.values() if (root / name).exists()}
    path = getattr(spec, "path", None)
    return {"data": str(path)} if path and Path(path).exists() else {}


def check_data_fits(spec: RunSpec, data: Dataset) -> None:
    from aejax.data import check_unit_interval

    needs = spec.model.declaration.needs_unit_interval(spec.model.family_settings)
    if needs:
        check_unit_interval(data, needs)
    if spec.trainer.batch_size > len(data.train):
        raise ConfigError(f"trainer.batch_size={spec.trainer.batch_size} is not allowed; expected at most "
                          f"the {len(data.train)} training examples of data.name={spec.data.name}")


def make_figures(spec: RunSpec, data: Dataset, graph, params, workdir: Path, diverged_at) -> dict:
    """Training curves (train and validation, the variant's terms, a line per member labelled
    by its values), and reconstructions (VAE: samples, latent traversals, KL per latent) of up to
    SHOWN healthy members side by side."""
    out_dir = workdir / "figures"
    out_dir.mkdir(exist_ok=True)
    figures.FORMATS[:] = list(spec.trainer.figure_formats)
    rows = members(spec)
    varied = varied_settings(rows)
    labels = {r["member"]: member_label(r, varied) for r in rows}
    shown = [i for i in range(len(rows)) if diverged_at[i] == 0][:SHOWN]
    paths = {"training_curves": figures.training_curves(workdir / "metrics.jsonl", out_dir / "training_curves.png",
                                                        labels)}
    if not shown:
        return paths
    models = [member_model(graph, params, i, rows[i].get("model.top_k")) for i in shown]
    titles = [labels[rows[i]["member"]] for i in shown]
    x = data.test[:10]
    recons = [np.asarray(m.decode(m.encode(jnp.asarray(x)))) for m in models]
    if data.image_shape:
        paths["reconstructions"] = figures.image_grid([x, *recons], data.image_shape, out_dir / "reconstructions.png",
                                                      ["test input", *(f"reconstruction: {t}" for t in titles)])
    else:
        paths["reconstructions"] = figures.vectors_plot([x[:4], *(r[:4] for r in recons)],
                                                        out_dir / "reconstructions.png", ["input", *titles])
    if spec.model.code_size == 2:
        codes = np.asarray(models[0].encode(jnp.asarray(data.test)))
        paths["latent_scatter"] = figures.latent_scatter(codes, data.test_labels, out_dir / "latent_scatter.png")
    if spec.model.declaration.gaussian_latent and data.image_shape:
        samples = [np.asarray(m.sample(jax.random.key(0), 10)) for m in models]
        paths["samples"] = figures.image_grid(samples, data.image_shape, out_dir / "samples.png",
                                              [f"samples: {t}" for t in titles])
    if spec.model.declaration.gaussian_latent:
        kls = [kl_per_latent(m, data.test) for m in models]
        paths["kl_per_latent"] = figures.kl_per_latent(kls, out_dir / "kl_per_latent.png", titles)
        if data.image_shape:
            dims = [latent_order(kl)[:figures.TRAVERSAL_ROWS] for kl in kls]
            grids = [traverse(m, x[:figures.TRAVERSAL_IMAGES], TRAVERSAL_VALUES, d) for m, d in zip(models, dims)]
            paths["latent_traversal"] = figures.latent_traversal(grids, dims, kls, TRAVERSAL_VALUES, data.image_shape,
                                                                 out_dir / "latent_traversal.png", titles)
    return paths
