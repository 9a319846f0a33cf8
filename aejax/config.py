"""Typed views of the Hydra config, checked once at the start of a run.

Every bad setting raises `ConfigError` with one line naming the setting, its value and
what is allowed. Nothing downstream reads the raw Hydra config: builders receive these
dataclasses, so a typo can never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from aejax.errors import ConfigError

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear", "elu", "gelu", "softplus")
# Per-member hyperparameters: they keep every array shape, so a population can vary them
# inside one compiled program. Anything else (code size, depth) is a Hydra multirun axis.
MEMBER_HYPERPARAMETERS = ("optim.learning_rate", "model.sparsity_weight", "model.noise_level",
                          "model.beta", "model.contractive_weight", "model.top_k",
                          "model.gamma", "model.lambda_od", "model.c_max")
# model.objective (aejax/vae_objectives.py's registry) and the objectives each weight applies to.
VAE_OBJECTIVES = ("beta_vae", "beta_tc_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae")
OBJECTIVE_SETTINGS = {"beta": ("beta_vae", "beta_tc_vae"), "gamma": ("factor_vae", "annealed_vae"),
                      "lambda_od": ("dip_vae_i", "dip_vae_ii"), "lambda_d_factor": ("dip_vae_i", "dip_vae_ii"),
                      "c_max": ("annealed_vae",), "iteration_threshold": ("annealed_vae",)}


def require(ok: bool, setting: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{setting}={value!r} is not allowed; expected {allowed}")


def one_of(setting: str, value: Any, choices) -> None:
    require(value in choices, setting, value, "one of " + ", ".join(map(str, choices)))


@dataclass(frozen=True)
class ModelSpec:
    family: str = "autoencoder"          # autoencoder | vae
    architecture: str = "mlp"            # mlp | conv
    hidden: tuple = (256,)               # MLP hidden sizes, encoder order (decoder mirrors)
    channels: tuple = (16, 32)           # conv channels, encoder order
    kernel_sizes: tuple = (3,)           # conv kernel side per layer (one value: every layer)
    strides: tuple = (2,)                # conv stride per layer (one value: every layer)
    dense: tuple = ()                    # conv: dense layer sizes between the conv stack and the code
    decoder_kernel_sizes: tuple = ()     # transposed conv kernels, decoder order (empty: the encoder's, mirrored)
    init: str = "lecun_normal"           # kernel initialiser: lecun_normal (flax) | glorot_uniform (TensorFlow/Keras)
    code_size: int = 32
    activation: str = "relu"
    code_activation: str = "linear"
    output_activation: str = "sigmoid"
    reconstruction_loss: str = "squared_error"  # squared_error | cross_entropy (autoencoder family)
    tied_weights: bool = False
    init_scale: float = 1.0              # multiplies every initial weight matrix
    sparsity: str = "none"               # none | l1 | kl | topk
    sparsity_weight: float = 0.0
    sparsity_target: float = 0.05        # rho, for sparsity=kl
    top_k: int = 0                       # k, for sparsity=topk
    corruption: str = "gaussian"         # gaussian | mask | salt_pepper
    noise_level: float = 0.0             # sigma, or the fraction of inputs corrupted
    contractive_weight: float = 0.0
    beta: float = 1.0
    likelihood: str = "bernoulli"        # VAE decoder: bernoulli | gaussian
    objective: str = "beta_vae"          # VAE: one of VAE_OBJECTIVES (aejax/vae_objectives.py)
    gamma: float = 1.0                   # factor_vae: weight of the TC; annealed_vae: of |KL - C(t)|
    lambda_od: float = 1.0               # dip_vae_*: weight of the off-diagonal covariance penalty
    lambda_d_factor: float | None = None  # dip_vae_*: lambda_d = lambda_d_factor * lambda_od; null: 10 (I), 1 (II)
    c_max: float = 0.0                   # annealed_vae: the capacity C(t) reaches, in nats
    iteration_threshold: int = 100000    # annealed_vae: steps for C(t) to rise from 0 to c_max

    def check(self) -> None:
        one_of("model.family", self.family, ("autoencoder", "vae"))
        one_of("model.architecture", self.architecture, ("mlp", "conv"))
        require(self.code_size > 0, "model.code_size", self.code_size, "an integer > 0")
        require(all(_is_int(h) and h > 0 for h in self.hidden), "model.hidden", list(self.hidden),
                "a list of positive integers (layer sizes)")
        require(len(self.channels) > 0 and all(_is_int(c) and c > 0 for c in self.channels), "model.channels",
                list(self.channels), "a non-empty list of positive integers (channel counts)")
        self.check_conv_layers()
        for name in ("activation", "code_activation", "output_activation"):
            one_of(f"model.{name}", getattr(self, name), ACTIVATIONS)
        one_of("model.reconstruction_loss", self.reconstruction_loss, ("squared_error", "cross_entropy"))
        if self.reconstruction_loss == "cross_entropy":
            require(self.output_activation == "sigmoid", "model.output_activation", self.output_activation,
                    "sigmoid when model.reconstruction_loss=cross_entropy")
            require(self.family == "autoencoder", "model.reconstruction_loss", self.reconstruction_loss,
                    "squared_error for model.family=vae (its reconstruction term is set by model.likelihood)")
        require(self.init_scale > 0, "model.init_scale", self.init_scale, "a number > 0")
        one_of("model.sparsity", self.sparsity, ("none", "l1", "kl", "topk"))
        require(self.sparsity_weight >= 0, "model.sparsity_weight", self.sparsity_weight, "a number >= 0")
        require(0 < self.sparsity_target < 1, "model.sparsity_target", self.sparsity_target,
                "a number in (0, 1)")
        if self.sparsity == "kl":
            require(self.code_activation == "sigmoid", "model.code_activation", self.code_activation,
                    "sigmoid when model.sparsity=kl (the KL penalty needs activations in (0, 1))")
        if self.sparsity == "topk":
            require(0 < self.top_k <= self.code_size, "model.top_k", self.top_k,
                    f"an integer in [1, model.code_size={self.code_size}] when model.sparsity=topk")
        one_of("model.corruption", self.corruption, ("gaussian", "mask", "salt_pepper"))
        check_noise_level(self.corruption, self.noise_level)
        require(self.contractive_weight >= 0, "model.contractive_weight", self.contractive_weight,
                "a number >= 0")
        require(self.beta >= 0, "model.beta", self.beta, "a number >= 0")
        one_of("model.likelihood", self.likelihood, ("bernoulli", "gaussian"))
        one_of("model.objective", self.objective, VAE_OBJECTIVES)
        for name in ("gamma", "lambda_od", "c_max"):
            require(getattr(self, name) >= 0, f"model.{name}", getattr(self, name), "a number >= 0")
        require(self.lambda_d_factor is None or self.lambda_d_factor >= 0, "model.lambda_d_factor",
                self.lambda_d_factor, "null (10 for dip_vae_i, 1 for dip_vae_ii) or a number >= 0")
        require(self.iteration_threshold > 0, "model.iteration_threshold", self.iteration_threshold,
                "an integer > 0 (steps)")
        if self.family == "vae":
            require(not self.tied_weights, "model.tied_weights", self.tied_weights, "false for model.family=vae")


    def conv_layers(self) -> tuple[tuple, tuple, tuple]:
        """Per-layer kernel sizes and strides of the encoder, and the decoder's kernel sizes (its order)."""
        n = len(self.channels)
        per_layer = lambda values: tuple(values) * n if len(values) == 1 else tuple(values)
        kernels, strides = per_layer(self.kernel_sizes), per_layer(self.strides)
        decoder = per_layer(self.decoder_kernel_sizes) if self.decoder_kernel_sizes else tuple(reversed(kernels))
        return kernels, strides, decoder

    def check_conv_layers(self) -> None:
        n = len(self.channels)
        for name in ("kernel_sizes", "strides", "decoder_kernel_sizes"):
            values = getattr(self, name)
            ok = all(_is_int(v) and v > 0 for v in values) and (len(values) in (1, n) or
                                                                 (name == "decoder_kernel_sizes" and not values))
            require(ok, f"model.{name}", list(values), f"positive integers, one per conv layer ({n}) or one for all")
        require(all(_is_int(d) and d > 0 for d in self.dense), "model.dense", list(self.dense),
                "a list of positive integers (dense layer sizes)")
        one_of("model.init", self.init, ("lecun_normal", "glorot_uniform"))
        if self.architecture != "conv":
            return
        kernels, strides, decoder = self.conv_layers()
        for k, s in zip(decoder, reversed(strides)):
            require(k >= s, "model.decoder_kernel_sizes", list(decoder),
                    f"kernels at least as large as their layer's stride {list(reversed(strides))} "
                    "(a smaller one leaves output pixels no input reaches)")


