"""Every member of a finished (or stopped) run, from its run directory: its config.yaml rebuilds the model
and the data splits, an Orbax checkpoint (the last unless `epoch` is given) supplies the weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import yaml

from aejax.checkpoint import PopulationCheckpointer, UnreadableCheckpoint
from aejax.config import RunSpec, parse_run
from aejax.data import Dataset, load_dataset
from aejax.errors import ConfigError
from aejax.models import critic_for, init_params, model_graph
from aejax.optim import make_optimizer
from aejax.population import members
from aejax.train import init_population, member_keys


@dataclass
class RestoredPopulation:
    spec: RunSpec
    data: Dataset
    graph: object            # the model's static structure: nnx.merge(graph, member params)
    params: dict             # every member's parameters, leading axis = member
    rows: list[dict]         # the members (member, seed, hyperparameters), in params' order
    epoch: int
    diverged_at: object = None  # (M,) the step each member diverged at (0: healthy), from the checkpoint


def restore_population(run_dir: str | Path, epoch: int | None = None, data_root: str | None = None,
                       member: int | None = None) -> RestoredPopulation:
    """Every member trained in `run_dir` (`load_run`'s arguments; `member`, if given, must be one of them)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir={run_dir} is not a run directory; expected one with config.yaml (an aejax-train output)")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    if data_root is not None:
        config["data"]["root"] = data_root
    spec = parse_run(config)
    rows = members(spec)
    numbers = [r["member"] for r in rows]  # a shard's members keep their numbers in the whole population
    if member is not None and member not in numbers:
        raise ConfigError(f"member={member} is not allowed; expected {numbers[0]} to {numbers[-1]} "
                          f"(members in this run: {len(rows)})")
    checkpoints = PopulationCheckpointer(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else None
    available = sorted(checkpoints.manager.all_steps()) if checkpoints else []  # numbered by steps done
    if not available:
        raise ConfigError(f"run_dir={run_dir} has no checkpoint; expected checkpoints/<step> (did the run finish?)")

    data = load_dataset(spec.data)
    steps_per_epoch = data.num_train // spec.trainer.batch_size
    epochs = [s // steps_per_epoch for s in available if s % steps_per_epoch == 0]
    step = available[-1] if epoch is None else epoch * steps_per_epoch
    if step not in available:
        raise ConfigError(f"epoch={epoch} is not allowed; expected one of {epochs} (the epochs with a checkpoint)")
    epoch = step // steps_per_epoch
    optimizer = make_optimizer(spec.optim, steps_per_epoch * spec.trainer.epochs)
    keys = member_keys([r["seed"] for r in rows])
    # Shapes only: the checkpoint restores into them without initialising a population.
    state_like = jax.eval_shape(
        lambda k: init_population(lambda kk: init_params(spec.model, data.dim, data.image_shape, kk), optimizer, k,
                                  critic_for(spec.model)), keys)
    try:
        restored = checkpoints.restore(step, state_like)
        params, diverged_at = restored["params"], np.asarray(restored["diverged_at"])
    except UnreadableCheckpoint as err:
        readable = [s // steps_per_epoch for s in available
                    if s != step and s % steps_per_epoch == 0 and _readable(checkpoints, s, state_like)]
        raise ConfigError(f"{err}; readable epochs: {readable or 'none'} (pass epoch=...)") from None
    finally:
        checkpoints.close()
    return RestoredPopulation(spec, data, model_graph(spec.model, data.dim, data.image_shape), params, rows, epoch,
                              diverged_at)


def _readable(checkpoints: PopulationCheckpointer, epoch: int, state_like) -> bool:
    try:
        checkpoints.restore(epoch, state_like)
        return True
    except UnreadableCheckpoint:
        return False
