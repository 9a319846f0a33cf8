"""VQ-VAE (`model.family=vqvae`; van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
Learning", arXiv 1711.00937): a deterministic encoder whose output is snapped to the nearest of K learned
vectors, and a decoder of the snapped vectors.

The encoder's output is P positions of D numbers each, z_e `(B, P, D)`:
- `model.architecture=conv` (images): the conv stack's feature map, each of its h x w spatial positions
  mapped to D numbers by one linear map shared across positions (a 1x1 convolution); the decoder maps
  each position back to the stack's channels and runs the transposed convs. `model.code_size` is not read;
- `model.architecture=mlp`: the MLP's `model.code_size` outputs cut into P = code_size / D positions.
A codebook e of K vectors (`model.codebook_size` x `model.embedding_dim`) replaces each position by its
nearest code, k = argmin_j ||z_e - e_j||^2, z_q = e_k, and the decoder reads z_q. The gradient skips the
quantiser (straight-through, eq. 3): the decoder's input is z_e + sg(z_q - z_e), so the encoder receives
the decoder's gradient unchanged. The loss (eq. 3, with log p(x|z_q) a unit Gaussian: squared error):

    sum_pixels (x^ - x)^2  +  ||sg(z_e) - e||^2  +  beta ||z_e - sg(e)||^2

each a sum over the image's pixels or its P x D code numbers, averaged over the batch (aejax's
convention, `aejax.objectives`; sonnet averages over numbers instead, which only rescales beta's partner
terms against the reconstruction). The second term, the codebook loss, moves the codes; the third, the
commitment loss (weight beta, `model.commitment_weight`, 0.25 as in the paper and sonnet), keeps the
encoder near them. Their values are equal; they differ in what the gradient reaches.

`model.codebook_update=ema` drops the codebook loss and moves the codes as exponential moving averages of
their assignments instead (the paper's appendix A.1; sonnet's `VectorQuantizerEMA`), with decay gamma
(`model.decay`, 0.99):

    N_i <- gamma N_i + (1 - gamma) n_i,   m_i <- gamma m_i + (1 - gamma) sum_{z_e assigned to i} z_e,
    e_i = m_i / N~_i,   N~_i = (N_i + eps) / (sum_j N_j + K eps) * sum_j N_j   (Laplace smoothing, eps 1e-5)

zero-debiased as sonnet's `ExponentialMovingAverage` (the average after t updates is divided by
1 - gamma^t), stored here already debiased: the step-t update then uses the decay
gamma (1 - gamma^(t-1)) / (1 - gamma^t), 0 at the first step. As in sonnet, a code no vector chose in
the first batch therefore moves to the origin.

Dead codes (`model.restarts`, off by default as in the paper, sonnet and pythae): a code unused for
`model.dead_window` steps, or (EMA only) whose average count N_i falls below `model.dead_count`
(lucidrains' `threshold_ema_dead_code`; 0: not used), is replaced by an encoding drawn at random (with
replacement) from the current batch's B x P encodings, and its count reset (lucidrains'
vector-quantize-pytorch, `expire_codes_`): N_i to max(dead_count, 1), m_i to that count times the code.

State the gradient does not train, set by `after_update` and kept in checkpoints: `steps_unused` (K,)
and, for EMA, `ema_count` (K,) and `ema_sum` (K, D) (the codebook too: its gradient is zero then).
Per member (population.grid): model.commitment_weight, model.decay, optim.learning_rate and the seed;
K, D and the network are multirun axes (they change array shapes).

Logged each step (train/...): commitment, codebook (the loss variant), perplexity exp(-sum_i p_i log p_i)
of the batch's code frequencies p (sonnet), codes_in_use (codes chosen in the batch), dead (codes unused
for dead_window steps counting this batch, or, EMA with dead_count, whose count before it is below
dead_count: with restarts, about those replaced this step). On the test set
(summary.json, each member's test): perplexity, codes_in_use, dead_codes (K - in use), quantisation
error, and bits_per_image = P log2 K, the size of the code without entropy coding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.families.registry import Family, register
from aejax.nets import ACTIVATIONS, INITS, MLPDecoder, MLPEncoder, check_conv_fits
from aejax.nets.conv import apply_convs, apply_deconvs, conv_layers, deconv_layers, resolve_conv_impl
from aejax.objectives import squared_error
from aejax.settings import NON_NEGATIVE, POSITIVE_INT, Rule, require, setting

UPDATES = ("loss", "ema")
LAPLACE_EPS = 1e-5      # sonnet's epsilon
EVAL_CHUNK = 1000


@dataclass(frozen=True)
class VQVAESettings:
    codebook_size: int = setting(512, "K: vectors in the codebook", rule=POSITIVE_INT)
    embedding_dim: int = setting(16, "D: numbers per code vector (mlp: model.code_size / D positions)",
                                 rule=POSITIVE_INT)
    commitment_weight: float = setting(0.25, "beta: weight of the commitment loss ||z_e - sg(e)||^2",
                                       rule=NON_NEGATIVE, member=True, label="β")
    codebook_update: str = setting("loss", "how the codes move: the codebook loss (paper, eq. 3) or EMA (appendix A.1)",
                                   choices=UPDATES)
    decay: float = setting(0.99, "EMA decay gamma (codebook_update=ema)",
                           rule=Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"), member=True, label="decay")
    restarts: bool = setting(False, "replace dead codes by random encodings of the current batch")
    dead_window: int = setting(100, "steps without use after which a code is dead (logged; restarted if restarts)",
                               rule=POSITIVE_INT)
    dead_count: float = setting(0.0, "ema: a code whose EMA count falls below this is dead too (0: not used)",
                                rule=NON_NEGATIVE)
    output_activation: str = setting("sigmoid", "activation of the reconstruction: sigmoid for data in [0, 1], "
                                     "linear otherwise", choices=tuple(ACTIVATIONS))


# ----------------------------------------------------------------------------- the quantiser
def nearest_code(z: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest code (squared Euclidean distance) for each vector of `z (..., D)`; codebook `(K, D)`."""
    distances = (jnp.sum(z**2, axis=-1, keepdims=True) - 2 * z @ codebook.T + jnp.sum(codebook**2, axis=-1))
    return jnp.argmin(distances, axis=-1)