def check_noise_level(corruption: str, level: float) -> None:
    if corruption == "gaussian":
        require(level >= 0, "model.noise_level", level, "a standard deviation >= 0")
    else:
        require(0 <= level <= 1, "model.noise_level", level,
                f"a probability in [0, 1] for model.corruption={corruption}")


@dataclass(frozen=True)
class DataSpec:
    name: str = "digits"                 # synthetic | digits | mnist | array | images | dsprites | shapes_toy | ...
    root: str | None = None              # mnist: folder of IDX .gz files (None: aejax.data.cache.locate)
    download: bool = True                # mnist: fetch missing files where the network allows
    train_size: int | None = None        # cap on training examples (None: all)
    val_fraction: float = 0.1            # of the training split, taken from its end
    test_size: int | None = None         # cap on test examples
    binarize: str = "none"               # none | fixed (one Bernoulli draw, kept) | dynamic (a draw per step) | threshold
    # synthetic data
    generator: str = "manifold"          # manifold | cosine_pairs
    dim: int = 64
    intrinsic_dim: int = 2
    num_samples: int = 2000
    noise: float = 0.05
    similarity: float = 0.9              # cosine_pairs
    seed: int = 0
    # your own data: data=array (aejax/data/arrays.py), data=images (aejax/data/images.py)
    path: str | None = None              # array: a .npy or .npz file; images: a folder; dsprites: the original
    inputs_key: str = "x"                # array .npz: the inputs
    labels_key: str | None = "y"         # array .npz: the labels, used if present (null: none)
    test_inputs_key: str | None = None   # array .npz: a test split; null: "<inputs_key>_test" if present
    test_labels_key: str | None = None   # array .npz: null: "<labels_key>_test" if present
    factors_key: str | None = None       # array .npz: integer ground-truth factors (N, F) (null: none)
    test_factors_key: str | None = None  # array .npz: the test split's; null: "<factors_key>_test"
    image_shape: tuple | None = None     # array of flat (N, D) inputs: [H, W] or [H, W, C]; null: vectors
    test_fraction: float = 0.2           # array/images without a test split: the fixed share held out
    split_shuffle: bool = True           # array/images: one fixed permutation before splitting (false: file order)
    color: str = "grayscale"             # images: grayscale | rgb
    image_size: Any = None               # images: resize to [H, W] (an int: square); null: all one size
    loader: str | None = None            # "package.module:function(spec) -> Dataset", for any data.name

    def check(self) -> None:
        # data.name is checked against the loaders by aejax.data.check_spec (config knows no dataset).
        require(isinstance(self.name, str) and self.name != "", "data.name", self.name, "a dataset name")
        if self.loader is not None:
            module, _, attr = str(self.loader).partition(":")
            require(isinstance(self.loader, str) and module and attr, "data.loader", self.loader,
                    "null or 'package.module:function'")
        if self.name in ("array", "images") and self.loader is None:
            kind = "a .npy or .npz file" if self.name == "array" else "a folder of image files"
            require(isinstance(self.path, str) and self.path != "", "data.path", self.path,
                    f"{kind} for data.name={self.name}")
            if self.name == "array":
                require(self.path.lower().endswith((".npy", ".npz")), "data.path", self.path, kind)
        require(self.path is None or isinstance(self.path, str), "data.path", self.path, "null or a path")
        require(isinstance(self.inputs_key, str) and self.inputs_key != "", "data.inputs_key", self.inputs_key,
                "the name of an array in data.path")
        for key in ("labels_key", "test_inputs_key", "test_labels_key", "factors_key", "test_factors_key"):
            value = getattr(self, key)
            require(value is None or (isinstance(value, str) and value != ""), f"data.{key}", value,
                    "null or the name of an array in data.path")
        shape = self.image_shape
        require(shape is None or (isinstance(shape, tuple) and len(shape) in (2, 3)
                                  and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)),
                "data.image_shape", list(shape) if isinstance(shape, tuple) else shape,
                "null, [H, W] or [H, W, C] (positive integers)")
        require(0 < self.test_fraction < 1, "data.test_fraction", self.test_fraction, "a number in (0, 1)")
        require(isinstance(self.split_shuffle, bool), "data.split_shuffle", self.split_shuffle, "true or false")
        one_of("data.color", self.color, ("grayscale", "rgb"))
        size = self.image_size
        sizes = (size,) if isinstance(size, int) else size if isinstance(size, tuple) and len(size) == 2 else ()
        require(size is None or (sizes and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                               for v in sizes)),
                "data.image_size", list(size) if isinstance(size, tuple) else size,
                "null, [H, W] or an integer (positive)")
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            require(value is None or value > 0, f"data.{key}", value, "null or an integer > 0")
        require(0 <= self.val_fraction < 1, "data.val_fraction", self.val_fraction, "a number in [0, 1)")
        one_of("data.binarize", self.binarize, ("none", "fixed", "dynamic", "threshold"))
        one_of("data.generator", self.generator, ("manifold", "cosine_pairs"))
        require(self.dim > 0, "data.dim", self.dim, "an integer > 0")
        require(0 < self.intrinsic_dim <= self.dim, "data.intrinsic_dim", self.intrinsic_dim,
                f"an integer in [1, data.dim={self.dim}]")
        require(self.num_samples > 1, "data.num_samples", self.num_samples, "an integer > 1")
        require(self.noise >= 0, "data.noise", self.noise, "a number >= 0")
        require(-1 <= self.similarity <= 1, "data.similarity", self.similarity, "a cosine in [-1, 1]")
        require(self.seed >= 0, "data.seed", self.seed, "an integer >= 0")


