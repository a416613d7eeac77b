"""The suite's own rules (tests/conftest.py), checked on a throwaway project that uses the same conftest:
under CI=true a skip fails unless ALLOWED_SKIPS lists it; skips are listed at the end; a run that changes
the checkout's git status fails."""
import os
import subprocess
import sys

from .conftest import ROOT

INNER = '''import pytest
from pathlib import Path

def test_needs_a_browser():
    pytest.skip("no browser: apt-get install chromium")

def test_needs_a_gpu():
    pytest.skip("needs CUDA")

def test_writes():
    (Path(__file__).resolve().parents[1] / "out.png").write_bytes(b"x")
'''


def project(tmp_path, git: bool = False):
    """tmp_path/tests/{conftest.py (ours, allowing test_needs_a_gpu), test_inner.py}; a git checkout if ``git``."""
    (tmp_path / "tests").mkdir()
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert "ALLOWED_SKIPS: dict[str, str] = {" in conftest
    conftest = conftest.replace("ALLOWED_SKIPS: dict[str, str] = {",
                                'ALLOWED_SKIPS: dict[str, str] = {"test_inner.py::test_needs_a_gpu": "no GPU in CI",', 1)
    (tmp_path / "tests" / "conftest.py").write_text(conftest)
    (tmp_path / "tests" / "test_inner.py").write_text(INNER)
    if git:
        (tmp_path / ".gitignore").write_text("__pycache__/\n")
        for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
            subprocess.run(["git", *cmd], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def run_pytest(root, ci: bool, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_under_ci_a_skip_fails_unless_listed_and_every_skip_is_printed(tmp_path):
    root = project(tmp_path)
    ci = run_pytest(root, True, "-k", "needs")
    assert ci.returncode == 1, ci.stdout
    assert "1 failed" in ci.stdout and "not listed in ALLOWED_SKIPS" in ci.stdout and "apt-get install chromium" in ci.stdout
    assert "1 skipped:" in ci.stdout and "test_needs_a_gpu: needs CUDA" in ci.stdout
    local = run_pytest(root, False, "-k", "needs")
    assert local.returncode == 0, local.stdout
    assert "2 skipped:" in local.stdout and "no browser: apt-get install chromium" in local.stdout


def test_a_run_that_changes_the_checkout_fails(tmp_path):
    root = project(tmp_path, git=True)
    res = run_pytest(root, False, "-k", "test_writes")
    assert res.returncode == 1, res.stdout
    assert "FAILED git status: the test run changed the checkout" in res.stdout and "?? out.png" in res.stdout


def test_uncommitted_edits_from_before_the_run_fail_only_under_ci(tmp_path):
    root = project(tmp_path, git=True)
    (root / "notes.txt").write_text("a developer's edit")
    assert run_pytest(root, False, "-k", "needs_a_gpu").returncode == 0
    res = run_pytest(root, True, "-k", "needs_a_gpu")
    assert res.returncode == 1 and "CI=true requires an empty git status" in res.stdout and "?? notes.txt" in res.stdout
