"""Docs that cannot drift: a conf/ comment that lists a setting's values (`binarize: none  # none |
fixed | dynamic | threshold`) lists exactly the values the config checks accept, no fewer, no more.

What the code accepts is read from the code itself: each setting is given a value no check can
accept, and the one-line refusal of the one checker (`aejax.settings.check_declared`: "expected one
of a, b, c") names the values its declaration allows. So a setting someone declares (in a config
section or in a family's or objective's settings), with its conf comment, is covered with no change here.

The convention for comments: the values are one run of names separated by ` | ` (a label before
and a note after are fine: `# VAE decoder: bernoulli | gaussian (...)`); a comment on its own line
names its setting: `data.binarize (none | fixed | dynamic | threshold)`. A setting that also takes a
form no name can spell (a list of numbers) says so after the names, in its comment (`auto | all, or a
list ...`) and in its refusal (`expected one of auto, all; or a list ...`).
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from aejax.config import SPECS, ModelSpec, model_declarations
from aejax.errors import ConfigError
from aejax.settings import check_declared, declared
from conftest import REPO

CONF = REPO / "conf"
VALUES = re.compile(r"(?<![\w.|])\w+(?:[ \t]\|[ \t]\w+)+(?![\w|])")   # "none | fixed | threshold"
NAMED = re.compile(r"(\w+(?:\.\w+)+) \(([^()]*)\)")                    # "data.binarize (none | fixed)"
KEY = re.compile(r"^(\s*)([\w/+~-]+):(?:\s|$)")


def documented() -> list[tuple[str, str | None, list[str]]]:
    """(file:line, setting or None when the comment names none, values) for every conf/ comment
    that lists values with ` | `."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        lines = path.read_text().splitlines()
        group = path.parent.relative_to(CONF).parts
        package = [] if "# @package _global_" in lines[:3] else list(group)
        stack: list[tuple[int, str]] = []   # (indent, key) of the enclosing mappings
        for number, line in enumerate(lines, 1):
            where = f"{path.relative_to(REPO)}:{number}"
            if line.lstrip().startswith("#"):
                comment = line.lstrip()[1:]
                named = [(m.group(1), VALUES.findall(m.group(2))) for m in NAMED.finditer(comment)]
                found += [(where, setting, runs[0].split(" | ")) for setting, runs in named if len(runs) == 1]
                if len(VALUES.findall(comment)) > len([n for n in named if len(n[1]) == 1]):
                    found.append((where, None, VALUES.findall(comment)))
                continue
            content, _, comment = line.partition(" #")
            key = KEY.match(content)
            if key and not content.lstrip().startswith("-"):
                indent = len(key.group(1))
                while stack and stack[-1][0] >= indent:
                    stack.pop()
                stack.append((indent, key.group(2)))
            runs = VALUES.findall(comment)
            if runs:
                setting = ".".join([*package, *(k for _, k in stack)]) if key and len(runs) == 1 else None
                found.append((where, setting, runs[0].split(" | ") if setting else runs))
    return found


def accepted(setting: str) -> list[str]:
    """The values the config checks accept for `setting`, as their refusal of a bad value names them."""
    section, _, attr = setting.partition(".")
    classes = [SPECS[section]] if section in SPECS else []
    if section == "model":
        classes += [cls for _, _, cls in model_declarations()]
    owner = next((cls for cls in classes if attr in {f.name for f in declared(cls)}), None)
    assert owner is not None, f"{setting}: no declaration (config section, family or objective) has this setting"
    field = next(f for f in declared(owner) if f.name == attr)
    bad = ("__nope__",) if "tuple" in str(field.type) else "__nope__"
    try:
        check_declared(section, dataclasses.replace(owner(), **{attr: bad}))
    except ConfigError as err:
        said = re.fullmatch(rf"{re.escape(setting)}=.* is not allowed; expected (?:one of|a non-empty list of) (.+)",
                            str(err))
        assert said, f"{setting}: its refusal does not list the values (declare them: setting(..., choices=...)): {err}"
        return said.group(1).split("; ")[0].split(", ")
    raise AssertionError(f"{setting}={bad!r} is accepted: the code checks no fixed list of values")


def test_the_convention_finds_the_comments_it_should():
    found = {setting for _, setting, _ in documented()}
    assert {"data.binarize", "model.sparsity", "trainer.progress", "trainer.figure_formats", "logger.mode",
            "optim.name", "model.likelihood", "data.generator"} <= found, found


@pytest.mark.parametrize("where, setting, values", documented(), ids=lambda v: v if isinstance(v, str) else None)
def test_a_conf_comment_lists_exactly_the_values_the_code_accepts(where, setting, values):
    assert setting, (f"{where}: a comment lists values ({' / '.join(values)}) but names no setting, or gives several "
                     f"lists; write one run `a | b | c` on the setting's line, or `section.key (a | b | c)`")
    code = accepted(setting)
    assert sorted(values) == sorted(code), (f"{where}: {setting} is documented as {' | '.join(values)}; the code "
                                            f"accepts {' | '.join(code)}")