@dataclass(frozen=True)
class OptimSpec:
    name: str = "adam"                   # adam | adamw | sgd | rmsprop
    learning_rate: float = 1e-3
    schedule: str = "constant"           # constant | cosine | warmup_cosine
    warmup_steps: int = 0
    momentum: float = 0.9                # sgd
    weight_decay: float = 1e-4           # adamw
    clip_norm: float | None = None

    def check(self) -> None:
        one_of("optim.name", self.name, ("adam", "adamw", "sgd", "rmsprop"))
        require(self.learning_rate > 0, "optim.learning_rate", self.learning_rate, "a number > 0")
        one_of("optim.schedule", self.schedule, ("constant", "cosine", "warmup_cosine"))
        require(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, "an integer >= 0")
        require(self.warmup_steps == 0 or self.schedule == "warmup_cosine", "optim.warmup_steps", self.warmup_steps,
                "0 unless optim.schedule=warmup_cosine (the other schedules have no warmup)")
        require(0 <= self.momentum < 1, "optim.momentum", self.momentum, "a number in [0, 1)")
        require(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "a number >= 0")
        require(self.clip_norm is None or self.clip_norm > 0, "optim.clip_norm", self.clip_norm,
                "null or a number > 0")


@dataclass(frozen=True)
class TrainerSpec:
    epochs: int = 10
    batch_size: int = 128
    log_every: int = 10                  # steps between metrics.jsonl lines
    checkpoint_every: int = 0            # epochs between checkpoints; 0: only at the end
    resume: bool = False                 # continue the run saved in the run dir (its config.yaml)
    progress: str = "auto"               # auto: a bar on a terminal, log lines otherwise | on (bar) | log | off
    progress_interval_s: float = 30.0    # seconds between progress log lines (no terminal)
    on_divergence: str = "auto"          # mask | stop | auto (mask for populations, stop for one member)
    eval_every: int = 0                  # epochs between validation metrics during training; 0: only at the end
    figure_formats: tuple = ("png",)     # any of png, pdf, svg
    call_seconds: float = 10.0           # target duration of one compiled call (signals, progress wait for it)

    def check(self) -> None:
        require(self.call_seconds > 0, "trainer.call_seconds", self.call_seconds,
                "seconds > 0 (the target duration of one compiled call)")
        require(self.epochs > 0, "trainer.epochs", self.epochs, "an integer > 0")
        require(self.batch_size > 0, "trainer.batch_size", self.batch_size, "an integer > 0")
        require(self.log_every > 0, "trainer.log_every", self.log_every, "an integer > 0")
        require(self.checkpoint_every >= 0, "trainer.checkpoint_every", self.checkpoint_every,
                "an integer >= 0")
        one_of("trainer.progress", self.progress, ("auto", "on", "log", "off"))
        require(self.progress_interval_s > 0, "trainer.progress_interval_s", self.progress_interval_s, "seconds > 0")
        one_of("trainer.on_divergence", self.on_divergence, ("auto", "mask", "stop"))
        require(self.eval_every >= 0, "trainer.eval_every", self.eval_every, "an integer >= 0 (epochs; 0: only at the end)")
        require(len(self.figure_formats) > 0 and set(self.figure_formats) <= {"png", "pdf", "svg"},
                "trainer.figure_formats", list(self.figure_formats), "a non-empty list of png, pdf, svg")


