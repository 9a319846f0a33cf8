"""The README is executable: every shell command in README.md, docs/speed.md and experiments/*/README.md (the
"How do I..." table, the ```bash blocks, the `$ ` transcripts and the commands quoted in the text)
is run here on tiny settings, or checked, or listed in NOT_HERE with the reason it cannot run
here. A command in none of these fails, and so does a NOT_HERE entry the READMEs no longer hold.

- `uv run --locked PROGRAM ARGS` (the READMEs' one convention) runs PROGRAM from this
  environment; `uv` itself is never called (it would re-sync the environment the suite runs in).
  A bare `aejax-train`, `aejax-collect`, `python` or `wandb` fails: after the README's first
  command it is not on the reader's PATH.
- `aejax-train ARGS` is checked as the console script checks it before running anything
  (`aejax.cli.precheck`: the composed config, every setting, the run directory, a resume's
  changes); a sweep (`-m`) and `--dry-run` list and check every job (`aejax.cli.dry_run`). The
  commands in RUN_FOR_REAL also train, in this process, on SHRINK's tiny settings.
- `aejax-collect ARGS` runs in a folder laid out as the README's examples name it.
- `python SCRIPT ARGS`: the script exists and compiles (they are reports on full runs, or benchmarks).
- A transcript (`$ command` and the lines it prints) must print those lines (`…` matches anything).
- A fragment in the table (`trainer.eval_every=1`) is checked as `aejax-train FRAGMENT`.
"""

from __future__ import annotations

import py_compile
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, compose

READMES = [REPO / "README.md", REPO / "docs" / "speed.md", *sorted((REPO / "experiments").glob("*/README.md"))]
PROGRAMS = {"uv", "python", "python3", "aejax-train", "aejax-collect", "wandb", "pip", "pytest", "eval", "source",
            "apt-get", "scancel", "scripts/slurm_cluster.sh"}
BARE = {"aejax-train", "aejax-collect", "aejax-metrics", "python", "wandb", "pytest"}  # only through `uv run --locked`

# Commands that cannot run here, each with the reason. Exact texts, as the READMEs write them.
SLURM = "starts a SLURM cluster as root: .ci/run does it for tests/test_slurm.py"
BENCH = "a benchmark (minutes of both cores), in the Speed section; never run by the tests"
EXTENDING = "needs the README's my_objective.py and my_conf/: tests/test_extending.py writes them and runs it"
NOT_HERE = {
    'uv run --locked aejax-train -cd my_conf model=mean_penalty_vae "+population.grid.model.mean_weight=[0,1]" '
    'trainer.epochs=1': EXTENDING,
    "uv run --locked aejax-train -cd my_conf model=mean_penalty_vae --cfg job": EXTENDING,
    "uv run --locked aejax-train -cd my_conf model=mean_penalty_vae model.mean_weight=-1": EXTENDING,
    "python3 -m pip install uv==0.13.9": "installs uv into the reader's Python; this suite already runs under uv",
    "uv run --locked --group test pytest": "the whole suite, which this test is part of",
    "pip install .": "installs into the Python at hand; tests/test_install.py builds the wheel and installs it "
                     "into a fresh venv",
    "cd /anywhere": "a folder of the reader's choice",
    "aejax-train logger=none": "after `pip install .` (no uv), aejax-train is on the PATH: tests/test_install.py "
                               "runs it from another folder",
    "uv sync --locked --extra cuda": "downloads CUDA wheels and would change the environment the suite runs in; "
                                     "needs an NVIDIA GPU",
    "uv run --locked wandb login": "needs a W&B account and the network",
    "uv run --locked wandb sync outputs/<name>/<date>_<time>-<4 hex>/wandb/offline-run-*": "needs W&B online",
    "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server":
        "installs Debian packages as root: .ci/run does it",
    'eval "$(scripts/slurm_cluster.sh start /tmp/slurm)"': SLURM,
    "scripts/slurm_cluster.sh status /tmp/slurm": SLURM,
    "scripts/slurm_cluster.sh stop /tmp/slurm": SLURM,
    "scancel --signal=USR2": "needs a SLURM job: tests/test_slurm.py preempts one so",
    "scancel --signal=USR2 <job>": "needs a SLURM job: tests/test_slurm.py preempts one so",
    "uv run python scripts/bench.py --data-root ../shared/data/mnist": BENCH,
    "uv run python scripts/bench.py --figures 4": BENCH,
    "UV_PROJECT_ENVIRONMENT=.venv-dlib uv sync --locked --group dlib":
        "installs disentanglement_lib 1.5's metric code into a second environment, for a benchmark's baseline",
    "UV_PROJECT_ENVIRONMENT=.venv-dlib uv run --locked --group dlib python scripts/bench_metrics_dlib.py RUN_DIR "
    "--members 1 --workers 1,0": BENCH,
    "uv run --locked aejax-collect multirun/disentanglement/<date>_<time>-<4 hex> --group-by model.objective,"
    "model.beta,model.gamma,model.lambda_od,model.c_max --markdown table.md":
        "needs the disentanglement study's six jobs (hours of CPU); tests/test_disentanglement_runs.py groups runs "
        "with the metrics by their weight",
}
# Trained for real (in this process, on SHRINK's settings: about 20 s of CPU, mostly compiling); its
# run directory stands for every `<run dir>` of the READMEs. Training once more costs as much again, so
# the own-data command loads its data (mydata.npz, written by the README's own np.savez line) and
# stops there.
RUN_FOR_REAL = "uv run --locked aejax-train population.seeds=3 +population.grid.model.noise_level=[0,0.1,0.3]"
LOAD_DATA = "uv run --locked aejax-train data=array data.path=mydata.npz"
SHRINK = ["data.train_size=128", "data.test_size=64", "trainer.batch_size=64", "logger=none", "trainer.progress=off"]
SWEEP = "multirun/denoising/2026-01-01_00-00-00-3f2a"  # the README's example folder, made of the run above


