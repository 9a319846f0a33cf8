"""`hydra/launcher=slurm`: Hydra's submitit SLURM launcher, with its submission failure as one line.

Without a reachable cluster (no sbatch, or no controller answering it) submitit raises from inside
Hydra's sweep, and Hydra prints a long traceback under sbatch's own lines. Here that is
`aejax-train: error: SLURM: no cluster reachable (sbatch: ...)`, or `SLURM: the cluster refused the
jobs (sbatch: ...)` when a controller answered no (an unknown partition), and exit 2. Everything
else is the plugin's.
"""

from __future__ import annotations

import contextlib
import shutil
import sys

# sbatch's lines that mean no controller was reached (a configless client, DNS, or a controller down).
UNREACHABLE = ("Unable to contact slurm controller", "configuration source", "Could not establish",
               "resolve_ctls_from_dns_srv", "Socket timed out", "Connection refused")


def install() -> None:
    """Wrap the plugin's `SlurmLauncher.launch` (Hydra takes launchers from the hydra_plugins package only, so
    no subclass can be named in conf/). Called by the sweep's callback in the submitting process; once."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    if not getattr(SlurmLauncher.launch, "one_line", False):
        SlurmLauncher.launch = _one_line(SlurmLauncher.launch)


def _one_line(launch):
    def wrapped(self, job_overrides, initial_job_idx):
        from submitit.core.utils import FailedJobError

        from aejax.errors import EXIT_CONFIG, fail

        try:
            # submitit prints sbatch's stderr before raising it: held here, to be said once below.
            with contextlib.redirect_stderr(_WithoutSbatch(sys.stderr)):
                return launch(self, job_overrides, initial_job_idx)
        except FailedJobError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip().startswith("sbatch:")]
            if not lines:  # a job's own failure, not the submission's
                raise
            refused = not any(word in line for line in lines for word in UNREACHABLE)
            said = next((line for line in lines if "submission failed" in line), lines[-1])
            fail(f"SLURM: {'the cluster refused the jobs' if refused else 'no cluster reachable'} ({said})",
                 EXIT_CONFIG)
        except (FileNotFoundError, RuntimeError) as err:  # no sbatch; no srun (submitit)
            if not (getattr(err, "filename", None) == "sbatch" or 'Could not detect "srun"' in str(err)):
                raise
            missing = "sbatch" if shutil.which("sbatch") is None else "srun"
            fail(f"SLURM: no cluster reachable ({missing}: command not found)", EXIT_CONFIG)

    wrapped.one_line = True
    return wrapped


class _WithoutSbatch:
    """A stream that passes everything on except what sbatch said (and the newline after it)."""

    def __init__(self, stream):
        self.stream, self.held = stream, False

    def write(self, text: str) -> int:
        if text.startswith("sbatch:") or (self.held and text == "\n"):
            self.held = text != "\n"
            return len(text)
        self.held = False
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)