@dataclass(frozen=True)
class LoggerSpec:
    name: str = "wandb"                  # wandb | none
    mode: str | None = None              # offline | online | disabled; None: $WANDB_MODE or offline
    project: str = "aejax"
    entity: str | None = None
    group: str | None = None             # multirun jobs share one group
    max_member_runs: int = 16            # above this a population logs as one run with a table

    def check(self) -> None:
        one_of("logger.name", self.name, ("wandb", "none"))
        require(self.mode in (None, "offline", "online", "disabled"), "logger.mode", self.mode,
                "one of offline, online, disabled")
        require(self.max_member_runs >= 1, "logger.max_member_runs", self.max_member_runs, "an integer >= 1")


@dataclass(frozen=True)
class PopulationSpec:
    seeds: tuple = (0,)
    grid: dict = field(default_factory=dict)   # flat {"model.beta": (0.5, 1.0), ...}
    shards: int = 1                            # split the members over this many jobs (a job array)
    shard: int = 0                             # which of them this job trains

    def check(self) -> None:
        # At least 2 members a shard: XLA compiles a batch of one differently, and a shard's
        # members must stay bitwise those of the whole population.
        size = len(self.seeds) * math.prod(len(v) for v in self.grid.values())
        require(self.shards == 1 or 2 <= self.shards <= size // 2, "population.shards", self.shards,
                f"1, or an integer in [2, {size // 2}] (at least 2 of the population's {size} members a shard)")
        require(0 <= self.shard < self.shards, "population.shard", self.shard,
                f"an integer in [0, population.shards - 1 = {self.shards - 1}]")
        for key, values in self.grid.items():
            one_of("population.grid key", key, MEMBER_HYPERPARAMETERS)
            require(len(values) > 0, f"population.grid.{key}", values, "a non-empty list of numbers")