@dataclass
class Command:
    where: str                        # README.md:42
    text: str
    kind: str = "shell"               # shell | fragment | python | transcript
    prints: list = field(default_factory=list)   # a transcript's expected lines

    def __str__(self) -> str:
        return f"{self.where} {self.text[:60]}"


def extract(path: Path) -> list[Command]:
    """Every command of one README, in order."""
    out, lines, name = [], path.read_text().splitlines(), path.relative_to(REPO)
    prose = list(lines)  # the text outside fenced blocks, code blocks blanked (line numbers kept)
    table, in_how_do_i = set(), False  # line numbers of the "How do I..." table's rows
    i = 0
    while i < len(lines):
        line = lines[i]
        in_how_do_i = in_how_do_i if not line.startswith("#") else line.startswith("## How do I")
        fence = re.match(r"\s*```(\w*)", line)
        if not fence:
            if in_how_do_i and line.startswith("|"):
                table.add(i + 1)
            i += 1
            continue
        start, language = i, fence.group(1)
        i += 1
        block = []
        while i < len(lines) and not lines[i].strip().startswith("```"):
            prose[i] = ""
            block.append((i + 1, lines[i].strip()))
            i += 1
        prose[start:i + 1] = [""] * len(prose[start:i + 1])  # the fences too: their backticks are no span
        i += 1
        if language in ("bash", "sh"):
            out += shell_block(name, block)
        elif not language and any(text.startswith("$ ") for _, text in block):
            for number, text in block:
                if text.startswith("$ "):
                    out.append(Command(f"{name}:{number}", text[2:], "transcript"))
                elif out and out[-1].kind == "transcript" and text:
                    out[-1].prints.append(text)
    text = "\n".join(prose)
    for match in re.finditer(r"`([^`]+)`", text):
        span = re.sub(r"\s*\n\s*", " ", match.group(1)).strip()
        number = text.count("\n", 0, match.start()) + 1
        in_table = number in table
        words = span.split()
        program = next((w for w in words if not re.match(r"^\w+=", w)), "")  # after VAR=value prefixes
        if program in PROGRAMS and len(words) > 1:
            out.append(Command(f"{name}:{number}", span))
        elif in_table and span.startswith("load_run("):
            out.append(Command(f"{name}:{number}", span, "python"))
        elif in_table and words and all(re.match(r"^(?:[+~]?[\w./-]+=\S*|--[\w-]+)$", w) for w in words):
            out.append(Command(f"{name}:{number}", span, "fragment"))
    return out


