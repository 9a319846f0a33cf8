"""Where metrics go: `metrics.jsonl` always, and W&B unless `logger=none`.

W&B never prompts: the mode is `logger.mode`, else $WANDB_MODE, else "offline"; online with
no credentials is refused before the run starts (`check_wandb_login`). W&B never decides a
run's outcome either: any failure of it becomes one warning and the local files go on.
A population of at most `logger.max_member_runs` members logs one W&B run per member
(its config holds that member's hyperparameters, so W&B's sweep and parallel-coordinates
views work); a larger population logs one run with population means and a `members` table.
All runs of one experiment, and all jobs of a multirun, share `logger.group`. Run ids come
from the run directory, so a resumed or requeued run continues the same W&B runs.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
from pathlib import Path

import numpy as np

from aejax.config import LoggerSpec
from aejax.errors import ConfigError

log = logging.getLogger(__name__)


class MetricsFile:
    """One JSON line per logged step and member: {"step", "member", "train/loss", ...}."""

    def __init__(self, path: Path, keep_until_step: int | None = None):
        self.path = Path(path)
        if keep_until_step is not None and self.path.exists():  # resuming: drop lines after the checkpoint
            self.path.write_text("".join(l + "\n" for l in self._lines_until(keep_until_step)))
        elif keep_until_step is None:
            self.path.write_text("")
        self.file = open(self.path, "a")

    def _lines_until(self, step: int) -> list[str]:
        kept, lines = [], self.path.read_text().splitlines()
        for i, line in enumerate(lines):
            try:
                row = json.loads(line)
            except ValueError:
                if i == len(lines) - 1:  # the process died while writing it
                    log.warning("%s: dropped a torn last line (%d characters) written when the run was stopped",
                                self.path, len(line))
                    continue
                raise ConfigError(f"{self.path} line {i + 1} is not JSON; the file is damaged: pick another "
                                  "hydra.run.dir") from None
            if row["step"] <= step:
                kept.append(line)
        return kept

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


def check_wandb_login(spec: LoggerSpec) -> None:
    """Online W&B needs credentials; without them wandb would prompt (or fail later): refuse now."""
    if spec.name == "none" or wandb_mode(spec) != "online":
        return
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0].split(":")[0]
    try:
        if netrc.netrc(os.environ.get("NETRC") or None).authenticators(host):
            return
    except (OSError, netrc.NetrcParseError):
        pass
    raise ConfigError("logger.mode=online needs W&B credentials and none were found (no WANDB_API_KEY, no "
                      f"~/.netrc entry for {host}); run `wandb login` first, or use logger.mode=offline")


def wandb_settings():
    """Quiet, local-only settings: no console capture, no system stats, no code upload. Git
    state is not captured by wandb: aejax's provenance (in the run config) carries it."""
    import wandb

    return wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True, save_code=False)


def member_config(config: dict, member: dict) -> dict:
    """The run config with this member's own seed and hyperparameters at their usual keys."""
    out = {**config, **{k: dict(v) for k, v in config.items() if isinstance(v, dict)}}
    for key, value in member.items():
        if "." in key:
            section, attr = key.split(".")
            out[section][attr] = int(value) if key == "model.top_k" else value
    out["seed"] = member["seed"]
    out["member"] = member
    return out


def member_run_name(name: str, member: dict, varied: list[str]) -> str:
    """`<name>-noise0.3-s1`: the values that tell this member apart, and its seed."""
    from aejax.population import member_label

    return f"{name}-{member_label(member, [k for k in varied if k != 'seed'] + ['seed'], sep='-')}"


def job_label(overrides: list[str]) -> str:
    """`code_size=8,lr=0.01` from a multirun job's overrides: what tells its W&B runs apart from
    the other jobs' (hydra.*, logger.* and trainer.resume say nothing about the model)."""
    keep = [o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(("hydra", "logger", "trainer.resume"))]
    return ",".join(f"{k.split('.')[-1]}={v}" for k, _, v in (o.partition("=") for o in keep))


