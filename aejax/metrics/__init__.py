"""Disentanglement metrics of disentanglement_lib's study (Locatello et al. 2019), by name.

`evaluate_all(represent, ground_truth, seed=0)` scores one member. A batched caller scoring many
members on the same factors uses the families directly:

    family = METRICS["mig"]                                   # "mig"; METRICS maps every name
    draw = draw_for(family, ground_truth, seed, sizes)        # once, for all members
    codes = <encode ground_truth.observations(draw.factors) for every member, in chunks>  # (M, n, K)
    scores = FAMILIES[family].score(codes, draw, mode="exact")  # {name: (M,) array}

BetaVAE and FactorVAE need 1.92 million and 970,000 encodings at the study's sizes; their scores
only read per-batch reductions (`beta_vae.features`, `factor_vae.local_variances`), which a
batched caller can compute where it encodes.

Each family draws from its own fixed stream `family_rng(seed, SALT)`, so a metric's numbers do not
depend on which other metrics run, and every member is scored on the same sampled factors. The
per-member cores (`mig(codes, factors)`, `dci(...)`, ...) live in the family modules. Scores move
between scikit-learn versions (DCI, SAP, explicitness, BetaVAE use its classifiers; MIG, modularity
and mutual_info_score match its `mutual_info_score`): record `provenance()` beside them.
"""

from __future__ import annotations

from importlib.metadata import version
from types import ModuleType

import numpy as np

from aejax.metrics import beta_vae, dci, factor_vae, mig, modularity, sap, unsupervised
from aejax.metrics.common import Draw, encode, family_rng

SKLEARN_VERSION = version("scikit-learn")  # exactly pinned in uv.lock (1.9.1 when written)
MODES = ("exact", "fast")  # "fast": DCI on histogram trees (aejax.metrics.gbt); every other metric is exact

FAMILIES: dict[str, ModuleType] = {
    "beta_vae": beta_vae, "factor_vae": factor_vae, "mig": mig, "dci": dci, "sap": sap,
    "modularity_explicitness": modularity, "unsupervised": unsupervised,
}
METRICS: dict[str, str] = {name: fam for fam, mod in FAMILIES.items() for name in mod.NAMES}
NEEDS_POSTERIOR = ("gaussian_tc_sampled",)


def provenance(seed: int = 0, mode: str = "exact", sizes: dict | None = None) -> dict:
    """What the numbers depend on besides the model: record it beside the scores."""
    return {"metrics_seed": seed, "metrics_mode": mode, "metrics_sizes": dict(sizes or {}),
            "metrics_sklearn_version": SKLEARN_VERSION, "metrics_numpy_version": np.__version__}


def _resolve(names, have_posterior: bool) -> list[str]:
    if names is None:  # every metric the inputs allow
        return [n for n in METRICS if have_posterior or n not in NEEDS_POSTERIOR]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    if not have_posterior and any(n in NEEDS_POSTERIOR for n in names):
        raise ValueError(f"{list(NEEDS_POSTERIOR)} need represent_posterior=(x -> (mean, logvar))")
    return list(names)


def _family_sizes(fam: str, sizes: dict) -> dict:
    """Flat keys (`num_train`) apply to every family that has them; `family.key` (`dci.num_train`) to one."""
    mod = FAMILIES[fam]
    out = {k: v for k, v in sizes.items() if k in mod.SIZES}
    out.update({k.split(".", 1)[1]: v for k, v in sizes.items() if k.startswith(fam + ".")})
    return out


def _check_sizes(sizes: dict) -> None:
    known = {k for mod in FAMILIES.values() for k in mod.SIZES}
    known |= {f"{fam}.{k}" for fam, mod in FAMILIES.items() for k in mod.SIZES}
    if set(sizes) - known:
        raise ValueError(f"unknown sizes {sorted(set(sizes) - known)}; known: {sorted(known)}")


def draw_for(family: str, ground_truth, seed: int = 0, sizes: dict | None = None) -> Draw:
    """The factors (and structure) one family scores every member on: fixed by `seed` and `sizes`."""
    sizes = dict(sizes or {})
    _check_sizes(sizes)
    mod = FAMILIES[family]
    return mod.sample(ground_truth, family_rng(seed, mod.SALT), **_family_sizes(family, sizes))


INLINE = ("mig", "factor_vae", "unsupervised")  # vectorised over members: scored where the codes are


def member_jobs(family: str, codes, draw: Draw, mode: str = "exact", posterior=None, names=None):
    """A family's scoring of codes `(M, n, K)` as independent jobs for worker processes
    (aejax.metrics.workers): the family's own `jobs` where it has one (DCI: one per member and factor),
    else one `score` call per member. -> `([(fn, args), ...], combine(results) -> {name: (M,)})`."""
    mod = FAMILIES[family]
    names = tuple(mod.NAMES if names is None else names)
    if hasattr(mod, "jobs"):
        return mod.jobs(codes, draw, mode, posterior, names)

    def one(m):
        return None if posterior is None else tuple(p[m:m + 1] for p in posterior)

    work = [(mod.score, (codes[m:m + 1], draw, mode, one(m), names)) for m in range(len(codes))]
    return work, lambda results: {n: np.concatenate([np.atleast_1d(r[n]) for r in results]) for n in names}


def evaluate_all(represent, ground_truth, seed: int = 0, names=None, mode: str = "exact",
                 represent_posterior=None, sizes: dict | None = None, encode_batch: int = 4096) -> dict[str, float]:
    """Score one member: `{metric name: float}` for `names` (default: all that the inputs allow).

    represent: `x (n, D) float32 -> (n, K)` codes (the posterior mean for a VAE);
    ground_truth: `.factor_sizes`, `.sample_factors(n, rng)`, `.observations(factors)`;
    represent_posterior: optional `x -> (mean, logvar)`, needed for gaussian_tc_sampled;
    sizes: overrides of the study's sizes (`num_train`, `num_test`, `num_eval`, `batch_size`,
    `num_variance_estimate`; `dci.num_train` for one family), for tests, quick looks and scaled-down
    studies; the defaults are the study's. Record them (`provenance`): the scores depend on them.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    sizes = dict(sizes or {})
    _check_sizes(sizes)
    wanted = _resolve(names, represent_posterior is not None)
    out: dict[str, float] = {}
    for fam, mod in FAMILIES.items():
        fam_names = tuple(n for n in mod.NAMES if n in wanted)
        if not fam_names:
            continue
        draw = draw_for(fam, ground_truth, seed, sizes)
        posterior = None
        if any(n in NEEDS_POSTERIOR for n in fam_names):
            parts = [represent_posterior(ground_truth.observations(draw.factors[i:i + encode_batch]))
                     for i in range(0, len(draw.factors), encode_batch)]
            posterior = tuple(np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(2))
            codes = posterior[0]
        else:
            codes = encode(represent, ground_truth, draw.factors, encode_batch)
        scores = mod.score(codes, draw, mode=mode, posterior=posterior, names=fam_names)
        out.update({n: float(scores[n]) for n in fam_names})
    return {n: out[n] for n in wanted}


__all__ = ["Draw", "FAMILIES", "INLINE", "METRICS", "MODES", "SKLEARN_VERSION", "draw_for", "encode", "evaluate_all",
           "family_rng", "member_jobs", "provenance"]
