"""One results table from run directories: `aejax-collect DIR...` and `collect(paths)`.

Reads only what runs leave on disk (config.yaml, summary.json, status.json, provenance.json,
disentanglement.json from `aejax-metrics`; README "Outputs of a run"), never W&B, so a sweep's table can be built on the cluster, from a
copy, or while jobs still run. One row per (run, member); a run without summary.json yet gets
one row per member of its population, with its state. No JAX import: collecting stays fast.

    aejax-collect multirun/denoising/2026-01-01_00-00-00-3f2a --group-by model.noise_level

A group never pools rows that differ in another setting (a 10-epoch run and 2-epoch seeds): that
is refused in one line naming the settings, to be added to the groups or filtered with --where.
The metric settings of the disentanglement scores (`metrics.mode`, `metrics.seed`, `metrics.sizes`
and the library versions, `metrics.sklearn_version` and `metrics.numpy_version`) are settings like
the others, taken from what the scores record (summary.json's metrics_provenance, or
disentanglement.json's provenance) where they have it, else from config.yaml.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from aejax.settings import flatten, shard_range  # no JAX behind them: the table stays fast to import

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: config.yaml parsing is most of the time
SKIP = {"checkpoints", "wandb", "figures", "__pycache__"}  # and hidden folders (.submitit, .hydra)
# Config keys that say where a run read its data, how it was watched or on how many processes it scored, not
# what it computed (what a resume may change, and the evaluation schedule): never columns, never a reason to
# refuse a group.
NOT_SETTINGS = ("hydra.", "logger.", "population.", "trainer.resume", "trainer.progress", "trainer.eval_every",
                "trainer.figure_formats", "trainer.figure_members", "trainer.log_every", "trainer.checkpoint_every",
                "data.root", "data.download", "metrics.disentanglement", "metrics.workers")
STATUSES = ("finished", "diverged", "failed", "interrupted", "running", "unfinished")
FIRST = ["name", "status", "message", "seed", "member"]
LAST = ["train_seconds", "slurm_job_id", "slurm_array_job_id", "slurm_array_task_id", "requeue_count",
        "commit", "run_dir"]
BOOKKEEPING = set(LAST) - {"train_seconds"}  # in the CSV; left out of the Markdown table
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 0
STATS = ("mean", "std", "ci_low", "ci_high")


def run_setting(run_dir, key: str):
    """A setting from a run's config.yaml (`collect` shows only the settings that vary between rows)."""
    node = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    for part in key.split("."):
        node = node[part]
    return node


def find_runs(paths) -> list[Path]:
    """Every run directory (holding config.yaml or status.json) at or under `paths`, multirun
    jobs in job order (2 before 10). A run directory is not searched further."""
    found = []

    def walk(path: Path) -> None:
        if (path / "config.yaml").is_file() or (path / "status.json").is_file():
            found.append(path)
            return
        with os.scandir(path) as entries:
            names = [e.name for e in entries if e.is_dir() and e.name[0] != "." and e.name not in SKIP]
        for name in sorted(names, key=lambda n: [(0, int(p), "") if p.isdigit() else (1, 0, p)
                                                 for p in re.split(r"(\d+)", n)]):
            walk(path / name)

    for path in paths:
        walk(Path(path))
    return found


