"""The rules of a run directory: one directory holds one run.

- **Lock.** A live run holds an exclusive `flock` on `<dir>/.lock` (the kernel drops it when
  the process dies, even by kill -9); a second run on the same directory stops at once.
- **No mixing.** A directory that already holds a run's outputs is refused unless resuming.
- **Resume continues what ran.** The directory's `config.yaml` is the config; a command line
  may repeat it or change only `RESUME_SAFE` settings. Any other difference is refused with
  one line per setting, before anything is written.
- **Provenance and status.** `provenance.json` (one entry per attempt: a resume or a SLURM
  requeue is a new attempt) and `status.json` (running / finished / diverged / interrupted /
  failed, and the epoch reached), both written atomically.
- **Signals.** SIGINT, SIGTERM and SIGUSR2 become a request that the run honours at its next safe
  point, seconds away (`StopRequests`); a second signal stops at once, keeping what is on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import yaml

from aejax import provenance
from aejax.config import default_of, flatten
from aejax.errors import ConfigError

log = logging.getLogger(__name__)

# status.json's "phase" while a run runs (then "done", or the phase it stopped in). Data loads before
# the run directory is written, so "loading data" shows in the log only.
PHASES = ("compiling", "training", "metrics", "figures", "summary")
RUN_FILES = ("config.yaml", "provenance.json", "status.json")  # overwritten freely while nothing was computed
NOT_RESULTS = (*RUN_FILES, ".lock", "refused.json", "wandb", "figures")  # figures alone are redrawn from results
# Settings a resume may change: they do not alter what the parameters trained so far are
# (`trainer.epochs` only with optim.schedule=constant: a schedule is laid over the run's length;
# `metrics.*` only change what is measured at the end, and summary.json records how).
RESUME_SAFE = ("trainer.epochs", "trainer.resume", "trainer.progress", "trainer.log_every",
               "trainer.checkpoint_every", "trainer.eval_every", "trainer.call_seconds", "logger.", "data.root", "data.download",
               "metrics.", "trainer.figure_members")


def requeued_here(path: Path) -> bool:
    """True when this process is a SLURM requeue of the job that last ran in `path`: it then
    resumes on its own (submitit and `scontrol requeue` rerun the same command)."""
    job = os.environ.get("SLURM_JOB_ID")
    last = ((read_json(path / "provenance.json") or {}).get("slurm") or {})
    return bool(job) and last.get("job_id") == job and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def record_failure(path: Path, message: str, overrides: list[str]) -> None:
    """A multirun job that failed or was refused leaves its reason for the sweep's report and
    `aejax-collect`: in status.json when the directory holds no run, else in refused.json (the
    run there keeps its own status). Never while another process holds the directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a live run owns it; the sweep report reads this job's refusal from refused.json's absence
        record = {"status": "failed", "epoch": 0, "epochs": None, "message": message, "overrides": overrides,
                  "updated": provenance.now()}
        held = describe(path) is not None or (path / "config.yaml").exists()
        write_atomic(path / ("refused.json" if held else "status.json"), json.dumps(record, indent=1))


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def resume_differences(saved: dict, new: dict) -> list[str]:
    """One line per setting that differs between the saved and the new config and that a
    resume may not change."""
    a, b = flatten({k: v for k, v in saved.items() if k != "hydra"}), flatten({k: v for k, v in new.items() if k != "hydra"})
    for key in set(b) - set(a):  # a setting added after the run was saved: it ran with the default
        a[key] = default_of(key) if default_of(key) is not None or b[key] is None else "<unset>"
    lines = []
    for key in sorted(set(a) | set(b)):
        if key.startswith(RESUME_SAFE) or a.get(key, "<unset>") == b.get(key, "<unset>"):
            continue
        lines.append(f"{key}: the run has {a.get(key, '<unset>')!r}, the command line {b.get(key, '<unset>')!r}")
    return lines


def describe(path: Path) -> str | None:
    """What a directory holds: None (no computed result: at most the config and status of a run
    that stopped before its first metrics line), 'a finished run' (status.json says so: a study
    finishes after its own files, not at summary.json), or 'an unfinished run at epoch N'."""
    status = (read_json(path / "status.json") or {}).get("status")
    if status == "finished" or (status is None and (path / "summary.json").exists()):
        return "a finished run"
    metrics = path / "metrics.jsonl"
    results = [p for p in path.glob("*") if p.name not in NOT_RESULTS and not p.name.endswith((".log", ".tmp"))
               and not (p.name in ("metrics.jsonl", "checkpoints") and not _has_results(p))]
    return f"an unfinished run at epoch {epoch_reached(path)}" if results else None


