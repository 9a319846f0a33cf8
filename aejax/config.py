"""Typed views of the Hydra config, checked once at the start of a run.

Every bad setting raises `ConfigError` with one line naming the setting, its value and what is
allowed. Nothing downstream reads the raw Hydra config: builders receive these dataclasses, so a typo
can never be silently ignored.

Each section's settings are declared once, with their meaning and allowed values (`aejax.settings`):
here for the trainer, logger, population and metrics; in `aejax.model_spec` for the network every family
shares, in each family's and objective's module for their own `model.*` settings (`aejax.families`); in
`aejax.data.spec` and `aejax.optim` for the data and the optimiser. One checker applies the declarations;
the rules between fields are the `check_rules()` methods and each family's `check`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from aejax.data.spec import DataSpec
from aejax.errors import ConfigError
from aejax.model_spec import ModelSpec, model_declarations, model_field, model_spec, parse_model
from aejax.optim import OptimSpec
from aejax.tasks import TASKS
from aejax.settings import (NON_NEGATIVE_INT, POSITIVE_INT, SECONDS, annotation, check_all, declared, flatten,
                            is_int, is_number, member_settings, one_of, parse_section, require, Rule, setting,
                            Settings, shard_range)

__all__ = ["ConfigError", "DataSpec", "ModelSpec", "OptimSpec", "RunSpec", "flatten", "model_spec", "parse_model",
           "parse_run", "require", "shard_range"]


# trainer.figure_members=auto: every member of a population this small, else the first ones (README's outputs)
FIGURE_MEMBERS_AUTO = 8   # in reconstructions, samples, latent traversals, KL per latent (4 to a page)
CURVE_MEMBERS_AUTO = 32   # lines in the training curves
MAX_CHECKED_COMBINATIONS = 100_000  # grid combinations whose rules are checked before a run (each microseconds)


def _member_numbers(value) -> bool:
    """`trainer.figure_members`: auto, all, or a non-empty list of distinct member numbers."""
    if isinstance(value, tuple):
        return len(value) > 0 and all(is_int(m) and m >= 0 for m in value) and len(set(value)) == len(value)
    return value in ("auto", "all")


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
    figure_members: Any = setting(
        "auto", f"the members the figures draw: auto (all of up to {FIGURE_MEMBERS_AUTO}, else the first "
        f"{FIGURE_MEMBERS_AUTO}; the training curves: up to {CURVE_MEMBERS_AUTO}) | all | a list of member "
        "numbers such as [0, 5, 9]",
        rule=Rule(_member_numbers, "one of auto, all; or a non-empty list of distinct member numbers (integers >= 0)"))
    call_seconds: float = setting(10.0, "target duration of one compiled call (signals, progress wait for it)",
                                  rule=Rule(lambda v: v > 0, "seconds > 0 (the target duration of one compiled call)"))
    shuffle: str = setting("sort", "how each epoch's order of the rows is drawn: sort (jax.random.permutation, "
                           "every run before this setting) | feistel (a keyed Feistel permutation, no sort: faster "
                           "for small models, aejax/shuffle.py)", choices=("sort", "feistel"))
    cpu_devices: int | None = setting(None, "XLA CPU devices the population's members are split over, set when JAX "
                                      "starts (null: JAX's own, one unless XLA_FLAGS sets "
                                      "--xla_force_host_platform_device_count)",
                                      rule=Rule(lambda v: v > 0, "null or an integer > 0"))


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
        size = population_size(self)
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
# `metrics.preset`: a mode and sizes in one word. paper: disentanglement_lib's sizes (each family's SIZES), exact.
# quick: a quick look at a dSprites population, about half a minute a member on 2 CPU cores (measured for the
# README's quick command); BetaVAE points and FactorVAE votes cost the most (each encodes a batch of 64 images).
METRIC_PRESETS = {
    "paper": {"mode": "exact", "sizes": {}},
    "quick": {"mode": "fast", "sizes": {"num_train": 1000, "num_test": 500, "num_variance_estimate": 1000,
                                        "batch_size": 64, "num_eval": 100, "beta_vae.num_train": 200,
                                        "factor_vae.num_train": 200}},
}


@dataclass(frozen=True)
class MetricsSpec(Settings):
    section = "metrics"
    disentanglement: Any = setting("auto", "auto (on for data with ground-truth factors) | true | false",
                                   rule=Rule(lambda v: isinstance(v, bool) or v == "auto", "one of auto, true, false"))
    preset: str = setting("paper", "paper (disentanglement_lib's sizes, exact) | quick (small sizes, fast): the "
                          "mode and sizes that metrics.mode and metrics.sizes do not set", choices=tuple(METRIC_PRESETS))
    mode: str | None = setting(None, "exact | fast (DCI's boosted trees on histograms); null: the preset's",
                               rule=Rule(lambda v: v in METRIC_MODES, "one of " + ", ".join(METRIC_MODES)))
    seed: int = setting(0, "the evaluation seed: it fixes the factors every member is scored on",
                        rule=NON_NEGATIVE_INT)
    sizes: dict | None = setting({}, "overrides of the preset's sizes; {} or null: the preset's")
    workers: int = setting(0, "processes for the metrics' classifiers (members and DCI's factors side by side; "
                           "the scores do not depend on it); 0: one per available core", rule=NON_NEGATIVE_INT)

    def resolved_mode(self) -> str:
        """`mode`, or the preset's when null."""
        return self.mode or METRIC_PRESETS[self.preset]["mode"]

    def size_overrides(self) -> dict:
        """The preset's sizes with `sizes` over them, nested families flattened: {num_train: 1000, dci:
        {num_train: 100}} -> {"num_train": 1000, "dci.num_train": 100}, as aejax.metrics.evaluate_all takes
        them. A flat size given replaces the preset's for every family (its `<family>.<size>` too)."""
        own = flatten(self.sizes or {})
        preset = {k: v for k, v in METRIC_PRESETS[self.preset]["sizes"].items()
                  if k not in own and k.rpartition(".")[2] not in own}
        return {**preset, **own}

    def check_rules(self) -> None:
        names = sorted({k for keys in METRIC_FAMILY_SIZES.values() for k in keys})
        known = {*names, *(f"{fam}.{k}" for fam, keys in METRIC_FAMILY_SIZES.items() for k in keys)}
        for key, size in flatten(self.sizes or {}).items():
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
    check_min_batch(spec)
    chosen, size = spec.trainer.figure_members, population_size(spec.population)
    if isinstance(chosen, tuple):
        require(max(chosen) < size, "trainer.figure_members", list(chosen),
                f"member numbers 0 to {size - 1} (the population has {size} members)")
    return spec


