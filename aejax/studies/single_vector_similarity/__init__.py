"""The single-vector similarity study (task `single_vector_similarity`, report
experiments/single_vector_similarity): do autoencoders trained on similar single vectors learn
similar codes? `run` runs it from a config and writes its results, table and figure.

    aejax-train experiment=single_vector_similarity            # the default study
    aejax-train -m experiment=single_vector_similarity model.code_size=8,128   # a sweep axis

Its parts: `pairs` (the pairs of vectors, their autoencoders trained as one population, the
measures of each pair), `similarity` (similarity measures and their statistics), `figures`.
The study trains outside `aejax.run.train_and_evaluate` (no summary.json). Outputs in the run
directory: results.json (Spearman rho with bootstrap intervals per condition, per replicate and
pooled; mean code similarity per level; reconstruction errors), pairs.npz (every per-pair measure)
and figures/code_vs_input.png.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from aejax.config import DataSpec, LoggerSpec, OptimSpec, TrainerSpec, parse_model
from aejax.rundir import hold
from aejax.settings import parse_section
from aejax.train import use_cpu_devices
from aejax.studies.single_vector_similarity.similarity import spearman, spearman_with_ci
from aejax.studies.single_vector_similarity.pairs import (CONDITIONS, Trainer, measure, mnist_pairs, parse_study,
                                                         synthetic_pairs)


UNFIT = 0.01  # an autoencoder "did not fit" its vector when MSE / mean square of the vector > 1%


def _stack(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def summarize(per_seed: list[dict], spec, rng) -> dict:
    pooled = _stack(per_seed)
    out = {"conditions": {}}
    for cond in CONDITIONS:
        rhos = [spearman(p["input_cos"], p[cond]) for p in per_seed]
        out["conditions"][cond] = {
            "pooled": spearman_with_ci(pooled["input_cos"], pooled[cond], rng, spec.bootstrap),
            "per_seed_rho": rhos,
            "mean_similarity": float(np.nanmean(pooled[cond])),
        }
    return out, pooled


def by_level(pooled: dict, key_values: np.ndarray) -> dict:
    table = {}
    for value in np.unique(key_values):
        sel = key_values == value
        table[str(value)] = {c: float(np.nanmean(pooled[c][sel])) for c in CONDITIONS}
        table[str(value)]["input_cos"] = float(pooled["input_cos"][sel].mean())
        table[str(value)]["n"] = int(sel.sum())
    return table


def fit_report(pooled: dict) -> dict:
    """Did every autoencoder fit its vector? Relative error = MSE / mean square of the input."""
    mse = np.concatenate([pooled["mse_a1"], pooled["mse_a2_independent"], pooled["mse_a2_shared"]])
    relative = mse / np.concatenate([pooled["ms_v1"], pooled["ms_v2"], pooled["ms_v2"]])
    return {"median_mse": float(np.median(mse)), "max_mse": float(mse.max()),
            "max_relative_error": float(relative.max()),
            "unfit_fraction": float(np.mean(relative > UNFIT)),  # relative error above 1%
            "dataset_ae_mse": float(pooled["dataset_ae_mse"].mean())}


def run(config: dict, workdir) -> dict:
    """The study; `workdir` a path, or the run directory aejax-train holds (`aejax.rundir.hold`)."""
    study = parse_study(config.get("study"))
    # trainer.cpu_devices, as aejax-train's task applies it, for a call from Python too (before the run
    # directory: a refused count leaves nothing behind).
    use_cpu_devices(parse_section("trainer", TrainerSpec, config.get("trainer")).cpu_devices)
    # The study trains outside train_and_evaluate: it starts its run directory itself.
    run_dir, owner = hold(workdir, config)
    try:
        run_dir.start()
        result = _run(config, run_dir.path, study)
    except BaseException as err:
        if owner:
            run_dir.close("failed", message=f"{type(err).__name__}: {err}".splitlines()[0][:300])
        raise
    if owner:
        run_dir.close("finished")
    return result


def _run(config: dict, workdir: Path, study) -> dict:
    model = parse_model(config.get("model"), {})
    optim = parse_section("optim", OptimSpec, config.get("optim"))
    data = parse_section("data", DataSpec, config.get("data"))
    logger_spec = parse_section("logger", LoggerSpec, config.get("logger"))
    tic = time.perf_counter()
    results = {"settings": {"model.code_size": model.code_size, "model.code_activation": model.get("code_activation"),
                            "model.init_scale": model.init_scale, "study.steps": study.steps,
                            "optim.learning_rate": optim.learning_rate, "seeds": list(study.seeds)}}
    n_syn = len(study.similarities) * study.pairs_per_level
    syn = Trainer(model, optim, study.dim, study, 2 * n_syn)
    parts = [measure(syn, *synthetic_pairs(np.random.default_rng(seed), study, study.dim), seed)
             for seed in study.seeds]
    rng = np.random.default_rng(0)
    results["synthetic"], pooled = summarize(parts, study, rng)
    results["synthetic"]["by_level"] = by_level(pooled, pooled["input_cos"])
    results["synthetic"]["fit"] = fit_report(pooled)
    arrays = {f"synthetic/{k}": v for k, v in pooled.items()}
    if study.mnist:
        from aejax.data.mnist import load_mnist

        images = load_mnist(data.root, data.download)
        mnist = Trainer(model, optim, 784, study, 6 * study.mnist_pairs_per_kind)
        mparts, kinds = [], []
        for seed in study.seeds:
            v1, v2, kind = mnist_pairs(np.random.default_rng(seed), images["test_images"], images["test_labels"],
                                       study.mnist_pairs_per_kind, study.mnist_perturbation)
            s = np.sum(v1 * v2, 1) / np.linalg.norm(v1, axis=1) / np.linalg.norm(v2, axis=1)
            mparts.append(measure(mnist, v1, v2, s, seed))
            kinds.append(kind)
        results["mnist"], mpooled = summarize(mparts, study, rng)
        results["mnist"]["by_kind"] = by_level(mpooled, np.concatenate(kinds))
        results["mnist"]["fit"] = fit_report(mpooled)
        arrays.update({f"mnist/{k}": v for k, v in mpooled.items()})
        arrays["mnist/kind"] = np.concatenate(kinds)
    results["seconds"] = time.perf_counter() - tic

    from aejax.studies.single_vector_similarity.figures import code_vs_input

    workdir.mkdir(parents=True, exist_ok=True)
    figures = {"code_vs_input": code_vs_input(arrays, workdir / "figures" / "code_vs_input.png")}
    np.savez_compressed(workdir / "pairs.npz", **arrays)
    log_to_wandb(logger_spec, config, results, figures, workdir)
    tmp = workdir / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(workdir / "results.json")
    return results


def log_to_wandb(spec: LoggerSpec, config: dict, results: dict, figures: dict, workdir: Path) -> None:
    from aejax.loggers import wandb_mode, wandb_settings

    if spec.name == "none" or wandb_mode(spec) == "disabled":
        return
    import wandb

    run = wandb.init(project=spec.project, entity=spec.entity, group=spec.group or config.get("name"),
                     job_type="study", config={**config, **results["settings"]}, dir=str(workdir),
                     mode=wandb_mode(spec), reinit="create_new", settings=wandb_settings())
    for part in ("synthetic", "mnist"):
        if part not in results:
            continue
        rows = [[cond, v["pooled"]["rho"], v["pooled"]["lo"], v["pooled"]["hi"], v["mean_similarity"]]
                for cond, v in results[part]["conditions"].items()]
        run.log({f"{part}/spearman": wandb.Table(columns=["condition", "rho", "lo", "hi", "mean_similarity"],
                                                  data=rows)})
        run.summary.update({f"{part}/rho/{c}": v["pooled"]["rho"] for c, v in results[part]["conditions"].items()})
    run.log({f"figures/{k}": wandb.Image(str(p)) for k, p in figures.items()})
    run.finish()
