"""`aejax-train`: the Hydra app over conf/. All logic lives in `aejax.run.train_and_evaluate`.

    aejax-train model=sparse model.noise_level=0.3 data=mnist data.root=/path/to/mnist
    aejax-train -m model.code_size=2,8,32            # a Hydra multirun: one job per code size

Errors in settings print one line (`aejax-train: error: ...`) and exit with status 2; a
diverged run exits with status 3 and keeps its last good checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
EXIT_CONFIG, EXIT_DIVERGED = 2, 3


def fail(message: str, status: int) -> None:
    print(f"aejax-train: error: {message}", file=sys.stderr)
    sys.exit(status)


def precheck_overrides(args: list[str]) -> None:
    """Compose the config once before Hydra does, so a bad override is one line, not a page.

    A sweep (`a=1,2`) is checked with its first value; Hydra then runs the real thing.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        first = []
        for o in parsed:
            if o.is_hydra_override():
                continue
            value = next(iter(o.sweep_string_iterator())) if o.is_sweep_override() else o.get_value_element_as_str()
            first.append(f"{o.get_key_element()}={value}")
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            compose("config", overrides=first)
    except Exception as err:  # Hydra's messages span several lines: make them one
        message = str(err).split("Config search path")[0]
        if message.startswith("Could not override"):
            key = message.split("'")[1]
            message = f"{key} is not a setting; the allowed keys are those in conf/{key.split('.')[0]}/*.yaml"
        fail("; ".join(l.strip() for l in message.splitlines() if l.strip()), EXIT_CONFIG)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _task(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from aejax.config import parse_run
    from aejax.errors import ConfigError, Diverged

    hc = HydraConfig.get()
    config = OmegaConf.to_container(cfg, resolve=True)
    if hc.mode == RunMode.MULTIRUN and not config["logger"].get("group"):
        config["logger"]["group"] = f"{config['name']}-{Path(hc.sweep.dir).name}"  # jobs share a group
    workdir = Path(hc.runtime.output_dir)
    try:
        parse_run(config)  # settings first: a typo fails in a second, before JAX is imported
        from aejax.tasks import load_task

        summary = load_task(config.get("task", "train"))(config, workdir)
    except ConfigError as err:
        fail(str(err), EXIT_CONFIG)
    except Diverged as err:
        fail(f"{err}; last good checkpoint kept in {workdir / 'checkpoints'}", EXIT_DIVERGED)
    if "members" in summary:
        best = min(m["test"]["mse"] for m in summary["members"])
        print(f"{summary['num_members']} member(s) trained; best test mse {best:.5f}; outputs in {workdir}")
    else:
        print(f"done in {summary.get('seconds', 0):.0f} s; outputs in {workdir}")


def main() -> None:
    precheck_overrides(sys.argv[1:])
    _task()


if __name__ == "__main__":
    main()