def _has_results(p: Path) -> bool:
    """An empty metrics.jsonl, or a checkpoints folder with no saved epoch, holds nothing computed."""
    return p.stat().st_size > 0 if p.is_file() else any(c.name.isdigit() for c in p.glob("*"))


def epoch_reached(path: Path) -> int:
    """Whole epochs done: status.json's, or its newest checkpoint's (numbered by steps) if newer."""
    status = read_json(path / "status.json") or {}
    per_epoch = status.get("steps_per_epoch") or 0
    checkpoints = [int(p.name) // per_epoch for p in (path / "checkpoints").glob("*") if p.name.isdigit() and per_epoch]
    return max([status.get("epoch") or 0, *checkpoints])


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def in_use(path: Path, owner: str) -> ConfigError:
    return ConfigError(f"hydra.run.dir={path} is in use by {owner.strip() or 'another process'}; wait for it "
                       "or pick another hydra.run.dir")


def read_config(path: Path) -> dict:
    """A run directory's config.yaml, or one line saying it cannot be used."""
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path} cannot be read ({type(err).__name__}); the run there cannot be resumed: "
                          "pick another hydra.run.dir") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("trainer"), dict):
        raise ConfigError(f"{path} is not an aejax config; the run there cannot be resumed: pick another hydra.run.dir")
    return saved


class AlreadyFinished(Exception):
    """A resume of a run that finished with the same config: nothing to do (exit 0). This makes
    a relaunched sweep with trainer.resume=true skip its finished jobs and finish the rest."""


