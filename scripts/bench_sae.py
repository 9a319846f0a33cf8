"""aejax's sparse autoencoders against SAELens's trainer (torch, CPU) on the same synthetic rows
(scripts/bench.py figure 7; also runs alone):

    uv run --locked --group bench python scripts/bench_sae.py [--quick] [--archs topk,relu] [--width 512] ...
    (the bench group adds torch and sae-lens; or uv run --locked --group bench python scripts/bench.py --figures 7)

Rows: `aejax.data.features` (`make_feature_model`, `sample`): F true unit directions in d dimensions, Zipf
firing, magnitudes ~5, a bias of norm 0.5, no hierarchy or correlation. Both sides train on the same
training rows (each side reshuffles them every epoch with its own generator) and are scored on the same
held-out rows. Same width, batch, Adam (0.9, 0.999, eps 1e-8), constant learning rate, and gradient-norm
clipping at 1.0 on both (SAELens's `SAETrainer._train_step` always clips at 1.0; aejax runs with
`optim.clip_norm=1.0` to do the same work).

SAELens side (sae-lens, pinned in the `bench` group): `TopKTrainingSAE(TopKTrainingSAEConfig(...))` and
`StandardTrainingSAE(StandardTrainingSAEConfig(...))` (ReLU + L1 weighted by decoder norms) trained by
`sae_lens.training.sae_trainer.SAETrainer.fit` (its own step: `training_forward_pass`, dead-latent and
firing counters, backward, clip, Adam, schedulers) and, for populations, by
`sae_lens.training.multi_sae_trainer.MultiSAETrainer.fit` (one `SAETrainer.step` per SAE per batch, a
Python loop). A timed chunk is one `fit` call that trains `--chunk` more steps (total_training_samples
raised by chunk x batch); tqdm is off (TQDM_DISABLE=1), W&B off.

aejax side: the engine `aejax-train` uses (aejax.run.prepare): `make_step(make_loss(...), optimizer,
hooks=state_hooks(...))` -> `make_member_program` -> `compile_population`, compiled ahead of the timing;
one call trains `--chunk` steps. Norms every 100 steps (trainer.log_every's default); a population masks
divergence (the default for populations), a single SAE does not.

a. One SAE per architecture: steps/s of aejax against SAELens; ratio = aejax / SAELens.
b. A population of `--members` small SAEs (width `--pop-width`), member k (TopK) or l1 coefficient (ReLU)
   differing per member: aejax as one population program, SAELens's MultiSAETrainer; SAE-steps/s, ratio
   = aejax / SAELens. Two aejax lines: each epoch's order drawn by sorting random keys (trainer.shuffle=sort,
   the default) and by a Feistel permutation (trainer.shuffle=feistel, aejax/shuffle.py: no sort).
c. TopK selection cost in aejax (population of b): k per member, traced (`at_least_kth_largest`: the
   sorting network where it pays, else the bit search; aejax/selection.py), against the same program with
   the bit search whatever aejax would choose, with one static k by `lax.top_k` (before session 36 this
   line ran the bit search with a static k, though it was labelled lax.top_k), and with the selection
   removed (ReLU, everything else equal: AuxK, unit rows); ratio = traced-k rate / no-selection rate. AuxK's own selection runs only while some member of the block has a dead
   latent (SAELens skips it too), so in these short runs (no latent dead yet) c times the code's selection.
d. Quality at equal steps: each side's SAE of (a) topped up to `--quality-steps` steps; MCC
   (aejax.sae_metrics.mcc: Hungarian on |cos| of decoder rows against the true directions) and FVU
   (aejax.sae_metrics.reconstruction_stats, about the eval set's mean) on the same held-out rows;
   ratio = aejax FVU / SAELens FVU (below 1: aejax reconstructs better).
e. Why calls are whole epochs here: the population of b (ReLU) in calls of a fifth of an epoch against calls of
   one epoch. Each call draws every member's shuffle of the epoch (`jax.random.permutation`, a sort, which
   XLA's CPU runs slowly: 43% of the population's time in 20-step calls, by the profiler), so calls shorter than
   an epoch repeat it; aejax-train sizes calls by time (trainer.call_seconds, 10 s: whole epochs at these sizes).
   ratio = short-call rate / whole-epoch rate.

Timing: both sides are compiled/warmed first; then rounds alternate (SAELens chunk, aejax chunk, ...),
each side's rate is the median over its rounds. torch.set_num_threads(os.cpu_count()); JAX uses every core
(one XLA CPU device per core, a population's members split across them, as scripts/bench.py sets).

Caveats (both libraries at their defaults where they differ):
- TopK decoder rows: aejax keeps them unit norm (renormalised after each step, the gradient's radial part
  removed); SAELens leaves them free and multiplies the pre-activations by the rows' norms
  (`rescale_acts_by_decoder_norm=True`). The same model class, different parameterisations. With
  `--decoder-norm free --decoder-init-norm 0.1` aejax's rows are free and start at SAELens's norm 0.1: at
  d = 768 that learns faster in the first few hundred steps (docs/speed.md, "TopK at d = 768: quality").
- aejax's TopK selects with a traced k even for one SAE (k is a member hyperparameter; the sorting network
  up to width 512, the bit search above); SAELens uses `torch.topk` with a static k.
- SAELens's step also updates `act_freq_scores` (feature-density logging) and syncs to the host once a step
  to count dead latents (`int(dead_neuron_mask.sum())` in the AuxK loss); aejax's step keeps its counters
  on the device, with no host round trip inside a call.
- Initialisation differs in its random draws (both: decoder rows Gaussian/Kaiming directions scaled,
  encoder = decoder transpose, biases 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

if "jax" not in sys.modules:  # alone: one XLA CPU device per core, as scripts/bench.py sets
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count()}")
os.environ.setdefault("TQDM_DISABLE", "1")

import jax
import jax.numpy as jnp
import numpy as np

SAELENS_MISSING = ("figure 7 needs torch and sae-lens (the `bench` dependency group): "
                   "uv sync --locked --group bench")


# ----------------------------------------------------------------------------- data
def make_rows(features: int, dim: int, n_train: int, n_test: int, seed: int = 0):
    from aejax.data.features import make_feature_model, sample

    model = make_feature_model(features, dim, zipf_exponent=0.5, firing_max=0.4, firing_min=0.005,
                               magnitude_mean=(5.0, 4.0), magnitude_std=(0.5, 0.5), bias=0.5, seed=seed)
    x_train, acts = sample(model, n_train, [seed, 1])
    x_test, _ = sample(model, n_test, [seed, 2])
    return model, x_train, x_test, float(acts.getnnz() / n_train)


# ----------------------------------------------------------------------------- aejax
class AejaxSide:
    """A population of SAEs of one architecture in aejax's engine, compiled for `chunk`-step calls.
    `member`: {setting: values per member} (k, sparsity_coefficient); `settings`: other model settings
    (decoder_norm, decoder_init_norm). `selection`: None (the family's own), "bit" (the bit search,
    whatever aejax/selection.py would choose), "static" (lax.top_k with the first member's k for every
    member) or "none" (no top-k: ReLU)."""

    def __init__(self, arch: str, width: int, x, batch: int, lr: float, chunk: int, seeds, member: dict,
                 selection: str | None = None, shuffle: str = "sort", settings: dict | None = None):
        from aejax.config import OptimSpec, member_hyperparameters, model_spec
        from aejax.families import sae as sae_family
        from aejax.models import init_params, make_loss, model_graph, state_hooks
        from aejax.optim import make_optimizer
        from aejax.train import compile_population, init_population, make_member_program, make_step, member_keys, \
            population_block

        first = {name: values[0] for name, values in member.items()}
        spec = model_spec(family="sae", sae=arch, hidden=(), code_size=width, **first, **(settings or {}))
        if "k" in member:  # the bound aejax-train's from_grid takes from population.grid (aejax/selection.py)
            spec = dataclasses.replace(spec, family_settings=dataclasses.replace(spec.family_settings,
                                                                                 k_max=int(max(member["k"]))))
        self.spec = spec
        self.dim, self.n, self.batch, self.chunk = x.shape[1], len(x), batch, chunk
        self.graph = model_graph(spec, self.dim, None)
        optimizer = make_optimizer(OptimSpec(learning_rate=lr, clip_norm=1.0), 10 ** 6)
        hooks = state_hooks(spec)
        program = compile_population(
            make_member_program(make_step(make_loss(spec, self.graph, use_contractive=False, use_corruption=False,
                                                    dataset_size=self.n), optimizer, None, hooks),
                                self.n, batch, norms_every=100, mask_divergence=len(seeds) > 1, shuffle=shuffle),
            shared_data=True, block=population_block(spec.architecture))
        self.keys = member_keys(list(seeds))
        names = [key.split(".")[-1] for key in member_hyperparameters(spec)]
        self.hp = {name: jnp.asarray(member[name] if name in member else
                                     [lr if name == "learning_rate" else spec.get(name)] * len(seeds), jnp.float32)
                   for name in names}
        self.state = init_population(lambda k: init_params(spec, self.dim, None, k), optimizer, self.keys, None,
                                     self.hp, hooks.member_init)
        self.x = jnp.asarray(x)
        original = sae_family.keep_top_k
        if selection == "none":
            sae_family.keep_top_k = lambda h, k, k_max=None: h
        elif selection == "bit":  # no bound given: the bit search, whatever the width and k
            sae_family.keep_top_k = lambda h, k, k_max=None: original(h, k)
        elif selection == "static":  # lax.top_k with one k for every member, ties at the k-th value kept
            static_k = int(first["k"])
            sae_family.keep_top_k = lambda h, k, k_max=None: jnp.where(
                h >= jax.lax.top_k(h, static_k)[0][..., -1:], h, 0.0)
        try:
            self.program = program.lower(self.state, self.keys, self.x, self.hp, 0, 1, chunk).compile()
        finally:
            sae_family.keep_top_k = original
        self.steps = 0
        self.members = len(seeds)

    def __call__(self) -> int:
        """Train `chunk` more steps; returns the SAE-steps done."""
        self.state, terms = self.program(self.state, self.keys, self.x, self.hp, self.steps)
        jax.block_until_ready(terms)
        self.steps += self.chunk
        return self.members * self.chunk

    def evaluate(self, x_test, directions, member: int = 0) -> dict:
        from aejax.families.sae import _codes_and_reconstruction
        from aejax.sae_metrics import mcc, reconstruction_stats

        params = jax.tree.map(lambda a: a[member], self.state["params"])
        hp = {k: v[member] for k, v in self.hp.items()}
        s = self.spec.family_settings
        f, x_hat = jax.jit(lambda p, x, h: _codes_and_reconstruction(self.graph, p, x, h, s))(
            params, jnp.asarray(x_test), hp)
        stats = reconstruction_stats(x_test, np.asarray(x_hat), np.asarray(f))
        return dict(mcc=mcc(np.asarray(params["W_dec"]), directions)[0], fvu=stats["fvu"], l0=stats["l0"])


# ----------------------------------------------------------------------------- SAELens
def saelens_sae(arch: str, width: int, dim: int, k: int, l1: float):
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    if arch == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=dim, d_sae=width, k=int(k)))
    if arch == "relu":
        return StandardTrainingSAE(StandardTrainingSAEConfig(d_in=dim, d_sae=width, l1_coefficient=float(l1)))
    raise ValueError(f"no SAELens counterpart wired for {arch!r} (topk, relu)")


class Batches:
    """The training rows, reshuffled every epoch (torch generator), one batch a `next`; `hook`: as a dict."""

    def __init__(self, x, batch: int, hook: str | None = None, seed: int = 0):
        import torch

        self.x, self.batch, self.hook = torch.from_numpy(np.asarray(x)), batch, hook
        self.generator = torch.Generator().manual_seed(seed)
        self.per_epoch, self.i, self.perm = len(x) // batch, 0, None

    def __iter__(self):
        return self

    def __next__(self):
        import torch

        j = self.i % self.per_epoch
        if j == 0:
            self.perm = torch.randperm(len(self.x), generator=self.generator)
        self.i += 1
        rows = self.x[self.perm[j * self.batch:(j + 1) * self.batch]]
        return rows if self.hook is None else {self.hook: rows}


class SAELensSide:
    """SAELens's own trainer: `SAETrainer.fit` for one SAE, `MultiSAETrainer.fit` for several; one call
    trains `chunk` more steps (fit's loop runs until total_training_samples, raised by chunk x batch)."""

    def __init__(self, arch: str, width: int, x, batch: int, lr: float, chunk: int, ks, l1s, seed: int = 0):
        import torch
        from sae_lens.config import LoggingConfig, SAETrainerConfig
        from sae_lens.training.multi_sae_trainer import MultiSAETrainer
        from sae_lens.training.sae_trainer import SAETrainer

        torch.manual_seed(seed)
        self.saes = [saelens_sae(arch, width, x.shape[1], k, l1) for k, l1 in zip(ks, l1s)]
        cfg = SAETrainerConfig(total_training_samples=0, train_batch_size_samples=batch, lr=lr, lr_end=lr,
                               lr_scheduler_name="constant", adam_beta1=0.9, adam_beta2=0.999, device="cpu",
                               logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0, checkpoint_path=None,
                               save_final_checkpoint=False)
        if len(self.saes) == 1:
            self.trainer = SAETrainer(cfg=cfg, sae=self.saes[0], data_provider=Batches(x, batch))
        else:
            names = [f"sae{m}" for m in range(len(self.saes))]
            self.trainer = MultiSAETrainer(cfg=cfg, saes=dict(zip(names, self.saes)),
                                           hook_names={n: "x" for n in names}, data_provider=Batches(x, batch, "x"))
        self.batch, self.chunk, self.steps = batch, chunk, 0

    def __call__(self) -> int:
        self.steps += self.chunk
        self.trainer.cfg = dataclasses.replace(self.trainer.cfg, total_training_samples=self.steps * self.batch)
        self.trainer.fit()
        return len(self.saes) * self.chunk

    def evaluate(self, x_test, directions, member: int = 0) -> dict:
        import torch
        from aejax.sae_metrics import mcc, reconstruction_stats

        sae = self.saes[member]
        with torch.no_grad():
            xt = torch.from_numpy(np.asarray(x_test))
            f = sae.encode(xt)
            x_hat = sae.decode(f)
        stats = reconstruction_stats(x_test, x_hat.numpy(), f.numpy())
        return dict(mcc=mcc(sae.W_dec.detach().numpy(), directions)[0], fvu=stats["fvu"], l0=stats["l0"])


# ----------------------------------------------------------------------------- timing
def alternate(sides: dict, rounds: int) -> dict:
    """Each side called once (warm-up), then `rounds` rounds in turn; name -> median SAE-steps/s."""
    for side in sides.values():
        side()
    rates = {name: [] for name in sides}
    for _ in range(rounds):
        for name, side in sides.items():
            tic = time.perf_counter()
            done = side()
            rates[name].append(done / (time.perf_counter() - tic))
    return {name: statistics.median(r) for name, r in rates.items()}


def spread(first, last, n: int, integer: bool):
    values = np.geomspace(first, last, n) if n > 1 else np.array([first])
    return [int(round(v)) for v in values] if integer else [float(v) for v in values]


# ----------------------------------------------------------------------------- the figure
def figure_7(args, results: dict) -> None:
    try:
        import torch
        import sae_lens
    except ImportError:
        print(SAELENS_MISSING)
        return
    from aejax.sae_metrics import mcc  # noqa: F401  (fails early if aejax lacks the SAE metrics)
    from aejax.selection import network_pays

    threads = os.cpu_count()
    torch.set_num_threads(args.torch_threads or threads)
    quick = args.quick
    width, pop_width = (128, 64) if quick else (args.width, args.pop_width)
    members = 4 if quick else args.members
    batch, chunk, rounds = (128, 5, 2) if quick else (args.batch, args.chunk, args.rounds)
    quality_steps = 20 if quick else args.quality_steps
    archs = args.archs.split(",")
    steps_per_epoch = chunk * max(1, -(-args.epoch_steps // chunk))
    model, x_train, x_test, true_l0 = make_rows(args.features, args.dim, batch * steps_per_epoch,
                                                500 if quick else args.test_rows)
    print(f"7. SAEs against SAELens {sae_lens.__version__} (torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; jax {jax.__version__}, {jax.device_count()} CPU devices, {threads} cores): "
          f"{args.features} true features in d={args.dim} (mean true L0 {true_l0:.1f}), "
          f"{len(x_train):,} training rows, batch {batch}, Adam lr {args.lr:g}, clip 1.0, chunks of {chunk} steps")
    results["sae_lens_version"] = sae_lens.__version__
    own = dict(decoder_norm=args.decoder_norm, decoder_init_norm=args.decoder_init_norm)
    if args.decoder_norm != "auto":
        print(f"7. aejax's decoder rows: model.decoder_norm={args.decoder_norm}, model.decoder_init_norm="
              f"{args.decoder_init_norm:g} (SAELens's parameterisation: free rows of norm 0.1)")
    coefficient = dict(topk=("k", args.k), relu=("sparsity_coefficient", args.l1))

    single = {}
    for arch in archs:  # (a)
        name, value = coefficient[arch]
        ours = AejaxSide(arch, width, x_train, batch, args.lr, chunk, [0], {name: [value]}, settings=own)
        theirs = SAELensSide(arch, width, x_train, batch, args.lr, chunk, [args.k], [args.l1])
        rates = alternate({"saelens": theirs, "aejax": ours}, rounds)
        ratio = rates["aejax"] / rates["saelens"]
        print(f"7a. one {arch} SAE {args.dim}->{width} ({name} {value:g}), batch {batch}: SAELens "
              f"{rates['saelens']:,.1f} steps/s; aejax {rates['aejax']:,.1f} steps/s; ratio {ratio:.2f}")
        results[f"sae_single_{arch}"] = dict(rates, ratio=ratio)
        single[arch] = (ours, theirs)

    for arch in archs:  # (b)
        name, value = coefficient[arch]
        values = spread(max(1, value // 4), value, members, True) if arch == "topk" else \
            spread(value / 4, value * 4, members, False)
        ours = {shuffle: AejaxSide(arch, pop_width, x_train, batch, args.lr, chunk, range(members), {name: values},
                                   shuffle=shuffle, settings=own) for shuffle in ("sort", "feistel")}
        theirs = SAELensSide(arch, pop_width, x_train, batch, args.lr, chunk,
                             values if arch == "topk" else [args.k] * members,
                             values if arch == "relu" else [args.l1] * members)
        rates = alternate({"saelens": theirs, "aejax": ours["sort"], "aejax_feistel": ours["feistel"]}, rounds)
        for side, how in (("aejax", "trainer.shuffle=sort, the default"), ("aejax_feistel", "trainer.shuffle=feistel")):
            ratio = rates[side] / rates["saelens"]
            print(f"7b. {members} {arch} SAEs {args.dim}->{pop_width} ({name} {values[0]:g}..{values[-1]:g} per member), "
                  f"batch {batch}: SAELens MultiSAETrainer {rates['saelens']:,.1f} SAE-steps/s; aejax one population "
                  f"program ({how}) {rates[side]:,.1f} SAE-steps/s; ratio {ratio:.2f}")
        results[f"sae_population_{arch}"] = dict(rates, ratio=rates["aejax"] / rates["saelens"],
                                                 ratio_feistel=rates["aejax_feistel"] / rates["saelens"], members=members)

    if "topk" in archs:  # (c)
        ks = spread(max(1, args.k // 4), args.k, members, True)
        chosen = "sorting network" if network_pays(pop_width, max(ks)) else "bit search"
        sides = {sel: AejaxSide("topk", pop_width, x_train, batch, args.lr, chunk, range(members), {"k": ks},
                                selection=None if sel == "traced" else sel, settings=own)
                 for sel in ("traced", "bit", "static", "none")}
        rates = alternate(sides, rounds)
        ratio = rates["traced"] / rates["none"]
        print(f"7c. {members} topk SAEs {args.dim}->{pop_width} in aejax, SAE-steps/s: k per member traced "
              f"({ks[0]}..{ks[-1]}, {chosen}, aejax's choice) {rates['traced']:,.1f}; the same by the bit search "
              f"{rates['bit']:,.1f}; one static k={ks[0]} (lax.top_k) {rates['static']:,.1f}; no selection (ReLU) "
              f"{rates['none']:,.1f}; ratio {ratio:.2f}")
        results["sae_topk_selection"] = dict(rates, ratio=ratio, chosen=chosen)

    if "relu" in archs and not quick:  # (e)
        values = spread(args.l1 / 4, args.l1 * 4, members, False)
        short = max(1, steps_per_epoch // 5)
        sides = {calls: AejaxSide("relu", pop_width, x_train, batch, args.lr, calls, range(members),
                                  {"sparsity_coefficient": values}, settings=own) for calls in (short, steps_per_epoch)}
        rates = alternate(sides, rounds)
        ratio = rates[short] / rates[steps_per_epoch]
        print(f"7e. {members} relu SAEs {args.dim}->{pop_width} in aejax, SAE-steps/s: calls of {short} steps "
              f"{rates[short]:,.1f}; calls of a whole epoch ({steps_per_epoch} steps) {rates[steps_per_epoch]:,.1f} "
              f"(every call draws each member's shuffle of the epoch's {len(x_train):,} rows, a sort); ratio {ratio:.2f}")
        results["sae_call_length"] = {str(k): v for k, v in rates.items()} | dict(ratio=ratio)

    for arch, (ours, theirs) in single.items():  # (d)
        for side in (ours, theirs):
            while side.steps < quality_steps:
                side()
        a = ours.evaluate(x_test, model.directions)
        b = theirs.evaluate(x_test, model.directions)
        ratio = a["fvu"] / b["fvu"]
        print(f"7d. {arch} SAE {args.dim}->{width} after {ours.steps} steps (both), {len(x_test):,} held-out rows: "
              f"SAELens MCC {b['mcc']:.3f} FVU {b['fvu']:.4f} L0 {b['l0']:.1f}; "
              f"aejax MCC {a['mcc']:.3f} FVU {a['fvu']:.4f} L0 {a['l0']:.1f}; ratio {ratio:.2f}")
        results[f"sae_quality_{arch}"] = dict(steps=ours.steps, aejax=a, saelens=b, ratio=ratio)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("figure 7 (scripts/bench_sae.py)")
    group.add_argument("--archs", default="topk,relu", help="SAE architectures: topk, relu (SAELens 'standard')")
    group.add_argument("--features", type=int, default=512, help="true features F")
    group.add_argument("--dim", type=int, default=64, help="d: values per row")
    group.add_argument("--width", type=int, default=512, help="width of the single SAE (a, d)")
    group.add_argument("--pop-width", type=int, default=256, help="width of the population's SAEs (b, c)")
    group.add_argument("--members", type=int, default=16, help="SAEs in the population (b, c)")
    group.add_argument("--batch", type=int, default=1024)
    group.add_argument("--k", type=int, default=16, help="TopK's k (the population: k/4..k)")
    group.add_argument("--l1", type=float, default=1.0, help="ReLU's L1 coefficient (the population: l1/4..4 l1)")
    group.add_argument("--lr", type=float, default=1e-3)
    group.add_argument("--chunk", type=int, default=100,
                       help="steps per timed call (default: one epoch, as aejax-train's calls of trainer.call_seconds "
                            "are at these sizes; shorter calls shuffle again each call: figure 7e)")
    group.add_argument("--rounds", type=int, default=5, help="timed calls per side (median)")
    group.add_argument("--epoch-steps", type=int, default=100, help="steps per epoch (training rows / batch)")
    group.add_argument("--quality-steps", type=int, default=1000, help="steps before the quality figure (d)")
    group.add_argument("--test-rows", type=int, default=10_000)
    group.add_argument("--decoder-norm", default="auto", choices=("auto", "unit", "free"),
                       help="aejax's model.decoder_norm (auto: unit rows for TopK, Gao et al. and sparsify's "
                            "convention; free with --decoder-init-norm 0.1 is SAELens's)")
    group.add_argument("--decoder-init-norm", type=float, default=0.1, help="aejax's model.decoder_init_norm")
    group.add_argument("--torch-threads", type=int, default=0,
                       help="torch threads (0: every core, the figure's setting; on a host shared with other work "
                            "torch's OpenMP threads at every core can be 10x slower than at 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds, not a measurement")
    parser.add_argument("--json", help="also write the figures to this file")
    add_arguments(parser)
    args = parser.parse_args()
    results = {}
    figure_7(args, results)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
