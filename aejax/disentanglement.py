"""Disentanglement metrics (`aejax.metrics`) for every healthy member of a population: at the end of
training on data with ground-truth factors (the `metrics.*` settings), on a finished run afterwards
(`aejax-metrics RUN_DIR`), and for one member (`load_run(...).disentanglement()`).

The representation is the encoder's output: a VAE's posterior mean (its log-variance too, for
`gaussian_tc_sampled`), an autoencoder's code f(x). Each metric family draws its factors once
(`draw_for`, fixed by `metrics.seed` and the sizes of `metrics.preset` and `metrics.sizes`), so every member, and every run with the
same metric settings, is scored on the same factors. Each distinct observation among all the draws is
encoded once (`_code_table`: at the study's sizes 724,000 of dSprites' 737,280 images instead of 2.97
million draws), all members' codes from one compiled call per batch of observations (MLPs: the
encoder vmapped over the member axis; conv models: the members' encoders side by side, with XLA's
convolutions, see population_encoder). BetaVAE and FactorVAE keep only their per-batch reductions
(`beta_vae.features`, `factor_vae.local_variances`, what their scores read). The classifiers run in
`metrics.workers` processes (aejax.metrics.workers: members, and DCI's factors, side by side), the
scores those of one process.

    aejax-metrics RUN_DIR [--preset paper|quick] [--mode exact|fast] [--sizes num_train=1000,num_test=500] [--seed 0]
                  [--workers 0]

writes RUN_DIR/disentanglement.json (per member, with provenance) and changes nothing training
wrote; `aejax-collect` reads it where summary.json has no metrics. A run stopped after its training
ended (its final checkpoint on disk, no summary.json) is scored too. Exit 2 (one line): not a finished
run, or no ground-truth factors; 130 or 143 (one line): stopped by SIGINT or SIGTERM, nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import logging
import sys
import time
from pathlib import Path

import numpy as np

from aejax.config import METRIC_MODES, METRIC_PRESETS, MetricsSpec, parse_section
from aejax.errors import ConfigError

log = logging.getLogger(__name__)
FILE = "disentanglement.json"
GROUND_TRUTH = ("dsprites", "shapes_toy")  # built-in data with factors; and data=array with data.factors_key
CALL_BUDGET = 8192   # images x members per compiled encoder call: bounds device memory (conv activations)
UNROLL = 16          # conv members in one compiled encoder call (see population_encoder)
CONV_ROWS_CPU = 64   # rows of a conv member's encoder call on CPU (see population_encoder)
SEGMENT = 8192       # observations made on the host at once (dSprites: 128 MB of float32)
TABLE_BYTES = 2 << 30  # the most memory the table of distinct codes may take (_code_table)
PROGRESS_SECONDS = 30  # a progress line at most this often while the metrics encode


def has_factors(data_spec) -> bool | None:
    """Whether the data has ground-truth factors, from its settings alone; None for your own loaders."""
    from aejax.data import BUILTIN

    if data_spec.loader is not None or data_spec.name not in BUILTIN:
        return None
    return data_spec.name in GROUND_TRUTH or (data_spec.name == "array" and data_spec.factors_key is not None)


HAVE_FACTORS = "data=dsprites, data=shapes_toy or data=array with data.factors_key"


def _no_factors(what: str, data_name: str) -> ConfigError:
    """A run, a run dir or a member whose data has no ground-truth factors: one line."""
    if what == "metrics.disentanglement":
        return ConfigError(f"metrics.disentanglement=True is not allowed with data.name={data_name}; expected auto or "
                           f"false (the data has no ground-truth factors; {HAVE_FACTORS} have them)")
    return ConfigError(f"{what} is not allowed: its data.name={data_name} has no ground-truth factors; expected a run "
                       f"on {HAVE_FACTORS}")


def check_settings(spec) -> None:
    """`metrics.disentanglement=true` on data known to have no factors: one line before anything runs."""
    if spec.metrics.disentanglement is True and has_factors(spec.data) is False:
        raise _no_factors("metrics.disentanglement", spec.data.name)


def wanted(spec, data) -> bool:
    """Whether a run on `data` scores its members (ConfigError: `true` on data without factors)."""
    if spec.metrics.disentanglement is True and data.ground_truth is None:
        raise _no_factors("metrics.disentanglement", spec.data.name)
    return data.ground_truth is not None and spec.metrics.disentanglement in ("auto", True)


def metric_names(model_spec) -> tuple[str, ...]:
    """Every metric of aejax.metrics a member has: all of them for a VAE (gaussian_tc_sampled needs q(z|x))."""
    from aejax.metrics import METRICS, NEEDS_POSTERIOR

    return tuple(n for n in METRICS if model_spec.declaration.gaussian_latent or n not in NEEDS_POSTERIOR)


def metrics_provenance(model_spec, metrics: MetricsSpec) -> dict:
    """What the numbers depend on besides the members (aejax.metrics.provenance) and what was scored."""
    from aejax.metrics import provenance

    what = ("posterior mean (gaussian_tc_sampled: one draw of q(z|x))" if model_spec.declaration.gaussian_latent
            else "code f(x)")
    return {**provenance(metrics.seed, metrics.resolved_mode(), metrics.size_overrides()),
            "metrics_preset": metrics.preset, "metrics_representation": what}


def population_encoder(model_spec, graph, params, hp, budget: int = CALL_BUDGET, image_shape=None):
    """`encode(x (n, D)) -> (mean (M, n, K), logvar (M, n, K) or None)`, numpy, for the M members of
    `params` (leading member axis) with their hyperparameters `hp` ({name: (M,)}).

    MLP members are encoded together (the encoder vmapped over the member axis), `budget // M` rows a
    call. Conv members use XLA's own convolutions, and are not vmapped: under vmap a convolution
    becomes a grouped one (slow on CPU), and outside a loop the native forward convolution beats
    aejax's matmul form. One call holds up to UNROLL members' encoders side by side. Measured for the
    study's encoder: scripts/bench_metric_encoder.py. Rows a call: MLPs `budget // M`; conv members
    CONV_ROWS_CPU on CPU (`budget` is ignored there), else `budget // min(UNROLL, M)`; a smaller `x`
    takes the next power of two (padded), so the encoder compiles a few times at most. `image_shape`
    (conv members): the images' (H, W, C), to build the encoder with `conv_impl="xla"`."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from aejax.models import member_call, model_graph

    if model_spec.architecture == "conv":  # the same model with XLA's own convolutions (model.conv_impl=xla)
        model_spec = dataclasses.replace(model_spec, conv_impl="xla")
        graph = model_graph(model_spec, math.prod(image_shape), image_shape)

    def one(p, x, h):
        model = nnx.merge(graph, p)
        if model_spec.declaration.gaussian_latent:
            return model.posterior(x)
        return model.encode(x, **member_call(model_spec, h)), None

    members = len(jax.tree.leaves(params)[0])
    if model_spec.architecture == "conv":
        # Few rows a call on CPU: the activations of a 64-row call stay in cache (256 rows ran slower).
        most = CONV_ROWS_CPU if jax.default_backend() == "cpu" else max(16, budget // min(UNROLL, members))
        # One compiled call encodes up to UNROLL members, each member's encoder an unrolled piece of it.
        # Groups bound the compile time of large populations.
        def unrolled(params, x, hp):
            n = len(jax.tree.leaves(params)[0])
            outs = [one(jax.tree.map(lambda a, i=i: a[i], params), x, {k: v[i] for k, v in hp.items()})
                    for i in range(n)]
            return (jnp.stack([m for m, _ in outs]),
                    None if outs[0][1] is None else jnp.stack([v for _, v in outs]))

        fn = jax.jit(unrolled)
        groups = [(jax.tree.map(lambda a, g=g: a[g:g + UNROLL], params), {k: v[g:g + UNROLL] for k, v in hp.items()})
                  for g in range(0, members, UNROLL)]

        def call(x):
            outs = [fn(p, x, h) for p, h in groups]
            return (np.concatenate([np.asarray(m) for m, _ in outs]),
                    None if outs[0][1] is None else np.concatenate([np.asarray(v) for _, v in outs]))
    else:
        most = max(16, budget // members)
        batched = jax.jit(jax.vmap(one, in_axes=(0, None, 0)))

        def call(x):
            mean, logvar = batched(params, x, hp)
            return np.asarray(mean), None if logvar is None else np.asarray(logvar)

    def encode(x):
        x = np.asarray(x, np.float32)
        rows = min(most, max(16, 1 << (len(x) - 1).bit_length()))
        means, logvars = [], []
        for i in range(0, len(x), rows):
            part = x[i:i + rows]
            n = len(part)
            mean, logvar = call(np.pad(part, ((0, rows - n), (0, 0))))
            means.append(mean[:, :n])
            logvars.append(None if logvar is None else logvar[:, :n])
        logvar = None if logvars[0] is None else np.concatenate(logvars, axis=1)
        return np.concatenate(means, axis=1), logvar

    encode.members = members  # the observations a stop may wait for scale with it (_segment)
    return encode


def _streamed(encode, truth):
    """`codes_of(factors)`: render (or look up) the observations and encode them, every call."""
    return lambda factors: encode(truth.observations(factors))


def _segment(encode) -> int:
    """Observations encoded between two stop checks: SEGMENT rows for one or two members, fewer for more,
    so that about 16,384 member-images (3 s of the study's conv encoder on 2 cores) lie between checks."""
    return max(256, SEGMENT * 2 // max(2, getattr(encode, "members", 1)))


def _code_table(encode, truth, draws, keep_logvar: bool, between=None):
    """`codes_of(factors)` from a table of every distinct factor row the draws hold, each encoded once.

    The study's sizes draw 2.97 million rows from dSprites' 737,280 (BetaVAE alone 1.92 million), so
    about 724,000 are distinct: a quarter of the encodings. The codes of a row do not depend on the
    rows encoded beside it, so the scores are those of encoding every draw. The table holds members x
    rows x codes float32 (and the log-variances when `keep_logvar`): None (encode every draw's rows as
    they come) when it would pass TABLE_BYTES. `between()` runs before each segment encoded (a stop's
    safe point); a line every PROGRESS_SECONDS says how far the encoding is."""
    from aejax.progress import clock

    strides = truth.strides
    rows = np.unique(np.concatenate([d.factors @ strides for d in draws]))
    factors = np.stack(np.unravel_index(rows, truth.factor_sizes), axis=1).astype(np.int64)
    mean = logvar = None
    started = last = time.perf_counter()
    segment = _segment(encode)
    for i in range(0, len(rows), segment):
        if between is not None:
            between()
        if time.perf_counter() - last > PROGRESS_SECONDS:
            last, elapsed = time.perf_counter(), time.perf_counter() - started
            log.info("metrics: encoded %d of %d distinct observations, elapsed %s, ETA %s", i, len(rows),
                     clock(elapsed), clock(elapsed / i * (len(rows) - i)))
        part_mean, part_logvar = encode(truth.observations(factors[i:i + segment]))
        if mean is None:
            keep_logvar = keep_logvar and part_logvar is not None
            members = len(part_mean)
            need = members * len(rows) * part_mean.shape[-1] * 4 * (2 if keep_logvar else 1)
            if need > TABLE_BYTES:
                log.info("metrics: encoding each draw's observations (a table of the %d distinct ones would "
                         "need %.1f GB)", len(rows), need / 1e9)
                return None
            mean = np.empty((members, len(rows), part_mean.shape[-1]), part_mean.dtype)
            logvar = np.empty_like(mean) if keep_logvar else None
        mean[:, i:i + segment] = part_mean
        if logvar is not None:
            logvar[:, i:i + segment] = part_logvar

    def codes_of(f):
        idx = np.searchsorted(rows, f @ strides)
        return mean[:, idx], None if logvar is None else logvar[:, idx]

    return codes_of


def _codes(codes_of, factors, group: int = 1, reduce=None, between=None):
    """Codes `(M, n, K)` (and log-variances) of `factors` from `codes_of`, SEGMENT rows at a time; with
    `reduce`, whole groups of `group` rows go to `reduce(codes (M, rows, K))` and only its output is kept.
    `between()` runs before each segment (a stop's safe point)."""
    per = max(1, SEGMENT // group) * group
    parts, logvars = [], []
    for i in range(0, len(factors), per):
        if between is not None:
            between()
        mean, logvar = codes_of(factors[i:i + per])
        parts.append(mean if reduce is None else reduce(mean))
        logvars.append(logvar)
    if reduce is not None:
        return np.concatenate(parts, axis=1)
    return np.concatenate(parts, axis=1), None if logvars[0] is None else np.concatenate(logvars, axis=1)


def _finite(*arrays) -> np.ndarray:
    """Members (axis 0) whose arrays are all finite: the others get no score (NaN)."""
    return np.logical_and.reduce([np.isfinite(a.reshape(len(a), -1)).all(axis=1) for a in arrays if a is not None])


def _fill(ok: np.ndarray, values) -> np.ndarray:
    out = np.full(len(ok), np.nan)
    out[ok] = values
    return out


def _job_weight(fn, args) -> float:
    """About how long a classifier job takes, for the ETA: DCI's boosted trees one unit per class of a
    factor (a tree per class and stage: 113 units a dSprites member, about 2.7 s each on a 2-core CPU at
    the study's sizes, exact mode), any other classifier a quarter."""
    from aejax.metrics import dci

    if fn is dci.factor_fit:  # one factor's labels (n,)
        return float(len(np.unique(args[1])))
    if fn is dci.dci:  # fast mode: a member's every factor (n, F)
        return float(sum(len(np.unique(column)) for column in np.asarray(args[1]).T))
    return 0.25  # a logistic regression or linear SVMs: seconds at the study's sizes


def score_population(encode, truth, names, seed: int = 0, mode: str = "exact", sizes: dict | None = None,
                     check=None, workers: int = 1) -> dict:
    """`{metric: (M,) float64}` for the metrics `names` (NaN where a member's codes are not finite).

    Every family's factors are drawn first; the distinct observations among them are encoded once
    (`_code_table`), and each family reads its codes from that table. The classifiers run as jobs
    on `workers` processes (0: one per core; 1: in this process; aejax.metrics.workers) while the
    next family's codes are gathered. Logs a line after each metric family (its time, the time so
    far, an ETA from the families done). `check(where)` runs between encoding segments and while
    waiting for the classifiers (each a second or a few at most): it may raise to stop, `where`
    saying how far the scoring got."""
    from aejax.metrics import FAMILIES, INLINE, beta_vae, draw_for, factor_vae, member_jobs
    from aejax.metrics.workers import Jobs
    from aejax.progress import clock

    todo = [(fam, mod, tuple(n for n in mod.NAMES if n in names)) for fam, mod in FAMILIES.items()]
    todo = [(fam, mod, fam_names) for fam, mod, fam_names in todo if fam_names]
    started, done = time.perf_counter(), 0
    between = None if check is None else lambda: check(f"{done} of {len(todo)} metric families scored")
    draws = {fam: draw_for(fam, truth, seed, sizes) for fam, _, _ in todo}
    codes_of = _code_table(encode, truth, draws.values(), "gaussian_tc_sampled" in names, between) \
        or _streamed(encode, truth)
    log.info("metrics: %d famil%s drawn and encoded in %s; classifiers on %d worker process(es)", len(todo),
             "y" if len(todo) == 1 else "ies", clock(time.perf_counter() - started), Jobs(workers).workers)
    jobs, waiting, fitting = Jobs(workers, between), [], time.perf_counter()
    try:
        for fam, mod, fam_names in todo:
            draw = draws[fam]
            y, meta = draw.meta.get("labels"), draw.meta
            if fam == "beta_vae":  # as beta_vae.score, on the per-point features only
                b, n = meta["batch_size"], meta["num_train"]
                x = _codes(codes_of, draw.factors, 2 * b,
                           lambda c: beta_vae.features(c.reshape(len(c), -1, 2, b, c.shape[-1])), between)
                ok = _finite(x)
                work = [(beta_vae.score_features, (m[:n], y[:n], m[n:], y[n:], meta["seed"])) for m in x[ok]]
                combine = lambda results: {"beta_vae_score": np.asarray(results, np.float64)}  # noqa: E731
            elif fam == "factor_vae":  # as factor_vae.score, on the global and per-batch variances only
                b, nv, n = meta["batch_size"], meta["num_variance_estimate"], meta["num_train"]
                global_var = np.var(_codes(codes_of, draw.factors[:nv], between=between)[0], axis=1, ddof=1)
                local = _codes(codes_of, draw.factors[nv:], b,
                               lambda c: factor_vae.local_variances(c.reshape(len(c), -1, b, c.shape[-1])), between)
                ok = _finite(global_var, local)
                acc = factor_vae.score_variances(global_var[ok], local[ok][:, :n], y[:n], local[ok][:, n:], y[n:],
                                                 draw.factors.shape[1]) if ok.any() else []
                work, combine = [], lambda _, acc=acc: {"factor_vae_score": np.asarray(acc, np.float64)}
            else:
                mean, logvar = _codes(codes_of, draw.factors, between=between)
                logvar = logvar if "gaussian_tc_sampled" in fam_names else None
                ok = _finite(mean, logvar)
                posterior = None if logvar is None else (mean[ok], logvar[ok])
                if not ok.any():
                    work, combine = [], lambda _, fam_names=fam_names: {n: [] for n in fam_names}
                elif fam in INLINE:
                    got = mod.score(mean[ok], draw, mode=mode, posterior=posterior, names=fam_names)
                    work, combine = [], lambda _, got=got: got
                else:
                    work, combine = member_jobs(fam, mean[ok], draw, mode, posterior, fam_names)
            if work:
                log.info("metrics: %s's %d classifier job(s) start, elapsed %s", fam, len(work),
                         clock(time.perf_counter() - started))
            waiting.append((fam, fam_names, ok, [jobs.submit(fn, *args) for fn, args in work], combine,
                            [_job_weight(fn, args) for fn, args in work]))
        out, last = {}, time.perf_counter()
        weight = {id(f): w for *_, futures, _, weights in waiting for f, w in zip(futures, weights)}
        total = sum(weight.values())

        def eta() -> str:  # from the classifier work done so far, weighted (`_job_weight`)
            done_weights = [weight[id(f)] for f in jobs.futures if f.done()]
            done_weight = sum(done_weights)
            if total == 0 or done_weight == total:
                return clock(0)
            if max(done_weights, default=0) < max(weight.values()):  # no boosted trees done yet: no rate
                return "unknown until a DCI job ends"
            return clock((time.perf_counter() - fitting) / done_weight * (total - done_weight))

        while waiting:
            for item in [w for w in waiting if all(f.done() for f in w[3])]:
                fam, fam_names, ok, futures, combine, _ = item
                scores = combine([f.result() for f in futures])
                out.update({n: _fill(ok, scores[n]) for n in fam_names})
                waiting.remove(item)
                done += 1
                log.info("metrics: family %d/%d (%s) done, elapsed %s, ETA %s", done, len(todo), fam,
                         clock(time.perf_counter() - started), eta())
            if waiting:
                jobs.poll()
                if time.perf_counter() - last > PROGRESS_SECONDS:
                    last = time.perf_counter()
                    left = sum(not f.done() for f in jobs.futures)
                    log.info("metrics: %d of %d classifier job(s) left, elapsed %s, ETA %s", left, len(jobs.futures),
                             clock(last - started), eta())
    except BaseException:  # a stop, or an error: no worker goes on fitting
        jobs.kill()
        raise
    return {n: out[n] for n in names}


def score_members(model_spec, graph, params, hp, truth, healthy, metrics: MetricsSpec, check=None) -> list[dict]:
    """Per member `{metric: float or None}`: the healthy members scored together (None: diverged, or
    codes that are not finite). `check`: score_population's."""
    import jax

    names = metric_names(model_spec)
    index = np.flatnonzero(np.asarray(healthy))
    out = [{n: None for n in names} for _ in range(len(healthy))]
    if not len(index):
        return out
    encode = population_encoder(model_spec, graph, jax.tree.map(lambda a: a[index], params),
                                {k: v[index] for k, v in hp.items()}, image_shape=truth.image_shape)
    scores = score_population(encode, truth, names, metrics.seed, metrics.resolved_mode(), metrics.size_overrides(),
                              check, metrics.workers)
    for j, i in enumerate(index):
        out[i] = {n: float(scores[n][j]) if np.isfinite(scores[n][j]) else None for n in names}
    return out


def add_to_summaries(spec, data, graph, params, hp, healthy, summaries: list[dict], check=None) -> dict:
    """The end of a run: each member's metrics into its summary's `test`; returns what summary.json
    records beside them (provenance, seconds), or {} when this run scores nothing. `check(where)` may
    stop the scoring between its steps (score_population)."""
    if not wanted(spec, data):
        return {}
    if check is not None:
        check("before the first metric family")  # the metrics' imports alone take seconds
    tic = time.perf_counter()
    for member, scores in zip(summaries, score_members(spec.model, graph, params, hp, data.ground_truth, healthy,
                                                       spec.metrics, check)):
        member["test"].update(scores)
    seconds = time.perf_counter() - tic
    log.info("disentanglement metrics of %d member(s) in %.1f s (preset %s, mode %s)", int(np.sum(healthy)), seconds,
             spec.metrics.preset, spec.metrics.resolved_mode())
    return {"metrics_provenance": metrics_provenance(spec.model, spec.metrics), "metrics_seconds": seconds}


def _settings(mode: str | None, sizes, seed: int, preset: str = "paper", workers: int = 0) -> MetricsSpec:
    return parse_section("metrics", MetricsSpec, {"preset": preset, "mode": mode, "sizes": dict(sizes or {}),
                                                  "seed": seed, "workers": workers})


def score_model(spec, data, model, member: dict, mode: str | None = None, sizes=None, seed: int = 0,
                preset: str = "paper", workers: int = 0) -> dict:
    """One member (`aejax.trained.TrainedRun.disentanglement`): `{metric: float or None}`; `mode` and `sizes`
    override the preset's (`metrics.preset`)."""
    import jax
    from flax import nnx

    from aejax.population import hyperparameter_arrays

    metrics = _settings(mode, sizes, seed, preset, workers)
    if data.ground_truth is None:
        raise _no_factors("disentanglement() on this run", spec.data.name)
    graph, state = nnx.split(model)
    params = jax.tree.map(lambda a: a[None], nnx.to_pure_dict(state))
    return score_members(spec.model, graph, params, hyperparameter_arrays([member]), data.ground_truth, [True],
                         metrics)[0]


def score_run_dir(run_dir, mode: str | None = None, sizes=None, seed: int = 0, check=None,
                  preset: str = "paper", workers: int = 0) -> tuple[Path, dict]:
    """Score every healthy member of the finished run in `run_dir` (or of a run stopped after its training
    ended: its final checkpoint is on disk, its summary.json is not); write `run_dir/disentanglement.json`.
    `check`: score_population's."""
    from aejax.config import parse_run
    from aejax.population import hyperparameter_arrays
    from aejax.rundir import read_json, training_ended, write_atomic
    from aejax.restore import restore_population

    run_dir = Path(run_dir)
    metrics = _settings(mode, sizes, seed, preset, workers)
    config, summary = read_json_yaml(run_dir / "config.yaml"), read_json(run_dir / "summary.json")
    status = (read_json(run_dir / "status.json") or {}).get("status")
    if not isinstance(config, dict):
        raise ConfigError(f"run_dir={run_dir} is not a run directory; expected one with config.yaml (an aejax-train output)")
    stopped_after_training = status == "interrupted" and summary is None and training_ended(run_dir)
    if (not isinstance(summary, dict) or not summary.get("members") or status not in (None, "finished")) \
            and not stopped_after_training:
        raise ConfigError(f"run_dir={run_dir} is not a finished run (status: {status or 'no status.json'}, "
                          f"summary.json {'present' if summary else 'missing'}); expected a run that finished training")
    spec = parse_run(config)
    if has_factors(spec.data) is False:
        raise _no_factors(f"run_dir={run_dir}", spec.data.name)
    run = restore_population(run_dir)
    if run.data.ground_truth is None:
        raise _no_factors(f"run_dir={run_dir}", spec.data.name)
    if stopped_after_training:  # no summary.json: the checkpoint says which members diverged
        status_of = {r["member"]: "diverged" if d else "finished" for r, d in zip(run.rows, run.diverged_at)}
    else:
        status_of = {m["member"]: m.get("status", "finished") for m in summary["members"]}
    healthy = [status_of.get(r["member"]) == "finished" for r in run.rows]
    tic = time.perf_counter()
    scores = score_members(spec.model, run.graph, run.params, hyperparameter_arrays(run.rows), run.data.ground_truth,
                           healthy, metrics, check)
    record = {"provenance": metrics_provenance(spec.model, metrics), "seconds": time.perf_counter() - tic,
              "epoch": run.epoch,
              "members": [{"member": r["member"], "seed": r["seed"], "status": status_of.get(r["member"], "unknown"),
                           "test": s} for r, s in zip(run.rows, scores)]}
    path = run_dir / FILE
    write_atomic(path, json.dumps(record, indent=1))
    return path, record


def read_json_yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        print(f"aejax-metrics: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _sizes(text: str) -> dict:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if not (eq and value.strip().isdigit()):
            raise argparse.ArgumentTypeError(f"{item!r} is not allowed; expected KEY=INTEGER, e.g. num_train=1000")
        out[key.strip()] = int(value)
    return out


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="aejax-metrics", description="Disentanglement metrics of every healthy member of a finished "
                "run on data with ground-truth factors, written to RUN_DIR/disentanglement.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished aejax-train run directory")
    p.add_argument("--preset", choices=tuple(METRIC_PRESETS), default="paper",
                   help="paper (disentanglement_lib's sizes, exact mode; the default) or quick (small sizes, fast "
                   "mode: about half a minute a dSprites member on 2 CPU cores); --mode and --sizes override it")
    p.add_argument("--mode", choices=METRIC_MODES, default=None,
                   help="exact (scikit-learn, as disentanglement_lib) or fast (DCI on histogram trees); "
                   "default: the preset's")
    p.add_argument("--sizes", type=_sizes, default={}, help="overrides of the preset's sizes, e.g. "
                   "num_train=1000,num_test=500,num_eval=500,dci.num_train=100 (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0): fixes the sampled factors")
    p.add_argument("--workers", type=int, default=0, help="processes for the classifiers (default 0: one per "
                   "available core; 1: none beside this one); the scores do not depend on it")
    return p


def main(argv=None) -> int:
    from aejax.rundir import Interrupted, catch_signals

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    again = f"score again with: uv run --locked aejax-metrics {args.run_dir}"

    def check(where: str) -> None:  # a first signal: stop between families or encoding segments
        if stops.requested is not None:
            raise Interrupted(stops.requested, f"stopped during the metrics ({where}); nothing was written: {again}")

    with catch_signals() as stops:
        stops.nothing_saved = f"nothing was written: {again}"
        try:
            path, record = score_run_dir(args.run_dir, args.mode, args.sizes, args.seed, check, args.preset,
                                         args.workers)
        except ConfigError as err:
            print(f"aejax-metrics: error: {err}", file=sys.stderr)
            return 2
        except Interrupted as err:
            import signal

            print(f"aejax-metrics: {signal.Signals(err.signum).name}: {err}", file=sys.stderr)
            return 128 + err.signum
    scored = sum(m["status"] == "finished" for m in record["members"])
    print(f"aejax-metrics: {scored} member(s) scored in {record['seconds']:.1f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