def straight_through(z_e: jax.Array, z_q: jax.Array) -> jax.Array:
    """z_q forward, the identity backward: the encoder gets the decoder's gradient (eq. 3)."""
    return z_e + jax.lax.stop_gradient(z_q - z_e)


def perplexity(indices: jax.Array, k: int) -> jax.Array:
    """exp of the entropy of the code frequencies of `indices` (any shape): K when all codes are equally used."""
    p = jnp.mean(jax.nn.one_hot(indices.reshape(-1), k), axis=0)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def ema_decay(decay, step) -> jax.Array:
    """The decay that updates a zero-debiased average at step `step` (counted from 0): sonnet's hidden
    h_t = gamma h_{t-1} + (1 - gamma) v, average h_t / (1 - gamma^t), written as an update of the average."""
    t = jnp.asarray(step, jnp.float32) + 1.0
    return decay * (1.0 - decay ** (t - 1.0)) / (1.0 - decay**t)


def laplace_smoothed(counts: jax.Array, eps: float = LAPLACE_EPS) -> jax.Array:
    """(N_i + eps) / (n + K eps) * n with n = sum N_i (sonnet's VectorQuantizerEMA): no count is 0."""
    n = jnp.sum(counts)
    return (counts + eps) / (n + counts.shape[0] * eps) * n


