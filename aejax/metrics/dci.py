"""DCI disentanglement, completeness, informativeness (Eastwood & Williams 2018; disentanglement_lib
`dci.py`, study `dci.gin`: 10,000 train and 5,000 test points).

Per factor j a `GradientBoostingClassifier()` (scikit-learn defaults: 100 stages, depth 3, learning
rate 0.1) predicts y_j from all codes; R[:, j] = its impurity-based feature importances.
- disentanglement = sum_i rho_i (1 - H_F(R[i] / sum R[i])), rho_i = sum R[i] / sum R;
- completeness = sum_j rho_j (1 - H_K(R[:, j] / sum R[:, j])), entropies in base F and base K;
- informativeness = mean test accuracy over factors (disentanglement_lib's `informativeness_test`).

mode="fast" grows the same boosted trees on at most 255 thresholds per code (`aejax.metrics.gbt`).
Measured on toy codes (10,000 points, dSprites factor sizes, K=10; not trained models): 77 s CPU per
member against 523 s exact, with D and C about 0.02 lower (exact thresholds, `max_bins` above the
number of points: within 5e-4 of exact, but 339 s). Measure its agreement on trained models
(`agreement`) before reporting fast-mode numbers beside the paper's.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from aejax.metrics import gbt
from aejax.metrics.common import Draw, as_members, check_factors, sample_split, split

NAMES = ("dci_disentanglement", "dci_completeness", "dci_informativeness")
SALT = 1
SIZES = {"num_train": 10_000, "num_test": 5_000}


def _gbt(seed: int):
    from sklearn.ensemble import GradientBoostingClassifier

    # disentanglement_lib leaves random_state=None; a fixed one makes ties between splits reproducible.
    return GradientBoostingClassifier(random_state=seed)


def factor_fit(x_train, y_train, x_test, y_test, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """One factor's boosted trees: `x (n, K)`, `y (n,)` -> `(importances (K,), train accuracy, test accuracy)`."""
    model = _gbt(seed).fit(x_train, y_train)
    return (np.abs(model.feature_importances_), float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


def importance_matrix(x_train, y_train, x_test, y_test, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """One member: `x (n, K)`, `y (n, F)` -> `(R (K, F), train accuracy, test accuracy)`."""
    fits = [factor_fit(x_train, y_train[:, j], x_test, y_test[:, j], seed) for j in range(y_train.shape[1])]
    return _assemble(fits)


def _assemble(fits) -> tuple[np.ndarray, float, float]:
    """Per-factor fits -> `(R (K, F), mean train accuracy, mean test accuracy)`."""
    return (np.stack([f[0] for f in fits], axis=1), float(np.mean([f[1] for f in fits])),
            float(np.mean([f[2] for f in fits])))


def disentanglement(r: np.ndarray) -> float:
    """`R (K, F)` -> weighted mean over codes of 1 - entropy (base F) of each code's importances."""
    per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    if r.sum() == 0.0:
        r = np.ones_like(r)
    return float(np.sum(per_code * r.sum(axis=1) / r.sum()))


def completeness(r: np.ndarray) -> float:
    """`R (K, F)` -> weighted mean over factors of 1 - entropy (base K) of each factor's importances."""
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    if r.sum() == 0.0:
        r = np.ones_like(r)
    return float(np.sum(per_factor * r.sum(axis=0) / r.sum()))


def dci(codes_train, factors_train, codes_test, factors_test, seed: int = 0, mode: str = "exact") -> dict:
    """Codes `(n, K)` or `(M, n, K)` -> {dci_disentanglement, dci_completeness, dci_informativeness}."""
    fit = {"exact": importance_matrix, "fast": gbt.fit_importances}.get(mode)
    if fit is None:
        raise ValueError(f"mode must be 'exact' or 'fast', got {mode!r}")
    (xs, single), (xt, _) = as_members(codes_train), as_members(codes_test)
    ys, yt = check_factors(factors_train, xs.shape[1]), check_factors(factors_test, xt.shape[1])
    return _scores([fit(xs[m], ys, xt[m], yt, seed) for m in range(xs.shape[0])], single)


def _scores(fits, single: bool = False) -> dict:
    """Per member `(R, train accuracy, test accuracy)` -> {name: float or (M,)}."""
    cols = np.asarray([(disentanglement(r), completeness(r), test_acc) for r, _, test_acc in fits]).T
    return {name: (float(c[0]) if single else c) for name, c in zip(NAMES, cols)}


def jobs(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES):
    """Exact mode's independent pieces for worker processes (aejax.metrics.workers): one job per member
    and factor, the factors with the most classes (the most trees) first; `combine(results)` -> `score`'s
    dict for codes `(M, n, K)`. Fast mode grows all of a member's trees together: one job per member."""
    del posterior, names
    xs, ys, xt, yt = split(codes, draw)
    seed, members, factors = draw.meta["seed"], len(xs), ys.shape[1]
    if mode != "exact":
        return [(dci, (xs[m], ys, xt[m], yt, seed, mode)) for m in range(members)], \
            (lambda results: {n: np.array([r[n] for r in results]) for n in NAMES})
    order = sorted(range(factors), key=lambda j: -len(np.unique(ys[:, j])))
    pieces = [(m, j) for m in range(members) for j in order]
    work = [(factor_fit, (xs[m], ys[:, j], xt[m], yt[:, j], seed)) for m, j in pieces]

    def combine(results):
        by_piece = dict(zip(pieces, results))
        return _scores([_assemble([by_piece[m, j] for j in range(factors)]) for m in range(members)])

    return work, combine


def sample(ground_truth, rng, num_train: int = SIZES["num_train"], num_test: int = SIZES["num_test"]) -> Draw:
    return sample_split(ground_truth, rng, num_train, num_test)


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    del posterior, names
    return dci(*split(codes, draw), seed=draw.meta["seed"], mode=mode)


def agreement(codes, draw: Draw) -> dict:
    """Fast against exact mode on the same members' codes `(M, n, K)` of one draw: per DCI score,
    the Spearman rank correlation over members and the largest absolute difference."""
    exact, fast = score(codes, draw, mode="exact"), score(codes, draw, mode="fast")
    return {name: {"spearman": float(scipy.stats.spearmanr(exact[name], fast[name]).statistic),
                   "max_abs_diff": float(np.max(np.abs(exact[name] - fast[name]))),
                   "exact": exact[name].tolist(), "fast": fast[name].tolist()} for name in NAMES}
