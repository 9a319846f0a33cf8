"""Few labels on top of unsupervised codes: a linear probe trained on n labelled examples per class.

The autoencoder never sees a label; a logistic regression on its frozen codes does, with only
`per_class` labelled training images per class, drawn at random (several draws, `seeds`). The
same probe on the pixels and on PCA says whether the codes made the labels easier to use.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def labelled_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` examples of every class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if per_class > counts.min():
        raise ValueError(f"per_class={per_class} is not allowed; expected at most {counts.min()} "
                         f"(the rarest class's count)")
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])


def probe_accuracy(train_x, train_y, test_x, test_y, per_class: int, seeds=(0, 1, 2, 3, 4)) -> dict:
    """Test accuracy of standardised logistic regression on `per_class` labels a class, per seed."""
    accuracies = []
    for seed in seeds:
        chosen = labelled_subset(train_y, per_class, seed)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(train_x[chosen], train_y[chosen])
        accuracies.append(float(probe.score(test_x, test_y)))
    return {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)), "per_seed": accuracies}