# ----------------------------------------------------------------------------- the model
class VQVAE(nnx.Module):
    def __init__(self, spec, s: VQVAESettings, input_dim: int, image_shape, rngs: nnx.Rngs):
        act, init, d = ACTIVATIONS[spec.activation], INITS[spec.init], s.embedding_dim
        self.conv = spec.architecture == "conv"
        self.activation, self.dim, self.k = act, d, s.codebook_size
        self.output_activation = ACTIVATIONS[s.output_activation]
        if self.conv:
            check_conv_fits(spec, image_shape)
            kernels, strides, decoder_kernels = spec.conv_layers()
            self.impl = resolve_conv_impl(spec.conv_impl)
            self.image_shape = tuple(image_shape)
            scale = math.prod(strides)
            self.map_shape = (image_shape[0] // scale, image_shape[1] // scale)
            c = spec.channels[-1]
            self.convs = conv_layers(image_shape[-1], spec.channels, kernels, strides, init, self.impl, rngs)
            self.to_code = nnx.Linear(c, d, kernel_init=init, rngs=rngs)      # a 1x1 conv to D channels
            self.from_code = nnx.Linear(d, c, kernel_init=init, rngs=rngs)    # and back
            self.deconvs = deconv_layers(image_shape[-1], spec.channels, decoder_kernels, strides, init, self.impl, rngs)
            self.positions = self.map_shape[0] * self.map_shape[1]
        else:
            self.encoder = MLPEncoder(input_dim, spec.hidden, spec.code_size, act, rngs=rngs, kernel_init=init)
            self.decoder = MLPDecoder(spec.code_size, spec.hidden, input_dim, act, rngs=rngs, kernel_init=init)
            self.positions = spec.code_size // d
        # sonnet's initialiser: VarianceScaling(1, fan_in, uniform) over its (D, K) matrix, limit sqrt(3 / D)
        limit = math.sqrt(3.0 / d)
        codebook = jax.random.uniform(rngs.params(), (self.k, d), minval=-limit, maxval=limit)
        self.codebook = nnx.Param(codebook)
        self.steps_unused = nnx.Param(jnp.zeros(self.k))        # set by after_update, never by gradient
        if s.codebook_update == "ema":
            self.ema_count = nnx.Param(jnp.zeros(self.k))
            self.ema_sum = nnx.Param(jnp.zeros((self.k, d)))

    def encode_continuous(self, x):
        """z_e `(B, P, D)`: the encoder's output before quantisation."""
        if not self.conv:
            return self.encoder(x).reshape(x.shape[0], self.positions, self.dim)
        y = apply_convs(self.convs, x.reshape((-1, *self.image_shape)), self.activation)
        return self.to_code(y).reshape(x.shape[0], self.positions, self.dim)

    def quantize(self, z_e):
        """(indices `(B, P)`, z_q `(B, P, D)`)."""
        codebook = self.codebook[...]
        indices = nearest_code(z_e, codebook)
        return indices, codebook[indices]

    def indices(self, x):
        """The stored code of each image: P indices into the codebook, `(B, P)`."""
        return self.quantize(self.encode_continuous(x))[0]

    def encode(self, x):
        """The quantised code z_q, flat `(B, P * D)` (what `decode` reads)."""
        z_q = self.quantize(self.encode_continuous(x))[1]
        return z_q.reshape(x.shape[0], -1)

    def decode_logits(self, h):
        if not self.conv:
            return self.decoder(h)
        y = self.activation(self.from_code(h.reshape(-1, *self.map_shape, self.dim)))
        return apply_deconvs(self.deconvs, y, self.activation, self.impl).reshape(h.shape[0], -1)

    def decode(self, h):
        return self.output_activation(self.decode_logits(h))

    def __call__(self, x, key=None):
        z_e = self.encode_continuous(x)
        indices, z_q = self.quantize(z_e)
        logits = self.decode_logits(straight_through(z_e, z_q).reshape(x.shape[0], -1))
        aux = {"code": z_q.reshape(x.shape[0], -1), "z_e": z_e, "z_q": z_q, "indices": indices, "decoder_out": logits}
        if key is not None:  # which of the batch's encodings a restarted code takes (after_update)
            aux["restart_pick"] = jax.random.randint(key, (self.k,), 0, indices.size)
        return self.output_activation(logits), aux


def build(spec, s: VQVAESettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> VQVAE:
    return VQVAE(spec, s, input_dim, image_shape, rngs)


# ----------------------------------------------------------------------------- the loss
def per_image(a):
    """Sum over an image's code numbers, averaged over the batch."""
    return jnp.mean(jnp.sum(a.reshape(a.shape[0], -1), axis=-1))


def loss(spec, s: VQVAESettings, dataset_size: int | None = None):
    def terms(params, x, recon, aux, hp, extra=None):
        z_e, z_q = aux["z_e"], aux["z_q"]
        out = {"commitment": per_image((z_e - jax.lax.stop_gradient(z_q)) ** 2)}
        total = jnp.mean(squared_error(recon, x)) + hp["commitment_weight"] * out["commitment"]
        if s.codebook_update == "loss":
            out["codebook"] = per_image((jax.lax.stop_gradient(z_e) - z_q) ** 2)
            total = total + out["codebook"]
        used = jnp.zeros(s.codebook_size, bool).at[aux["indices"].reshape(-1)].set(True)
        out["perplexity"] = perplexity(aux["indices"], s.codebook_size)
        out["codes_in_use"] = jnp.sum(used).astype(jnp.float32)
        out["dead"] = jnp.sum(dead_codes(jnp.where(used, 0.0, params["steps_unused"] + 1.0),
                                         params.get("ema_count"), s)).astype(jnp.float32)
        return total, out

    return terms


def dead_codes(steps_unused, ema_count, s: VQVAESettings):
    """Codes unused for dead_window steps or (EMA, dead_count > 0) with an average count below dead_count."""
    dead = steps_unused >= s.dead_window
    if ema_count is not None and s.dead_count > 0:
        dead = dead | (ema_count < s.dead_count)
    return dead


# ----------------------------------------------------------------------------- state the gradient does not set
def after_update(new: dict, old: dict, aux: dict, hp: dict, s: VQVAESettings) -> dict:
    """After the optimiser: the usage counters, the EMA statistics and codebook (ema), then restarts.
    Every value is computed from `old` and the batch's assignments (`aux`), so a weight decay of the
    optimiser cannot touch them."""
    k = s.codebook_size
    z = jax.lax.stop_gradient(aux["z_e"]).reshape(-1, s.embedding_dim)
    onehot = jax.nn.one_hot(aux["indices"].reshape(-1), k, dtype=z.dtype)
    counts = jnp.sum(onehot, axis=0)
    new = dict(new, steps_unused=jnp.where(counts > 0, 0.0, old["steps_unused"] + 1.0))
    if s.codebook_update == "ema":
        rho = ema_decay(hp["decay"], hp["step"])
        new["ema_count"] = rho * old["ema_count"] + (1 - rho) * counts
        new["ema_sum"] = rho * old["ema_sum"] + (1 - rho) * (onehot.T @ z)
        new["codebook"] = new["ema_sum"] / laplace_smoothed(new["ema_count"])[:, None]
    if s.restarts:
        new = restart_dead(new, z[aux["restart_pick"]], s)
    return new


def restart_dead(params: dict, picks: jax.Array, s: VQVAESettings) -> dict:
    """Replace each dead code by its row of `picks` `(K, D)` (random encodings of the batch), its counters reset."""
    dead = dead_codes(params["steps_unused"], params.get("ema_count"), s)
    out = dict(params, codebook=jnp.where(dead[:, None], picks, params["codebook"]),
               steps_unused=jnp.where(dead, 0.0, params["steps_unused"]))
    if "ema_count" in params:
        reset = max(s.dead_count, 1.0)
        out["ema_count"] = jnp.where(dead, reset, params["ema_count"])
        out["ema_sum"] = jnp.where(dead[:, None], reset * picks, params["ema_sum"])
    return out


# ----------------------------------------------------------------------------- test metrics
def code_statistics(model: VQVAE, x) -> dict:
    """Sums over the rows of `x`: code counts `(K,)`, squared error and quantisation error per image."""
    z_e = model.encode_continuous(x)
    indices, z_q = model.quantize(z_e)
    recon = model.decode(z_q.reshape(x.shape[0], -1))
    return {"counts": jnp.sum(jax.nn.one_hot(indices.reshape(-1), model.k), axis=0),
            "quantisation_error": jnp.sum((z_e - z_q) ** 2), "sse": jnp.sum(squared_error(recon, x))}


def report(spec, data, graph, params, hp, healthy, workdir) -> tuple[list[dict], dict, dict]:
    """Each member's code use on the test split: perplexity, codes in use, dead codes, quantisation error
    per image, and the rate: bits_per_image = P log2 K (the indices, without entropy coding)."""
    s = spec.model.family_settings
    stats = jax.jit(lambda p, xb: code_statistics(nnx.merge(graph, p), xb))
    test = np.asarray(data.test, np.float32)
    per_member = []
    positions = None
    for m in range(len(healthy)):
        member = jax.tree.map(lambda a: a[m], params)
        totals = None
        for start in range(0, len(test), EVAL_CHUNK):
            part = {k: np.asarray(v, np.float64) for k, v in stats(member, jnp.asarray(test[start:start + EVAL_CHUNK])).items()}
            totals = part if totals is None else {k: totals[k] + part[k] for k in totals}
        counts = totals["counts"]
        positions = int(round(counts.sum() / len(test)))
        p = counts / counts.sum()
        per_member.append({"perplexity": float(np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))),
                           "codes_in_use": int(np.sum(counts > 0)), "dead_codes": int(np.sum(counts == 0)),
                           "quantisation_error_per_image": float(totals["quantisation_error"] / len(test)),
                           "bits_per_image": positions * math.log2(s.codebook_size)})
    record = {"positions": positions, "codebook_size": s.codebook_size, "embedding_dim": s.embedding_dim,
              "bits_per_image": positions * math.log2(s.codebook_size), "codebook_update": s.codebook_update,
              "restarts": s.restarts, "rate": "positions x log2(codebook_size) bits, no entropy coding"}
    return per_member, {}, record


