"""The study report's analyses (aejax.studies.disentanglement) on member tables with known answers."""

import itertools

import numpy as np
import pandas as pd
import pytest

from aejax.studies.disentanglement import (OBJECTIVES, bad_beats_good, rank_correlations, selection_correlations,
                                           strength_trend, study_table, variance_explained)


def members(score, seeds=(0, 1, 2, 3)) -> pd.DataFrame:
    """Every objective x its six strengths x seeds, `test/mig = score(objective index, strength index, seed)`."""
    rows = []
    for (o, objective), s, seed in itertools.product(enumerate(OBJECTIVES), range(6), seeds):
        column = OBJECTIVES[objective][0]
        rows.append({"status": "finished", "model.objective": objective, column: float(2 ** s), "seed": seed,
                     "test/mig": score(o, s, seed), "test/sap": float(s), "test/neg_elbo": -float(s),
                     "test/mse": float(5 - s)})
    return study_table(pd.DataFrame(rows))


def test_each_member_gets_its_own_objectives_strength():
    table = members(lambda o, s, seed: 0.0)
    assert len(table) == 6 * 6 * 4
    assert sorted(table["strength"].unique()) == [1, 2, 4, 8, 16, 32]
    assert list(dict.fromkeys(table["objective"])) == list(OBJECTIVES)  # the paper's method order


def test_an_unknown_objective_is_refused():
    rows = pd.DataFrame([{"status": "finished", "model.objective": "vae", "model.beta": 1.0, "seed": 0}])
    with pytest.raises(ValueError, match="model.objective=vae is not a study objective"):
        study_table(rows)


@pytest.mark.parametrize("score,share", [
    (lambda o, s, seed: float(o), "objective"),                   # only the objective matters
    (lambda o, s, seed: float((o * 7 + s * 3) % 5), "strength"),  # strengths differ, objective means equal
    (lambda o, s, seed: float(seed % 2), "seed"),                 # only the seed
])
def test_variance_is_split_between_objective_strength_and_seed(score, share):
    table = members(score)
    if share == "strength":  # centre each objective, so the objective explains nothing
        table["test/mig"] -= table.groupby("objective")["test/mig"].transform("mean")
    shares = variance_explained(table, "mig")
    assert shares[share] == pytest.approx(1.0)
    assert all(v == pytest.approx(0.0, abs=1e-12) for k, v in shares.items() if k != share)


def test_a_mixed_score_splits_as_its_sums_of_squares():
    rng = np.random.default_rng(0)
    noise = {k: rng.normal() for k in itertools.product(range(6), range(6), range(4))}
    shares = variance_explained(members(lambda o, s, seed: 3.0 * o + noise[o, s, seed]), "mig")
    assert 0.9 < shares["objective"] < 1.0 and 0 < shares["strength"] < 0.1 and 0 < shares["seed"] < 0.1


def test_bad_beats_good_counts_seed_pairs():
    # Strength decides the score: the worst strength never beats the best.
    assert bad_beats_good(members(lambda o, s, seed: float(s)), "mig") == 0.0
    # Seeds spread further than strengths: good = strength 5 (+0.5), bad = strength 0; seed i adds i.
    # bad seed i beats good seed j when i > j + 0.5: 6 of 16 pairs.
    assert bad_beats_good(members(lambda o, s, seed: seed + 0.1 * s), "mig") == pytest.approx(6 / 16)
    # Chosen on seeds 0-1, compared on seeds 2-3 only.
    assert bad_beats_good(members(lambda o, s, seed: seed + 0.1 * s), "mig", [0, 1], [2, 3]) == pytest.approx(1 / 4)
    # Seeds 0-1 rank the strengths the other way round from seeds 2-3: chosen on 0-1 (best s=0, worst
    # s=5), the worst beats the best on every pair of seeds 2-3 (compared on all seeds: half the pairs).
    flipped = members(lambda o, s, seed: float(s if seed >= 2 else -s))
    assert bad_beats_good(flipped, "mig", [0, 1], [2, 3]) == 1.0
    assert np.isnan(bad_beats_good(flipped, "mig"))  # every strength has the same mean: no best, no worst
    # A tie counts half: the worst strength's seed 0 equals the best's seed 0.
    tied = members(lambda o, s, seed: 0.0 if seed == 0 else float(s))
    assert bad_beats_good(tied, "mig", None, [0]) == 0.5


def test_trends_and_correlations_follow_the_scores():
    table = members(lambda o, s, seed: -float(s) + 0.01 * seed)
    trend = strength_trend(table, "test/mig")
    assert set(trend) == set(OBJECTIVES) and all(v == pytest.approx(-1.0, abs=0.05) for v in trend.values())
    corr = rank_correlations(table, ["mig", "sap"])
    assert corr.loc["mig", "sap"] < -0.9
    selection = selection_correlations(table, ["mig", "sap"])  # ELBO = -neg_elbo = s: agrees with sap
    assert selection.loc["ELBO", "sap"] == pytest.approx(1.0)
    assert selection.loc["reconstruction (-MSE)", "sap"] == pytest.approx(1.0)  # MSE = 5 - s: lower is better
    assert selection_correlations(table, ["sap"], within_objective=True).loc["ELBO", "sap"] == pytest.approx(1.0)
