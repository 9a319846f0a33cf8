"""`aejax-train --help`'s settings: every setting of every section, one line each, with its value in the
config the command line composes, its meaning and what it allows, read from the declarations the checks
apply (`aejax.settings.setting`). The model's lines are the network's, then the chosen family's and its
objective's: `aejax-train model=vae --help`, `aejax-train model=vae model.objective=factor_vae --help`.

Hydra prints it: conf/config.yaml's `hydra.help.template` holds `${aejax_settings:}`, a resolver
(`aejax.cli`) that calls `settings_help` on the composed config.
"""

from __future__ import annotations

import dataclasses

from aejax.settings import annotation, declared, yaml_word

WIDTH = 40  # the column the meanings start at (a longer `setting = value` pushes its own line's further)
KINDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "tuple": "a list",
         "dict": "a mapping"}
SECTION_NOTES = {"model": "the network every family shares, then the family's and its objective's own",
                 "data": "a prefix (mnist:, synthetic:, array:, ...) names the datasets that read a setting"}


def allowed(field_: dataclasses.Field) -> str:
    """What a setting allows, as its check says it: its choices, its rule, else its type."""
    choices, rule = field_.metadata.get("choices"), field_.metadata.get("rule")
    kinds = [k.strip() for k in annotation(field_).split("|")]
    null = " or null" if "None" in kinds and "null" not in str(getattr(rule, "expected", "")) else ""
    if choices is not None:
        choices = choices() if callable(choices) else choices
        return ("a list of " if kinds[0] == "tuple" else "one of ") + ", ".join(map(str, choices)) + null
    if rule is not None:
        return rule.expected + null
    word = KINDS.get(kinds[0])
    return (word + null) if word else "any value"


def shown(value) -> str:
    """A value as the config spells it: null, true, [256, 128], {num_train: 1000}."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    return yaml_word(value)


def default(field_: dataclasses.Field):
    return field_.default_factory() if field_.default is dataclasses.MISSING else field_.default


def lines(section: str, classes, config: dict) -> list[str]:
    """One line a declared setting of `classes` (a name declared twice: its first declaration)."""
    rows, seen = [], set()
    values = config.get(section) if isinstance(config.get(section), dict) else {}
    for cls in classes:
        for f in declared(cls):
            if f.name in seen:
                continue
            seen.add(f.name)
            member = "; per member: population.grid" if f.metadata.get("member") else ""
            rows.append((f"{section}.{f.name} = {shown(values.get(f.name, default(f)))}",
                         f"{f.metadata.get('meaning', '')}  [{allowed(f)}{member}]"))
    width = min(WIDTH, max(len(setting) for setting, _ in rows))
    return [f"  {setting:<{width}}  {rest}" for setting, rest in rows]


def model_classes(model: dict) -> tuple[list, str]:
    """The settings classes of the model section (network, family, objective) and what was chosen."""
    from aejax.families import FAMILIES
    from aejax.model_spec import ModelSpec, import_modules

    try:
        import_modules(model.get("imports") or ())  # families of your own register on import
    except Exception:
        pass
    fam = FAMILIES.get(model.get("family", "autoencoder"))
    if fam is None:
        return [ModelSpec], f"model.family={model.get('family')} (not a registered family)"
    classes, chosen = [ModelSpec, fam.settings], f"model.family={fam.name}"
    if fam.variant_setting:
        name = model.get(fam.variant_setting, default(next(f for f in declared(fam.settings)
                                                           if f.name == fam.variant_setting)))
        if name in fam.objectives:
            classes.append(fam.objectives[name].settings)
            chosen += f" with model.{fam.variant_setting}={name} (of {', '.join(fam.objectives)})"
    return classes, chosen


def settings_help(config: dict) -> str:
    """The help's settings part for `config`, the composed config as plain data (no `hydra` key)."""
    from aejax.config import SPECS

    model, chosen = model_classes(config.get("model") if isinstance(config.get("model"), dict) else {})
    out = ["Each line: setting = its value here  what it means  [what it allows]. Set any with key=value.",
           f"The model's are those of {chosen}; another family's: aejax-train model=<preset> --help."]
    for section, cls in SPECS.items():
        note = SECTION_NOTES.get(section)
        out += ["", f"{section}:" + (f" ({note})" if note else "")]
        out += lines(section, model if section == "model" else [cls], config)
    return "\n".join(out)
