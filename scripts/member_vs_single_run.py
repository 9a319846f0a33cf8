"""How a population member compares with a single run of the same seed (the README's sentence).

    uv run python scripts/member_vs_single_run.py

Trains seed 1 alone, in a population of 2 and in a population of 4 (the TINY digits run of the
tests) and prints whether the two population members are bitwise equal and how far the
single run's parameters are from them.
"""

import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import TINY, compose  # noqa: E402

from aejax.restore import restore_population  # noqa: E402
from aejax.run import train_and_evaluate  # noqa: E402


def member_leaves(params, member):
    return [np.asarray(a[member]) for a in jax.tree.leaves(params)]


def main() -> None:
    out = Path(tempfile.mkdtemp())
    runs = {}
    for name, seeds in (("alone", "[1]"), ("of_2", "[0,1]"), ("of_4", "[3,1,2,0]")):
        summary = train_and_evaluate(compose(TINY + [f"population.seeds={seeds}"]), out / name)
        runs[name] = summary, restore_population(out / name).params  # the final checkpoint's parameters
    leaves = {name: member_leaves(params, 0 if name == "alone" else 1) for name, (_, params) in runs.items()}
    same = all((a == b).all() for a, b in zip(leaves["of_2"], leaves["of_4"]))
    gap = max(float(np.abs(a - b).max()) for a, b in zip(leaves["alone"], leaves["of_2"]))
    print(f"seed 1 in a population of 2 and of 4: bitwise equal parameters: {same}")
    print(f"seed 1 alone (unbatched) against in a population: largest parameter difference {gap:.2g}")
    for name, (summary, _) in runs.items():
        print(f"  test mse, {name}: {summary['members'][0 if name == 'alone' else 1]['test']['mse']:.9f}")


if __name__ == "__main__":
    main()
