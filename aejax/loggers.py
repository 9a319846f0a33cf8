"""Where metrics go: `metrics.jsonl` always, and W&B unless `logger=none`.

W&B never prompts: the mode is `logger.mode`, else $WANDB_MODE, else "offline".
A population of at most `logger.max_member_runs` members logs one W&B run per member
(its config holds that member's hyperparameters, so W&B's sweep and parallel-coordinates
views work); a larger population logs one run with population means and a `members` table.
All runs of one experiment, and all jobs of a multirun, share `logger.group`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from aejax.config import LoggerSpec


class MetricsFile:
    """One JSON line per logged step and member: {"step", "member", "train/loss", ...}."""

    def __init__(self, path: Path, keep_until_step: int | None = None):
        self.path = Path(path)
        if keep_until_step is not None and self.path.exists():  # resuming: drop lines after the checkpoint
            lines = [l for l in self.path.read_text().splitlines() if json.loads(l)["step"] <= keep_until_step]
            self.path.write_text("".join(l + "\n" for l in lines))
        elif keep_until_step is None:
            self.path.write_text("")
        self.file = open(self.path, "a")

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


def wandb_mode(spec: LoggerSpec) -> str:
    if os.environ.get("WANDB_MODE") == "":
        del os.environ["WANDB_MODE"]  # wandb rejects an empty mode; empty means unset here
    return spec.mode or os.environ.get("WANDB_MODE") or "offline"


def wandb_settings():
    """Quiet, local-only settings: no console capture, no system stats, no git or code upload."""
    import wandb

    return wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True, save_code=False)


class WandbLogger:
    def __init__(self, spec: LoggerSpec, run_dir: Path, config: dict, members: list[dict], name: str):
        import wandb

        self.wandb = wandb
        self.per_member = len(members) <= spec.max_member_runs
        self.members = members
        common = dict(project=spec.project, entity=spec.entity, group=spec.group or name, dir=str(run_dir),
                      mode=wandb_mode(spec), reinit="create_new", settings=wandb_settings())
        if self.per_member:
            self.runs = [wandb.init(name=f"{name}-m{m['member']}", job_type="member",
                                    config={**config, "member": m}, **common) for m in members]
        else:
            self.runs = [wandb.init(name=name, job_type="population",
                                    config={**config, "population_size": len(members)}, **common)]

    def log(self, rows: list[dict]) -> None:
        """`rows` are metrics.jsonl lines for one step, one per member."""
        if self.per_member:
            for run, row in zip(self.runs, rows):
                run.log({k: v for k, v in row.items() if k not in ("step", "member")}, step=row["step"])
        else:
            keys = [k for k in rows[0] if k not in ("step", "member")]
            mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
            self.runs[0].log(mean, step=rows[0]["step"])

    def summarize(self, summaries: list[dict], figures: dict[str, Path]) -> None:
        images = {f"figures/{k}": self.wandb.Image(str(p)) for k, p in figures.items()}
        if self.per_member:
            for run, summary in zip(self.runs, summaries):
                run.summary.update(_flat(summary))
            self.runs[0].log(images)
        else:
            rows = [_flat(s) for s in summaries]
            columns = list(rows[0])
            table = self.wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
            self.runs[0].log({"members": table, **images})
            self.runs[0].summary.update({f"mean/{k}": float(np.mean([r[k] for r in rows]))
                                         for k in columns if isinstance(rows[0][k], (int, float))})

    def finish(self, exit_code: int = 0) -> None:
        for run in self.runs:
            run.finish(exit_code=exit_code)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


class NoLogger:
    def log(self, rows): pass
    def summarize(self, summaries, figures): pass
    def finish(self, exit_code=0): pass


def make_logger(spec: LoggerSpec, run_dir: Path, config: dict, members: list[dict], name: str):
    if spec.name == "none" or wandb_mode(spec) == "disabled":
        return NoLogger()
    return WandbLogger(spec, run_dir, config, members, name)
