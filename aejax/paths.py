"""Where aejax's Hydra configs are.

In a checkout they are the top-level `conf/` folder beside the `aejax` package; in an installed wheel
they are packaged as `aejax/conf` (pyproject.toml force-includes `conf/` there).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> str:
    """The absolute path of the Hydra config folder: `<checkout>/conf`, else the packaged `aejax/conf`."""
    checkout = _PACKAGE.parent / "conf"
    # pyproject.toml beside it tells a checkout (or an editable install) from a stray site-packages/conf
    if (checkout / "config.yaml").is_file() and (_PACKAGE.parent / "pyproject.toml").is_file():
        return str(checkout)
    packaged = _PACKAGE / "conf"
    if (packaged / "config.yaml").is_file():
        return str(packaged)
    raise FileNotFoundError(f"aejax's Hydra configs were found neither at {checkout} nor at {packaged}")
