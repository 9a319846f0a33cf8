"""Model families and objectives, declared once and looked up by name.

A family (`model.family`) is one module that declares, in one `Family`:
- `settings`: a frozen dataclass of its own `model.*` settings. Each field is made with
  `aejax.settings.setting(...)`:
  its default, a one-line meaning, its allowed values (`choices`, or a `Rule` with the words of its
  refusal), whether it is a per-member hyperparameter (`member=True`, with a short `label` for legends);
- `build(spec, settings, input_dim, image_shape, rngs)`: the Flax model;
- `loss(spec, settings, dataset_size)` -> `terms(params, x, recon, aux, hp, extra) -> (loss, terms)`:
  the family's part of the training objective, given the model's output `(recon, aux)` on a batch `x`
  (the engine adds input corruption, the contractive penalty and the squared error every family logs);
- `extra(spec, settings)`: extra per-member state it trains beside the model, with its own optimiser
  (`Critic`, e.g. FactorVAE's discriminator), or None;
- `eval_sums(model, params, x, key, settings, **member)`: its own test metrics, as per-example values summed
  by the evaluator (`{name: (B,)}`; `member`: the member's own values from `member_call`), and `member_call(settings, hp)`: keyword arguments that hand a member
  its own value of a shape-preserving model setting (top-k's k);
- `from_grid(settings, grid)`: its settings completed with what the population grid fixes for every member
  (IWAE: the samples every member draws, the largest k), before the model and loss are built;
- `check(spec, settings, grid)`: its cross-field rules (one-field rules come from `settings`); `min_batch`:
  the smallest batch its loss is defined for (an estimate that compares examples within a batch needs 2); and
  `needs_unit_interval(settings)`: the setting that needs data in [0, 1] ("model.likelihood=bernoulli");
- `member_init`, `adjust_grads`, `after_update`: the training state the gradient does not set (an SAE's
  unit decoder rows, firing counters, BatchTopK's threshold); `report`: the family's own test metrics and
  figures after training (an SAE's FVU, L0, dead latents, and MCC against true features).

A family with `objectives` (the VAE) picks one by a setting (`variant_setting`, "objective"); each
`Objective` declares its own `settings` the same way, its function and its extra state.

Everything else (the config checks, `population`, the engine, evaluation, figures, the studies' labels)
reads these declarations: adding a family or an objective is its module and its YAML file. Outside
aejax, a module that calls `register(...)` is named in `model.imports` (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import optax


@dataclass(frozen=True)
class Critic:
    """Extra per-member state trained beside the model in the same step, with its own optimiser.

    `init(key) -> params`; `loss(params, z, key, z_other) -> (loss, terms)` on the model's codes `z` of
    the batch (no gradient reaches the model through them); `update` makes one optimiser step and returns
    `(params, opt_state, terms)`, terms from before the step, logged as train/<name>."""
    init: Callable
    optimizer: optax.GradientTransformation
    loss: Callable

    def update(self, params, opt_state, z, key, z_other=None):
        z = jax.lax.stop_gradient(z)
        z_other = None if z_other is None else jax.lax.stop_gradient(z_other)
        grads, terms = jax.grad(self.loss, has_aux=True)(params, z, key, z_other)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, terms


@dataclass(frozen=True)
class Objective:
    """One objective within a family (a VAE objective): `fn(nll, mean, logvar, z, hp, **settings)`
    -> (loss, terms), see `aejax.families.vae`. `strength` names the setting the study reports as its regulariser's strength."""
    name: str
    settings: type
    fn: Callable
    label: str
    strength: str | None = None
    extra: Callable | None = None          # (spec, settings) -> Critic, or None
    citation: str = ""
    min_batch: int = 1                     # the smallest trainer.batch_size its loss is defined for


@dataclass(frozen=True)
class Family:
    name: str
    settings: type
    build: Callable
    loss: Callable
    label: str
    check: Callable = lambda spec, settings, grid: None
    extra: Callable = lambda spec, settings: None
    eval_sums: Callable = lambda model, params, x, key, settings, **member: {}  # member: member_call's values
    member_call: Callable = lambda settings, hp: {}
    needs_unit_interval: Callable = lambda settings: None   # the setting that needs data in [0, 1], or None
    from_grid: Callable = lambda settings, grid: settings   # settings completed from population.grid (static)
    objectives: dict = field(default_factory=dict)   # name -> Objective, for a family with variants
    variant_setting: str | None = None               # the family's setting that picks one ("objective")
    min_batch: int = 1                    # the smallest trainer.batch_size its loss is defined for (an MMD: 2)
    gaussian_latent: bool = False                    # posterior(x) -> (mean, logvar) and a prior (log_prior,
                                                     # sample, prior_marginals, latent_kl: aejax.families.vae.VAE):
                                                     # samples, traversals, KL per latent, the metrics that read q(z|x)
    # State the gradient does not train (an SAE's unit decoder rows, firing counters, learned threshold):
    member_init: Callable | None = None   # (params, hp, settings) -> params: a member's own initial values
    adjust_grads: Callable | None = None  # (grads, params, settings) -> grads, before the optimiser
    after_update: Callable | None = None  # (new_params, old_params, aux, hp, settings) -> params, after it; aux:
                                          # the model's outputs on the batch (its codes)
    buffers: tuple = ()                   # top-level parameter names that after_update sets, not the gradient:
                                          # left out of the logged grad, update and parameter norms
    report: Callable | None = None        # (spec, data, graph, params, hp, healthy, workdir) -> (per-member test
                                          # metrics, figures {name: path}, a record for summary.json or None)


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family under its name (a second registration under the same name replaces the first)."""
    FAMILIES[family.name] = family
    return family


def register_objective(family_name: str, objective: Objective) -> Objective:
    """Add an objective to a family that has variants (the VAE's `model.objective`)."""
    FAMILIES[family_name].objectives[objective.name] = objective
    return objective


def family(name: str) -> Family:
    return FAMILIES[name]
