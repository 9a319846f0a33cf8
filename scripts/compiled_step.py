"""The compiled training program of a bench.py figure, written as HLO text without names or source
metadata, so that two commits' programs can be compared line by line:

    uv run --locked python scripts/compiled_step.py /tmp/after.hlo
    cd <older tree> && PYTHONPATH=. <this venv's python> <this tree>/scripts/compiled_step.py /tmp/before.hlo
    diff /tmp/before.hlo /tmp/after.hlo

The program comes from the scripts/bench.py of the folder it runs in, with that folder's aejax (PYTHONPATH):
figure 5's (the study's conv VAE, one member, 20 steps a call), or with `--model mlp` figure 2's MNIST MLP.
"""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "scripts"))  # the bench.py of the tree being compiled

import jax.numpy as jnp  # noqa: E402

from bench import CONV_BATCH, STUDY_VAE, build  # noqa: E402


def normalised(text: str) -> str:
    """HLO without what differs between two builds of the same program: value names, metadata, the
    file and stack tables."""
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    text = re.sub(r"%[A-Za-z0-9_.-]+", "%x", text)
    text = re.sub(r"/\*index=\d+\*/", "", text)
    text = re.sub(r"([(,] ?)[A-Za-z_][\w.-]*(?=: )", r"\1x", text)  # the parameters of a computation
    return "\n".join(line for line in text.splitlines() if re.match(r"ENTRY|%x|  |}", line)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--model", choices=("conv", "mlp"), default="conv")
    args = parser.parse_args()
    if args.model == "conv":
        program, state, keys, hp = build(STUDY_VAE, 64 * 64, 6400, CONV_BATCH, [0], False, image_shape=(64, 64, 1),
                                         learning_rate=1e-4)
        x = jnp.zeros((6400, 64 * 64))
    else:
        program, state, keys, hp = build(dict(hidden=(1000, 500, 250), code_size=30), 784, 6400, 256, [0], False)
        x = jnp.zeros((6400, 784))
    text = normalised(program.lower(state, keys, x, hp, 0, 1, 20).compile().as_text())
    Path(args.out).write_text(text)
    print(f"{args.out}: {len(text.splitlines())} lines of HLO; hyperparameters {sorted(hp)}")


if __name__ == "__main__":
    main()
