"""The model families aejax ships, and their registry (`registry` has the interface).

    from aejax.families import FAMILIES, family    # {"autoencoder": Family, "vae": Family}
    family("vae").objectives                         # {"beta_vae": Objective, ...}

Every module in this folder registers what it declares when imported, and this package imports them
all: a new family or objective is its module here and its YAML file in conf/model/, nothing else.
"""

import importlib
import pkgutil

from aejax.families.registry import FAMILIES, Critic, Family, Objective, family, register, register_objective

# The VAE family before its objectives (they register under it); the rest in name order.
for _name in ["autoencoder", "vae", *sorted(m.name for m in pkgutil.iter_modules(__path__))]:
    if _name != "registry":
        importlib.import_module(f"{__name__}.{_name}")

__all__ = ["FAMILIES", "Critic", "Family", "Objective", "family", "register", "register_objective"]
