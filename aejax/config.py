"""Typed views of the Hydra config, checked once at the start of a run.

Every bad setting raises `ConfigError` with one line naming the setting, its value and what is
allowed. Nothing downstream reads the raw Hydra config: builders receive these dataclasses, so a typo
can never be silently ignored.

Each section's settings are declared once, with their meaning and allowed values (`aejax.settings`):
here for the network every family shares, the optimiser, trainer, logger, population and metrics;
in `aejax.data.spec` for the data; in each family's and objective's module for their own `model.*`
settings (`aejax.families`). One checker applies the declarations; the rules between fields are the
`check()` methods below and each family's `check`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from aejax.data.spec import DataSpec
from aejax.errors import ConfigError
from aejax.families import FAMILIES
from aejax.families.registry import Family, Objective
from aejax.nets import ACTIVATIONS, ARCHITECTURES, CONV_IMPLS, INITS
from aejax.tasks import TASKS
from aejax.settings import (NON_NEGATIVE, Settings, annotation, check_all, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, SECONDS, Rule, check_declared,
                            coerce, declared, flatten, is_int, is_number, member_settings, one_of, parse_section,
                            positive_ints, require, setting, shard_range, yaml_word)

__all__ = ["ConfigError", "DataSpec", "ModelSpec", "RunSpec", "flatten", "parse_run", "require", "shard_range"]

CORRUPTIONS = ("gaussian", "mask", "salt_pepper")


@dataclass(frozen=True)
class ModelSpec(Settings):
    """The network every family shares, the input corruption and contractive penalty every family can
    train with, and (derived while parsing) the family's and its objective's own settings."""
    section = "model"
    family: str = setting("autoencoder", "the model family (aejax/families)", choices=lambda: tuple(FAMILIES))
    architecture: str = setting("mlp", "the encoder and decoder stacks", choices=ARCHITECTURES)
    hidden: tuple = setting((256,), "MLP hidden sizes, encoder order; the decoder mirrors them",
                            rule=positive_ints("layer sizes"))
    channels: tuple = setting((16, 32), "conv channels, encoder order (each layer divides H and W by its stride)",
                              rule=positive_ints("channel counts", non_empty=True))
    kernel_sizes: tuple = setting((3,), "conv kernel side per layer, encoder order (one value: every layer)")
    strides: tuple = setting((2,), "conv stride per layer (one value: every layer)")
    dense: tuple = setting((), "conv: dense layer sizes between the conv stack and the code",
                           rule=positive_ints("dense layer sizes"))
    decoder_kernel_sizes: tuple = setting((), "transposed conv kernel sides, decoder order ([]: the encoder's)")
    init: str = setting("lecun_normal", "kernel initialiser (glorot_uniform: TensorFlow's)", choices=tuple(INITS))
    conv_impl: str = setting("auto", "conv layers: auto (matmul on a CPU, xla elsewhere) | matmul | xla",
                             choices=CONV_IMPLS)
    code_size: int = setting(32, "< input dim: undercomplete; > input dim: overcomplete", rule=POSITIVE_INT)
    activation: str = setting("relu", "hidden-layer activation", choices=tuple(ACTIVATIONS))
    init_scale: float = setting(1.0, "multiplies every initial kernel", rule=POSITIVE)
    corruption: str = setting("gaussian", "denoising corruption of the input (the target stays clean)",
                              choices=CORRUPTIONS)
    noise_level: float = setting(0.0, "sigma, or the corrupted fraction", member=True, label="noise")
    contractive_weight: float = setting(0.0, "weight of ||J_f(x)||_F^2", rule=NON_NEGATIVE, member=True,
                                        label="contractive")
    imports: tuple = setting((), "modules imported first: they register families or objectives of your own")
    family_settings: Any = field(default=None, metadata={"derived": True})
    objective_settings: Any = field(default=None, metadata={"derived": True})

    @property
    def declaration(self) -> Family:
        return FAMILIES[self.family]

    @property
    def objective(self) -> str | None:
        """The name of the family's objective (`model.objective`), for a family that has them."""
        fam = self.declaration
        return getattr(self.family_settings, fam.variant_setting) if fam.variant_setting else None

    @property
    def objective_declaration(self) -> Objective | None:
        return self.declaration.objectives[self.objective] if self.objective else None

    def get(self, name: str):
        """A model setting by name, wherever it is declared (network, family, objective)."""
        for where in (self, self.family_settings, self.objective_settings):
            if where is not None and name in {f.name for f in declared(type(where))}:
                return getattr(where, name)
        raise KeyError(name)

    def check_rules(self) -> None:
        self.check_conv_layers()
        check_noise_level(self.corruption, self.noise_level)

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
            ok = all(is_int(v) and v > 0 for v in values) and (len(values) in (1, n) or
                                                                (name == "decoder_kernel_sizes" and not values))
            require(ok, f"model.{name}", list(values), f"positive integers, one per conv layer ({n}) or one for all")
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
class OptimSpec(Settings):
    section = "optim"
    name: str = setting("adam", "the optimiser", choices=("adam", "adamw", "sgd", "rmsprop"))
    learning_rate: float = setting(1e-3, "the step size", rule=POSITIVE, member=True, label="lr")
    schedule: str = setting("constant", "learning-rate schedule", choices=("constant", "cosine", "warmup_cosine"))
    warmup_steps: int = setting(0, "warmup_cosine: steps of linear warmup", rule=NON_NEGATIVE_INT)
    momentum: float = setting(0.9, "sgd", rule=Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    weight_decay: float = setting(1e-4, "adamw", rule=NON_NEGATIVE)
    clip_norm: float | None = setting(None, "clip the global gradient norm (null: no clipping)",
                                      rule=Rule(lambda v: v > 0, "null or a number > 0"))

    def check_rules(self) -> None:
        require(self.warmup_steps == 0 or self.schedule == "warmup_cosine", "optim.warmup_steps", self.warmup_steps,
                "0 unless optim.schedule=warmup_cosine (the other schedules have no warmup)")


@dataclass(frozen=True)
class TrainerSpec(Settings):
    section = "trainer"
    epochs: int = setting(10, "passes over the training split", rule=POSITIVE_INT)
    batch_size: int = setting(128, "examples per step", rule=POSITIVE_INT)
    log_every: int = setting(10, "steps between metrics.jsonl lines", rule=POSITIVE_INT)
    checkpoint_every: int = setting(0, "epochs between checkpoints; 0: only at the end", rule=NON_NEGATIVE_INT)
    resume: bool = setting(False, "continue the run saved in the run dir (its config.yaml)")
    progress: str = setting("auto", "auto: a bar on a terminal, log lines otherwise | on (bar) | log | off",
                            choices=("auto", "on", "log", "off"))
    progress_interval_s: float = setting(30.0, "seconds between progress log lines (no terminal)", rule=SECONDS)
    on_divergence: str = setting("auto", "mask | stop | auto (mask for populations, stop for one member)",
                                 choices=("auto", "mask", "stop"))
    eval_every: int = setting(0, "epochs between validation metrics during training; 0: only at the end",
                              rule=Rule(lambda v: v >= 0, "an integer >= 0 (epochs; 0: only at the end)"))
    figure_formats: tuple = setting(("png",), "any of png, pdf, svg", choices=("png", "pdf", "svg"))
    call_seconds: float = setting(10.0, "target duration of one compiled call (signals, progress wait for it)",
                                  rule=Rule(lambda v: v > 0, "seconds > 0 (the target duration of one compiled call)"))


@dataclass(frozen=True)
class LoggerSpec(Settings):
    section = "logger"
    name: str = setting("wandb", "wandb | none", choices=("wandb", "none"))
    mode: str | None = setting(None, "offline | online | disabled; null: $WANDB_MODE or offline",
                               rule=Rule(lambda v: v in ("offline", "online", "disabled"),
                                         "one of offline, online, disabled"))
    project: str = setting("aejax", "the W&B project")
    entity: str | None = setting(None, "the W&B entity (null: your default)")
    group: str | None = setting(None, "the W&B group (multirun jobs share one)")
    max_member_runs: int = setting(16, "above this a population logs as one run with a table",
                                   rule=Rule(lambda v: v >= 1, "an integer >= 1"))


@dataclass(frozen=True)
class PopulationSpec(Settings):
    section = "population"
    seeds: tuple = setting((0,), "a list of seeds, or an integer n meaning 0..n-1")
    grid: dict = setting({}, "per-member hyperparameters: flat {'model.beta': (0.5, 1.0), ...}")
    shards: int = setting(1, "split the members over this many jobs (a job array)")
    shard: int = setting(0, "which of them this job trains")

    def check_rules(self) -> None:
        # At least 2 members a shard: XLA compiles a batch of one differently, and a shard's
        # members must stay bitwise those of the whole population.
        size = len(self.seeds) * math.prod(len(v) for v in self.grid.values())
        require(self.shards == 1 or 2 <= self.shards <= size // 2, "population.shards", self.shards,
                f"1, or an integer in [2, {size // 2}] (at least 2 of the population's {size} members a shard)")
        require(0 <= self.shard < self.shards, "population.shard", self.shard,
                f"an integer in [0, population.shards - 1 = {self.shards - 1}]")


# aejax.metrics' families and the sizes each draws (tests/test_disentanglement_runs.py checks these against
# the package, which this module does not import: scipy and scikit-learn would slow every command's check).
METRIC_FAMILY_SIZES = {"beta_vae": ("batch_size", "num_train", "num_eval"),
                       "factor_vae": ("batch_size", "num_train", "num_eval", "num_variance_estimate"),
                       "mig": ("num_train",), "dci": ("num_train", "num_test"), "sap": ("num_train", "num_test"),
                       "modularity_explicitness": ("num_train", "num_test"), "unsupervised": ("num_train",)}
METRIC_MODES = ("exact", "fast")  # aejax.metrics.MODES


@dataclass(frozen=True)
class MetricsSpec(Settings):
    section = "metrics"
    disentanglement: Any = setting("auto", "auto (on for data with ground-truth factors) | true | false",
                                   rule=Rule(lambda v: isinstance(v, bool) or v == "auto", "one of auto, true, false"))
    mode: str = setting("exact", "exact | fast (DCI's boosted trees on histograms)", choices=METRIC_MODES)
    seed: int = setting(0, "the evaluation seed: it fixes the factors every member is scored on",
                        rule=NON_NEGATIVE_INT)
    sizes: dict | None = setting({}, "overrides of the study's sizes; {} or null: the study's")

    def size_overrides(self) -> dict:
        """`sizes` with nested families flattened: {num_train: 1000, dci: {num_train: 100}} ->
        {"num_train": 1000, "dci.num_train": 100}, as aejax.metrics.evaluate_all takes them."""
        return flatten(self.sizes or {})

    def check_rules(self) -> None:
        names = sorted({k for keys in METRIC_FAMILY_SIZES.values() for k in keys})
        known = {*names, *(f"{fam}.{k}" for fam, keys in METRIC_FAMILY_SIZES.items() for k in keys)}
        for key, size in self.size_overrides().items():
            require(key in known, "metrics.sizes key", key, f"one of {', '.join(names)}, or <family>.<size> for "
                    f"one family ({', '.join(METRIC_FAMILY_SIZES)})")
            require(is_int(size) and size > 0, f"metrics.sizes.{key}", size, "an integer > 0")


SPECS = {"model": ModelSpec, "data": DataSpec, "optim": OptimSpec, "trainer": TrainerSpec,
         "logger": LoggerSpec, "population": PopulationSpec, "metrics": MetricsSpec}
SECTIONS = tuple(SPECS)


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


# ----------------------------------------------------------------------------- the model section
def model_declarations() -> list[tuple[str, str | None, type]]:
    """(family, objective or None, settings class) of every registered family and objective."""
    out = []
    for fam in FAMILIES.values():
        out.append((fam.name, None, fam.settings))
        out += [(fam.name, o.name, o.settings) for o in fam.objectives.values()]
    return out


def model_field(name: str) -> dataclasses.Field | None:
    """The declaration of `model.<name>`: the network's, or the first family's or objective's."""
    for cls in (ModelSpec, *(cls for _, _, cls in model_declarations())):
        found = next((f for f in declared(cls) if f.name == name), None)
        if found is not None:
            return found
    return None


def import_modules(names) -> None:
    """`model.imports`: modules of your own that register families or objectives, found from the
    working directory too (where `uv run aejax-train` is started)."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"model.imports={list(names)!r} is not allowed; expected importable modules "
                              f"({name}: {err})") from None


def parse_model(raw: dict | None, grid: dict, check: bool = True, cross: bool = True) -> ModelSpec:
    """The model section: the network's settings, then the family's and its objective's own. A setting of
    another family or objective may appear only at its default (a config saved by an older aejax lists
    every family's settings); anything else is refused, naming the family or objective it belongs to.
    `cross=False` leaves the family's rules between settings to the caller (`parse_run` checks the grid
    first)."""
    raw = dict(raw or {})
    imports = raw.get("imports") or ()
    require(isinstance(imports, (list, tuple)) and all(isinstance(m, str) for m in imports), "model.imports",
            imports, "a list of module names")
    import_modules(imports)
    one_of("model.family", raw.get("family", "autoencoder"), tuple(FAMILIES))
    fam = FAMILIES[raw.get("family", "autoencoder")]
    objective = None
    if fam.variant_setting:
        name = raw.get(fam.variant_setting, next(f.default for f in declared(fam.settings)
                                                 if f.name == fam.variant_setting))
        one_of(f"model.{fam.variant_setting}", name, tuple(fam.objectives))
        objective = fam.objectives[name]
    parts = {"network": ModelSpec, "family": fam.settings, "objective": objective.settings if objective else None}
    owned = {part: [f.name for f in declared(cls)] if cls else [] for part, cls in parts.items()}
    split = {part: {} for part in parts}
    for key, value in raw.items():
        part = next((p for p in parts if key in owned[p]), None)
        if part is None:
            refuse_foreign(key, value, fam, objective, owned)
        else:
            split[part][key] = value
    for key in grid:
        section, _, name = key.partition(".")
        if section == "model" and not any(name in names for names in owned.values()):
            refuse_foreign(name, raw.get(name, getattr(model_field(name), "default", None)), fam, objective, owned,
                           in_grid=True)
    spec = parse_section("model", ModelSpec, split["network"], check=False)
    spec = dataclasses.replace(
        spec, family_settings=parse_section("model", fam.settings, split["family"], check=check),
        objective_settings=parse_section("model", objective.settings, split["objective"], check=check)
        if objective else None)
    if check:
        spec.check()
    if check and cross:
        fam.check(spec, spec.family_settings, grid)
    return spec


def refuse_foreign(name: str, value, fam: Family, objective: Objective | None, owned: dict,
                   in_grid: bool = False) -> None:
    """Refuse `model.<name>` unless another family or objective declares it and it sits at its default."""
    owners = [(f, o, next(x for x in declared(cls) if x.name == name))
              for f, o, cls in model_declarations() if name in {x.name for x in declared(cls)}]
    if not owners:
        allowed = [n for names in owned.values() for n in names]
        raise ConfigError(f"model.{name} is not a setting; allowed model.* keys: {', '.join(allowed)}")
    value = coerce(f"model.{name}", value, annotation(owners[0][2]))
    if not in_grid and any(value == f.default for _, _, f in owners):
        return
    same_family = [o for f, o, _ in owners if f == fam.name and o is not None]
    where = (f"model.{fam.variant_setting}={' or '.join(same_family)}" if same_family
             else f"model.family={' or '.join(dict.fromkeys(f for f, _, _ in owners))}")
    raise ConfigError(f"model.{name}={value!r} is not allowed; expected {yaml_word(owners[0][2].default)} "
                      f"unless {where}")


def member_hyperparameters(model: ModelSpec) -> dict[str, str]:
    """{setting: label} of the per-member hyperparameters of this model's run: the learning rate, the
    network's (noise level, contractive weight), the family's and its objective's."""
    out = {f"optim.{k}": v for k, v in member_settings(OptimSpec).items()}
    for cls in (ModelSpec, type(model.family_settings), type(model.objective_settings)):
        if cls is not type(None):
            out.update({f"model.{k}": v for k, v in member_settings(cls).items()})
    return out


def setting_label(key: str) -> str:
    """The short legend label of a per-member setting ("model.noise_level" -> "noise"; the seed: "s")."""
    if key == "seed":
        return "s"
    section, _, name = key.partition(".")
    field_ = model_field(name) if section == "model" else next(
        (f for f in declared(SPECS[section]) if f.name == name), None) if section in SPECS else None
    return (field_.metadata.get("label") if field_ is not None else None) or name


def setting_value(spec: RunSpec, key: str):
    """The value of a dotted setting in a parsed run ("model.beta", "optim.learning_rate")."""
    section, _, name = key.partition(".")
    return spec.model.get(name) if section == "model" else getattr(getattr(spec, section), name)


# ----------------------------------------------------------------------------- the whole run
def _seeds(value) -> list:
    """`population.seeds`: an integer n > 0 (seeds 0..n-1) or a non-empty list of distinct integers."""
    allowed = "an integer n > 0 (seeds 0..n-1) or a non-empty list of distinct integers >= 0"
    if is_int(value):
        require(value > 0, "population.seeds", value, allowed)
        return list(range(value))
    require(isinstance(value, (list, tuple)) and len(value) > 0 and all(is_int(v) and v >= 0 for v in value)
            and len(set(value)) == len(value), "population.seeds", value, allowed)
    return list(value)


def parse_run(cfg: dict) -> RunSpec:
    """`cfg` is the resolved Hydra config as a plain dict (`OmegaConf.to_container`)."""
    known = {*SECTIONS, "name", "hydra", "task", "study"}
    for key in cfg:
        if key not in known:
            raise ConfigError(f"{key} is not a setting; allowed: {', '.join(sorted(known - {'hydra'}))}")
    pop = dict(cfg.get("population") or {})
    pop["seeds"] = _seeds(pop.get("seeds", [0]))
    require(isinstance(pop.get("grid") or {}, dict), "population.grid", pop.get("grid"),
            "a mapping such as {model: {noise_level: [0.1, 0.3]}}")
    pop["grid"] = {k: tuple(v) if isinstance(v, (list, tuple)) else (v,)
                   for k, v in flatten(pop.get("grid") or {}).items()}
    one_of("task", cfg.get("task", "train"), tuple(TASKS))
    model = parse_model(cfg.get("model"), pop["grid"], cross=False)
    spec = RunSpec(
        model=model,
        data=parse_section("data", DataSpec, cfg.get("data")),
        optim=parse_section("optim", OptimSpec, cfg.get("optim")),
        trainer=parse_section("trainer", TrainerSpec, cfg.get("trainer")),
        logger=parse_section("logger", LoggerSpec, cfg.get("logger")),
        population=parse_section("population", PopulationSpec, pop),
        metrics=parse_section("metrics", MetricsSpec, cfg.get("metrics")),
        name=str(cfg.get("name", "run")),
    )
    check_grid(spec)
    model.declaration.check(model, model.family_settings, spec.population.grid)
    return spec


def check_grid(spec: RunSpec) -> None:
    """Grid keys are this run's per-member hyperparameters; grid values pass the same checks as the
    single setting they replace (their types first, for every key, then their values)."""
    allowed = member_hyperparameters(spec.model)
    owners = {}
    for key, values in spec.population.grid.items():
        one_of("population.grid key", key, tuple(allowed))
        require(len(values) > 0, f"population.grid.{key}", values, "a non-empty list of numbers")
        section, _, name = key.partition(".")
        candidates = [spec.optim] if section == "optim" else [spec.model, spec.model.family_settings,
                                                                spec.model.objective_settings]
        owners[key] = next(o for o in candidates if o is not None and name in {f.name for f in declared(type(o))})
        integer = annotation(next(f for f in declared(type(owners[key])) if f.name == name)).startswith("int")
        for v in values:
            if integer:
                require(is_int(v), f"population.grid.{key}", v, "integers")
            require(is_number(v), f"population.grid.{key}", v, "a list of finite numbers")
    for key, values in spec.population.grid.items():
        section, _, name = key.partition(".")
        owner = owners[key]
        for v in values:
            changed = dataclasses.replace(owner, **{name: v if isinstance(getattr(owner, name), int) else float(v)})
            try:
                check_all(section, changed)
                if owner is spec.model.family_settings:
                    spec.model.declaration.check(spec.model, changed, spec.population.grid)
            except ConfigError as err:
                raise ConfigError(f"population.grid.{err}") from None


def default_of(key: str):
    """The built-in default of a dotted setting ("trainer.eval_every" -> 0), or None: a run saved
    before a setting existed ran with that default."""
    section, _, attr = key.partition(".")
    if section == "model":
        field_ = model_field(attr)
    else:
        field_ = next((f for f in declared(SPECS[section]) if f.name == attr), None) if section in SPECS else None
    if field_ is None:
        return None
    default = field_.default_factory() if field_.default is dataclasses.MISSING else field_.default
    return list(default) if isinstance(default, tuple) else default


def section_keys(section: str) -> list[str]:
    """The settings of one config section, for error messages that list what is allowed (the model's:
    the network's, then every family's and objective's)."""
    if section != "model":
        return [f.name for f in declared(SPECS[section])]
    names = [f.name for f in declared(ModelSpec)]
    for _, _, cls in model_declarations():
        names += [f.name for f in declared(cls) if f.name not in names]
    return names


def model_spec(**settings) -> ModelSpec:
    """A checked ModelSpec from flat model settings, as a YAML file gives them: `model_spec(family="vae",
    objective="factor_vae", gamma=40.0, code_size=10)`."""
    return parse_model(settings, {})