# aejax.metrics' families and the sizes each draws (tests/test_disentanglement_runs.py checks these against
# the package, which this module does not import: scipy and scikit-learn would slow every command's check).
METRIC_FAMILY_SIZES = {"beta_vae": ("batch_size", "num_train", "num_eval"),
                       "factor_vae": ("batch_size", "num_train", "num_eval", "num_variance_estimate"),
                       "mig": ("num_train",), "dci": ("num_train", "num_test"), "sap": ("num_train", "num_test"),
                       "modularity_explicitness": ("num_train", "num_test"), "unsupervised": ("num_train",)}
METRIC_MODES = ("exact", "fast")  # aejax.metrics.MODES


@dataclass(frozen=True)
class MetricsSpec:
    disentanglement: Any = "auto"   # auto (on for data with ground-truth factors) | true | false
    mode: str = "exact"             # exact | fast (aejax.metrics.MODES)
    seed: int = 0                   # the evaluation seed: it fixes the factors every member is scored on
    sizes: dict | None = field(default_factory=dict)  # overrides of the study's sizes; {} or null: the study's

    def size_overrides(self) -> dict:
        """`sizes` with nested families flattened: {num_train: 1000, dci: {num_train: 100}} ->
        {"num_train": 1000, "dci.num_train": 100}, as aejax.metrics.evaluate_all takes them."""
        return flatten(self.sizes or {})

    def check(self) -> None:
        value = self.disentanglement
        require(isinstance(value, bool) or value == "auto", "metrics.disentanglement", value,
                "one of auto, true, false")
        one_of("metrics.mode", self.mode, METRIC_MODES)
        require(self.seed >= 0, "metrics.seed", self.seed, "an integer >= 0")
        names = sorted({k for keys in METRIC_FAMILY_SIZES.values() for k in keys})
        known = {*names, *(f"{fam}.{k}" for fam, keys in METRIC_FAMILY_SIZES.items() for k in keys)}
        for key, size in self.size_overrides().items():
            require(key in known, "metrics.sizes key", key, f"one of {', '.join(names)}, or <family>.<size> for "
                    f"one family ({', '.join(METRIC_FAMILY_SIZES)})")
            require(_is_int(size) and size > 0, f"metrics.sizes.{key}", size, "an integer > 0")


