"""The model families aejax ships, registered by importing their modules; `registry` has the interface.

    from aejax.families import FAMILIES, family    # {"autoencoder": Family, "vae": Family}
    family("vae").objectives                         # {"beta_vae": Objective, ...}
"""

from aejax.families import autoencoder, disentangling, vae  # noqa: F401  (each registers itself)
from aejax.families.registry import FAMILIES, Critic, Family, Objective, family, register, register_objective

__all__ = ["FAMILIES", "Critic", "Family", "Objective", "family", "register", "register_objective"]
