"""The Makefile's mechanics, on a copy of it in an empty folder: `make` alone lists the targets and installs
nothing; a bootstrap interpreter without the venv module gets one line saying what to install."""
import shutil
import subprocess

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=folder, capture_output=True, text=True, timeout=60)


@pytest.fixture
def folder(tmp_path):
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_plain_make_lists_the_targets_and_installs_nothing(folder):
    res = make(folder)
    assert res.returncode == 0, res.stderr
    listed = {line.split()[0] for line in res.stdout.splitlines()[1:]}
    assert {"help", "install", "kernel", "train", "test", "test-fast", "figures", "screenshot"} <= listed
    assert not (folder / ".venv").exists()


def test_every_target_runs_the_project_venv_unless_python_is_given(folder):
    assert ".venv/bin/python -m pytest -q" in make(folder, "-n", "test").stdout
    dry = make(folder, "-n", "test", "PYTHON=/opt/py/bin/python3").stdout
    assert "/opt/py/bin/python3 -m pytest -q" in dry and "pip install" not in dry


def test_make_test_fast_deselects_the_slow_marker(folder):
    assert '-m "not slow"' in make(folder, "-n", "test-fast", "PYTHON=python3").stdout


def test_install_without_the_venv_module_says_in_one_line_what_to_install(folder):
    fake = folder / "python-without-venv"
    fake.write_text('#!/bin/sh\ncase "$*" in *"import venv"*) exit 1;; esac\nexec python3 "$@"\n')
    fake.chmod(0o755)
    res = make(folder, "install", f"BOOTSTRAP_PYTHON={fake}")
    assert res.returncode == 2
    assert res.stdout.strip().count("\n") == 0 and "apt-get install python3-venv" in res.stdout, res.stdout
    assert not (folder / ".venv").exists()
