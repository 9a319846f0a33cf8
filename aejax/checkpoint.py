"""Orbax checkpoints of a whole population: params, optimiser state and the epoch reached."""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp


logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every file operation at INFO


class PopulationCheckpointer:
    def __init__(self, directory: Path, max_to_keep: int = 3):
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep))

    def save(self, epoch: int, params, opt_state) -> None:
        """Saved under the number of completed epochs; only ever called on finite states."""
        self.manager.save(epoch, args=ocp.args.StandardSave({"params": params, "opt_state": opt_state}))

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, epoch: int, params_like, opt_state_like):
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"params": params_like, "opt_state": opt_state_like})
        restored = self.manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
        return restored["params"], restored["opt_state"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
