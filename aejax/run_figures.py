"""The figures of a finished run: training curves (every logged term, a line per member), and reconstructions
(for a family with a Gaussian latent: samples, latent traversals, KL per latent) of the healthy members that
`trainer.figure_members` chooses, `figures.PER_PAGE` to a page.

Pages: the first keeps the figure's name (`latent_traversal.png`), the next are named by their members
(`latent_traversal_members_4-7.png`); a page that does not show every member says which it shows."""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax import figures
from aejax.config import CURVE_MEMBERS_AUTO, FIGURE_MEMBERS_AUTO, RunSpec
from aejax.data import Dataset
from aejax.latents import TRAVERSAL_VALUES, batched, kl_per_latent, latent_order, traverse
from aejax.models import member_model, member_settings
from aejax.population import member_label, members, varied_settings
from aejax.train import NORM_TERMS

log = logging.getLogger(__name__)
HOW = "trainer.figure_members=all draws every member, =[0,5,9] the members listed"


def spans(numbers: list[int]) -> str:
    """Member numbers as runs: [0, 1, 2, 3, 5, 7, 8] -> "0-3, 5, 7-8"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def choose_members(choice, numbers: list[int], healthy: list[bool], limit: int) -> tuple[list[int], str]:
    """The positions (in the run's rows) of the members a figure draws, and a note naming them when they
    are not all of the run's members (else ""). `choice` is `trainer.figure_members`, `numbers` each row's
    member number, `healthy` which rows may be drawn (a diverged member is not), `limit` the most `auto`
    draws."""
    listed = isinstance(choice, tuple)
    wanted = [numbers.index(m) for m in sorted(choice) if m in numbers] if listed else list(range(len(numbers)))
    diverged = [numbers[i] for i in wanted if not healthy[i]]
    shown = [i for i in wanted if healthy[i]]
    cut = choice == "auto" and len(shown) > limit
    shown = shown[:limit] if cut else shown
    if len(shown) == len(numbers):
        return shown, ""
    drawn = [numbers[i] for i in shown]
    notes = [f"member{'s' * (len(drawn) > 1)} {spans(drawn)} of {spans(numbers)} drawn" if drawn else "no member drawn"]
    if listed:
        notes.append(f"as trainer.figure_members={list(choice)} lists")
        if len(wanted) < len(choice):
            notes.append(f"not in this run or shard: {spans(sorted(set(choice) - set(numbers)))}")
    if cut:
        notes.append(f"trainer.figure_members=auto draws the first {limit}; {HOW}")
    if diverged:
        notes.append(f"diverged, not drawn: {spans(diverged)}")
    return shown, "; ".join(notes)


def make_figures(spec: RunSpec, data: Dataset, graph, params, workdir: Path, diverged_at) -> dict:
    """Every figure of the run: {name: PNG path}, a name per page (`training_curves_page2`,
    `latent_traversal_members_4-7`)."""
    out_dir = workdir / "figures"
    out_dir.mkdir(exist_ok=True)
    figures.FORMATS[:] = list(spec.trainer.figure_formats)
    rows = members(spec)
    varied = varied_settings(rows)
    numbers = [r["member"] for r in rows]
    labels = {r["member"]: member_label(r, varied) for r in rows}
    choice = spec.trainer.figure_members
    lines, note = choose_members(choice, numbers, [True] * len(rows), CURVE_MEMBERS_AUTO)
    if note:
        log.info("training curves: %s", note)
    curves = figures.training_curves(workdir / "metrics.jsonl", out_dir / "training_curves.png", labels,
                                     [numbers[i] for i in lines], note, tuple(f"train/{k}" for k in NORM_TERMS))
    paths = {p.stem: p for p in curves}
    shown, note = choose_members(choice, numbers, list(np.asarray(diverged_at) == 0), FIGURE_MEMBERS_AUTO)
    if note:
        log.info("figures of members: %s", note)
    if not shown:
        return paths
    models = {i: member_model(graph, params, i, member_settings(spec.model, rows[i])) for i in shown}
    titles = {i: labels[numbers[i]] for i in shown}
    x = data.test[:10]

    def paged(name: str, draw) -> None:
        """`draw(positions, path, note)` once per page of `shown`; each page's PNG into `paths`."""
        chunks = [shown[k:k + figures.PER_PAGE] for k in range(0, len(shown), figures.PER_PAGE)]
        for k, chunk in enumerate(chunks):
            page = [numbers[i] for i in chunk]
            where = f"page {k + 1} of {len(chunks)}: members {spans(page)}" if len(chunks) > 1 else ""
            path = draw(chunk, figures.page_path(out_dir / f"{name}.png", page, k == 0),
                        "; ".join(n for n in (where, note) if n))
            paths[path.stem] = path

    def reconstructions(chunk, path, page_note):
        # Compiled, not op by op: a conv model's matmul lowering is many small ops (12 s eager, VQ-VAE on MNIST).
        recons = [batched(lambda xb, m=models[i]: m.decode(m.encode(xb)), x) for i in chunk]
        if data.image_shape:
            return figures.image_grid([x, *recons], data.image_shape, path,
                                      ["test input", *(f"reconstruction: {titles[i]}" for i in chunk)], page_note)
        return figures.vectors_plot([x[:4], *(r[:4] for r in recons)], path,
                                    ["input", *(titles[i] for i in chunk)], page_note)

    paged("reconstructions", reconstructions)
    if spec.model.code_size == 2:
        first = shown[0]
        codes = np.asarray(models[first].encode(jnp.asarray(data.test)))
        paths["latent_scatter"] = figures.latent_scatter(
            codes, data.test_labels, out_dir / "latent_scatter.png",
            f"member {numbers[first]} ({titles[first]}) of {spans(numbers)}" if len(numbers) > 1 else "")
    if hasattr(models[shown[0]], "sample") and data.image_shape:   # a model with a prior to sample from (VAE, WAE)
        paged("samples", lambda chunk, path, page_note: figures.image_grid(
            [np.asarray(models[i].sample(jax.random.key(0), 10)) for i in chunk], data.image_shape, path,
            [f"samples: {titles[i]}" for i in chunk], page_note))
    if spec.model.declaration.gaussian_latent:
        kls = {i: kl_per_latent(models[i], data.test) for i in shown}
        paged("kl_per_latent", lambda chunk, path, page_note: figures.kl_per_latent(
            [kls[i] for i in chunk], path, [titles[i] for i in chunk], page_note))
        if data.image_shape:
            paged("latent_traversal", lambda chunk, path, page_note: _traversals(
                [models[i] for i in chunk], [kls[i] for i in chunk], x, data.image_shape, path,
                [titles[i] for i in chunk], page_note))
    return paths


def _traversals(models, kls, x, image_shape, path: Path, titles: list[str], note: str) -> Path:
    """One page of latent traversals: each member's TRAVERSAL_ROWS latents of largest KL."""
    dims = [latent_order(kl)[:figures.TRAVERSAL_ROWS] for kl in kls]
    grids = [traverse(m, x[:figures.TRAVERSAL_IMAGES], TRAVERSAL_VALUES, d) for m, d in zip(models, dims)]
    return figures.latent_traversal(grids, dims, kls, TRAVERSAL_VALUES, image_shape, path, titles, note)
