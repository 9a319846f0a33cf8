"""Where a run came from: code, environment, machine, scheduler, command line and data.

Collected once per attempt (a resume or a SLURM requeue is a new attempt of the same run)
and written to `provenance.json` by `aejax.rundir`; the W&B run config carries it too.
Nothing here may fail a run: a missing git, a detached checkout or a missing lock file
gives null fields, not an exception.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "hydra-core", "wandb", "numpy")
MAX_DIFF_BYTES = 1_000_000  # a larger diff is cut (and says so): provenance must stay readable


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when aejax runs from one


def git_state() -> dict:
    """Commit, dirty flag and (when dirty) the diff against HEAD of the aejax source tree."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff": None}
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    diff = _git("diff", "HEAD") if status.strip() else None
    if diff and len(diff) > MAX_DIFF_BYTES:
        diff = diff[:MAX_DIFF_BYTES] + "\n[diff cut at 1 MB]\n"
    return {"commit": commit.strip(), "dirty": bool(status.strip()), "diff": diff}


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def data_checksums(paths: dict) -> dict:
    """{name: {"path", "sha256"}} for files; a folder's digest covers every file's relative path and bytes."""
    out = {}
    for name, path in paths.items():
        path = Path(path)
        if path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(str(file.relative_to(path)).encode() + b"\0" + (file_sha256(file) or "").encode())
            out[name] = {"path": str(path), "sha256": digest.hexdigest()}
        else:
            out[name] = {"path": str(path), "sha256": file_sha256(path)}
    return out


def versions() -> dict:
    out = {"python": platform.python_version(), "aejax": _version("aejax")}
    out.update({name: _version(name) for name in PACKAGES})
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def slurm_ids() -> dict | None:
    """The SLURM job this process runs in (None outside SLURM); restart_count counts requeues."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    get = lambda key: env.get(key)
    return {"job_id": get("SLURM_JOB_ID"), "array_job_id": get("SLURM_ARRAY_JOB_ID"),
            "array_task_id": get("SLURM_ARRAY_TASK_ID"), "restart_count": int(get("SLURM_RESTART_COUNT") or 0),
            "partition": get("SLURM_JOB_PARTITION"), "node": get("SLURMD_NODENAME"),
            "cluster": get("SLURM_CLUSTER_NAME")}


def devices() -> dict:
    import jax

    found = jax.devices()
    return {"platform": found[0].platform, "kind": found[0].device_kind, "count": len(found)}


def collect(overrides: list[str] | None = None) -> dict:
    """Everything above for this attempt (the run adds its data checksums and seeds)."""
    return {
        "git": git_state(),
        "uv_lock_sha256": file_sha256(SOURCE_ROOT / "uv.lock"),
        "versions": versions(),
        "devices": devices(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "slurm": slurm_ids(),
        "argv": list(sys.argv),
        "overrides": list(overrides or []),
        "started": now(),
        "ended": None,
    }
