"""The model section (`model.*`): the network every family shares, declared here, and the parsing that hands
the rest of a flat model dict to the family's and its objective's own settings (`aejax.families`)."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from aejax.errors import ConfigError
from aejax.families import FAMILIES
from aejax.families.registry import Family, Objective
from aejax.nets import ACTIVATIONS, ARCHITECTURES, CONV_IMPLS, INITS
from aejax.settings import (NON_NEGATIVE, POSITIVE, POSITIVE_INT, annotation, coerce, declared, is_int, one_of,
                            parse_section, positive_ints, require, setting, Settings, yaml_word)

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
        spec, family_settings=fam.from_grid(parse_section("model", fam.settings, split["family"], check=check), grid),
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
    if in_grid:  # the grid's values, not the config's, are what is refused
        raise ConfigError(f"population.grid.model.{name} is not allowed; expected no grid over model.{name} "
                          f"unless {where}")
    raise ConfigError(f"model.{name}={value!r} is not allowed; expected {yaml_word(owners[0][2].default)} "
                      f"unless {where}")


def model_spec(**settings) -> ModelSpec:
    """A checked ModelSpec from flat model settings, as a YAML file gives them: `model_spec(family="vae",
    objective="factor_vae", gamma=40.0, code_size=10)`."""
    return parse_model(settings, {})
