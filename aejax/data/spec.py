"""`data.*`: the settings of every data source, declared once (`aejax.settings.setting`) and checked by
the one checker; the rules between fields are `DataSpec.check_rules`. Which names exist is the loaders'
business (`aejax.data.check_spec`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aejax.settings import NON_NEGATIVE, NON_NEGATIVE_INT, OPEN_UNIT, POSITIVE_INT, Rule, Settings, require, setting

NULL_OR_POSITIVE = Rule(lambda v: v > 0, "null or an integer > 0")
UNIT_PROBABILITY = Rule(lambda v: 0 < v <= 1, "a probability in (0, 1]")
ARRAY_NAME = Rule(lambda v: v != "", "null or the name of an array in data.path")


def _positive_ints(values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _image_size_ok(v) -> bool:
    sizes = (v,) if isinstance(v, int) else v if isinstance(v, tuple) and len(v) == 2 else ()
    return bool(sizes) and _positive_ints(sizes)


@dataclass(frozen=True)
class DataSpec(Settings):
    section = "data"
    name: str = setting("digits", "the dataset: synthetic | synthetic_features | digits | mnist | array | images "
                                  "| dsprites | ...",
                        rule=Rule(lambda v: v != "", "a dataset name"))
    root: str | None = setting(None, "mnist: folder of IDX .gz files (null: the cache, aejax.data.cache.locate)")
    download: bool = setting(True, "mnist: fetch missing files where the network allows")
    train_size: int | None = setting(None, "cap on training examples (null: all; more than the data holds is "
                                     "refused)", rule=NULL_OR_POSITIVE)
    val_fraction: float = setting(0.1, "of the training split, taken from its end",
                                  rule=Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    test_size: int | None = setting(None, "cap on test examples (null: all); activations: the held-out rows "
                                    "(null: 10000)", rule=NULL_OR_POSITIVE)
    binarize: str = setting("none", "none | fixed (one Bernoulli draw, kept) | dynamic (a draw per step) | threshold",
                            choices=("none", "fixed", "dynamic", "threshold"))
    # synthetic data
    generator: str = setting("manifold", "synthetic: the generator", choices=("manifold", "cosine_pairs"))
    dim: int = setting(64, "synthetic: values per example", rule=POSITIVE_INT)
    intrinsic_dim: int = setting(2, "synthetic manifold: its dimension")
    num_samples: int = setting(2000, "synthetic: examples", rule=Rule(lambda v: v > 1, "an integer > 1"))
    noise: float = setting(0.05, "synthetic: noise standard deviation", rule=NON_NEGATIVE)
    similarity: float = setting(0.9, "cosine_pairs: the cosine of each pair",
                                rule=Rule(lambda v: -1 <= v <= 1, "a cosine in [-1, 1]"))
    seed: int = setting(0, "synthetic: the generator's seed; activations: the shuffle's seed", rule=NON_NEGATIVE_INT)
    # synthetic_features: activations with known features (aejax/data/features.py, SynthSAEBench)
    num_features: int = setting(1024, "synthetic_features: the true features F", rule=POSITIVE_INT)
    zipf_exponent: float = setting(0.5, "synthetic_features: firing probability of the r-th feature ~ 1/r^a",
                                   rule=Rule(lambda v: v > 0, "a number > 0"))
    firing_max: float = setting(0.4, "synthetic_features: the most frequent feature's firing probability",
                                rule=UNIT_PROBABILITY)
    firing_min: float = setting(5e-3, "synthetic_features: the rarest feature's firing probability",
                                rule=UNIT_PROBABILITY)
    hierarchy: tuple = setting((), "synthetic_features: [roots, branching, depth] trees, children exclusive; []: none",
                               rule=Rule(lambda v: len(v) == 0 or (len(v) == 3 and _positive_ints(v)),
                                         "[] or [roots, branching, depth] (positive integers)"))
    compensate: bool = setting(True, "synthetic_features: raise children's rates so each feature keeps its "
                                     "Zipf rate despite parents and exclusion")
    correlation_rank: int = setting(0, "synthetic_features: rank of the firing correlation (0: independent)",
                                    rule=NON_NEGATIVE_INT)
    correlation_scale: float = setting(0.1, "synthetic_features: scale of the correlation factor", rule=NON_NEGATIVE)
    magnitude_mean: tuple = setting((1.0, 1.0), "synthetic_features: mean magnitude, linear from the first "
                                                "feature to the last: [first, last]",
                                    rule=Rule(lambda v: len(v) == 2 and all(_number(x) and x > 0 for x in v),
                                              "[first, last] (numbers > 0)"))
    magnitude_std: tuple = setting((0.0, 0.0), "synthetic_features: each feature's magnitude std drawn once "
                                               "from |N(mean, std^2)|: [mean, std]",
                                   rule=Rule(lambda v: len(v) == 2 and all(_number(x) and x >= 0 for x in v),
                                             "[mean, std] (numbers >= 0)"))
    bias: float = setting(0.0, "synthetic_features: norm of the random bias added to every row", rule=NON_NEGATIVE)
    orthogonalize: tuple = setting((), "synthetic_features: [steps, lr] of Adam pushing the directions apart; "
                                       "[]: plain random unit vectors",
                                   rule=Rule(lambda v: len(v) == 0 or (len(v) == 2 and isinstance(v[0], int)
                                                                       and not isinstance(v[0], bool) and v[0] >= 0
                                                                       and _number(v[1]) and v[1] > 0),
                                             "[] or [steps, lr] (an integer >= 0, a number > 0)"))
    # your own data: data=array (aejax/data/arrays.py), data=images (aejax/data/images.py)
    path: str | None = setting(None, "array: a .npy or .npz file; images: a folder; dsprites: the original file; "
                               "activations: a folder of .npy shards")
    inputs_key: str = setting("x", "array .npz: the inputs", rule=Rule(lambda v: v != "",
                                                                      "the name of an array in data.path"))
    labels_key: str | None = setting("y", "array .npz: the labels, used if present (null: none)", rule=ARRAY_NAME)
    test_inputs_key: str | None = setting(None, "array .npz: a test split; null: '<inputs_key>_test' if present",
                                          rule=ARRAY_NAME)
    test_labels_key: str | None = setting(None, "array .npz: null: '<labels_key>_test' if present", rule=ARRAY_NAME)
    factors_key: str | None = setting(None, "array .npz: integer ground-truth factors (N, F) (null: none)",
                                      rule=ARRAY_NAME)
    test_factors_key: str | None = setting(None, "array .npz: the test split's; null: '<factors_key>_test'",
                                           rule=ARRAY_NAME)
    image_shape: tuple | None = setting(None, "array of flat (N, D) inputs: [H, W] or [H, W, C]; null: vectors",
                                        rule=Rule(lambda v: len(v) in (2, 3) and _positive_ints(v),
                                                  "null, [H, W] or [H, W, C] (positive integers)"))
    test_fraction: float = setting(0.2, "array/images without a test split: the fixed share held out", rule=OPEN_UNIT)
    split_shuffle: bool = setting(True, "array/images: one fixed permutation before splitting (false: file order)")
    color: str = setting("grayscale", "images: grayscale | rgb", choices=("grayscale", "rgb"))
    image_size: Any = setting(None, "images: resize to [H, W] (an int: square); null: all one size",
                              rule=Rule(_image_size_ok, "null, [H, W] or an integer (positive)"))
    # a model's activations: data=activations (aejax/data/activations.py)
    block_rows: int = setting(4096, "activations: rows per block, the unit the epoch order permutes", rule=POSITIVE_INT)
    shuffle_blocks: int = setting(16, "activations: consecutive blocks (in the epoch's order) whose rows are shuffled "
                                  "together", rule=POSITIVE_INT)
    normalize: str = setting("mean_norm", "activations: none | mean_norm (scale rows so their mean norm is sqrt(D))",
                             choices=("none", "mean_norm"))
    norm_rows: int = setting(10000, "activations: training rows, evenly spaced, that estimate the mean norm",
                             rule=POSITIVE_INT)
    loader: str | None = setting(None, "'package.module:function(spec) -> Dataset', for any data.name",
                                 rule=Rule(lambda v: all(str(v).partition(":")[::2]) and ":" in v,
                                           "null or 'package.module:function'"))

    def check_rules(self) -> None:
        if self.name in ("array", "images", "activations") and self.loader is None:
            kind = {"array": "a .npy or .npz file", "images": "a folder of image files",
                    "activations": "a folder of .npy shards (N, D)"}[self.name]
            require(isinstance(self.path, str) and self.path != "", "data.path", self.path,
                    f"{kind} for data.name={self.name}")
            if self.name == "array":
                require(self.path.lower().endswith((".npy", ".npz")), "data.path", self.path, kind)
        if self.name == "synthetic_features" and self.loader is None:
            require(self.firing_min <= self.firing_max, "data.firing_min", self.firing_min,
                    f"a probability in (0, data.firing_max={self.firing_max}]")
            if self.hierarchy:
                roots, branching, depth = self.hierarchy
                need = roots * sum(branching**k for k in range(depth + 1))
                require(need <= self.num_features, "data.hierarchy", list(self.hierarchy),
                        f"trees of at most data.num_features={self.num_features} features "
                        f"(roots * (1 + b + ... + b^depth) = {need})")
        require(0 < self.intrinsic_dim <= self.dim, "data.intrinsic_dim", self.intrinsic_dim,
                f"an integer in [1, data.dim={self.dim}]")
