"""Sparse autoencoders for interpretability (`model=sae`, `model.sae=<architecture>`).

One linear encoder and one linear decoder over a model's activations x (d values):

    pre = (x - b_dec) W_enc + b_enc          (model.subtract_decoder_bias; SAELens's apply_b_dec_to_input)
    f   = sigma(pre)                         (the architecture's sparsifying activation: the code, width W)
    x^  = f W_dec + b_dec                    (W_dec rows are the dictionary: one direction per latent)

The width W is `model.code_size`. The loss is the summed squared error sum_d (x^ - x)^2, averaged over
the batch (SAELens's `mse_loss`; logged as train/sse), plus the architecture's own terms:

| model.sae    | sigma, and its own loss terms                                             | source |
|--------------|---------------------------------------------------------------------------|--------|
| relu         | ReLU; lambda * sum_i f_i ||W_dec,i|| (L1 weighted by the decoder rows' norms) | Anthropic, "Circuits Updates - April 2024" |
| topk         | keep the k largest pre-activations, ReLU; AuxK on dead latents            | Gao et al. 2024, arXiv 2406.04093 |
| batchtopk    | keep the k*B largest ReLU(pre) across the batch; AuxK; inference: f > theta | Bussmann et al. 2024, arXiv 2412.06410 |
| jumprelu     | pre * H(pre - theta), theta learned by a straight-through estimator; lambda * L0 | Rajamanoharan et al. 2024, arXiv 2407.14435 |
| gated        | 1[pi_gate > 0] * ReLU(magnitude path); lambda * L1 of ReLU(pi_gate) weighted by norms + the gate's own reconstruction (decoder frozen there only with unit rows) | Rajamanoharan et al. 2024, arXiv 2404.16014 |
| matryoshka   | BatchTopK, plus the reconstruction of every prefix of model.matryoshka_widths | Bussmann et al. 2025, arXiv 2503.17547 |

Conventions that change results, each a setting (SAELens's choice where it has one):
- decoder rows: `model.decoder_norm=auto` is unit norm for topk, batchtopk, matryoshka and jumprelu (rows
  renormalised after every step and the gradient's component along each row removed first, Gao et al.
  A.2 / sparsify) and free for relu and gated, whose penalty multiplies each latent by its row's norm
  (so shrinking a row cannot buy a smaller penalty);
- initialisation: decoder rows drawn from a Gaussian and scaled to norm `model.decoder_init_norm` (0.1,
  SAELens; 1 when rows are unit), the encoder the decoder's transpose, biases 0; JumpReLU's theta starts
  at `model.threshold`;
- dead latents: a latent is dead after `model.dead_window` steps without firing in a training batch
  (SAELens's dead_feature_window, 1000 steps); AuxK (`model.aux_coefficient`, SAELens's 1.0, no variance
  normalisation) lets the `model.aux_k` (0: d/2) largest dead pre-activations reconstruct the detached
  residual, scaled by min(dead / aux_k, 1);
- warm-up: `model.sparsity_warmup_steps` ramps lambda linearly from 0 (Anthropic: the first 5% of
  training); the learning rate's warm-up and decay are `optim.schedule`'s (`warmup_decay`: Anthropic's
  linear decay over the last `optim.decay_steps`).

Per member (population.grid): model.sparsity_coefficient, model.k, model.threshold (JumpReLU's initial
theta), model.bandwidth, model.aux_coefficient, optim.learning_rate and the seed. The width is a multirun
axis (`-m model.code_size=256,512`): members of one program share array shapes, and masking every member
up to the largest width would spend the larger members' cost on every smaller one.

State trained beside the weights, not by gradient (stored with them, so checkpoints and resume keep it):
`steps_since_fired` (W,) and BatchTopK's inference threshold `threshold` (an EMA of the smallest kept
activation, SAELens's topk_threshold_lr=0.01). Their gradients are zero, and `after_update` sets them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import jax
import jax.numpy as jnp
from flax import nnx

from aejax import sae_figures
from aejax.data.features import save_truth
from aejax.selection import at_least_kth_largest, bit_search, keep_top_k
from aejax.families.registry import Family, register
from aejax.objectives import any_member
from aejax.sae_metrics import FiringF1, ReconstructionStats, best_match, mcc, mmcs, uniqueness
from aejax.settings import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Rule, is_number, positive_ints, require, \
    setting

ARCHITECTURES = ("relu", "topk", "batchtopk", "jumprelu", "gated", "matryoshka")
WITH_K = ("topk", "batchtopk", "matryoshka")            # sparsity set by k
WITH_COEFFICIENT = ("relu", "jumprelu", "gated")        # sparsity set by model.sparsity_coefficient
BATCH_TOPK = ("batchtopk", "matryoshka")
UNIT_BY_DEFAULT = ("topk", "batchtopk", "matryoshka", "jumprelu")


@dataclass(frozen=True)
class SAESettings:
    sae: str = setting("topk", "the architecture (see aejax/families/sae.py for each one's source)",
                       choices=ARCHITECTURES)
    sparsity_coefficient: float = setting(1.0, "lambda: relu and gated: weight of the norm-weighted L1; jumprelu: of L0",
                                          rule=NON_NEGATIVE, member=True, label="λ")
    k: int = setting(32, "topk, batchtopk, matryoshka: active latents per row (batchtopk: on average)",
                     rule=POSITIVE_INT, member=True, label="k")
    threshold: float = setting(0.01, "jumprelu: initial theta of every latent", rule=POSITIVE, member=True,
                               label="θ")
    bandwidth: float = setting(0.05, "jumprelu: epsilon of the straight-through estimator's rectangle kernel",
                               rule=POSITIVE, member=True, label="ε")
    aux_coefficient: float = setting(1.0, "topk, batchtopk, matryoshka: weight of the AuxK loss (0: off)",
                                     rule=NON_NEGATIVE, member=True, label="aux")
    aux_k: int = setting(0, "AuxK: dead latents that reconstruct the residual (0: d // 2, SAELens)",
                         rule=NON_NEGATIVE_INT)
    dead_window: int = setting(1000, "steps without firing after which a latent counts as dead (AuxK, train/dead)",
                               rule=POSITIVE_INT)
    decoder_norm: str = setting("auto", "decoder rows: unit (renormalised each step) | free | auto (the "
                                "architecture's convention)", choices=("auto", "unit", "free"))
    decoder_init_norm: float = setting(0.1, "initial norm of free decoder rows (unit rows start at 1)", rule=POSITIVE)
    subtract_decoder_bias: bool = setting(True, "encode x - b_dec rather than x (SAELens's apply_b_dec_to_input)")
    matryoshka_widths: tuple = setting((), "matryoshka: nested widths, strictly increasing, the last = model.code_size",
                                       rule=positive_ints("widths"))
    threshold_lr: float = setting(0.01, "batchtopk, matryoshka: EMA rate of the inference threshold",
                                  rule=Rule(lambda v: 0 < v <= 1, "a number in (0, 1]"))
    sparsity_warmup_steps: int = setting(0, "steps over which lambda ramps linearly from 0", rule=NON_NEGATIVE_INT)
    # The largest k of the population (`from_grid`): a static bound that lets one sorting network select for
    # every member's traced k (aejax/selection.py); `member_call` hands it to the model with k. 0: model.k.
    k_max: int = field(default=0, metadata={"derived": True})


def unit_rows(s: SAESettings) -> bool:
    return s.decoder_norm == "unit" or (s.decoder_norm == "auto" and s.sae in UNIT_BY_DEFAULT)


# ----------------------------------------------------------------------------- JumpReLU's estimators
def _rectangle(u):
    return ((u > -0.5) & (u < 0.5)).astype(u.dtype)


@jax.custom_vjp
def jumprelu(z, theta, bandwidth):
    """z * H(z - theta). Gradients (Rajamanoharan et al. 2024, eq. 11): to z, H(z - theta) (no estimator
    through the jump); to theta, -(theta / bandwidth) * rect((z - theta) / bandwidth)."""
    return z * (z > theta)


def _jumprelu_fwd(z, theta, bandwidth):
    return jumprelu(z, theta, bandwidth), (z, theta, bandwidth)


def _jumprelu_bwd(res, g):
    z, theta, bandwidth = res
    d_theta = -(theta / bandwidth) * _rectangle((z - theta) / bandwidth) * g
    return (z > theta) * g, jnp.sum(d_theta.reshape(-1, theta.shape[-1]), axis=0), jnp.zeros_like(bandwidth)


jumprelu.defvjp(_jumprelu_fwd, _jumprelu_bwd)


@jax.custom_vjp
def heaviside(z, theta, bandwidth):
    """H(z - theta), counted by the L0 penalty; to theta the gradient -(1 / bandwidth) * rect(...), none to z."""
    return (z > theta).astype(z.dtype)


def _heaviside_fwd(z, theta, bandwidth):
    return heaviside(z, theta, bandwidth), (z, theta, bandwidth)


def _heaviside_bwd(res, g):
    z, theta, bandwidth = res
    d_theta = -(1.0 / bandwidth) * _rectangle((z - theta) / bandwidth) * g
    return jnp.zeros_like(z), jnp.sum(d_theta.reshape(-1, theta.shape[-1]), axis=0), jnp.zeros_like(bandwidth)


heaviside.defvjp(_heaviside_fwd, _heaviside_bwd)


# ----------------------------------------------------------------------------- the model
def batch_top_k(acts: jax.Array, k) -> jax.Array:
    """Keep the k * B largest entries of a batch `(B, W)` of non-negative activations (BatchTopK)."""
    flat = acts.reshape(1, -1)
    keep = at_least_kth_largest(flat, jnp.asarray(k) * acts.shape[0]).reshape(acts.shape)
    return jnp.where(keep & (acts > 0), acts, 0.0)


def firing_rates(f: jax.Array) -> jax.Array:
    """Each latent's share of the batch's rows `(B, W)` where it fired: the loss's L0 is their sum and the dead-
    latent counters' "fired" is > 0, one pass over the code for both (counting per row in int32, XLA's CPU
    spent as long as on a matmul)."""
    return jnp.mean((f != 0).astype(f.dtype), axis=0)


class SparseAutoencoder(nnx.Module):
    def __init__(self, dim: int, width: int, s: SAESettings, rngs: nnx.Rngs):
        rows = jax.random.normal(rngs.params(), (width, dim))
        rows = rows / jnp.linalg.norm(rows, axis=1, keepdims=True) * (1.0 if unit_rows(s) else s.decoder_init_norm)
        self.W_dec = nnx.Param(rows)
        self.W_enc = nnx.Param(rows.T)
        self.b_enc = nnx.Param(jnp.zeros(width))
        self.b_dec = nnx.Param(jnp.zeros(dim))
        self.steps_since_fired = nnx.Param(jnp.zeros(width))   # set by after_update, never by gradient
        if s.sae == "jumprelu":
            self.log_threshold = nnx.Param(jnp.full(width, jnp.log(s.threshold)))
        if s.sae in BATCH_TOPK:
            self.threshold = nnx.Param(jnp.zeros(()))            # set by after_update: the inference threshold
        if s.sae == "gated":
            self.r_mag = nnx.Param(jnp.zeros(width))
            self.b_mag = nnx.Param(jnp.zeros(width))
        self.kind, self.k, self.bandwidth = s.sae, s.k, s.bandwidth
        self.subtract_decoder_bias = s.subtract_decoder_bias

    def _encoded(self, x):
        """(x - b_dec) W_enc, with b_dec's gradient taken through a vector product: through x - b_dec it took a
        full (B x W) x (W x d) matmul, as much as the forward's (scripts/profile_sae_step.py). The second term is
        zero in value (b - sg(b)), so the value is (x - b_dec) W_enc to the bit, with no cancellation between
        x W_enc and b_dec W_enc when b_dec is large; its gradient is -W_enc times the rows' summed gradient."""
        w = self.W_enc[...]
        if not self.subtract_decoder_bias:
            return x @ w
        b, frozen = self.b_dec[...], jax.lax.stop_gradient(self.b_dec[...])
        return (x - frozen) @ w - (b - frozen) @ w

    def pre_activations(self, x):
        return self._encoded(x) + self.b_enc[...]

    def _gated(self, x):
        encoded = self._encoded(x)
        gate = encoded + self.b_enc[...]
        # x (W_enc * exp(r_mag)) scales the columns of x W_enc: one matmul serves both paths.
        magnitude = encoded * jnp.exp(self.r_mag[...]) + self.b_mag[...]
        return gate, (gate > 0) * jax.nn.relu(magnitude)

    def encode(self, x, k=None, bandwidth=None, k_max=None):
        """The code used at inference and for every metric (BatchTopK: f > theta, the learned threshold).
        `k`: a member's own (traced) k; `k_max`: a static bound on it, which `member_call` passes with it
        from the same grid (aejax/selection.py's sorting network needs one). Without it, any k is exact."""
        if self.kind == "gated":
            return self._gated(x)[1]
        pre = self.pre_activations(x)
        if self.kind == "topk":
            return jax.nn.relu(keep_top_k(pre, self.k if k is None else k, k_max))
        if self.kind in BATCH_TOPK:
            acts = jax.nn.relu(pre)
            return jnp.where(acts > jax.lax.stop_gradient(self.threshold[...]), acts, 0.0)
        if self.kind == "jumprelu":
            return pre * (pre > jnp.exp(self.log_threshold[...]))
        return jax.nn.relu(pre)

    def decode(self, f):
        return f @ self.W_dec[...] + self.b_dec[...]

    def __call__(self, x, key=None, k=None, bandwidth=None, k_max=None):
        """Training forward: `(reconstruction, {"code": f, "pre": pre-activations[, "gate": pi_gate]})`.
        BatchTopK selects across this batch here (its inference rule is `encode`'s); JumpReLU carries
        its straight-through estimator."""
        k = self.k if k is None else k
        aux = {}
        if self.kind == "gated":
            pre, f = self._gated(x)
            aux["gate"] = pre
        else:
            pre = self.pre_activations(x)
            if self.kind in BATCH_TOPK:
                f = batch_top_k(jax.nn.relu(pre), k)
            elif self.kind == "jumprelu":
                f = jumprelu(pre, jnp.exp(self.log_threshold[...]), self.bandwidth if bandwidth is None else bandwidth)
            elif self.kind == "topk":
                # From this `pre`, not `encode`'s own: AuxK also reads `pre`, and two copies would each carry a
                # gradient back through the encoder (twice its weight gradient and the decoder bias's matmul).
                f = jax.nn.relu(keep_top_k(pre, k, k_max))
            else:
                f = jax.nn.relu(pre)
        return self.decode(f), dict(aux, code=f, pre=pre, firing=firing_rates(f))