class WandbLogger:
    def __init__(self, spec: LoggerSpec, run_dir: Path, config: dict, members: list[dict], name: str,
                 run_id: str, provenance: dict | None = None):
        import wandb

        from aejax.population import varied_settings

        self.wandb = wandb
        self.per_member = len(members) <= spec.max_member_runs
        self.members = members
        origin = {k: v for k, v in (provenance or {}).items() if k not in ("attempts", "git")}
        origin["git"] = {k: v for k, v in (provenance or {}).get("git", {}).items() if k != "diff"}
        config = {**config, "provenance": origin}
        common = dict(project=spec.project, entity=spec.entity, group=spec.group or name, dir=str(run_dir),
                      mode=wandb_mode(spec), reinit="create_new", settings=wandb_settings(), resume="allow")
        varied = varied_settings(members)
        if spec.group and (provenance or {}).get("overrides"):  # a multirun job: say which
            name = f"{name}-{job_label(provenance['overrides'])}".rstrip("-")
        if self.per_member:
            self.runs = [wandb.init(id=f"{run_id}-m{m['member']}", name=member_run_name(name, m, varied),
                                    job_type="member", config=member_config(config, m), **common) for m in members]
            self.run_of = {m["member"]: run for m, run in zip(members, self.runs)}  # a shard's numbers
        else:
            self.runs = [wandb.init(id=run_id, name=name, job_type="population",
                                    config={**config, "population_size": len(members)}, **common)]

    def log(self, rows: list[dict]) -> None:
        """`rows` are metrics.jsonl lines for one step, one per healthy member."""
        if not rows:
            return
        if self.per_member:
            for row in rows:
                self.run_of[row["member"]].log({k: v for k, v in row.items() if k not in ("step", "member")},
                                             step=row["step"])
        else:
            keys = [k for k in rows[0] if k not in ("step", "member")]
            mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
            self.runs[0].log(mean, step=rows[0]["step"])

    def summarize(self, summaries: list[dict], figures: dict[str, Path]) -> None:
        """Summaries go to every member's run; the run's figures are logged to each member's
        run under `figures/` (W&B's Media panel), so a user finds them on any member."""
        images = lambda: {f"figures/{k}": self.wandb.Image(str(p)) for k, p in figures.items()}  # one set a run
        if self.per_member:
            for run, summary in zip(self.runs, summaries):
                run.summary.update(_flat(summary))
                run.log(images())
        else:
            rows = [_flat(s) for s in summaries]
            columns = list(rows[0])
            table = self.wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
            self.runs[0].log({"members": table, **images()})
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


def _teardown_quietly() -> None:
    """Stop wandb's service now, so its exit hook does not print a traceback for a dead one."""
    import contextlib
    import io

    try:
        import wandb

        with contextlib.redirect_stderr(io.StringIO()):
            wandb.teardown()
    except BaseException:  # noqa: BLE001 - best effort: the warning above has said what matters
        pass


class FailSafe:
    """Any exception of the wrapped logger becomes one warning; after it, logging is off.
    A run's outcome and its local files never depend on W&B (a killed wandb-core, a full
    disk under wandb/, a network error)."""

    def __init__(self, make):
        self.logger = self._call("start", make)

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - anything W&B raises must not end the run
            first = next((l for l in str(err).splitlines() if l.strip()), type(err).__name__)
            log.warning("W&B failed to %s (%s: %s); W&B logging is off for this run, local files go on",
                        what, type(err).__name__, first[:200])
            self.logger = NoLogger()
            _teardown_quietly()
            return NoLogger()

    def log(self, rows): self._call("log", self.logger.log, rows)
    def summarize(self, summaries, figures): self._call("log the summary", self.logger.summarize, summaries, figures)
    def finish(self, exit_code=0): self._call("finish", self.logger.finish, exit_code)


def make_logger(spec: LoggerSpec, run_dir: Path, config: dict, members: list[dict], name: str,
                run_id: str = "run", provenance: dict | None = None):
    if spec.name == "none" or wandb_mode(spec) == "disabled":
        return NoLogger()
    return FailSafe(lambda: WandbLogger(spec, run_dir, config, members, name, run_id, provenance))
