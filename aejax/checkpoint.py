"""Orbax checkpoints of a whole population: its training state, saved under the number of steps done.

A checkpoint that cannot be read (a truncated array file, a half-copied folder) is named in
one line (`UnreadableCheckpoint`); `restore_newest_readable` falls back to the newest one
that reads, which is what a resume wants.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

logging.getLogger("absl").setLevel(logging.CRITICAL)  # Orbax logs every file operation, and a failed read at length
log = logging.getLogger(__name__)


class UnreadableCheckpoint(RuntimeError):
    def __init__(self, path: Path, error: BaseException):
        first_line = next((l.strip() for l in str(error).splitlines() if l.strip()), type(error).__name__)
        super().__init__(f"checkpoint {path} cannot be read ({type(error).__name__}: {first_line[:200]})")
        self.path = path


def _on_this_process(leaf) -> jax.ShapeDtypeStruct:
    """`leaf`'s shape and dtype, with its own sharding or else this process's first device."""
    abstract = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(abstract, "sharding", None) is None:
        abstract = jax.ShapeDtypeStruct(abstract.shape, abstract.dtype,
                                        sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    return abstract


class PopulationCheckpointer:
    def __init__(self, directory: Path, max_to_keep: int = 3):
        self.directory = Path(directory).absolute()
        self.options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep)
        self.manager = ocp.CheckpointManager(self.directory, options=self.options)

    def save(self, step: int, state: dict) -> None:
        """Saved under the number of steps done (an epoch's end, or wherever a signal stopped the
        run); `state` holds no non-finite parameter (a masked member's optimiser state may be NaN:
        it is never used again)."""
        self.manager.save(step, args=ocp.args.StandardSave(state))

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, step: int, state_like: dict) -> dict:
        """The state saved at `step`; `state_like` gives the tree, shapes and dtypes (arrays or
        `jax.ShapeDtypeStruct`s). A leaf without a sharding (shapes only) is read onto this process's
        first device: a run trained with its members split across several devices (XLA_FLAGS'
        device count) then reads anywhere, where Orbax alone refuses the saved topology.
        Raises `UnreadableCheckpoint` with one line."""
        abstract = jax.tree.map(_on_this_process, state_like)
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # TensorStore, JSON, shape or tree mismatch: all mean "this one is unusable"
            raise UnreadableCheckpoint(self.directory / str(step), err) from None

    def restore_newest_readable(self, state_like: dict) -> tuple[int, dict | None]:
        """(step, state) of the newest checkpoint that reads; each unreadable newer one is moved
        aside with a warning (the run saves that step again). (0, None) when none reads."""
        for step in reversed(self.steps()):
            try:
                return step, self.restore(step, state_like)
            except UnreadableCheckpoint as err:
                log.warning("%s; moved to %s, resuming from the checkpoint before it", err, self.set_aside(step))
        log.warning("no readable checkpoint in %s: training starts again from step 0", self.directory)
        return 0, None

    def set_aside(self, step: int) -> Path:
        """Move an unreadable checkpoint out of the way (the run will save that step again), kept
        beside the run for inspection rather than deleted."""
        target = self.directory.parent / "unreadable_checkpoints" / str(step)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            target = target.with_name(f"{step}-{len(list(target.parent.iterdir()))}")
        (self.directory / str(step)).rename(target)
        self.manager.close()
        self.manager = ocp.CheckpointManager(self.directory, options=self.options)
        return target

    def close(self) -> None:
        """Wait for the saves in flight and release the manager; a second call does nothing."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.manager.wait_until_finished()
        self.manager.close()