def build(spec, s: SAESettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> SparseAutoencoder:
    return SparseAutoencoder(input_dim, spec.code_size, s, rngs)


# ----------------------------------------------------------------------------- the loss
def summed_squares(a):
    """sum over the last axis of a^2, averaged over the batch."""
    return jnp.mean(jnp.sum(jnp.square(a), axis=-1))


def aux_k_loss(params, pre, residual, dead, k_aux: int):
    """AuxK (Gao et al. 2024 A.2, SAELens's TopK): the k_aux largest pre-activations among dead latents
    reconstruct the detached residual x - x^, scaled by min(dead / k_aux, 1). 0 while no latent is dead.
    The decoder without its bias, as Gao et al.: the residual has none to explain (SAELens's decode adds
    b_dec here; sparsify did too until EleutherAI/sparsify#134 called it a bug)."""
    n_dead = jnp.sum(dead)

    def loss():
        masked = jnp.where(dead, pre, -jnp.inf)
        # The bit search, not lax.top_k (faster on a CPU at these sizes, scripts/topk_selection.py) nor the
        # sorting network, which ran slower inside this lax.cond branch (docs/speed.md, session 36).
        acts = jnp.where(dead & bit_search(masked, k_aux), jax.nn.relu(pre), 0.0)
        scale = jnp.minimum(n_dead / k_aux, 1.0)
        value = scale * summed_squares(acts @ params["W_dec"] - jax.lax.stop_gradient(residual))
        return jnp.where(n_dead > 0, value, 0.0)

    # Skipped while no member of the block has a dead latent (SAELens skips it too): its selection costs
    # as much as the code's (scripts/bench_sae.py, figure 7e). Same value and gradient either way.
    return jax.lax.cond(any_member(n_dead > 0), loss, lambda: jnp.zeros((), pre.dtype))


def loss(spec, s: SAESettings, dataset_size: int | None = None):
    unit = unit_rows(s)

    def terms(params, x, recon, aux, hp, extra=None):
        out = {"sse": summed_squares(recon - x)}
        total = out["sse"]
        f = aux["code"]
        row_norms = 1.0 if unit else jnp.linalg.norm(params["W_dec"], axis=1)
        coefficient = hp["sparsity_coefficient"]
        if s.sparsity_warmup_steps:
            coefficient = coefficient * jnp.minimum(1.0, (hp["step"] + 1) / s.sparsity_warmup_steps)
        if s.sae in ("relu", "gated"):
            gate = jax.nn.relu(aux["gate"]) if s.sae == "gated" else f
            # sum_i mean_rows(f_i) n_i: the norms meet the code after the batch's mean, so neither the
            # penalty nor its gradient broadcasts them over (B, W).
            out["l1"] = jnp.sum(jnp.mean(gate, axis=0) * row_norms)
            total = total + coefficient * out["l1"]
        if s.sae == "gated":  # the gate alone must reconstruct x
            # Through a frozen decoder with unit rows (the paper's setup); with free rows, whose norms the
            # penalty reads, through the live one (SAELens): a decoder frozen in one term and not the other
            # trains worse, its authors found (Rajamanoharan's comment on the paper's LessWrong post).
            frozen = jax.lax.stop_gradient if unit else (lambda a: a)
            out["gate_sse"] = summed_squares(jax.nn.relu(aux["gate"]) @ frozen(params["W_dec"])
                                             + frozen(params["b_dec"]) - x)
            total = total + out["gate_sse"]
        if s.sae == "jumprelu":
            theta = jnp.exp(params["log_threshold"])
            out["l0_penalty"] = jnp.mean(jnp.sum(heaviside(aux["pre"], theta, hp["bandwidth"]), axis=-1))
            total = total + coefficient * out["l0_penalty"]
        if s.sae in WITH_K:
            dead = params["steps_since_fired"] >= s.dead_window
            out["aux_k"] = aux_k_loss(params, aux["pre"], x - recon, dead, s.aux_k or max(1, x.shape[-1] // 2))
            total = total + hp["aux_coefficient"] * out["aux_k"]
        if s.sae == "matryoshka":
            prefixes = [summed_squares(f[:, :w] @ params["W_dec"][:w] + params["b_dec"] - x)
                        for w in s.matryoshka_widths[:-1]]
            out["prefix_sse"] = sum(prefixes) if prefixes else jnp.float32(0)
            total = total + out["prefix_sse"]
        out["l0"] = jnp.sum(aux["firing"])
        out["dead"] = jnp.mean((params["steps_since_fired"] >= s.dead_window).astype(jnp.float32))
        return total, out

    return terms


# ----------------------------------------------------------------------------- the rest of the declaration
def member_call(s: SAESettings, hp: dict) -> dict:
    """A member's own k (top-k kinds) and bandwidth (JumpReLU): traced, so one program serves all. With k
    goes its static bound, the grid's largest k (`from_grid`), so that the sorting network can select."""
    if s.sae in WITH_K:
        return {"k": hp["k"], "k_max": s.k_max or s.k}
    return {"bandwidth": hp["bandwidth"]} if s.sae == "jumprelu" else {}


def member_init(params: dict, hp: dict, s: SAESettings) -> dict:
    """A JumpReLU member starts at its own theta (`population.grid.model.threshold`)."""
    if s.sae != "jumprelu":
        return params
    return dict(params, log_threshold=jnp.full_like(params["log_threshold"], jnp.log(hp["threshold"])))


def adjust_grads(grads: dict, params: dict, s: SAESettings) -> dict:
    """Unit rows: remove the gradient's component along each decoder row (it only changes the norm, which
    the renormalisation undoes; Gao et al. 2024, sparsify)."""
    if not unit_rows(s):
        return grads
    w, g = params["W_dec"], grads["W_dec"]
    return dict(grads, W_dec=g - jnp.sum(g * w, axis=1, keepdims=True) * w)


def after_update(new: dict, old: dict, aux: dict, hp: dict, s: SAESettings) -> dict:
    """What the gradient does not train: the steps since each latent fired, unit decoder rows, BatchTopK's
    inference threshold (EMA of the smallest activation kept in the batch)."""
    fired = aux["firing"] > 0
    new = dict(new, steps_since_fired=jnp.where(fired, 0.0, old["steps_since_fired"] + 1.0))
    if unit_rows(s):
        new["W_dec"] = new["W_dec"] / jnp.linalg.norm(new["W_dec"], axis=1, keepdims=True)
    if s.sae in BATCH_TOPK:
        smallest = jnp.min(jnp.where(aux["code"] > 0, aux["code"], jnp.inf))
        ema = (1 - s.threshold_lr) * old["threshold"] + s.threshold_lr * smallest
        new["threshold"] = jnp.where(jnp.isfinite(smallest), ema, old["threshold"])
    return new


# ----------------------------------------------------------------------------- metrics after training
EVAL_CHUNK = 2048


def report(spec, data, graph, params, hp, healthy, workdir) -> tuple[list[dict], dict, dict]:  # spec: RunSpec
    """Every member's SAE metrics on the test split (`aejax.sae_metrics`: L0, FVU about the eval set's mean,
    explained variance, MSE, cosine, shrinkage, dead and dense latents; with true features, MCC, MMCS,
    uniqueness and firing precision/recall/F1) and the figures across members. Activations scaled for
    training (data=activations' mean_norm) are scaled back first, so MSE is in the data's own units."""
    s = spec.model.family_settings
    scale = float(getattr(data.stream, "scale", 1.0) or 1.0)
    encode = jax.jit(jax.vmap(lambda p, x, h: _codes_and_reconstruction(graph, p, x, h, s), in_axes=(0, None, 0)))
    members = len(healthy)
    stats = [ReconstructionStats() for _ in range(members)]
    truth = getattr(data, "features", None)
    decoders = np.asarray(params["W_dec"])
    matches = [best_match(decoders[m], truth.model.directions) for m in range(members)] if truth else []
    firing = [FiringF1(*match) for match in matches]
    test = np.asarray(data.test, np.float32)
    true_fire = truth.test_activations if truth else None
    for start in range(0, len(test), EVAL_CHUNK):
        x = test[start:start + EVAL_CHUNK]
        codes, recon = (np.asarray(a) for a in encode(params, jnp.asarray(x), hp))
        for m in range(members):
            stats[m].add(x / scale, recon[m] / scale, codes[m])
            if truth:
                firing[m].add(codes[m] != 0, true_fire[start:start + EVAL_CHUNK] != 0)
    per_member, frequencies = [], {}
    for m in range(members):
        result = stats[m].result()
        frequency = result.pop("firing_frequency")
        result.pop("rows", None)
        if truth:
            result["mcc"] = mcc(decoders[m], truth.model.directions)[0]
            result["mmcs"] = mmcs(decoders[m], truth.model.directions)
            result["uniqueness"] = uniqueness(decoders[m], truth.model.directions)
            result.update({k: v for k, v in firing[m].result().items() if k in ("precision", "recall", "f1")})
        per_member.append({k: float(v) for k, v in result.items()})
        if healthy[m]:
            frequencies[f"member {m}"] = frequency
    figures = _figures(s, per_member, frequencies, healthy, truth is not None, Path(workdir) / "figures")
    if truth:  # the true directions and the test rows' true activations, with the run that was scored on them
        save_truth(Path(workdir) / "true_features.npz", truth.model, truth.test_activations)
    record = {"architecture": s.sae, "eval_rows": len(test), "activation_scale": scale,
              "f1_matching": "each latent to its best |cos| feature, averaged over latents (SynthSAEBench)",
              "mcc_matching": "one-to-one Hungarian on |cos| over min(W, F) pairs (SAELens synthetic evals)"}
    return per_member, figures, record


def _codes_and_reconstruction(graph, params, x, hp, s: SAESettings):
    model = nnx.merge(graph, params)
    f = model.encode(x, **member_call(s, hp))
    return f, model.decode(f)


def _figures(s: SAESettings, per_member, frequencies, healthy, with_truth: bool, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    points = [dict(m, architecture=s.sae, label=f"member {i}") for i, m in enumerate(per_member) if healthy[i]]
    if not points:
        return {}
    figures = {"sae_frontier": sae_figures.frontier(points, folder / "sae_frontier.png"),
               "feature_density": sae_figures.feature_density(frequencies, folder / "feature_density.png")}
    if with_truth:
        figures["mcc_against_l0"] = sae_figures.mcc_against_l0(points, folder / "mcc_against_l0.png")
    return {k: str(v) for k, v in figures.items()}


def from_grid(s: SAESettings, grid: dict) -> SAESettings:
    """k_max: the largest k any member trains with (the grid's, or model.k when the grid does not vary it);
    values the checks will refuse are left to them."""
    ks = [v for v in grid.get("model.k", (s.k,)) if is_number(v)]
    return dataclasses.replace(s, k_max=int(max(ks, default=s.k)))


def check(spec, s: SAESettings, grid: dict) -> None:
    width = spec.code_size
    require(spec.architecture == "mlp" and not spec.hidden, "model.hidden", list(spec.hidden),
             "[] for model.family=sae (one linear encoder and one linear decoder; model=sae sets it)")
    for key, applies in (("model.k", WITH_K), ("model.sparsity_coefficient", WITH_COEFFICIENT),
                         ("model.threshold", ("jumprelu",)), ("model.bandwidth", ("jumprelu",)),
                         ("model.aux_coefficient", WITH_K)):
        require(key not in grid or s.sae in applies, key, list(grid.get(key, ())),
                 f"no values unless model.sae={' or '.join(applies)} (model.sae={s.sae} does not read it)")
    if s.sae in WITH_K:
        for k in (s.k, *grid.get("model.k", ())):
            require(k == int(k) and 1 <= k <= width, "model.k", k, f"an integer in [1, model.code_size={width}]")
    if s.aux_k:
        require(s.aux_k <= width, "model.aux_k", s.aux_k, f"0 or an integer in [1, model.code_size={width}]")
    widths = list(s.matryoshka_widths)
    if s.sae == "matryoshka":
        require(bool(widths) and all(a < b for a, b in zip(widths, widths[1:])) and widths[-1] == width,
                 "model.matryoshka_widths", widths,
                 f"strictly increasing widths ending at model.code_size={width}, e.g. [{width // 8}, {width // 2}, {width}]")
    else:
        require(not widths, "model.matryoshka_widths", widths, "[] unless model.sae=matryoshka")


SAE = register(Family(
    name="sae", settings=SAESettings, build=build, loss=loss, label="SAE", check=check, member_call=member_call,
    member_init=member_init, from_grid=from_grid, adjust_grads=adjust_grads, after_update=after_update,
    buffers=("steps_since_fired", "threshold"), report=report))