def check_min_batch(spec: RunSpec) -> None:
    """A loss that compares the examples of a batch (an MMD) is undefined on a batch of one."""
    model = spec.model
    for owner, where in ((model.declaration, f"model.family={model.family}"),
                         (model.objective_declaration, f"model.objective={model.objective}")):
        need = getattr(owner, "min_batch", 1)
        require(spec.trainer.batch_size >= need, "trainer.batch_size", spec.trainer.batch_size,
                f"an integer >= {need} with {where} (its loss compares the examples within a batch)")


def population_size(population: PopulationSpec) -> int:
    """Members in the whole population (every shard): seeds times the grid's combinations."""
    return len(population.seeds) * math.prod(len(v) for v in population.grid.values())


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
    # Every member's combination of one owner's grid values (the population is their Cartesian product):
    # a rule between two settings (InfoVAE's alpha + lambda >= 1) must hold for each pair a member gets.
    grid = spec.population.grid
    for owner in {id(o): o for o in owners.values()}.values():
        keys = [key for key in grid if owners[key] is owner]
        section = keys[0].partition(".")[0]
        for values in itertools.islice(itertools.product(*(grid[key] for key in keys)), MAX_CHECKED_COMBINATIONS):
            changed = dataclasses.replace(owner, **{
                key.partition(".")[2]: v if isinstance(getattr(owner, key.partition(".")[2]), int) else float(v)
                for key, v in zip(keys, values)})
            try:
                check_all(section, changed)
                if owner is spec.model.family_settings:
                    spec.model.declaration.check(spec.model, changed, grid)
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
