"""`aejax-train`: the Hydra app over conf/. All logic lives in `aejax.run.train_and_evaluate`.

    aejax-train model=sparse model.noise_level=0.3 data=mnist data.root=/path/to/mnist
    aejax-train -m model.code_size=2,8,32            # a Hydra multirun: one job per code size
    aejax-train -m --dry-run model.code_size=2,8,32  # list and check the jobs, submit nothing
    aejax-train model=vae --help                     # every setting: its value, meaning and allowed values

Exit status: 0 done; 2 a bad setting or a run directory that cannot be used (one line,
nothing written); 3 a diverged run (last good checkpoint kept); 128 + the signal's number
when stopped by SIGINT (130), SIGTERM (143) or SIGUSR2 (140): at the next safe point, seconds away,
after a checkpoint (a second signal: at once, keeping the checkpoints on disk). A multirun
finishes every job, then exits 1 if any failed, naming them.
"""

from __future__ import annotations

import logging
import secrets
import signal
import sys
from pathlib import Path

import hydra
from hydra import initialize_config_dir
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from aejax.errors import EXIT_CONFIG, EXIT_DIVERGED, EXIT_SWEEP_FAILED, fail  # also aejax-train's, used by its tests
from aejax.paths import conf_dir

# JAX probes for a TPU and logs its absence at INFO on every CPU or GPU run: not news.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

CONF_DIR = conf_dir()
# `${aejax_id:}` in conf/config.yaml: a few random characters after the time, so two runs
# started in the same second get different directories. Cached by OmegaConf per config, and
# the cache travels with the pickled config to submitit jobs, so a job sees its sweep's value.
OmegaConf.register_new_resolver("aejax_id", lambda: secrets.token_hex(2), use_cache=True, replace=True)


def _settings_help(*, _root_) -> str:
    """`${aejax_settings:}` in conf/config.yaml's help template: every setting with its meaning (see
    aejax.settings_help). `$` doubled: Hydra fills the template with string.Template."""
    from aejax.settings_help import settings_help

    try:
        config = OmegaConf.to_container(OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"]),
                                        resolve=False)
        return settings_help(config).replace("$", "$$")
    except Exception as err:  # the help must print whatever the config holds
        return f"(the settings could not be listed: {type(err).__name__}: {err})".replace("$", "$$")


OmegaConf.register_new_resolver("aejax_settings", _settings_help, use_cache=False, replace=True)


def hydra_arguments(argv: list[str]):
    """Hydra's own parse of the command line: flags (`--cfg job`, `-cn`, `-sc`, ...) apart from overrides."""
    from hydra._internal.utils import get_args_parser

    try:
        return get_args_parser().parse_args(argv)
    except SystemExit:
        return None  # argparse has printed its own usage error; Hydra will repeat it and exit 2