class RunDirectory:
    """An open run directory. Use `RunDirectory.open(path, config)`, then `close()` (or `with`)."""

    def __init__(self, path: Path, lock_file, config: dict, resumed: bool, overrides):
        self.path, self._lock_file, self.config, self.resumed = path, lock_file, config, resumed
        self.overrides = overrides
        self.started = False
        self._status_lock = threading.RLock()  # a second signal writes status.json from another thread
        self.provenance = read_json(path / "provenance.json") if resumed else None

    @classmethod
    def open(cls, path, config: dict, overrides: list[str] | None = None) -> "RunDirectory":
        """Lock the directory and check that `config` may run there; writes nothing else yet
        (`start` does, once the data has loaded)."""
        path = Path(path).absolute()
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_file = open(path / ".lock", "a+")
        except OSError as err:
            raise ConfigError(f"hydra.run.dir={path} cannot be used as a run directory ({err.strerror})") from None
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            owner = lock_file.read()
            lock_file.close()
            raise in_use(path, owner) from None
        try:
            config, resumed = cls._check(path, config)
        except BaseException:
            lock_file.close()
            raise
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()} on {provenance.socket.gethostname()} since {provenance.now()}\n")
        lock_file.flush()
        return cls(path, lock_file, config, resumed, overrides)

    @classmethod
    def check_only(cls, path, config: dict) -> None:
        """`open`'s refusals without writing anything (not even the lock file): the CLI calls it
        before Hydra creates its log file in the directory."""
        path = Path(path).absolute()
        if (path / ".lock").exists():
            try:
                lock_file = open(path / ".lock")
            except OSError as err:
                raise ConfigError(f"hydra.run.dir={path}: its .lock cannot be read ({err.strerror})") from None
            with lock_file:
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise in_use(path, lock_file.read()) from None
        if path.is_dir():
            cls._check(path, config)

    @staticmethod
    def _check(path: Path, config: dict) -> tuple[dict, bool]:
        """The config to run and whether it resumes; raises ConfigError before anything is written."""
        held = describe(path)
        resume = bool(config.get("trainer", {}).get("resume"))
        if held is None:
            return config, False
        how = f"aejax-train hydra.run.dir={path} trainer.resume=true"
        if not resume and held == "a finished run":
            raise ConfigError(f"hydra.run.dir={path} already holds a finished run; pick another hydra.run.dir, "
                              f"or train it longer with `{how} trainer.epochs=<more>`")
        if not resume:
            raise ConfigError(f"hydra.run.dir={path} already holds {held}; resume it with `{how}`, "
                              "or pick another hydra.run.dir")
        saved = read_config(path / "config.yaml") if (path / "config.yaml").exists() else None
        if saved is None:
            raise ConfigError(f"hydra.run.dir={path} holds outputs but no config.yaml; it cannot be resumed: "
                              "pick another hydra.run.dir")
        differences = resume_differences(saved, config)
        if differences:
            raise ConfigError("trainer.resume=true may not change these settings of the run in "
                              f"{path} (allowed to change: {', '.join(RESUME_SAFE)}):\n" + "\n".join(differences))
        epochs = config["trainer"]["epochs"]
        schedule = (saved.get("optim") or {}).get("schedule", "constant")
        if epochs != saved["trainer"].get("epochs") and schedule != "constant":
            raise ConfigError(f"trainer.epochs={epochs} is not allowed on resume with optim.schedule={schedule}; "
                              f"expected the run's {saved['trainer'].get('epochs')} (the schedule is laid over the run's "
                              "length: a longer run is a new run)")
        if held == "a finished run" and epochs == saved["trainer"]["epochs"]:
            raise AlreadyFinished(f"{path} already holds this run, finished: nothing to do "
                                  f"(trainer.epochs=<more than {epochs}> trains it longer)")
        if held == "a finished run" and epochs < saved["trainer"]["epochs"]:
            raise ConfigError(f"trainer.epochs={epochs} is not allowed; expected at least the "
                              f"{saved['trainer']['epochs']} epochs the finished run in {path} already trained")
        if epochs < epoch_reached(path):
            raise ConfigError(f"trainer.epochs={epochs} is not allowed; expected at least the "
                              f"{epoch_reached(path)} epochs already trained in {path}")
        return config, True

    def start(self) -> None:
        """Write config.yaml, provenance.json and status.json: the run begins (idempotent)."""
        if self.started:
            return
        self.started = True
        if self.provenance is None and requeued_here(self.path):  # requeued before its first metrics line
            self.provenance = read_json(self.path / "provenance.json")
        attempt = provenance.collect(self.overrides)
        record = self.provenance or {"run_id": os.urandom(4).hex(), "started": attempt["started"], "attempts": []}
        # The latest attempt's facts at the top level; the diff only there (it can be large).
        record.update({k: v for k, v in attempt.items() if k != "started"})
        record["attempts"].append({**attempt, "git": {k: v for k, v in attempt["git"].items() if k != "diff"}})
        self.provenance = record
        if self.resumed and (self.path / "summary.json").exists():  # training longer: the old summary is stale
            (self.path / "summary.json").rename(self.path / "summary.previous.json")
        (self.path / "refused.json").unlink(missing_ok=True)  # a refusal from an earlier sweep is history now
        write_atomic(self.path / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
        self._write_provenance()
        self.set_status("running", epoch_reached(self.path), phase="compiling")

    @property
    def run_id(self) -> str:
        return self.provenance["run_id"]

    def check_same_data(self, checksums: dict) -> None:
        """A resume must train on the bytes the run started with (data.root may move, not change)."""
        before = (self.provenance or {}).get("data_files") or {}
        changed = [name for name, entry in checksums.items()
                   if name in before and before[name].get("sha256") != entry.get("sha256")]
        if changed:
            raise ConfigError(f"data.root: {', '.join(changed)} differ from the files the run in {self.path} "
                              "trained on (SHA-256 in provenance.json); resume with the same data")

    def record(self, **fields) -> None:
        """Add fields to this attempt's provenance (data checksums, seeds, ...)."""
        self.provenance["attempts"][-1].update(fields)
        self.provenance.update(fields)
        self._write_provenance()

    def _write_provenance(self) -> None:
        write_atomic(self.path / "provenance.json", json.dumps(self.provenance, indent=1))

    def set_status(self, status: str, epoch: int, message: str | None = None, step: int | None = None,
                   steps_per_epoch: int | None = None, phase: str | None = None) -> None:
        """`epoch`: whole epochs done; `step` and `steps_per_epoch` (checkpoints are numbered by
        steps) and `phase` (PHASES) are kept from the last status that had them."""
        with self._status_lock:
            old = read_json(self.path / "status.json") or {}
            write_atomic(self.path / "status.json", json.dumps({
                "status": status, "phase": old.get("phase") if phase is None else phase, "epoch": epoch,
                "epochs": self.config["trainer"]["epochs"],
                "step": old.get("step") if step is None else step,
                "steps_per_epoch": old.get("steps_per_epoch") if steps_per_epoch is None else steps_per_epoch,
                "message": message, "updated": provenance.now()}, indent=1))

    def set_phase(self, phase: str) -> None:
        """What the running run is doing now (PHASES), in status.json."""
        if self.started:
            self.set_status("running", epoch_reached(self.path), phase=phase)

    def check_checkpoint_numbering(self, steps_per_epoch: int) -> None:
        """Checkpoints are numbered by steps since calls are sized by time; a run directory saved
        before (numbered by epochs, no steps_per_epoch in status.json) must not be misread."""
        status = read_json(self.path / "status.json") or {}
        has_checkpoints = any(p.name.isdigit() for p in (self.path / "checkpoints").glob("*"))
        if has_checkpoints and not status.get("steps_per_epoch"):
            raise ConfigError(f"hydra.run.dir={self.path} is not allowed for trainer.resume=true; expected a run "
                              "saved by aejax since its checkpoints are numbered by steps (this one's are numbered by "
                              "epochs: resume it with aejax at commit bfc65a6)")
        if status.get("steps_per_epoch") not in (None, steps_per_epoch):
            raise ConfigError(f"hydra.run.dir={self.path} is not allowed for trainer.resume=true; expected the "
                              f"run's {status['steps_per_epoch']} steps per epoch (now {steps_per_epoch}: the data "
                              "or the batch size changed)")

    def close(self, status: str | None = None, epoch: int | None = None, message: str | None = None,
              record_failure: bool = False) -> None:
        """Release the run, writing its `status` (with the epoch reached). A run that never started
        writes nothing, unless `record_failure` (a multirun job leaves its one-line reason in
        status.json for the sweep's report)."""
        try:
            if not self.started and not record_failure and not self.resumed and status != "finished":
                self._lock_file.close()
                self._remove_if_only_ours()
                return
            if self.started:
                self.set_status(status or "failed", epoch_reached(self.path) if epoch is None else epoch, message,
                                phase="done" if status in ("finished", "diverged") else None)
                self.provenance["ended"] = self.provenance["attempts"][-1]["ended"] = provenance.now()
                self.provenance["attempts"][-1]["outcome"] = status
                self._write_provenance()
            elif record_failure and status != "finished":
                self._lock_file.close()  # record_failure takes the lock itself
                record_failure(self.path, message or status or "failed", self.overrides or [])
        finally:
            self._lock_file.close()  # releases the flock

    def _remove_if_only_ours(self) -> None:
        """A run that failed before it started (bad data found while loading) leaves no directory behind:
        the lock and the log of this attempt go when they are all the directory holds (the error was
        printed). A directory with anything else in it is left as it is."""
        ours = [p for p in self.path.iterdir() if p.name == ".lock" or p.suffix == ".log"]
        if len(ours) != len(list(self.path.iterdir())):
            return
        for p in ours:
            p.unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass

    def __fspath__(self) -> str:
        return str(self.path)


def hold(workdir, config: dict) -> tuple[RunDirectory, bool]:
    """The run directory a run writes in, and whether this caller owns it: `workdir` itself when the
    caller's caller holds it already (aejax-train opens it and hands it to the task), else opened here,
    and then this caller closes it. One owner a run: the one that opened the directory closes it."""
    if isinstance(workdir, RunDirectory):
        return workdir, False
    return RunDirectory.open(workdir, config), True


class Interrupted(BaseException):
    """A stop asked for by a signal. Exit status 128 + the signal's number (SIGINT 130, SIGTERM 143)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


def saved_steps(path: Path) -> list[int]:
    """The checkpoints on disk (numbered by steps; Orbax renames a checkpoint to its number once written)."""
    return sorted(int(p.name) for p in (Path(path) / "checkpoints").glob("*") if p.name.isdigit())


def training_ended(path: Path) -> bool:
    """Whether the run's final checkpoint (its last step, from status.json) is on disk."""
    status = read_json(Path(path) / "status.json") or {}
    per_epoch, epochs, steps = status.get("steps_per_epoch"), status.get("epochs"), saved_steps(path)
    return bool(per_epoch and epochs and steps and steps[-1] >= per_epoch * epochs)


def what_is_saved(path: Path, scores: bool = False) -> str:
    """The truth about a run directory's checkpoints and how to go on from them, read from disk (one
    clause: the message of a stop names it). `scores`: the run scores disentanglement metrics, which
    `aejax-metrics` can then compute alone."""
    path = Path(path)
    status = read_json(path / "status.json") or {}
    per_epoch, epochs = status.get("steps_per_epoch"), status.get("epochs")
    steps = saved_steps(path)
    resume = f"uv run --locked aejax-train hydra.run.dir={path} trainer.resume=true"
    if not steps:
        return f"no checkpoint is saved; start again with: {resume}"
    last = steps[-1]
    if training_ended(path):
        return (f"training had ended and its final checkpoint is on disk ({path / 'checkpoints' / str(last)}); "
                + (f"score the members with: uv run --locked aejax-metrics {path}, or " if scores else "")
                + f"write every result with: {resume}")
    where = f"step {last:,}"
    if per_epoch:
        done, within = divmod(last, per_epoch)
        where = f"epoch {done}" + (f" (+{within} of its {per_epoch} steps)" if within else "")
    return (f"the last checkpoint on disk is at {where}" + (f" of {epochs}" if epochs else "")
            + f" ({path / 'checkpoints' / str(last)}); resume with: {resume}")


class StopRequests:
    """SIGINT, SIGTERM and SIGUSR2 while `catch_signals()` is active.

    A first signal only sets `requested`: the run checks it at its safe points, each seconds away
    (after each compiled call, after a compilation, between metric families and between encoding
    segments, between the phases that follow training), and raises `Interrupted` there with what is
    saved. The handler never raises: Python runs handlers wherever the main thread is, even inside a
    callback whose exceptions are swallowed (JAX's gc callback), and the stop would be lost.

    Signals are counted by a watcher thread reading the wakeup fd (`signal.set_wakeup_fd`), not by
    the handler: Python runs a handler only when the main thread is back in Python, which a compiled
    call or a compilation can delay by many seconds. A second signal therefore stops at once from
    that thread: status.json says "interrupted" with what is on disk (`what_is_saved`: a checkpoint
    already written stays), one line on stderr, exit 128 + the signal's number. `run_dir` (the
    `RunDirectory` being written, set by its owner) and `nothing_saved` (what to say without one)
    make that line true; `in_flight` waits (10 s at most) for a checkpoint being written. `previous`
    keeps the handlers found on entry (under submitit, its SIGUSR2
    handler requeues the job; the CLI calls it after the checkpoint).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

    def __init__(self):
        self.requested: int | None = None
        self.previous: dict = {}
        self.run_dir: RunDirectory | None = None
        self.nothing_saved = "nothing was written"
        self.scores = False  # the run scores disentanglement metrics (what_is_saved)
        self.in_flight = None  # waits for a checkpoint being written (Orbax saves in the background)
        self.count = 0

    def _handle(self, signum, frame) -> None:
        """The Python-level handler: the watcher thread has counted this signal already."""

    def receive(self, signum: int) -> None:
        """One signal (the watcher thread, as soon as it arrives)."""
        name = signal.Signals(signum).name
        self.count += 1
        if self.count == 1:
            self.requested = signum
            log.warning("%s received: stopping at the next safe point, seconds away (again: at once)", name)
            return
        self.stop_at_once(signum)

    def stop_at_once(self, signum: int) -> None:
        name = signal.Signals(signum).name
        message = f"stopped at once by a second {name}"
        try:
            run_dir = self.run_dir
            if run_dir is not None and run_dir.started:
                if self.in_flight is not None:  # a checkpoint being written is finished, for a few seconds at most
                    waiter = threading.Thread(target=self.in_flight, daemon=True)
                    waiter.start()
                    waiter.join(timeout=10)
                message += f"; {what_is_saved(run_dir.path, self.scores)}"
                run_dir._status_lock.acquire(timeout=5)  # held until exit: nothing overwrites the status now
                run_dir.set_status("interrupted", epoch_reached(run_dir.path), message)
            else:
                message += f"; {self.nothing_saved}"
        except BaseException as err:  # the exit below matters more than the status
            message += f" (status.json not updated: {type(err).__name__})"
        try:
            sys.stderr.write(f"{Path(sys.argv[0]).name or 'aejax'}: {name}: {message}\n")
            sys.stderr.flush()
            previous = self.previous.get(self.requested)
            if self.requested == signal.SIGUSR2 and callable(previous):
                previous(signal.SIGUSR2, None)  # submitit's handler: requeue the job
        finally:
            os._exit(128 + signum)


_ACTIVE: list[StopRequests] = []


@contextlib.contextmanager
def catch_signals():
    """Install the handlers (once: nested uses share them); a no-op outside the main thread,
    where Python cannot set signal handlers (a joblib worker thread)."""
    if _ACTIVE:
        yield _ACTIVE[-1]
        return
    stops = StopRequests()
    watcher = None
    if threading.current_thread() is threading.main_thread():
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        old_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for sig in StopRequests.SIGNALS:
            stops.previous[sig] = signal.signal(sig, stops._handle)
        watcher = threading.Thread(target=_watch, args=(read_end, stops), name="aejax-signals", daemon=True)
        watcher.start()
    _ACTIVE.append(stops)
    try:
        yield stops
    finally:
        _ACTIVE.pop()
        if watcher is not None:
            for sig, handler in stops.previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_fd)
            os.close(write_end)  # the watcher reads end-of-file and returns


def _watch(read_end: int, stops: StopRequests) -> None:
    """The signals caught, one byte each (their numbers), as soon as they arrive."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            got = pipe.read(64)
            if not got:
                return
            for signum in got:
                if signum in StopRequests.SIGNALS:
                    stops.receive(signum)
