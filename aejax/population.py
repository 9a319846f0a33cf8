"""Populations: many members trained in one compiled program.

A member is a seed plus one value of every per-member hyperparameter. The config

    population:
      seeds: [0, 1, 2]                 # or an integer n, meaning 0..n-1
      grid:
        model:
          sparsity_weight: [0.0, 1e-3]
        optim:
          learning_rate: [1e-3, 3e-3]

gives 3 x 2 x 2 = 12 members (the Cartesian product, seeds outermost). Only settings that
keep array shapes may vary (those declared `member=True`: `aejax.config.member_hyperparameters`);
code size or depth are Hydra multirun axes instead.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp

from aejax.config import RunSpec, member_hyperparameters, setting_label, setting_value, shard_range


def hyperparameter_names(spec: RunSpec) -> dict[str, str]:
    """{name inside the step: the setting it comes from} for this run (`hp["beta"]` <- `model.beta`): the
    learning rate and the per-member settings the model's family and objective declare."""
    return {setting.partition(".")[2]: setting for setting in member_hyperparameters(spec.model)}


def members(spec: RunSpec) -> list[dict]:
    """One dict per member: {"member", "seed", and every hyperparameter by its setting name}.

    With `population.shards=N`, only shard `population.shard`'s members, numbered as in the
    whole population: each keeps the seed and hyperparameters it has unsharded."""
    defaults = {setting: float(setting_value(spec, setting)) for setting in member_hyperparameters(spec.model)}
    grid = spec.population.grid
    keys = list(grid)
    rows = []
    for seed in spec.population.seeds:
        for values in itertools.product(*(grid[k] for k in keys)):
            row = {"member": len(rows), "seed": int(seed), **defaults}
            row.update({k: float(v) for k, v in zip(keys, values)})
            rows.append(row)
    pop = spec.population
    return [rows[i] for i in shard_range(len(rows), pop.shards, pop.shard)] if pop.shards > 1 else rows


def hyperparameter_arrays(rows: list[dict]) -> dict:
    """The per-member scalars the step reads, each an array of shape `(E,)`, named without their section."""
    settings = [k for k in rows[0] if "." in k]
    return {setting.partition(".")[2]: jnp.array([r[setting] for r in rows], jnp.float32) for setting in settings}


def member_label(row: dict, varied: list[str], sep: str = " ") -> str:
    """`noise0.3 s1`: the values that tell a member apart from the others (for legends and names), each
    by the short label its declaration gives (`setting(..., label="noise")`)."""
    return sep.join(f"{setting_label(k)}{row[k]:g}" for k in varied) or f"member {row['member']}"


def varied_settings(rows: list[dict]) -> list[str]:
    """Settings that differ between members (seed included), for labels and logging."""
    names = ["seed", *(k for k in rows[0] if "." in k)]
    return [n for n in names if len({r[n] for r in rows}) > 1]
