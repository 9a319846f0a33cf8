"""The config a command line asks for, and what a resume makes of it.

A fresh run takes the composed config as it is. A resume (`trainer.resume=true`, or a SLURM
requeue of the job that ran in the directory) starts from the directory's `config.yaml` and
applies only what the command line *changed* against aejax's defaults, or named outright:
`hydra.run.dir=D trainer.resume=true` alone continues the saved run as it was (not today's
defaults), and `trainer.epochs=300` on top extends it. `aejax.rundir` then refuses any change
outside `RESUME_SAFE`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from aejax.settings import flatten
from aejax.rundir import requeued_here

GROUPS = ("model", "data", "optim", "trainer", "logger", "experiment", "regulariser")


def command_line_config(cfg: DictConfig, hydra_config) -> dict:
    """The config to run in this Hydra job, as a plain dict."""
    config = OmegaConf.to_container(cfg, resolve=True)
    workdir = Path(hydra_config.runtime.output_dir)
    if requeued_here(workdir):
        config["trainer"]["resume"] = True
    saved_file = workdir / "config.yaml"
    if not config["trainer"].get("resume") or not saved_file.exists():
        return config
    from hydra import compose

    defaults = OmegaConf.to_container(compose(hydra_config.job.config_name, overrides=[]), resolve=True)
    saved = yaml.safe_load(saved_file.read_text())
    return apply_changes(saved, config, defaults, list(hydra_config.overrides.task))


def explicit_keys(config: dict, defaults: dict, overrides: list[str]) -> list[str]:
    """Dotted keys the command line set: those that differ from the defaults, those it names,
    and every key of a config group it picks (`model=vae`)."""
    new, base = flatten(config), flatten(defaults)
    keys = {k for k in set(new) | set(base) if new.get(k, "<unset>") != base.get(k, "<unset>")}
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in GROUPS:
            keys |= {k for k in new if k.startswith(key + ".")}
        elif not key.startswith("hydra"):
            keys |= {k for k in new if k == key or k.startswith(key + ".")}
    return sorted(keys)


def apply_changes(saved: dict, config: dict, defaults: dict, overrides: list[str]) -> dict:
    """`saved` with the command line's explicit keys set to its values; resume switched on."""
    out = flatten(saved)
    new = flatten(config)
    for key in explicit_keys(config, defaults, overrides):
        if key in new:
            out[key] = new[key]
        else:
            out.pop(key, None)
    out["trainer.resume"] = True
    return unflatten(out)


def unflatten(flat: dict) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree
