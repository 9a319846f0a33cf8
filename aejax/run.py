"""`train_and_evaluate(config, workdir)`: one run (one population) from config to outputs.

Outputs in `workdir`: config.yaml (resolved), metrics.jsonl, summary.json, figures/*.png,
checkpoints/ (Orbax). summary.json is written last and atomically, so its presence means
the run finished.

    spec = parse_run(config)
    setup = prepare(spec)                 # data, members, the compiled program: nothing written yet
    run_dir, owner = hold(workdir, config)  # lock the run directory (or use the caller's: aejax-train's)
    start(run_dir, setup)                 # provenance, data checksums, status "running"
    state = train(run_dir, setup, out)    # compiled calls until the last step (or a stop), checkpoints
    summary = finish(run_dir, setup, ...) # test metrics, disentanglement, figures, a study's analysis, summary.json
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax import disentanglement, provenance, schedule
from aejax.checkpoint import PopulationCheckpointer
from aejax.config import ConfigError, RunSpec, parse_run
from aejax.data import Dataset, check_unit_interval, load_dataset
from aejax.data.mnist import FILES, resolve_root
from aejax.errors import Diverged
from aejax.evaluate import population_evaluator
from aejax.loggers import MetricsFile, make_logger
from aejax.models import count_params, critic_for, init_params, make_loss, model_graph, state_hooks
from aejax.optim import make_optimizer
from aejax.population import hyperparameter_arrays, members, varied_settings
from aejax.progress import Progress
from aejax.run_figures import make_figures
from aejax.rundir import Interrupted, RunDirectory, catch_signals, hold, what_is_saved, write_atomic
from aejax.train import (NORM_TERMS, check_finite, compile_population, devices_for, init_population,
                         make_member_program, make_step, member_keys, population_block, use_cpu_devices)

log = logging.getLogger(__name__)


def train_and_evaluate(config: dict, workdir: str | Path | RunDirectory, analyse=None) -> dict:
    """Train, evaluate and write every output; returns the summary.

    The run directory follows `aejax.rundir`: it is locked for the run's life, a directory that holds
    another run is refused, and `trainer.resume=true` continues the run saved there (same config).
    `workdir` is a path (this call opens and closes the run directory) or a `RunDirectory` its caller
    holds (aejax-train's, a study's), which the caller closes. `analyse(spec, data, graph, params,
    summaries, workdir) -> (per_member, figures)` or `(per_member, figures, study)` lets a study add its
    own test metrics (one dict per member, merged into each member's "test"), figures, and results about
    the run as a whole (`study`, a dict: summary.json's "study") before summary.json, the last file, is
    written."""
    spec = parse_run(config)
    use_cpu_devices(spec.trainer.cpu_devices)  # before anything starts JAX's backend
    setup = prepare(spec)  # data errors stop the run before its directory is touched
    run_dir, owner = hold(workdir, config)
    status, epoch, message = "failed", None, None
    with catch_signals() as stops:
        stops.run_dir, stops.scores = run_dir, disentanglement.wanted(spec, setup.data)  # what a stop says is true
        try:
            if stops.requested is not None:  # while the data loaded (aejax-train's handlers were on)
                raise Interrupted(stops.requested, "stopped while loading the data, before the run began; nothing "
                                  "was written: run the command again")
            start(run_dir, setup)
            with RunOutputs(run_dir, setup) as out:
                stops.in_flight = out.checkpoints.manager.wait_until_finished
                state, seconds = train(run_dir, setup, out, stops)
                summary = finish(run_dir, setup, out, state, seconds, analyse, stops)
            status = "finished" if summary["diverged_members"] < len(setup.rows) else "diverged"
            epoch = spec.trainer.epochs
        except (Diverged, Interrupted) as err:
            status, message = ("diverged" if isinstance(err, Diverged) else "interrupted"), str(err)
            raise
        except BaseException as err:
            message = one_line(err)
            raise
        finally:
            if owner:
                run_dir.close(status, epoch, message=message)
    return summary


@dataclass
class Setup:
    """Everything a run needs before its directory is touched."""
    spec: RunSpec
    data: Dataset
    rows: list[dict]          # the members: member number, seed, every hyperparameter
    keys: jax.Array
    hp: dict                  # per-member hyperparameters, arrays (E,)
    graph: object             # the model's static structure
    program: object           # the compiled population program (aejax.train.compile_population)
    state: dict               # the initial training state
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.spec.trainer.epochs


def prepare(spec: RunSpec) -> Setup:
    """Load the data, expand the population and build its program and initial state."""
    data = load_dataset(spec.data)
    check_data_fits(spec, data)
    disentanglement.wanted(spec, data)  # metrics.disentanglement=true on data without factors: one line now
    rows = members(spec)
    keys = member_keys([r["seed"] for r in rows])
    steps_per_epoch = data.num_train // spec.trainer.batch_size
    total_steps = steps_per_epoch * spec.trainer.epochs
    graph = model_graph(spec.model, data.dim, data.image_shape)
    loss = make_loss(spec.model, graph, use_contractive=max(r["model.contractive_weight"] for r in rows) > 0,
                     use_corruption=max(r["model.noise_level"] for r in rows) > 0,
                     binarize_batches=spec.data.binarize == "dynamic", dataset_size=data.num_train)
    optimizer = make_optimizer(spec.optim, total_steps)
    critic, hooks, hp = critic_for(spec.model), state_hooks(spec.model), hyperparameter_arrays(rows)
    program = compile_population(
        make_member_program(make_step(loss, optimizer, critic, hooks), data.num_train, spec.trainer.batch_size,
                            norms_every=spec.trainer.log_every, last_step=total_steps,
                            mask_divergence=divergence_policy(spec, len(rows)) == "mask", decode=data.train_decode,
                            streamed=data.stream is not None, shuffle=spec.trainer.shuffle),
        shared_data=True, block=population_block(spec.model.architecture))
    state = init_population(lambda k: init_params(spec.model, data.dim, data.image_shape, k), optimizer, keys, critic,
                            hp, hooks.member_init)
    return Setup(spec, data, rows, keys, hp, graph, program, state, steps_per_epoch)


def call_rows(setup: Setup, call: schedule.Call):
    """The rows a compiled call trains on: the whole training split when it is in memory, or this call's
    rows of a stream, in the order of their steps (each epoch's order is the stream's, aejax.data.activations)."""
    stream, batch = setup.data.stream, setup.spec.trainer.batch_size
    if stream is None:
        return setup.data.train
    epoch, offset = divmod(call.first_step, setup.steps_per_epoch)
    return np.concatenate([stream.rows(epoch + j, (offset if j == 0 else 0) * batch, call.n_steps * batch)
                           for j in range(call.n_epochs)])


def start(run_dir: RunDirectory, setup: Setup) -> None:
    """The run begins: same data as the run it resumes, provenance, status "running"."""
    checksums = provenance.data_checksums(data_files(setup.spec.data))
    run_dir.check_same_data(checksums)
    run_dir.start()
    devices = jax.devices()
    used = len(devices_for(len(setup.rows), devices))
    log.info("training %d member(s) on %s%d %s device(s) (%s); run dir %s", len(setup.rows),
             f"{used} of " if used < len(devices) else "", len(devices), devices[0].platform, devices[0].device_kind,
             run_dir.path)
    run_dir.record(seeds=[r["seed"] for r in setup.rows], data_files=checksums)


class RunOutputs:
    """What a run writes while it trains: checkpoints, metrics.jsonl, the logger (W&B) and progress.
    Closed whatever happens; the logger is told whether the run succeeded."""

    def __init__(self, run_dir: RunDirectory, setup: Setup):
        spec = setup.spec
        self.checkpoints = PopulationCheckpointer(run_dir.path / "checkpoints")  # numbered by the steps done
        self.first_step = 0
        if run_dir.resumed:
            run_dir.check_checkpoint_numbering(setup.steps_per_epoch)
            self.first_step, restored = self.checkpoints.restore_newest_readable(setup.state)
            # As host arrays: a restore is committed to one device, which a population split over several
            # (trainer.cpu_devices, GPUs) refuses; uncommitted, the program places them where it splits.
            setup.state = jax.tree.map(np.asarray, restored) if restored is not None else setup.state
            done, within = divmod(self.first_step, setup.steps_per_epoch)
            log.info("resuming from step %s of %s (epoch %d%s)", f"{self.first_step:,}", f"{setup.total_steps:,}",
                     done, f", +{within} of its {setup.steps_per_epoch} steps" if within else "")
        self.metrics = MetricsFile(run_dir.path / "metrics.jsonl", self.first_step if run_dir.resumed else None)
        self.logger = make_logger(spec.logger, run_dir.path, run_dir.config, setup.rows, spec.name,
                                  run_id=run_dir.run_id, provenance=run_dir.provenance)
        self.progress = Progress(setup.total_steps, spec.trainer.progress, spec.trainer.progress_interval_s,
                                 spec.trainer.epochs, first_step=self.first_step)
        self.evaluate = population_evaluator(spec.model, setup.graph)  # compiled once: validation reuses it

    def write(self, rows: list[dict]) -> None:
        self.metrics.write(rows)
        self.logger.log(rows)

    def save_unless_saved(self, step: int, state: dict) -> None:
        if self.checkpoints.latest_step() != step:
            self.checkpoints.save(step, state)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.progress.close()
        self.metrics.close()
        self.checkpoints.close()
        self.logger.finish(0 if kind is None else 1)


def train(run_dir: RunDirectory, setup: Setup, out: RunOutputs, stops) -> tuple[dict, dict]:
    """Compiled calls from the first step not yet done to the last. After each call (about
    trainer.call_seconds, measured on the first: `aejax.schedule`): its terms logged, validation and
    checkpoints at their epochs, status and progress, and a stop request honoured. Returns the final
    state and the seconds spent training and compiling."""
    spec, state, keys, hp = setup.spec, setup.state, setup.keys, setup.hp
    in_memory = jnp.asarray(setup.data.train) if setup.data.stream is None else None
    rows_of = lambda call: in_memory if in_memory is not None else jnp.asarray(call_rows(setup, call))
    intervals = (spec.trainer.checkpoint_every, spec.trainer.eval_every)
    started, compiled, seconds = time.perf_counter(), {}, {"compile": 0.0}

    def compiled_for(call: schedule.Call, x_call):  # each call shape compiled once, ahead of its first call
        if call.shape not in compiled:
            if compiled:
                run_dir.set_phase("compiling")
            tic = time.perf_counter()
            compiled[call.shape] = setup.program.lower(state, keys, x_call, hp, call.first_step, *call.shape).compile()
            seconds["compile"] += time.perf_counter() - tic
        return compiled[call.shape]

    total = setup.total_steps
    calls = [schedule.probe_call(out.first_step, total, setup.steps_per_epoch, *intervals)] if out.first_step < total else []
    while calls:
        call = calls.pop(0)
        x_call = rows_of(call)
        run_call = compiled_for(call, x_call)
        if stops.requested is not None:  # came while compiling: stop before the call, not after it
            stop_training(run_dir, setup, out, stops, call.first_step, state)
        tic = time.perf_counter()
        new_state, terms = run_call(state, keys, x_call, hp, call.first_step)
        terms = {k: np.asarray(v).reshape(len(setup.rows), -1) for k, v in terms.items()}  # the one host sync
        seconds_per_step = (time.perf_counter() - tic) / terms["loss"].shape[1]
        if not calls and call.end < total:  # after the probe: size the rest by time
            calls = schedule.plan(call.end, total, setup.steps_per_epoch,
                                  schedule.steps_for(seconds_per_step, spec.trainer.call_seconds), *intervals)
        try:
            check_finite(terms["loss"], call.first_step, ignore=np.asarray(new_state["diverged_at"]) > 0)
        except Diverged:
            out.save_unless_saved(call.first_step, state)  # the last good state
            raise
        if state is setup.state:  # this attempt's first call: where its members trained, as run, not as planned
            run_dir.record(devices_used=len(jax.tree.leaves(new_state)[0].sharding.device_set))
        state = new_state
        after_call(run_dir, setup, out, call, state, terms, seconds_per_step)
        if stops.requested is not None and call.end < total:
            stop_training(run_dir, setup, out, stops, call.end, state)
    out.progress.close()
    seconds["train"] = time.perf_counter() - started  # includes compilation
    out.save_unless_saved(total, state)
    out.checkpoints.close()  # the final checkpoint is on disk before any result is written
    return state, seconds


def stop_training(run_dir: RunDirectory, setup: Setup, out: RunOutputs, stops, step: int, state: dict) -> None:
    """A first signal during training: save the state reached (`step` steps; none at step 0) and stop."""
    resume = f"resume with: uv run --locked aejax-train hydra.run.dir={run_dir.path} trainer.resume=true"
    if step == 0:
        raise Interrupted(stops.requested, f"stopped while compiling, before the first step (no checkpoint to save); "
                          f"{resume}")
    out.save_unless_saved(step, state)
    done, within = divmod(step, setup.steps_per_epoch)
    where = f"epoch {done}" + (f" (+{within} of its {setup.steps_per_epoch} steps)" if within else "")
    raise Interrupted(stops.requested, f"stopped at {where} of {setup.spec.trainer.epochs} (checkpoint saved); {resume}")


def stop_point(run_dir: RunDirectory, stops, where: str) -> None:
    """A safe point after training: a first signal stops here, the final checkpoint on disk."""
    if stops is not None and stops.requested is not None:
        raise Interrupted(stops.requested, f"stopped {where}, before summary.json; "
                          f"{what_is_saved(run_dir.path, stops.scores)}")


def after_call(run_dir: RunDirectory, setup: Setup, out: RunOutputs, call: schedule.Call, state: dict, terms: dict,
               seconds_per_step: float) -> None:
    """One call's outputs: its terms, validation and a checkpoint at the epochs asked for, status, progress."""
    spec, rows = setup.spec, setup.rows
    diverged_at = np.asarray(state["diverged_at"])
    for step_rows in log_rows(terms, call.first_step, spec.trainer.log_every, setup.total_steps, seconds_per_step,
                              spec.trainer.batch_size * len(rows), [r["member"] for r in rows]):
        out.write([r for i, r in enumerate(step_rows) if not 0 < diverged_at[i] <= r["step"]])
    done, within = divmod(call.end, setup.steps_per_epoch)  # epochs done, steps into the next
    eval_every = spec.trainer.eval_every if len(setup.data.val) else 0
    if not within and eval_every and (done % eval_every == 0 or done == spec.trainer.epochs):
        val = out.evaluate(state["params"], setup.data.val, setup.keys, setup.hp)
        out.write([{"step": call.end, "member": r["member"], "epoch": done,
                    **{f"val/{k}": float(v[i]) for k, v in val.items()}}
                   for i, r in enumerate(rows) if diverged_at[i] == 0])
    if not within and spec.trainer.checkpoint_every and done % spec.trainer.checkpoint_every == 0:
        out.checkpoints.save(call.end, state)
    run_dir.set_status("running", done, step=call.end, steps_per_epoch=setup.steps_per_epoch, phase="training")
    healthy = diverged_at == 0
    out.progress.update(call.end, done, float(terms["loss"][healthy, -1].mean()) if healthy.any() else float("nan"),
                        spec.trainer.batch_size * len(rows) / seconds_per_step)


def finish(run_dir: RunDirectory, setup: Setup, out: RunOutputs, state: dict, seconds: dict, analyse,
           stops=None) -> dict:
    """Test and validation metrics of every member, disentanglement scores, figures, a study's analysis,
    then summary.json, the last file. A first signal (`stops`) stops at the safe point after it: the
    final checkpoint is on disk, and `aejax-metrics` or a resume finishes what is missing."""
    spec, data, rows, params = setup.spec, setup.data, setup.rows, state["params"]
    diverged_at = np.asarray(state["diverged_at"])
    out.metrics.close()
    stop_point(run_dir, stops, "after training")
    run_dir.set_phase("metrics")
    test = out.evaluate(params, data.test, setup.keys, setup.hp)
    stop_point(run_dir, stops, "during the metrics (the test metrics computed, no score was written)")
    val = out.evaluate(params, data.val, setup.keys, setup.hp) if len(data.val) else {}
    summaries = [member_summary(r, i, test, val, int(diverged_at[i])) for i, r in enumerate(rows)]
    # Data with ground-truth factors: each member's disentanglement metrics join its test metrics.
    metrics_record = disentanglement.add_to_summaries(
        spec, data, setup.graph, params, setup.hp, diverged_at == 0, summaries,
        check=lambda where: stop_point(run_dir, stops, f"during the metrics ({where}; no score was written)"))
    stop_point(run_dir, stops, "after the metrics")
    run_dir.set_phase("figures")
    figure_paths = make_figures(spec, data, setup.graph, params, run_dir.path, diverged_at)
    stop_point(run_dir, stops, "after the figures")
    run_dir.set_phase("summary")
    family_record = family_report(spec, setup, params, diverged_at, summaries, figure_paths, run_dir.path)
    study = None
    if analyse is not None:
        extra, extra_figures, *rest = analyse(spec, data, setup.graph, params, summaries, run_dir.path)
        study = rest[0] if rest else None
        for member, metrics_of_member in zip(summaries, extra):
            if member["status"] == "finished":
                member["test"].update(metrics_of_member)
        figure_paths.update(extra_figures)
    summary = {"name": spec.name, "status": "finished", "num_members": len(rows), "varied": varied_settings(rows),
               "num_params_per_member": count_params(jax.tree.map(lambda a: a[0], params)),
               "steps": setup.total_steps, "train_seconds": seconds["train"], "compile_seconds": seconds["compile"],
               "diverged_members": int((diverged_at > 0).sum()), "members": summaries, **metrics_record}
    if family_record is not None:
        summary[spec.model.family] = family_record
    if study is not None:
        summary["study"] = study
    out.logger.summarize(summaries, figure_paths)
    write_atomic(run_dir.path / "summary.json", json.dumps(summary, indent=1))
    return summary


def family_report(spec: RunSpec, setup: Setup, params, diverged_at, summaries: list[dict], figure_paths: dict,
                  workdir: Path) -> dict | None:
    """The family's own test metrics (`Family.report`: an SAE's FVU, L0, dead latents, MCC), merged into
    each healthy member's "test", and its figures; returns its record for summary.json (or None)."""
    report = spec.model.declaration.report
    if report is None:
        return None
    per_member, figures, record = report(spec, setup.data, setup.graph, params, setup.hp, diverged_at == 0, workdir)
    for member, metrics_of_member in zip(summaries, per_member):
        if member["status"] == "finished":
            member["test"].update(metrics_of_member)
    figure_paths.update(figures)
    return record


def log_rows(terms: dict, first_step: int, log_every: int, last_step: int, seconds_per_step: float,
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


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def data_files(spec) -> dict:
    """Files whose SHA-256 provenance records (MNIST's IDX files; user files when they exist)."""
    if spec.name == "mnist":
        root = resolve_root(spec.root)
        return {name: str(root / name) for name, _ in FILES.values() if (root / name).exists()}
    path = getattr(spec, "path", None)
    return {"data": str(path)} if path and Path(path).exists() else {}


def check_data_fits(spec: RunSpec, data: Dataset) -> None:
    needs = spec.model.declaration.needs_unit_interval(spec.model.family_settings)
    if needs:
        check_unit_interval(data, needs)
    if spec.trainer.batch_size > data.num_train:
        raise ConfigError(f"trainer.batch_size={spec.trainer.batch_size} is not allowed; expected at most "
                          f"the {data.num_train} training examples of data.name={spec.data.name}")