def shell_block(name, block) -> list[Command]:
    """A ```bash block: continuation lines joined, comments dropped, `VAR="..."` expanded, `&&` split."""
    out, variables, pending, first = [], {}, "", None
    for number, text in block:
        text = re.sub(r"(^|\s)#.*$", "", text).rstrip()
        first = first or number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text, pending, number, first = (pending + text).strip(), "", first, None
        assignment = re.fullmatch(r'(\w+)="([^"]*)"', text)
        if assignment:
            variables[assignment.group(1)] = assignment.group(2)
            continue
        for var, value in variables.items():
            text = text.replace(f"${var}", value)
        out += [Command(f"{name}:{number}", part.strip()) for part in text.split("&&") if part.strip()]
    return out


COMMANDS = [c for readme in READMES for c in extract(readme)]


def is_form(text: str) -> bool:
    """`uv run --locked aejax-train ...`, `uv run --locked`: the shape of a command, not one."""
    words = text.split()
    while words[:1] == ["uv"] or words[:1] == ["run"] or words[:1] and words[0].startswith("--"):
        words = words[2:] if words[0] in ("--extra", "--group") else words[1:]
    return text.startswith("uv run") and (not words or words[1:] == ["..."] or words == ["..."])


@dataclass
class Clone:
    root: Path
    run_dir: Path


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A folder to run the READMEs' commands in, holding what they refer to: the population run
    (trained for real), a sweep folder and outputs/ holding it, mydata.npz."""
    root = tmp_path_factory.mktemp("clone")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("WANDB_API_KEY", "0" * 40)  # as after `wandb login`: logger.mode=online passes its check
        readme = (REPO / "README.md").read_text()
        savez = next((l.split("#")[0] for l in readme.splitlines() if l.startswith('np.savez("mydata.npz"')), None)
        assert savez, "README.md no longer saves mydata.npz with np.savez: update LOAD_DATA"
        rng = np.random.default_rng(0)
        exec(savez, {"np": np, "images": rng.integers(0, 256, (200, 8, 8), dtype=np.uint8),
                     "labels": rng.integers(0, 10, 200)})
        run_dir = root / "outputs" / "autoencoder-digits" / "2026-01-01_00-00-00-3f2a"
        for command in (RUN_FOR_REAL, LOAD_DATA):
            assert command in {c.text for c in COMMANDS}, f"no README has `{command}` any more: update this test"
        train_for_real(args_of(RUN_FOR_REAL)[1:], run_dir)
        for folder in (SWEEP, "multirun/sweep"):
            (root / folder).mkdir(parents=True)
            (root / folder / "0").symlink_to(run_dir)
        (root / "outputs" / "run").symlink_to(run_dir)  # the README's resume transcript
        yield Clone(root, run_dir)


def train_for_real(args: list[str], workdir: Path) -> None:
    from aejax.cli import precheck
    from aejax.run import train_and_evaluate

    precheck(args)  # what the console script checks first
    summary = train_and_evaluate(compose([*args, *SHRINK]), workdir)
    assert summary["num_members"] >= 1 and (workdir / "summary.json").exists()


def substitute(text: str, clone: Clone) -> str:
    for placeholder, value in {"multirun/<name>/<date>_<time>-<4 hex>": SWEEP, "<date>_<time>-<4 hex>":
                               "2026-01-01_00-00-00-3f2a", "<run dir>": str(clone.run_dir), "<more>": "12",
                               "<the same overrides>": ""}.items():
        text = text.replace(placeholder, value)
    text = re.sub(r"(?<![\w/.-])(DIR|RUN_DIR)(?![\w/.-])", str(clone.run_dir), text)
    assert "<" not in text and "..." not in text, f"an unknown placeholder in `{text}`: teach substitute() its value"
    return text


def args_of(text: str) -> list[str]:
    """`uv run --locked [--extra X] [--group X] PROGRAM ARGS` -> [PROGRAM, ARGS...]."""
    words, options = shlex.split(text), set()
    assert words[:2] == ["uv", "run"], f"`{text}` is neither run, checked nor listed in NOT_HERE (with why)"
    words = words[2:]
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        options.add(flag)
        if flag in ("--extra", "--group") and words:
            words.pop(0)  # its name: `--extra cuda`, `--group test`
    assert "--locked" in options, f"`{text}`: `uv run` without --locked (the README's convention) may change versions"
    return words


def test_the_population_command_trains_for_real(clone):
    """RUN_FOR_REAL, trained by the fixture (its time shows here): 9 members, as the README says."""
    import json

    summary = json.loads((clone.run_dir / "summary.json").read_text())
    assert summary["num_members"] == 9 and summary["varied"] == ["seed", "model.noise_level"]


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_readme_command_runs_or_is_checked_or_says_why_not(command, clone, capsys):
    text = command.text
    if text in NOT_HERE or is_form(text):
        return
    if command.kind == "fragment":
        return check_train(substitute(text, clone).split(), capsys)
    if command.kind == "python":
        from aejax.trained import load_run

        x = load_run(clone.run_dir).data.test
        assert eval(substitute(text, clone), {"load_run": load_run, "x": x}).shape == (len(x), 32)
        return
    if command.kind == "transcript":
        return check_transcript(command, substitute(text, clone), capsys)
    words = shlex.split(text)
    assert words[0] not in BARE, (f"{command.where}: `{text}` fails after the README's first command "
                                  f"(command not found): write `uv run --locked {text}`")
    if text == 'eval "$(aejax-train -sc install=bash)"':  # with .venv/bin on the PATH (activated)
        return check_completion()
    if text == "source .venv/bin/activate":
        assert (Path(sys.executable).parent / "activate").is_file()
        return
    program, *args = args_of(substitute(text, clone))
    if program == "aejax-train":
        if text == RUN_FOR_REAL:
            return  # trained by the clone fixture
        check_train(args, capsys)
        if text == LOAD_DATA:
            from aejax.config import parse_run
            from aejax.data import load_dataset

            data = load_dataset(parse_run(compose(args)).data)
            assert data.image_shape == (8, 8, 1) and 0 <= data.train.min() and data.train.max() <= 1
        return
    if program == "aejax-collect":
        from aejax.results import main

        assert main(args) == 0
        return
    if program == "aejax-metrics":  # scoring needs a run on ground-truth data: tests/test_disentanglement_runs.py
        from aejax.disentanglement import parser

        parser().parse_args(args)
        return
    if program == "python":
        script = REPO / args[0]
        assert script.is_file(), f"{command.where}: {args[0]} does not exist"
        py_compile.compile(str(script), cfile=str(clone.root / "compiled.pyc"), doraise=True)
        return
    raise AssertionError(f"{command.where}: `{text}` runs {program}, which this test neither runs nor checks")


def check_train(args: list[str], capsys) -> None:
    """The console script's checks, in this process: a single run's precheck, or every job of a sweep."""
    from aejax.cli import dry_run, precheck

    if any(a.startswith("experiment=NAME") for a in args):
        for name in sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")):
            check_train([a.replace("NAME", name) for a in args], capsys)
        return
    try:
        if "-m" in args or "--multirun" in args or "--dry-run" in args:
            dry_run([a for a in args if a != "--dry-run"])
        precheck(args)
    except SystemExit as exit_:
        out = capsys.readouterr()
        assert exit_.code == 0 and "[error" not in out.out, (args, out.out[-1500:], out.err[-1500:])


def check_transcript(command: Command, text: str, capsys) -> None:
    from aejax.cli import precheck

    args = args_of(text)[1:]
    with pytest.raises(SystemExit) as exit_:
        precheck(args)
    printed = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == (2 if command.prints[0].startswith("aejax-train: error:") else 0)
    assert len(printed) == len(command.prints), printed
    for got, expected in zip(printed, command.prints):
        pattern = ".*".join(map(re.escape, expected.split("…")))
        assert re.fullmatch(pattern, got), f"{command.where}: the README shows\n{expected}\nthe command prints\n{got}"


def check_completion() -> None:
    """Hydra's bash completion registers for `aejax-train` once the environment is on the PATH."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(Path.home())}
    result = subprocess.run(["bash", "-c", 'eval "$(aejax-train -sc install=bash)" && complete -p aejax-train'],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and "aejax-train" in result.stdout, result.stderr[-1500:]


def test_not_here_names_only_commands_the_readmes_hold():
    texts = {c.text for c in COMMANDS}
    assert not [t for t in NOT_HERE if t not in texts], "NOT_HERE lists commands no README holds any more"
    assert len(COMMANDS) > 40 and sum(c.kind == "transcript" for c in COMMANDS) >= 4
