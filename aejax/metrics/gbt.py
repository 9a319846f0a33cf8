"""Histogram gradient-boosted trees for DCI's fast mode: scikit-learn's `GradientBoostingClassifier()`
boosting (log-loss, 100 stages, depth 3, learning rate 0.1, prior init, Newton leaf values, impurity
importances averaged over trees), with split thresholds restricted to at most `max_bins` - 1 per code
(midpoints between distinct values, or quantiles when a code has more than `max_bins` values).

All trees of a stage (every class of every factor) grow together, one level at a time, from
`np.bincount`s of residual sums and counts per (tree, node, bin), one code at a time. Where a code has
at most `max_bins` distinct values the candidate splits are scikit-learn's own, so the trees differ
only in how exact ties between splits are broken (scikit-learn: a random code order; here too).
"""

from __future__ import annotations

import numpy as np

EPS = np.finfo(np.float64).eps


FEATURE_THRESHOLD = np.float32(1e-7)  # scikit-learn's splitter never cuts between closer values


def bin_edges(x: np.ndarray, max_bins: int) -> list[np.ndarray]:
    """Per column of float32-valued `x (n, K)`: thresholds between distinct values (at most max_bins - 1)."""
    edges = []
    for col in x.T:
        values = np.unique(col)
        if len(values) <= max_bins:  # every threshold scikit-learn's exact splitter could choose
            v32 = values.astype(np.float32)
            keep = v32[1:] > v32[:-1] + FEATURE_THRESHOLD
            edges.append((values[:-1] / 2 + values[1:] / 2)[keep])
        else:  # as HistGradientBoosting: max_bins - 1 quantiles
            edges.append(np.unique(np.quantile(col, np.linspace(0, 1, max_bins + 1)[1:-1], method="midpoint")))
    return edges