def precheck(argv: list[str]) -> None:
    """Compose and check the config once before Hydra runs, so a bad setting is one line and
    nothing is written. A sweep (`a=1,2`) is checked with its first value; each job checks its own."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from aejax.config import parse_run
    from aejax.data import check_spec
    from aejax.disentanglement import check_settings
    from aejax.errors import ConfigError
    from aejax.loggers import check_wandb_login

    args = hydra_arguments(argv)
    if args is None or args.shell_completion or args.help or args.hydra_help:
        return  # Hydra's own business
    config_dir = str(Path(args.config_path).absolute()) if args.config_path else CONF_DIR
    config_name = args.config_name or "config"
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
        first, hydra_overrides = [], {}
        for o in parsed:
            value = next(iter(o.sweep_string_iterator())) if o.is_sweep_override() else o.get_value_element_as_str()
            if o.is_hydra_override():
                hydra_overrides[o.get_key_element()] = value
            else:
                first.append(f"{o.get_key_element()}={value}")
        if args.config_dir:  # -cd: an extra config folder, searched like Hydra searches it
            first.append(f"hydra.searchpath=[file://{Path(args.config_dir).absolute()}]")
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            try:
                cfg, foreign = compose(config_name, overrides=first, return_hydra_config=True), None
            except Exception as err:
                first, foreign = with_foreign_setting(first, str(err))
                for _ in range(len(first)):  # each setting of another family the preset lacks, in turn
                    try:
                        cfg = compose(config_name, overrides=first, return_hydra_config=True)
                        break
                    except Exception as again:
                        first = with_foreign_setting(first, str(again))[0]
        HydraConfig.instance().set_config(cfg)  # `${hydra:...}` in the config (the default name) resolves
        config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    except Exception as err:  # Hydra's messages span several lines: make them one
        fail(hydra_message(str(err)), EXIT_CONFIG)
    if args.cfg or args.info:
        return  # printing the config or Hydra's info runs nothing
    try:
        spec = parse_run(config)
        if foreign and foreign.startswith("data."):  # a data setting this data preset lacks
            check_spec(spec.data)  # a loader that reads it judges its value (data=shapes_toy: data.path)
            refusal, foreign = foreign_data_setting(foreign, spec.data), None
            if refusal:
                raise refusal
        if foreign:  # composed above and at its default, so the check let it pass: it still sets nothing here
            raise ConfigError(f"{foreign} is not a setting of model.family={spec.model.family}"
                              + (f" with model.{spec.model.declaration.variant_setting}={spec.model.objective}"
                                 if spec.model.objective else "") + "; it belongs to another family or objective "
                              f"(a sweep over them sets it at its default where it is foreign with ++{foreign}=...)")
        check_spec(spec.data)  # data.name among the loaders, the datasets' own limits
        check_settings(spec)  # metrics.disentanglement=true on data without ground-truth factors
        check_wandb_login(spec.logger)
    except ConfigError as err:
        fail(str(err), EXIT_CONFIG)
    multirun = args.multirun or str(OmegaConf.select(cfg, "hydra.mode", default=None)) == "RunMode.MULTIRUN"
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if key in hydra_overrides:
        check_directory(key, hydra_overrides[key], None if multirun else config, args.overrides,
                        lambda: compose(config_name, overrides=[]), config_dir)


def with_foreign_setting(overrides: list[str], message: str) -> tuple[list[str], str]:
    """`model=vae model.gamma=10`: gamma is not in the VAE's preset, so Hydra refuses to override it. When
    another family or objective declares the setting, compose it anyway (`+model.gamma=10`) so that the
    config check names whom it belongs to; the same for a data setting the data preset lacks
    (`data=mnist data.path=/x`). Any other error is raised as Hydra gave it."""
    from aejax.config import DataSpec, ModelSpec, model_field
    from aejax.settings import declared

    key = message.split("'")[1] if message.startswith("Could not override") else ""
    section, _, name = key.partition(".")
    network = {f.name for f in declared(ModelSpec)}
    foreign_model = section == "model" and model_field(name) is not None and name not in network
    if not (foreign_model or (section == "data" and name in {f.name for f in declared(DataSpec)})):
        raise RuntimeError(message)
    return [f"+{o}" if o.partition("=")[0] == key else o for o in overrides], key


def foreign_data_setting(key: str, data) -> Exception | None:
    """`data=mnist data.path=/x`: a setting of other datasets, which this one never reads (None: it is
    set to its default, which sets nothing)."""
    from dataclasses import MISSING, fields

    from aejax.errors import ConfigError

    name = key.partition(".")[2]
    field = next(f for f in fields(data) if f.name == name)
    default = field.default_factory() if field.default is MISSING else field.default
    if getattr(data, name) == default:
        return None
    hint = "data.root sets where MNIST's files are; " if (data.name, name) == ("mnist", "path") else ""
    expected = "null" if default is None else repr(default)
    return ConfigError(f"{key}={getattr(data, name)!r} is not allowed; expected {expected} for data.name={data.name}, "
                       f"which does not read it ({hint}{key} is for {field.metadata['meaning']})")


def check_run_directory(path: Path, config: dict, overrides: list[str], compose_defaults, config_dir: str) -> None:
    """The run directory's refusals (locked, holds another run, a resume that changes the run),
    before Hydra writes its log file there."""
    from aejax.resume import apply_changes
    from aejax.rundir import RunDirectory, read_config

    if config["trainer"].get("resume") and (path / "config.yaml").exists():
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            defaults = OmegaConf.to_container(compose_defaults(), resolve=True)
        config = apply_changes(read_config(path / "config.yaml"), config, defaults, overrides)
    RunDirectory.check_only(path, config)


def hydra_message(message: str) -> str:
    from aejax.config import SECTIONS, section_keys

    message = message.split("Config search path")[0]
    if message.startswith("Could not override") or message.startswith("Could not append"):
        key = message.split("'")[1]
        section = key.split(".")[0]
        if key.startswith("population.grid.") and "use +" in message:  # the grid starts empty: every key is new
            new = message.split("use +", 1)[1].split()[0]
            return (f"{new} is not allowed; expected +{new} (the key is new to the config: population.grid "
                    f"starts empty, so each entry is added with a leading +)")
        if key == "metrics.sizes" or key.startswith("metrics.sizes."):  # a mapping: = cannot add keys to it
            return (f"{key} has no such key to set in this config; expected ++{key}=... (++ adds keys to "
                    f"the sizes an experiment sets)")
        if "." in key and section in SECTIONS:
            return f"{key} is not a setting; allowed {section}.* keys: {', '.join(section_keys(section))}"
        return f"{key} is not a setting; allowed top-level keys: {', '.join(SECTIONS)}, name, task"
    return "; ".join(l.strip() for l in message.splitlines() if l.strip())


def check_directory(key: str, value: str, config: dict | None, overrides: list[str], compose_defaults,
                    config_dir: str) -> None:
    """The run (or sweep) directory must be creatable: one line now rather than Hydra's traceback."""
    from aejax.errors import ConfigError

    from aejax.rundir import AlreadyFinished

    path = Path(value).absolute()
    if config is not None:
        try:
            check_run_directory(path, config, overrides, compose_defaults, config_dir)
        except AlreadyFinished as err:
            print(f"aejax-train: {err}")
            sys.exit(0)
        except ConfigError as err:
            fail(str(err), EXIT_CONFIG)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"{key}={value} cannot be created ({err.strerror}); expected a writable folder", EXIT_CONFIG)
    if not path.is_dir():
        fail(f"{key}={value} is not a folder; expected a writable folder", EXIT_CONFIG)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _task(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from aejax.config import parse_run
    from aejax.errors import ConfigError, Diverged
    from aejax.resume import command_line_config
    from aejax.rundir import AlreadyFinished, Interrupted, RunDirectory, catch_signals, record_failure

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    workdir = Path(hc.runtime.output_dir)
    with catch_signals() as stops:
        try:
            config = command_line_config(cfg, hc)
            if multirun and not config["logger"].get("group"):
                config["logger"]["group"] = f"{config['name']}-{Path(hc.sweep.dir).name}"  # jobs share a group
            spec = parse_run(config)  # settings first: a typo fails in a second, before JAX is imported
            from aejax.tasks import load_task
            from aejax.train import use_cpu_devices

            use_cpu_devices(spec.trainer.cpu_devices)  # every task's, before its first JAX operation

            run_dir = RunDirectory.open(workdir, config, list(hc.overrides.task))
            stops.run_dir = run_dir  # a second signal says what this directory holds
            status, message = "failed", None
            try:
                summary = load_task(config.get("task", "train"))(run_dir.config, run_dir)  # it writes, we close
                run_dir.start()  # a study that trains nothing through train_and_evaluate starts here
                everyone_diverged = summary.get("diverged_members", 0) == summary.get("num_members", -1)
                status = "diverged" if everyone_diverged else "finished"
            except (Diverged, Interrupted) as err:
                status, message = ("diverged" if isinstance(err, Diverged) else "interrupted"), str(err)
                raise
            except BaseException as err:
                message = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                raise
            finally:
                run_dir.close(status, message=message, record_failure=multirun)
            if everyone_diverged:
                return job_failed(multirun, f"every member of the population diverged (see {workdir / 'summary.json'})",
                                  EXIT_DIVERGED)
        except AlreadyFinished as err:
            logging.getLogger("aejax").info(str(err))
            return None
        except ConfigError as err:
            if multirun:
                record_failure(workdir, str(err), list(hc.overrides.task))
            return job_failed(multirun, str(err), EXIT_CONFIG)
        except Diverged as err:
            message = f"{err}; last good checkpoint kept in {workdir / 'checkpoints'}"
            return job_failed(multirun, message, EXIT_DIVERGED)
        except Interrupted as err:
            print(f"aejax-train: {signal.Signals(err.signum).name}: {err}", file=sys.stderr)
            previous = stops.previous.get(err.signum)
            if err.signum == signal.SIGUSR2 and callable(previous):
                previous(err.signum, None)  # submitit's handler: requeue this job, then exit
            sys.exit(128 + err.signum)
    report(summary, workdir)


def job_failed(multirun: bool, message: str, status: int) -> None:
    """A single run exits with `status`; a multirun job writes its failure and lets the sweep go on."""
    if not multirun:
        fail(message, status)
    print(f"aejax-train: error: {message}", file=sys.stderr)


def report(summary: dict, workdir: Path) -> None:
    import logging

    log = logging.getLogger("aejax")
    if "members" not in summary:
        log.info(f"done in {summary.get('seconds', 0):.0f} s; outputs in {workdir}")
        return
    healthy = [m["test"]["mse"] for m in summary["members"] if m.get("status", "finished") == "finished"]
    diverged = summary.get("diverged_members", 0)
    line = f"{summary['num_members']} member(s) trained"
    if diverged:
        line += f"; {diverged} diverged (masked, metrics null in summary.json)"
    if healthy:
        line += f"; best test mse {min(healthy):.5f}"
    log.info(f"{line}; outputs in {workdir}")


class SweepReport(Callback):
    """At the end of a multirun: how many jobs failed, and why (each job's status.json, or its
    refused.json when this sweep's command was refused in a folder that holds an earlier run)."""

    failed: list[str] = []
    started: str = ""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from aejax.provenance import now

        SweepReport.started = now()
        if str(OmegaConf.select(config, "hydra.launcher._target_", default="")).endswith(".SlurmLauncher"):
            from aejax.slurm_launcher import install

            install()  # no cluster reachable: one line, not a traceback

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from aejax.rundir import read_json

        sweep = Path(str(config.hydra.sweep.dir))
        jobs = sorted((p for p in sweep.rglob("*") if p.is_dir() and not any(part.startswith(".") for part in p.parts)
                       and ((p / "status.json").exists() or (p / "refused.json").exists())), key=_job_order)

        def status(job: Path) -> dict:
            refused = read_json(job / "refused.json") or {}
            if refused.get("updated", "") >= SweepReport.started:
                return {"status": "refused", "message": refused.get("message")}
            return read_json(job / "status.json") or {"status": "no status.json", "message": None}

        statuses = {p.relative_to(sweep): status(p) for p in jobs}
        bad = {p: s for p, s in statuses.items() if s["status"] != "finished"}
        SweepReport.failed = [f"job {p} {s['status']}: {s.get('message') or ''}" for p, s in bad.items()]
        if bad:
            print(f"aejax-train: error: {len(bad)} of {len(jobs)} jobs did not finish:", file=sys.stderr)
            for line in SweepReport.failed:
                print(f"  {line}", file=sys.stderr)


def _job_order(path: Path):
    return [int(part) if part.isdigit() else part for part in path.parts]


def dry_run(argv: list[str]) -> None:
    """`aejax-train -m ... --dry-run`: list the jobs a sweep would launch, check each one's config
    (a bad value at any sweep point is found now, not on the cluster) and submit nothing."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from aejax.config import parse_run
    from aejax.data import check_spec
    from aejax.disentanglement import check_settings
    from aejax.errors import ConfigError

    args = hydra_arguments(argv)
    if args is None:
        return  # argparse's own error follows from Hydra
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
        # An experiment's own sweep (`hydra.sweeper.params`): Hydra's basic sweeper puts it before
        # the command line's overrides, which win for the same key.
        params = sweeper_params(parsed, args.config_name or "config")
        if params:
            parsed = OverridesParser.create().parse_overrides([*params, *args.overrides])
    except Exception as err:  # a malformed override: one line, as in precheck
        fail(hydra_message(str(err)), EXIT_CONFIG)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    bad = 0
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        launcher = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("hydra/launcher=")), "basic")
        for number, overrides in enumerate(jobs):
            try:
                cfg = compose(args.config_name or "config", overrides=overrides, return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)
                config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                                resolve=True)
                spec = parse_run(config)
                check_spec(spec.data)
                check_settings(spec)
                verdict = "ok"
            except ConfigError as err:
                bad, verdict = bad + 1, f"error: {err}"
            except Exception as err:  # Hydra's own composition errors, made one line
                bad, verdict = bad + 1, f"error: {hydra_message(str(err))}"
            shown = " ".join(o for o in overrides if not o.startswith("hydra"))
            print(f"job {number}: {shown or '(defaults)'}  [{verdict}]")
    print(f"{len(jobs)} job(s) for launcher {launcher}; {bad} with a bad setting; nothing was submitted")
    sys.exit(EXIT_CONFIG if bad else 0)


def sweeper_params(parsed, config_name: str) -> list[str]:
    """`hydra.sweeper.params` of the config the command line composes (its sweeps at their first
    value), as `key=values` overrides: an experiment that sweeps on its own."""
    from hydra import compose

    first = [f"{o.get_key_element()}="
             f"{next(iter(o.sweep_string_iterator())) if o.is_sweep_override() else o.get_value_element_as_str()}"
             for o in parsed]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name, overrides=first, return_hydra_config=True)
    except Exception:  # a bad setting in the first job: the job-by-job check below names it
        return []
    return [f"{k}={v}" for k, v in (OmegaConf.select(cfg, "hydra.sweeper.params") or {}).items()]


def main() -> None:
    if "--dry-run" in sys.argv[1:]:
        dry_run([a for a in sys.argv[1:] if a != "--dry-run"])
    precheck(sys.argv[1:])
    _task()
    if SweepReport.failed:
        sys.exit(EXIT_SWEEP_FAILED)


if __name__ == "__main__":
    main()
