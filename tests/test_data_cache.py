"""aejax.data.cache and data=mnist without data.root: $AEJAX_DATA_ROOT, then the user cache (where
downloads go), then one line that says where it looked and what to set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aejax.config import DataSpec
from aejax.data import load_dataset
from aejax.data.cache import cache_dir, locate, search_folders
from aejax.data.mnist import MIRRORS, NAMES, resolve_root
from aejax.errors import ConfigError

# matplotlib keeps its font cache under $XDG_CACHE_HOME too: the subprocess keeps the real one.
MPLCONFIGDIR = os.environ.get("MPLCONFIGDIR") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                                     / "matplotlib")


@pytest.fixture
def no_root(tmp_path, monkeypatch) -> Path:
    """No $AEJAX_DATA_ROOT and an empty user cache under tmp_path: a fresh machine."""
    monkeypatch.delenv("AEJAX_DATA_ROOT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "aejax"


def put(folder: Path, names, source: Path | None = None) -> Path:
    """`names` in `folder`: links to the files in `source`, or empty files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(source / name) if source else (folder / name).write_bytes(b"")
    return folder


def test_locate_looks_in_the_setting_then_aejax_data_root_then_the_user_cache(no_root, tmp_path, monkeypatch):
    files = ["a.bin", "b.bin"]
    assert cache_dir("toy") == no_root / "toy" and locate("toy", files) is None
    assert search_folders("toy") == [no_root / "toy"]  # the last folder searched is where downloads go
    put(no_root / "toy", files)
    assert locate("toy", files) == no_root / "toy"
    root = tmp_path / "root"
    monkeypatch.setenv("AEJAX_DATA_ROOT", str(root))
    put(root / "toy", files[:1])  # one file short: not this folder
    assert locate("toy", files) == no_root / "toy"
    put(root / "toy", files[1:])
    assert locate("toy", files) == root / "toy"  # a root of datasets: $AEJAX_DATA_ROOT/<name>
    put(root, files)
    assert locate("toy", files) == root  # the files themselves in $AEJAX_DATA_ROOT
    assert search_folders("toy") == [root, root / "toy", no_root / "toy"]
    # A setting (data.root, data.path) is the only place looked at: a typo never falls back.
    assert locate("toy", files, tmp_path / "typo") is None and search_folders("toy", "~/x") == [Path.home() / "x"]


def test_mnist_without_data_root_is_read_from_aejax_data_root_or_the_user_cache(mnist_root, no_root, tmp_path,
                                                                                monkeypatch):
    assert resolve_root(None) == no_root / "mnist"  # nothing anywhere: the cache, to download into
    put(no_root / "mnist", NAMES, mnist_root)
    assert resolve_root(None) == no_root / "mnist"
    data = load_dataset(DataSpec(name="mnist", download=False, train_size=100, test_size=50))
    assert data.train.shape == (100, 784) and data.test.shape == (50, 784) and data.image_shape == (28, 28, 1)
    put(tmp_path / "datasets" / "mnist", NAMES, mnist_root)
    monkeypatch.setenv("AEJAX_DATA_ROOT", str(tmp_path / "datasets"))
    assert resolve_root(None) == tmp_path / "datasets" / "mnist"
    assert resolve_root(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"  # data.root wins, found or not


def test_mnist_found_nowhere_is_one_line_saying_where_it_looked_and_what_to_set(no_root):
    with pytest.raises(ConfigError) as info:
        load_dataset(DataSpec(name="mnist", download=False))
    message = str(info.value)
    assert "\n" not in message and message.startswith("data=mnist: the MNIST files are in none of $AEJAX_DATA_ROOT "
                                                       f"(not set), {no_root / 'mnist'}, and data.download=false")
    assert "set AEJAX_DATA_ROOT=DIR (or data.root=DIR)" in message and all(name in message for name in NAMES)


def _mirrors_resolve() -> bool:
    try:
        socket.getaddrinfo(MIRRORS[0].split("/")[2], 443)
        return True
    except OSError:
        return False


def test_the_newcomers_mnist_command_without_network_exits_2_in_one_line(no_root, tmp_path):
    """The issue's command, on a machine with no MNIST anywhere: no traceback, nothing half-downloaded."""
    if _mirrors_resolve():
        pytest.skip("an MNIST mirror resolves here: the no-network case cannot be shown")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "MPLCONFIGDIR": MPLCONFIGDIR}
    exe = Path(sys.executable).parent / "aejax-train"
    result = subprocess.run([str(exe), "data=mnist", "trainer.epochs=1", "logger=none", f"hydra.run.dir={tmp_path}/run"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [l for l in result.stderr.splitlines() if l.strip()]
    assert line.startswith(f"aejax-train: error: data=mnist: the MNIST files are in none of $AEJAX_DATA_ROOT (not set), "
                           f"{no_root / 'mnist'}, and no MNIST mirror answered"), line
    assert not [p for p in no_root.rglob("*") if p.is_file()]  # no .part left behind