def _digitize(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Bin index per value: the number of thresholds < x (x <= threshold goes left, as sklearn)."""
    return np.stack([np.searchsorted(e, col, side="left") for e, col in zip(edges, x.T)], axis=1)


def _targets(y_train: np.ndarray):
    """One column per tree: each class of a multiclass factor, one column for a binary factor.

    -> indicators `(n, T)`, groups `[(first column, width, classes)]` per factor, prior raw
    predictions `(T,)` (scikit-learn's `DummyClassifier(strategy="prior")` through the loss's link)
    and the leaf-value factor `(T,)` ((C - 1) / C for the multinomial loss, 1 for the binomial).
    """
    onehot, groups, priors, scale = [], [], [], []
    for j in range(y_train.shape[1]):
        classes, yj = np.unique(y_train[:, j], return_inverse=True)
        c = len(classes)
        cols = np.eye(c)[yj][:, 1:] if c == 2 else np.eye(c)[yj]
        groups.append((sum(o.shape[1] for o in onehot), cols.shape[1], classes))
        onehot.append(cols)
        scale += [1.0 if c == 2 else (c - 1) / c] * cols.shape[1]
        p = np.clip(np.bincount(yj, minlength=c) / len(yj), EPS, 1 - EPS)
        priors.append(np.log(p[1:] / p[:1]) if c == 2 else np.log(p) - np.mean(np.log(p)))
    return np.concatenate(onehot, axis=1), groups, np.concatenate(priors), np.asarray(scale)


def _probs(raw: np.ndarray, groups) -> np.ndarray:
    out = np.empty_like(raw)
    for start, width, classes in groups:
        r = raw[:, start:start + width]
        if len(classes) == 2:
            out[:, start] = 1 / (1 + np.exp(-r[:, 0]))
        else:
            e = np.exp(r - r.max(axis=1, keepdims=True))
            out[:, start:start + width] = e / e.sum(axis=1, keepdims=True)
    return out


def _best_splits(g, key, bins, size: int, nb: int, rng):
    """Best split of every node: `key (n, T)` numbers the (tree, node) of each sample, `size` nodes.

    -> gain `(size,)` (the squared-error decrease; -inf where no split), code `(size,)`, bin
    `(size,)` (left: bin <= it), node count and impurity (variance of g) `(size,)`.
    """
    flat, gf = key.ravel(), g.ravel()
    c_tot = np.bincount(flat, minlength=size).astype(np.float64)
    s_tot = np.bincount(flat, gf, size)
    sq = np.bincount(flat, gf * gf, size)
    keyb = key * nb
    gains, bests = [], []
    for j in range(bins.shape[1]):  # one code at a time: (n, T) temporaries, not (n, T, K)
        idx = (keyb + bins[:, j:j + 1]).ravel()
        sl = np.cumsum(np.bincount(idx, gf, size * nb).reshape(size, nb), axis=1)[:, :-1]
        cl = np.cumsum(np.bincount(idx, minlength=size * nb).reshape(size, nb), axis=1)[:, :-1]
        sr, cr = s_tot[:, None] - sl, c_tot[:, None] - cl
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where((cl > 0) & (cr > 0), sl**2 / cl + sr**2 / cr, -np.inf)
        bests.append(gain.argmax(axis=1))
        gains.append(np.take_along_axis(gain, bests[-1][:, None], axis=1)[:, 0])
    gains, bests = np.stack(gains, axis=1), np.stack(bests, axis=1)  # (size, K)
    best = gains.max(axis=1)
    # scikit-learn visits the codes in a random order and keeps the first best: ties share importance
    code = np.argmin(np.where(gains == best[:, None], rng.random(gains.shape), np.inf), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        decrease = best - s_tot**2 / c_tot
        impurity = sq / c_tot - (s_tot / c_tot) ** 2
    return decrease, code, bests[np.arange(size), code], c_tot, impurity


def fit_importances(x_train, y_train, x_test, y_test, seed: int = 0, num_stages: int = 100, depth: int = 3,
                    learning_rate: float = 0.1, max_bins: int = 256):
    """`x (n, K)`, `y (n, F)` -> `(R (K, F) importances, train accuracy, test accuracy)`, one GBT per factor.

    Ties between codes are broken as scikit-learn's splitter does: codes are visited in a random
    order (from `seed`) and the first best split wins, so duplicated codes share the importance.
    """
    rng = np.random.default_rng(seed)
    # scikit-learn's trees see float32 codes
    x_train, x_test = (np.asarray(x, np.float32).astype(np.float64) for x in (x_train, x_test))
    n, k = x_train.shape
    edges = bin_edges(x_train, max_bins)
    b_train, b_test = _digitize(x_train, edges), _digitize(x_test, edges)
    nb = max(2, max(len(e) for e in edges) + 1)  # 2: constant codes still get an (empty) split axis
    y, groups, prior, scale = _targets(np.asarray(y_train))
    t = y.shape[1]
    trees = np.arange(t)
    raw_train, raw_test = np.tile(prior, (n, 1)), np.tile(prior, (len(x_test), 1))
    importance, relevant = np.zeros((t, k)), np.zeros(t)
    for _ in range(num_stages):
        p = _probs(raw_train, groups)
        g = y - p  # the negative gradient, fixed for the stage's T trees
        node, node_test = np.zeros((n, t), np.int64), np.zeros((len(x_test), t), np.int64)
        alive = np.ones(t, bool)  # per (tree, node): may still split (a leaf's samples stay in its left slot)
        for level in range(depth):
            nn = 2**level
            gain, code, cut, count, impurity = _best_splits(g, trees * nn + node, b_train, t * nn, nb, rng)
            split = alive & np.isfinite(gain) & (count >= 2) & (impurity > EPS)
            np.add.at(importance, (np.repeat(trees, nn)[split], code[split]), np.maximum(gain[split], 0.0) / n)
            if level == 0:
                relevant += split

            def route(nodes, bins):
                key = trees * nn + nodes
                right = bins[np.arange(len(bins))[:, None], code[key]] > cut[key]
                return 2 * nodes + (split[key] & right)

            node, node_test = route(node, b_train), route(node_test, b_test)
            alive = np.repeat(split, 2)
        leaves = 2**depth
        key = (trees * leaves + node).ravel()
        num = np.bincount(key, g.ravel(), t * leaves)
        den = np.bincount(key, (p * (1 - p)).ravel(), t * leaves)
        value = np.where(np.abs(den) < 1e-150, 0.0, np.repeat(scale, leaves) * num / np.where(den == 0, 1, den))
        raw_train += learning_rate * value[trees * leaves + node]
        raw_test += learning_rate * value[trees * leaves + node_test]
    r = np.zeros((k, y_train.shape[1]))
    acc_train, acc_test = [], []
    for j, (start, width, classes) in enumerate(groups):
        cols = slice(start, start + width)
        total = importance[cols].sum(axis=0) / max(relevant[cols].sum(), 1)  # mean over trees that split
        r[:, j] = total / total.sum() if total.sum() > 0 else 0.0
        for raw, yj, acc in ((raw_train, y_train[:, j], acc_train), (raw_test, y_test[:, j], acc_test)):
            rj = raw[:, cols]
            pred = classes[(rj[:, 0] > 0).astype(int)] if len(classes) == 2 else classes[np.argmax(rj, axis=1)]
            acc.append(np.mean(pred == yj))
    return r, float(np.mean(acc_train)), float(np.mean(acc_test))