# ----------------------------------------------------------------------------- the declaration
def check(spec, s: VQVAESettings, grid: dict) -> None:
    if spec.architecture == "mlp":
        require(spec.code_size % s.embedding_dim == 0, "model.code_size", spec.code_size,
                f"a multiple of model.embedding_dim={s.embedding_dim} (the MLP's code is cut into "
                f"code_size / embedding_dim positions)")
    else:
        require(not spec.dense, "model.dense", list(spec.dense),
                "[] for model.family=vqvae (its code is the conv stack's feature map, one code per position)")
    ema = s.codebook_update == "ema"
    require(ema or s.decay == VQVAESettings.decay, "model.decay", s.decay,
            f"{VQVAESettings.decay} (its default) unless model.codebook_update=ema (the codebook loss has no decay)")
    require(ema or "model.decay" not in grid, "model.decay", list(grid.get("model.decay", ())),
            "no values unless model.codebook_update=ema (the codebook loss has no decay)")
    require(ema or s.dead_count == 0, "model.dead_count", s.dead_count,
            "0 unless model.codebook_update=ema (it compares the EMA counts)")


VQVAE_FAMILY = register(Family(
    name="vqvae", settings=VQVAESettings, build=build, loss=loss, label="VQ-VAE", check=check,
    after_update=after_update, buffers=("steps_unused", "ema_count", "ema_sum"), report=report))
