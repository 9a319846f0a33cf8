"""Figures of populations: every member `trainer.figure_members` chooses is drawn, PER_PAGE to a page of
bounded size, a page that shows only some members names them, and the training curves show every term
metrics.jsonl logged. The figures are drawn from an untrained 6-member VAE (no training: fast)."""

import dataclasses
import json
import struct

import pytest

from aejax.config import parse_run
from aejax.errors import ConfigError
from aejax.run_figures import choose_members, make_figures, spans
from conftest import TINY, compose

MAX_PIXELS = 2000  # a page's width and height at most, whatever the population's size
TERMS = {"loss": 1.0, "mse": 0.1, "kl": 2.0, "tc": 0.3, "disc_loss": 0.7, "disc_acc": 0.5, "grad_norm": 3.0,
         "update_norm": 0.01, "param_norm": 20.0}


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A parsed 6-member VAE run, its data, graph and initial parameters, and a metrics.jsonl that logs
    FactorVAE's terms, norms, speed and validation MSE."""
    import numpy as np

    from aejax.data import load_dataset
    from aejax.models import init_params, model_graph
    from aejax.optim import make_optimizer
    from aejax.population import members
    from aejax.train import init_population, member_keys

    spec = parse_run(compose(TINY + ["model=vae", "population.seeds=6", "model.hidden=[16]", "model.code_size=3",
                                     "trainer.figure_formats=[png,svg]"]))
    data = load_dataset(spec.data)
    graph = model_graph(spec.model, data.dim, data.image_shape)
    keys = member_keys([r["seed"] for r in members(spec)])
    state = init_population(lambda k: init_params(spec.model, data.dim, None, k), make_optimizer(spec.optim, 10), keys)
    lines = [{"step": step, "member": m, **{f"train/{k}": v * (1 + m) / step for k, v in TERMS.items()},
              "perf/ms_per_step": 1.0, **({"val/mse": 0.2} if step == 20 else {})}
             for step in (10, 20) for m in range(6)]
    return spec, data, graph, state["params"], "\n".join(json.dumps(line) for line in lines), np.zeros(6, int)


def draw(population, tmp_path, figure_members):
    spec, data, graph, params, metrics, diverged_at = population
    (tmp_path / "metrics.jsonl").write_text(metrics)
    spec = dataclasses.replace(spec, trainer=dataclasses.replace(spec.trainer, figure_members=figure_members))
    return make_figures(spec, data, graph, params, tmp_path, diverged_at)


def test_six_members_are_all_drawn_four_to_a_page_of_bounded_size(population, tmp_path):
    paths = draw(population, tmp_path, "auto")
    for name in ("reconstructions", "samples", "kl_per_latent", "latent_traversal"):
        assert paths[name] == tmp_path / "figures" / f"{name}.png"  # the first page keeps the name
        assert paths[f"{name}_members_4-5"] == tmp_path / "figures" / f"{name}_members_4-5.png"
        text = "".join((tmp_path / "figures" / f"{page}.svg").read_text() for page in (name, f"{name}_members_4-5"))
        for seed in range(6):
            assert f"s{seed}</text>" in text, (name, seed)  # every member, by its label
        assert "page 2 of 2: members 4-5" in text, name
    for path in paths.values():
        width, height = png_size(path)
        assert width <= MAX_PIXELS and height <= MAX_PIXELS, (path.name, width, height)


def test_a_chosen_list_is_drawn_and_named(population, tmp_path):
    paths = draw(population, tmp_path, (4, 1))
    assert not [p for p in paths if "_members_" in p]  # two members: one page each
    for name in ("reconstructions", "samples", "kl_per_latent", "latent_traversal"):
        text = (tmp_path / "figures" / f"{name}.svg").read_text()
        assert "s1</text>" in text and "s4</text>" in text and "s0</text>" not in text, name
        assert "members 1, 4 of 0-5 drawn; as trainer.figure_members=[4, 1] lists" in text, name


def test_the_training_curves_show_every_logged_term(population, tmp_path):
    paths = draw(population, tmp_path, (0,))
    text = (tmp_path / "figures" / "training_curves.svg").read_text()
    for term in ("loss", "mse per pixel", "kl", "tc", "disc_loss", "disc_acc", "norms"):
        assert f">{term}</text>" in text, term  # a panel's title
    for line in ("s0 (val)", "s0 (grad_norm)", "s0 (update_norm)"):
        assert f">{line}</text>" in text, line  # a legend
    assert "ms_per_step" not in text and "s1</text>" not in text  # speed is not a curve; only member 0
    assert "member 0 of 0-5 drawn" in text
    assert set(paths) >= {"training_curves"} and "training_curves_page2" not in paths


def test_many_terms_page_the_curves(tmp_path):
    from aejax.figures import PANELS_PER_PAGE, training_curves

    names = [f"term{i}" for i in range(PANELS_PER_PAGE + 2)]
    rows = [{"step": s, "member": 0, "train/loss": 1.0 / s, **{f"train/{n}": s * 1.0 for n in names}} for s in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pages = training_curves(tmp_path / "metrics.jsonl", tmp_path / "training_curves.png")
    assert [p.name for p in pages] == ["training_curves.png", "training_curves_page2.png"]
    assert all(max(png_size(p)) <= MAX_PIXELS for p in pages)


def test_auto_draws_the_first_members_of_a_large_population_and_says_how_to_choose():
    numbers, healthy = list(range(20)), [True] * 20
    shown, note = choose_members("auto", numbers, healthy, 8)
    assert shown == list(range(8))
    assert note == ("members 0-7 of 0-19 drawn; trainer.figure_members=auto draws the first 8; "
                    "trainer.figure_members=all draws every member, =[0,5,9] the members listed")
    assert choose_members("all", numbers, healthy, 8) == (numbers, "")
    assert choose_members("auto", numbers[:6], healthy[:6], 8) == (list(range(6)), "")
    healthy[3] = False
    assert choose_members("all", numbers, healthy, 8)[1] == "members 0-2, 4-19 of 0-19 drawn; diverged, not drawn: 3"
    # a shard's members keep their numbers in the whole population
    assert choose_members((2, 12), numbers[10:], healthy[10:], 8) == (
        [2], "member 12 of 10-19 drawn; as trainer.figure_members=[2, 12] lists; not in this run or shard: 2")
    assert spans([0, 1, 2, 3, 5, 7, 8]) == "0-3, 5, 7-8"


@pytest.mark.parametrize("value, expected", [
    ("first", "trainer.figure_members='first' is not allowed; expected one of auto, all; or a non-empty list of "
              "distinct member numbers (integers >= 0)"),
    ([1, 1], "trainer.figure_members=[1, 1] is not allowed; expected one of auto, all; or a non-empty list"),
    ([0, 6], "trainer.figure_members=[0, 6] is not allowed; expected member numbers 0 to 5 (the population has 6 "
             "members)"),
])
def test_a_bad_figure_members_is_one_line(value, expected):
    config = compose(TINY + ["population.seeds=6"])
    config["trainer"]["figure_members"] = value
    with pytest.raises(ConfigError) as err:
        parse_run(config)
    assert str(err.value).startswith(expected)