def default_of(key: str):
    """The built-in default of a dotted setting ("trainer.eval_every" -> 0), or None: a run saved
    before a setting existed ran with that default."""
    section, _, attr = key.partition(".")
    classes = {"model": ModelSpec, "data": DataSpec, "optim": OptimSpec, "trainer": TrainerSpec,
               "logger": LoggerSpec, "population": PopulationSpec, "metrics": MetricsSpec}
    field_ = next((f for f in dataclasses.fields(classes[section]) if f.name == attr), None) if section in classes else None
    if field_ is None or field_.default is dataclasses.MISSING:
        return None
    return list(field_.default) if isinstance(field_.default, tuple) else field_.default


def shard_range(population: int, shards: int, shard: int) -> range:
    """Members of one shard: contiguous, as even as can be (`numpy.array_split`'s rule)."""
    size, extra = divmod(population, shards)
    start = shard * size + min(shard, extra)
    return range(start, start + size + (shard < extra))


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"code_size": 8}} -> {"model.code_size": 8}; an empty mapping stays a value."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def parse_section(section: str, cls, raw: dict | None):
    """Build a spec dataclass from a plain dict, rejecting unknown keys and wrong types."""
    raw = dict(raw or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{section}.{key} is not a setting; allowed {section}.* keys: {', '.join(fields)}")
    values = {key: _coerce(f"{section}.{key}", value, str(fields[key].type)) for key, value in raw.items()}
    spec = cls(**values)
    spec.check()
    return spec


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _coerce(setting: str, value, annotation: str):
    """Check `value` against the field's annotation ("int | None", "bool", "tuple", ...): YAML
    and Hydra hand over strings for typos (`no`, `abc`), so every type is checked here, once."""
    kinds = [t.strip() for t in annotation.split("|")]
    nullable = "None" in kinds
    kind = kinds[0]
    if value is None:
        require(nullable or kind == "Any", setting, value, f"a value ({_KIND_WORDS.get(kind, kind)}), not null")
        return None
    also = " or null" if nullable else ""
    if kind == "bool":
        require(isinstance(value, bool), setting, value, f"true or false{also}")
    elif kind == "int":
        require(_is_int(value), setting, value, f"an integer{also}")
    elif kind == "float":
        require(_is_number(value), setting, value, f"a finite number{also}")
        return float(value)
    elif kind == "str":
        require(isinstance(value, str), setting, value, f"a string{also}")
    elif kind == "tuple":
        require(isinstance(value, (list, tuple)), setting, value, f"a list{also}")
        return tuple(value)
    elif kind == "dict":
        require(isinstance(value, dict), setting, value, f"a mapping{also}")
    elif isinstance(value, list):
        return tuple(value)
    return value


_KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "tuple": "a list"}
SECTIONS = ("model", "data", "optim", "trainer", "logger", "population", "metrics")


def section_keys(section: str) -> list[str]:
    """The settings of one config section, for error messages that list what is allowed."""
    cls = {"model": ModelSpec, "data": DataSpec, "optim": OptimSpec, "trainer": TrainerSpec,
           "logger": LoggerSpec, "population": PopulationSpec, "metrics": MetricsSpec}[section]
    return [f.name for f in dataclasses.fields(cls)]


def _seeds(value) -> list:
    """`population.seeds`: an integer n > 0 (seeds 0..n-1) or a non-empty list of distinct integers."""
    allowed = "an integer n > 0 (seeds 0..n-1) or a non-empty list of distinct integers >= 0"
    if _is_int(value):
        require(value > 0, "population.seeds", value, allowed)
        return list(range(value))
    require(isinstance(value, (list, tuple)) and len(value) > 0 and all(_is_int(v) and v >= 0 for v in value)
            and len(set(value)) == len(value), "population.seeds", value, allowed)
    return list(value)


@dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    data: DataSpec
    optim: OptimSpec
    trainer: TrainerSpec
    logger: LoggerSpec
    population: PopulationSpec
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    name: str = "run"


def parse_run(cfg: dict) -> RunSpec:
    """`cfg` is the resolved Hydra config as a plain dict (`OmegaConf.to_container`)."""
    known = {"model", "data", "optim", "trainer", "logger", "population", "metrics", "name", "hydra", "task", "study"}
    for key in cfg:
        if key not in known:
            raise ConfigError(f"{key} is not a setting; allowed: {', '.join(sorted(known - {'hydra'}))}")
    pop = dict(cfg.get("population") or {})
    pop["seeds"] = _seeds(pop.get("seeds", [0]))
    require(isinstance(pop.get("grid") or {}, dict), "population.grid", pop.get("grid"),
            "a mapping such as {model: {noise_level: [0.1, 0.3]}}")
    pop["grid"] = {k: tuple(v) if isinstance(v, (list, tuple)) else (v,)
                   for k, v in flatten(pop.get("grid") or {}).items()}
    from aejax.tasks import TASKS

    one_of("task", cfg.get("task", "train"), tuple(TASKS))
    spec = RunSpec(
        model=parse_section("model", ModelSpec, cfg.get("model")),
        data=parse_section("data", DataSpec, cfg.get("data")),
        optim=parse_section("optim", OptimSpec, cfg.get("optim")),
        trainer=parse_section("trainer", TrainerSpec, cfg.get("trainer")),
        logger=parse_section("logger", LoggerSpec, cfg.get("logger")),
        population=parse_section("population", PopulationSpec, pop),
        metrics=parse_section("metrics", MetricsSpec, cfg.get("metrics")),
        name=str(cfg.get("name", "run")),
    )
    # Grid values are checked with the same rules as the single setting they replace.
    for key, values in spec.population.grid.items():
        section, attr = key.split(".")
        base = getattr(spec, section)
        integer = isinstance(getattr(base, attr), int)
        if key == "model.top_k":
            require(spec.model.sparsity == "topk", "model.sparsity", spec.model.sparsity,
                    "topk when population.grid varies model.top_k")
        for v in values:
            if integer:
                require(_is_int(v), f"population.grid.{key}", v, "integers")
            require(_is_number(v), f"population.grid.{key}", v, "a list of finite numbers")
            try:
                dataclasses.replace(base, **{attr: v if integer else float(v)}).check()
            except ConfigError as err:
                raise ConfigError(f"population.grid.{err}") from None
    check_combinations(spec)
    return spec


def check_combinations(spec: RunSpec) -> None:
    """Refuse settings that would do nothing with the rest of the config (and would still be
    recorded in summary.json as if they had)."""
    m, grid = spec.model, spec.population.grid
    largest = lambda key: max([float(getattr(m, key.split(".")[1])), *grid.get(key, ())])
    if m.family == "vae":
        require(m.sparsity == "none", "model.sparsity", m.sparsity,
                "none for model.family=vae (sparsity penalties are for the deterministic autoencoder family)")
    else:
        require(m.beta == 1.0 and "model.beta" not in grid, "model.beta", m.beta,
                "1.0 unless model.family=vae (beta weights the VAE's KL term)")
        require(m.objective == "beta_vae", "model.objective", m.objective,
                "beta_vae unless model.family=vae (the objectives are VAE losses: model=<objective> sets both)")
    for name, objectives in OBJECTIVE_SETTINGS.items():
        default = default_of(f"model.{name}")
        require(m.objective in objectives or (getattr(m, name) == default and f"model.{name}" not in grid),
                f"model.{name}", getattr(m, name),
                f"{'null' if default is None else default} unless model.objective={' or '.join(objectives)}")
    if m.sparsity != "topk":
        require(m.top_k == 0, "model.top_k", m.top_k, "0 unless model.sparsity=topk")
    if m.sparsity not in ("l1", "kl"):
        require(largest("model.sparsity_weight") == 0, "model.sparsity_weight", m.sparsity_weight,
                f"0 with model.sparsity={m.sparsity} (the weight applies to model.sparsity=l1 or kl)")