def _read(path: Path, parse=json.loads):
    try:
        return parse(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _is_locked(run: Path) -> bool:
    """A live run holds an exclusive flock on <run>/.lock; the kernel frees it when the run dies
    (even by kill -9), so a stale "running" in status.json is told apart from a live one."""
    try:
        with open(run / ".lock") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


def _settings(flat: dict) -> dict:
    """Lists become their JSON text ("[500]"): hashable, groupable and readable in a table."""
    return {k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v for k, v in flat.items()
            if k != "name" and not k.startswith(NOT_SETTINGS)}


def _sizes_text(sizes) -> str:
    """`metrics.sizes` as one column: the flat overrides as JSON text with sorted keys, "{}" for the
    study's sizes (null, {} and a nested {dci: {num_train: 100}} all read as they were computed)."""
    flat = flatten(sizes) if isinstance(sizes, dict) else {}
    return json.dumps(dict(sorted(flat.items())))


def metric_settings(provenance: dict) -> dict:
    """The metric settings recorded beside disentanglement scores ({"metrics_mode": "fast", ...}, as
    aejax.metrics.provenance writes them) as columns ({"metrics.mode": "fast", ...})."""
    out = {f"metrics.{k[len('metrics_'):]}": v for k, v in provenance.items()
           if k.startswith("metrics_") and k != "metrics_representation" and not isinstance(v, (dict, list))}
    if "metrics_sizes" in provenance:
        out["metrics.sizes"] = _sizes_text(provenance["metrics_sizes"])
    return out


def population_members(config: dict) -> list[dict]:
    """The members a config trains, in `aejax.population.members`' order (seeds outermost, then
    the grid's product), with the grid's values only (the rest is in the config). Written here
    because importing `aejax.population` imports JAX (seconds, for a table)."""
    pop = config.get("population") or {}
    seeds = pop.get("seeds", [0])
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    grid = {k: v if isinstance(v, (list, tuple)) else [v] for k, v in flatten(pop.get("grid") or {}).items()}
    rows = [{"member": i, "seed": int(seed), "hyperparameters": dict(zip(grid, map(float, values)))}
            for i, (seed, values) in enumerate(itertools.product(seeds, itertools.product(*grid.values())))]
    shards, shard = int(pop.get("shards", 1)), int(pop.get("shard", 0))
    if shards > 1:
        rows = [rows[i] for i in shard_range(len(rows), shards, shard)]
    return rows


def read_run(run: Path) -> list[dict]:
    """The rows of one run directory, {column: value}, settings under their dotted names."""
    config = _read(run / "config.yaml", lambda text: yaml.load(text, _Loader))
    config = config if isinstance(config, dict) else {}
    summary, status = _read(run / "summary.json"), _read(run / "status.json") or {}
    prov = _read(run / "provenance.json") or {}
    if config:
        settings = _settings(flatten(config))
        if isinstance(config.get("metrics"), dict):  # one column, however the sizes were written
            settings = {k: v for k, v in settings.items() if not k.startswith("metrics.sizes")}
            settings["metrics.sizes"] = _sizes_text(config["metrics"].get("sizes"))
    else:  # a job that failed before writing its config: its command-line overrides, if recorded
        pairs = [str(o).lstrip("+~").partition("=") for o in prov.get("overrides") or status.get("overrides") or []]
        settings = _settings({k: yaml.load(v, _Loader) for k, _, v in pairs if v and not k.startswith("hydra")})
    slurm, git = prov.get("slurm") or {}, prov.get("git") or {}
    if isinstance((summary or {}).get("metrics_provenance"), dict):  # what the scores were computed with
        settings = {k: v for k, v in settings.items() if not k.startswith("metrics.")}
        settings.update(metric_settings(summary["metrics_provenance"]))
    later, later_settings = _disentanglement_file(run)
    common = {"name": (summary or {}).get("name") or config.get("name"),
              "train_seconds": (summary or {}).get("train_seconds"),
              "slurm_job_id": slurm.get("job_id"), "slurm_array_job_id": slurm.get("array_job_id"),
              "slurm_array_task_id": slurm.get("array_task_id"), "requeue_count": slurm.get("restart_count"),
              "commit": (git.get("commit") or "") + ("-dirty" if git.get("dirty") else "") or None,
              "run_dir": str(run)}
    if isinstance(summary, dict) and summary.get("members"):
        members, state, message = summary["members"], None, None
        if status.get("status") not in (None, "finished", "diverged"):  # trained, then a study's own step failed
            state, message = _state_without_summary(run, status), status.get("message")
    else:
        members = population_members(config) if config else [{"member": None, "seed": None}]
        state, message = _state_without_summary(run, status), status.get("message")
        if (run / "summary.json").exists():
            state, message = "failed", "summary.json cannot be read"
    rows = []
    for m in members:
        row = {**common, **settings}
        # The member's own values replace the config's base values (a grid varies them).
        row.update({k: v for k, v in (m.get("hyperparameters") or {}).items() if k in settings})
        row.update(member=m["member"], seed=m["seed"], status=state or m.get("status") or "finished",
                   message=f"diverged at step {m['diverged_at_step']}" if m.get("diverged_at_step") else message)
        for split in ("test", "val"):
            row.update({f"{split}/{k}": math.nan if v is None else v for k, v in (m.get(split) or {}).items()})
        add_disentanglement(row, later.get(m["member"]), later_settings)
        rows.append(row)
    return rows


def _disentanglement_file(run: Path) -> tuple[dict, dict]:
    """`aejax-metrics`' disentanglement.json: {member: its test metrics}, and the metric settings they
    were computed with as config columns ({"metrics.mode": "exact", ...})."""
    record = _read(run / "disentanglement.json")
    if not isinstance(record, dict) or not isinstance(record.get("members"), list):
        return {}, {}
    prov = record.get("provenance")
    return ({m.get("member"): m.get("test") or {} for m in record["members"] if isinstance(m, dict)},
            metric_settings(prov if isinstance(prov, dict) else {}))


def add_disentanglement(row: dict, scores: dict | None, settings: dict) -> None:
    """Metrics from disentanglement.json where summary.json has none (summary.json's win), and then
    the metric settings they were computed with replace the config's."""
    new = {f"test/{k}": math.nan if v is None else v for k, v in (scores or {}).items() if f"test/{k}" not in row}
    if not new:
        return
    for key in [k for k in row if k.startswith("metrics.")]:
        del row[key]
    row.update(settings)
    row.update(new)


def _state_without_summary(run: Path, status: dict) -> str:
    if _is_locked(run):
        return "running"
    if status.get("status") in ("failed", "diverged", "interrupted"):
        return status["status"]
    checkpoints = [int(p.name) for p in (run / "checkpoints").glob("[0-9]*") if p.name.isdigit()]
    return f"unfinished at epoch {max([status.get('epoch') or 0, *checkpoints])}"


def collect(paths, group_by=None, metrics=None, status=None, where=None) -> pd.DataFrame:
    """One row per (run, member) of every run at or under `paths` (run dirs, multirun dirs, any
    folder of them): name, status, message, seed, member, every setting that differs between
    the rows, `test/*` and `val/*` metrics, train_seconds, SLURM ids, requeue count, commit,
    run_dir. `status` keeps rows by state ("finished", "unfinished", ...), `where` keeps rows with
    these values ({"trainer.epochs": 10}), `metrics` keeps those metric columns, and `group_by`
    returns `summarize(table, group_by)` instead (ValueError if a group would pool rows that
    differ in another setting)."""
    rows = [row for run in find_runs(paths) for row in read_run(run)]
    if status:
        _check("--status", status, STATUSES, "is not a status")
        rows = [r for r in rows if r["status"].split(" ")[0] in status]
    if rows and where:
        known = list(dict.fromkeys([*FIRST, *(k for r in rows for k in r if k not in LAST and "/" not in k)]))
        _check("--where", list(where), known, "is not a column")
        wanted = {k: _sizes_text(v) if k == "metrics.sizes" else json.dumps(v) if isinstance(v, (list, tuple, dict))
                  else v for k, v in where.items()}  # as read_run
        rows = [r for r in rows if all(_value(r.get(k)) == v for k, v in wanted.items())]
    metric_cols = sorted(dict.fromkeys(k for r in rows for k in r if k.startswith(("test/", "val/"))),
                         key=lambda k: not k.startswith("test/"))  # test first, else in the runs' order
    settings = list(dict.fromkeys(k for r in rows for k in r if k not in FIRST + LAST and k not in metric_cols))
    # Varied: two rows hold different values (a failed job without a config varies nothing by lacking one).
    varied = [k for k in settings if len({_value(r.get(k)) for r in rows} - {None}) > 1]
    if rows and group_by:  # grouping by a setting that does not vary is allowed
        _check("--group-by", group_by, FIRST + LAST[:-1] + sorted(settings), "is not a column")
    if rows and metrics:
        _check("--metrics", metrics, metric_cols, "is not a metric of these runs")
        metric_cols = list(metrics)
    shown = sorted(set(varied) | {k for k in group_by or [] if k in settings})
    columns = FIRST + shown + metric_cols + LAST
    table = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    table = table.astype({c: "Int64" for c in ("seed", "member", "requeue_count")})
    return summarize(table, group_by, metric_cols) if group_by and rows else table


def _check(option: str, asked, allowed, what: str) -> None:
    unknown = [a for a in asked if a not in allowed]
    if unknown:
        raise ValueError(f"{option} {','.join(unknown)} {what}; allowed: {', '.join(allowed) or 'none'}")


def _value(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def summarize(table: pd.DataFrame, group_by, metrics=None) -> pd.DataFrame:
    """One row per group: `n` rows (seeds), `n_finished`, and per metric `<m>:mean`, `<m>:std`
    (sample, ddof=1), `<m>:ci_low`, `<m>:ci_high` (95% percentile bootstrap of the mean). The
    metrics of unfinished or diverged members are missing: counted in `n`, not averaged."""
    group_by = list(group_by)
    _check("--group-by", group_by, [c for c in table.columns if "/" not in c], "is not a column")
    metrics = metrics or [c for c in table.columns if c.startswith(("test/", "val/"))]
    try:
        groups = list(table.groupby(group_by, dropna=False, sort=True))
    except TypeError:  # a key column with mixed types cannot be sorted
        groups = list(table.groupby(group_by, dropna=False, sort=False))
    check_not_pooled(groups, [c for c in table.columns if c not in FIRST + LAST + group_by and "/" not in c], group_by)
    out = []
    for key, part in groups:
        row = dict(zip(group_by, key if isinstance(key, tuple) else (key,)))
        row.update(n=len(part), n_finished=int((part["status"] == "finished").sum()))
        for m in metrics:
            values = pd.to_numeric(part[m], errors="coerce").to_numpy(float)
            values = values[np.isfinite(values)]
            stats = (values.mean() if len(values) else math.nan, values.std(ddof=1) if len(values) > 1 else math.nan,
                     *bootstrap_interval(values))
            row.update({f"{m}:{s}": v for s, v in zip(STATS, stats)})
        out.append(row)
    return pd.DataFrame(out, columns=group_by + ["n", "n_finished"] + [f"{m}:{s}" for m in metrics for s in STATS])


def check_not_pooled(groups, settings, group_by) -> None:
    """A group averages seeds of one configuration, nothing else: ValueError (one line) naming every
    setting that takes several values inside a group, and how to include or filter it."""
    differ = {}
    for _, part in groups:
        for key in settings:
            values = {v for v in map(_value, part[key]) if v is not None and v is not pd.NA}
            if len(values) > 1:
                differ.setdefault(key, set()).update(values)
    if differ:
        differ = {k: _sorted(v) for k, v in differ.items()}
        shown = "; ".join(f"{k} ({', '.join(map(str, v))})" for k, v in differ.items())
        first = next(iter(differ))
        example = differ[first][-1]
        raise ValueError(f"--group-by {','.join(group_by)} would average rows that differ in {shown}; add "
                         f"{'them' if len(differ) > 1 else 'it'} to the groups (--group-by "
                         f"{','.join([*group_by, *differ])}) or keep one value (e.g. --where {first}={example})")


def _sorted(values) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return sorted(values, key=str)


def bootstrap_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the mean, 2,000 resamples. Every call starts from the same seed,
    so the table is the same each time and a group's interval depends on its values alone."""
    values = np.asarray(values, float)
    if len(values) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = values[rng.integers(0, len(values), (BOOTSTRAP_RESAMPLES, len(values)))].mean(1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def fmt(value, digits: int = 4) -> str:
    """`digits` significant digits, whole numbers as integers, missing as an empty cell."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool) and math.isfinite(value):
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, interval: str = "std", digits: int = 4, columns=None) -> str:
    """A GitHub pipe table, without `tabulate`. A grouped table shows each metric as "mean ± std"
    (`interval="std"`) or "mean [ci_low, ci_high]" (`"ci"`). Columns empty in every row, and the
    bookkeeping ones (SLURM ids, commit, run_dir: in the CSV), are left out unless `columns` names them."""
    metrics = [c[:-5] for c in table.columns if c.endswith(":mean")]
    cells = {c: [fmt(v, digits) for v in table[c]] for c in table.columns if ":" not in c}
    for m in metrics:
        cells[m] = [_cell(*v, interval, digits) for v in zip(*(table[f"{m}:{s}"] for s in STATS))]
    names = list(columns) if columns else [c for c in cells if c not in BOOKKEEPING and any(cells[c])]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join(" --- " for _ in names) + "|"]
    lines += ["| " + " | ".join(cells[c][i] for c in names) + " |" for i in range(len(table))]
    return "\n".join(lines) + "\n"


def _cell(mean, std, lo, hi, interval: str, digits: int) -> str:
    mean, std, lo, hi = (fmt(v, digits) for v in (mean, std, lo, hi))
    if not mean or (interval == "std" and not std):
        return mean
    return f"{mean} [{lo}, {hi}]" if interval == "ci" else f"{mean} ± {std}"


def _fail(message: str) -> SystemExit:
    print(f"aejax-collect: error: {message}", file=sys.stderr)
    return SystemExit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise _fail(message)


def main(argv=None) -> int:
    """aejax-collect DIR... [--group-by K,K] [--metrics M,M] [--status S,S] [--where K=V] [--csv F] [--markdown F]"""
    split = lambda text: [part.strip() for part in text.split(",") if part.strip()]
    parser = _Parser(prog="aejax-collect", description="One results table from run and multirun directories.")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run dirs, multirun dirs, or folders holding them")
    parser.add_argument("--group-by", type=split, help="e.g. model.noise_level: mean, std, 95%% bootstrap "
                        "interval over the seeds")
    parser.add_argument("--metrics", type=split, help="metric columns to keep, e.g. test/mse,val/mse")
    parser.add_argument("--status", type=split, help=f"keep rows in these states: {', '.join(STATUSES)}")
    parser.add_argument("--where", action="append", metavar="KEY=VALUE", help="keep rows whose setting KEY has "
                        "this VALUE (repeat for several), e.g. trainer.epochs=10")
    parser.add_argument("--interval", choices=("std", "ci"), default="std", help="grouped Markdown cells: "
                        "mean ± std (default) or mean [95%% interval]")
    parser.add_argument("--csv", type=Path, help="write the table as CSV here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not Path(d).is_dir():
            raise _fail(f"{d}: no such directory")
    where = {}
    for item in args.where or []:
        key, eq, value = item.partition("=")
        if not (key and eq):
            raise _fail(f"--where {item} is not allowed; expected KEY=VALUE, e.g. --where trainer.epochs=10")
        where[key.strip()] = yaml.load(value, _Loader)
    try:
        table = collect(args.dirs, group_by=args.group_by, metrics=args.metrics, status=args.status, where=where)
    except ValueError as err:
        raise _fail(str(err)) from None
    if not len(table):
        raise _fail(f"no runs (a folder with config.yaml or status.json) under {' '.join(args.dirs)}"
                    + (f" with status {','.join(args.status)}" if args.status else "")
                    + (f" where {' and '.join(args.where)}" if args.where else ""))
    text = to_markdown(table, interval=args.interval)
    try:
        if args.csv:
            table.to_csv(args.csv, index=False)
        if args.markdown:
            args.markdown.write_text(text)
    except OSError as err:
        raise _fail(f"{err.filename}: {err.strerror}") from None
    if not (args.csv or args.markdown):
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
