"""Where aejax looks for a dataset's files, and where it downloads them (MNIST, dSprites, ...).

In order, for a dataset called `name`:

1. the folder a setting gives (`data.root`, `data.path`) when it is set, and then nowhere else
   (a typo must not fall back to other files);
2. `$AEJAX_DATA_ROOT`: the files directly in it, or in its `<name>/` folder (so one root can hold
   `mnist/`, `dsprites/`, ...);
3. the user cache folder `$XDG_CACHE_HOME/aejax/<name>` (else `~/.cache/aejax/<name>`), which is
   also where downloads go. The tests' downloader uses the same folder.

No path of any particular machine is written here: tests point `$AEJAX_DATA_ROOT` at their copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

ENV_VAR = "AEJAX_DATA_ROOT"


def cache_dir(name: str) -> Path:
    """The user cache folder of dataset `name`: `$XDG_CACHE_HOME/aejax/<name>`, else `~/.cache/aejax/<name>`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "aejax" / name


def search_folders(name: str, given: str | os.PathLike | None = None) -> list[Path]:
    """The folders `locate` searches, in order: `[given]` when it is set; else `$AEJAX_DATA_ROOT`,
    `$AEJAX_DATA_ROOT/<name>` (when the variable is set) and `cache_dir(name)`. The last one is
    where missing files are downloaded."""
    if given:
        return [Path(given).expanduser()]
    root = os.environ.get(ENV_VAR)
    return [*([Path(root).expanduser(), Path(root).expanduser() / name] if root else []), cache_dir(name)]


def locate(name: str, files: Iterable[str], given: str | os.PathLike | None = None) -> Path | None:
    """The first of `search_folders(name, given)` that holds every one of `files` (names), or None.

        locate("mnist", ["train-images-idx3-ubyte.gz", ...], spec.root)
        locate("dsprites", ["dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"])
    """
    files = list(files)
    return next((folder for folder in search_folders(name, given)
                 if all((folder / f).is_file() for f in files)), None)


def searched(name: str, given: str | os.PathLike | None = None, setting: str = "data.root") -> str:
    """Where `locate` looked, for a one-line message: "data.root=/x", or
    "$AEJAX_DATA_ROOT=/r (and /r/mnist), /home/u/.cache/aejax/mnist" ("$AEJAX_DATA_ROOT (not set), ...")."""
    if given:
        return f"{setting}={str(given)!r}"
    root = os.environ.get(ENV_VAR)
    env = f"${ENV_VAR}={root} (and {Path(root).expanduser() / name})" if root else f"${ENV_VAR} (not set)"
    return f"{env}, {cache_dir(name)}"
