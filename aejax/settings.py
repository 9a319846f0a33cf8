"""Declaring settings and checking them: the one checker every config section and family goes through.

A settings dataclass declares each field with `setting(default, meaning, choices=..., rule=...,
member=..., label=...)`. `parse_section` builds it from a plain dict, refusing unknown keys and wrong
types (`coerce`, from the field's annotation), then `check_declared` applies every field's choices and
rule; rules between fields are the dataclass's own `check()`, written out. Every refusal is one line:
`<setting>=<value> is not allowed; expected <what is>` (`ConfigError`).

No JAX here: `aejax-collect` imports `flatten` and `shard_range` and stays fast.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from aejax.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A one-field check: `ok(value)`, and what the refusal says is allowed ("a number >= 0")."""
    ok: Callable[[Any], bool]
    expected: str


NON_NEGATIVE = Rule(lambda v: v >= 0, "a number >= 0")
POSITIVE = Rule(lambda v: v > 0, "a number > 0")
POSITIVE_INT = Rule(lambda v: v > 0, "an integer > 0")
NON_NEGATIVE_INT = Rule(lambda v: v >= 0, "an integer >= 0")
OPEN_UNIT = Rule(lambda v: 0 < v < 1, "a number in (0, 1)")
SECONDS = Rule(lambda v: v > 0, "seconds > 0")


def positive_ints(what: str, non_empty: bool = False) -> Rule:
    """A list of positive integers ("layer sizes", ...)."""
    return Rule(lambda v: (len(v) > 0 or not non_empty) and all(is_int(x) and x > 0 for x in v),
                f"a {'non-empty ' if non_empty else ''}list of positive integers ({what})")


def setting(default, meaning: str, *, choices: tuple | None = None, rule: Rule | None = None,
            member: bool = False, label: str | None = None):
    """A settings dataclass field: its default, one-line meaning, allowed values and role.

    `member=True`: a per-member hyperparameter (it keeps every array shape, so a population can vary it
    inside one program: `population.grid.<section>.<name>`); `label` is its short name in legends."""
    meta = {"meaning": meaning, "choices": choices, "rule": rule, "member": member, "label": label}
    if isinstance(default, (list, tuple, dict)):
        frozen = tuple(default) if isinstance(default, (list, tuple)) else default
        return field(default_factory=lambda: frozen if not isinstance(frozen, dict) else dict(frozen), metadata=meta)
    return field(default=default, metadata=meta)


def declared(cls) -> list[dataclasses.Field]:
    """The fields of a settings dataclass that are settings (not values derived while parsing)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("derived")]


def member_settings(cls) -> dict[str, str]:
    """{name: label} of the per-member hyperparameters a settings dataclass declares."""
    return {f.name: f.metadata.get("label") or f.name for f in declared(cls) if f.metadata.get("member")}


def require(ok: bool, setting_: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{setting_}={value!r} is not allowed; expected {allowed}")


def one_of(setting_: str, value: Any, choices) -> None:
    require(value in choices, setting_, value, "one of " + ", ".join(map(str, choices)))


def check_declared(section: str, spec) -> None:
    """Every field's declared choices and rule (a null value passes a rule: its type allowed it)."""
    for f in declared(type(spec)):
        value = getattr(spec, f.name)
        shown = list(value) if isinstance(value, tuple) else value
        choices, rule = f.metadata.get("choices"), f.metadata.get("rule")
        if choices is not None:
            choices = choices() if callable(choices) else choices
            if isinstance(value, tuple):   # a list of choices, e.g. trainer.figure_formats
                require(len(value) > 0 and set(value) <= set(choices), f"{section}.{f.name}", shown,
                        "a non-empty list of " + ", ".join(choices))
            else:
                one_of(f"{section}.{f.name}", value, choices)
        if rule is not None and value is not None:
            require(rule.ok(value), f"{section}.{f.name}", shown, rule.expected)


class Settings:
    """Base of a config section's dataclass: `check()` applies every field's declaration, then
    `check_rules()`, the section's rules between fields (written out, one `require` each)."""
    section: ClassVar[str] = ""

    def check(self) -> None:
        check_declared(self.section, self)
        self.check_rules()

    def check_rules(self) -> None:
        pass


def check_all(section: str, spec) -> None:
    """A section's, a family's or a study's settings checked: declarations, then the rules between fields
    (`check_rules` of a `Settings`; a plain dataclass's own `check()`, if it has one)."""
    if isinstance(spec, Settings):
        spec.check()
        return
    check_declared(section, spec)
    if hasattr(spec, "check"):
        spec.check()


def parse_section(section: str, cls, raw: dict | None, check: bool = True):
    """Build a settings dataclass from a plain dict, rejecting unknown keys and wrong types, then check it."""
    raw = dict(raw or {})
    fields = {f.name: f for f in declared(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{section}.{key} is not a setting; allowed {section}.* keys: {', '.join(fields)}")
    spec = cls(**{key: coerce(f"{section}.{key}", value, annotation(fields[key])) for key, value in raw.items()})
    if check:
        check_all(section, spec)
    return spec


def annotation(field_: dataclasses.Field) -> str:
    """A field's type as text ("float | None"), whether its module postpones annotations or not."""
    kind = field_.type
    if isinstance(kind, str):
        return kind
    return kind.__name__ if isinstance(kind, type) else str(kind).replace("NoneType", "None")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "tuple": "a list"}


def coerce(setting_: str, value, annotation: str):
    """Check `value` against the field's annotation ("int | None", "bool", "tuple", ...): YAML
    and Hydra hand over strings for typos (`no`, `abc`), so every type is checked here, once."""
    kinds = [t.strip() for t in annotation.split("|")]
    nullable = "None" in kinds
    kind = kinds[0]
    if value is None:
        require(nullable or kind == "Any", setting_, value, f"a value ({_KIND_WORDS.get(kind, kind)}), not null")
        return None
    also = " or null" if nullable else ""
    if kind == "bool":
        require(isinstance(value, bool), setting_, value, f"true or false{also}")
    elif kind == "int":
        require(is_int(value), setting_, value, f"an integer{also}")
    elif kind == "float":
        require(is_number(value), setting_, value, f"a finite number{also}")
        return float(value)
    elif kind == "str":
        require(isinstance(value, str), setting_, value, f"a string{also}")
    elif kind == "tuple":
        require(isinstance(value, (list, tuple)), setting_, value, f"a list{also}")
        return tuple(value)
    elif kind == "dict":
        require(isinstance(value, dict), setting_, value, f"a mapping{also}")
    elif isinstance(value, list):
        return tuple(value)
    return value


def yaml_word(value) -> str:
    """A default as the config would spell it: null, true, 1.0."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"code_size": 8}} -> {"model.code_size": 8}; an empty mapping stays a value."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def shard_range(population: int, shards: int, shard: int) -> range:
    """Members of one shard: contiguous, as even as can be (`numpy.array_split`'s rule)."""
    size, extra = divmod(population, shards)
    start = shard * size + min(shard, extra)
    return range(start, start + size + (shard < extra))
