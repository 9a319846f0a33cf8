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
keep array shapes may vary (`aejax.config.MEMBER_HYPERPARAMETERS`); code size or depth
are Hydra multirun axes instead.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp

from aejax.config import RunSpec, shard_range

# Name inside the step -> the setting it comes from.
HYPERPARAMETER_SOURCES = {
    "learning_rate": "optim.learning_rate",
    "sparsity_weight": "model.sparsity_weight",
    "noise_level": "model.noise_level",
    "beta": "model.beta",
    "contractive_weight": "model.contractive_weight",
    "top_k": "model.top_k",  # carried as a float; the top-k layer rounds it to an integer
    "gamma": "model.gamma",          # the VAE objectives' weights (aejax/vae_objectives.py)
    "lambda_od": "model.lambda_od",
    "c_max": "model.c_max",
}


def members(spec: RunSpec) -> list[dict]:
    """One dict per member: {"member", "seed", and every hyperparameter by its setting name}.

    With `population.shards=N`, only shard `population.shard`'s members, numbered as in the
    whole population: each keeps the seed and hyperparameters it has unsharded."""
    defaults = {setting: float(getattr(getattr(spec, setting.split(".")[0]), setting.split(".")[1]))
                for setting in HYPERPARAMETER_SOURCES.values()}
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
    """The per-member scalars the step reads, each an array of shape `(E,)`."""
    return {name: jnp.array([r[setting] for r in rows], jnp.float32)
            for name, setting in HYPERPARAMETER_SOURCES.items()}


SHORT_NAMES = {"optim.learning_rate": "lr", "model.sparsity_weight": "sparsity", "model.noise_level": "noise",
               "model.beta": "beta", "model.contractive_weight": "contractive", "model.top_k": "k", "seed": "s",
               "model.gamma": "gamma", "model.lambda_od": "lambda_od", "model.c_max": "c_max"}


def member_label(row: dict, varied: list[str], sep: str = " ") -> str:
    """`noise0.3 s1`: the values that tell a member apart from the others (for legends and names)."""
    return sep.join(f"{SHORT_NAMES[k]}{row[k]:g}" for k in varied if k in SHORT_NAMES) or f"member {row['member']}"


def varied_settings(rows: list[dict]) -> list[str]:
    """Settings that differ between members (seed included), for labels and logging."""
    names = ["seed", *HYPERPARAMETER_SOURCES.values()]
    return [n for n in names if len({r[n] for r in rows}) > 1]
