"""`python setup.py` creates the project's folders, idempotently."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_setup_creates_the_folders_once(tmp_path):
    shutil.copy(ROOT / "setup.py", tmp_path / "setup.py")
    first = subprocess.run([sys.executable, "setup.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    for rel in ("data/raw", "data/interim", "data/processed", "figures", "models"):
        assert (tmp_path / rel).is_dir()
        assert f"created {tmp_path / rel}" in first.stdout
    second = subprocess.run([sys.executable, "setup.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert second.stdout.strip() == "all folders present"


def test_setup_refuses_setuptools_commands(tmp_path):
    shutil.copy(ROOT / "setup.py", tmp_path / "setup.py")
    res = subprocess.run([sys.executable, "setup.py", "install"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and "only creates the project folders" in res.stderr


def test_the_package_is_installed_so_src_imports_from_any_folder(tmp_path):
    """`make install` runs `pip install --no-deps -e .` (flit, which never executes setup.py)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("learn-filters")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("learn-filters is not installed in this interpreter (PYTHON=... without make install)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", "import src.filters, src; print(src.__file__)"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0 and Path(res.stdout.strip()).parent == ROOT / "src", res.stderr
