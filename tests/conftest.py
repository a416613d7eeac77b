import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The one list of skips the suite may make under CI=true ("file::test": why). Any other skip fails there.
# Off CI a skip stays a skip; either way the skips are listed at the end of the run. Today the suite has
# no test that needs hardware CI lacks; a GPU-only test would be listed here, e.g.
#     "test_x.py::test_bf16_training_on_the_gpu": "needs a CUDA device; CI runs on CPU",
ALLOWED_SKIPS: dict[str, str] = {}
# What tests may leave behind in the checkout (caches and the environment itself, all ignored by git).
CACHES = (".venv/", ".pytest_cache/", "__pycache__/", ".make/")


def skip_reason(report) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true, a skip not in ALLOWED_SKIPS is a failure that says why it skipped."""
    report = (yield).get_result()
    if not (ON_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    key = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
    if key not in ALLOWED_SKIPS:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true but not listed in ALLOWED_SKIPS (tests/conftest.py): {skip_reason(report)}"


def pytest_terminal_summary(terminalreporter):
    """Every skip of the run, with its reason, however pytest was called."""
    skipped = terminalreporter.stats.get("skipped", [])
    terminalreporter.write_line(f"{len(skipped)} skipped" + (":" if skipped else ""))
    for rep in skipped:
        terminalreporter.write_line(f"  {rep.nodeid}: {skip_reason(rep)}")


def git_status() -> set[str] | None:
    """The checkout's ``git status --porcelain --ignored`` entries, caches left out; None outside a git checkout.

    Ignored files count too (a stray ``lightning_logs/`` is a write into the tree); untracked and ignored
    folders show as one entry each, so the 5 GB ``.venv`` costs one line.
    """
    try:
        res = subprocess.run(["git", "status", "--porcelain", "-z", "--ignored"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    asked_for = os.environ.get("DEMO_SCREENSHOT")  # `make screenshot` refreshes figures/gradio.png on purpose
    entries = {e for e in res.stdout.split("\0") if len(e) > 3 and e[3:] != asked_for}
    return {e for e in entries if not any(e[3:].startswith(c) or f"/{c}" in e[3:] for c in CACHES)}


def pytest_sessionstart(session):
    session.config.stash[_STATUS_AT_START] = git_status()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session, exitstatus):
    """Tests never write into the checkout: the git status after the run is the one before it (empty under CI)."""
    yield
    before, after = session.config.stash[_STATUS_AT_START], git_status()
    if before is None or after is None:
        return
    new = sorted(after - (set() if ON_CI else before))
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = ("the test run changed the checkout (tests must write to tmp_path)" if not ON_CI else
                   "the checkout is not clean after the test run (CI=true requires an empty git status)")
        lines = [f"FAILED git status: {message}:", *(f"  {line}" for line in new)]
        if reporter is not None:
            for line in lines:
                reporter.write_line(line, red=True)
        else:
            print("\n".join(lines))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_STATUS_AT_START = pytest.StashKey[set]()


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo cropped to an odd size (301 x 457)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[:301, :457])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_module(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` as a user would, capturing output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def settled_screenshot(page, path: Path, timeout_s: float) -> Path:
    """A full-page screenshot once Gradio shows no pending event (it dims outputs while one runs)."""
    page.wait_for_function("!document.querySelector('.pending, .generating, .translucent')", timeout=timeout_s * 1000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True, timeout=timeout_s * 1000)
    return path


def keep_screenshot(shot: Path, env: str) -> None:
    """``make screenshot`` names the figure to refresh in ``env``; a plain test run keeps it in tmp only."""
    if os.environ.get(env):
        from src.io.files import atomic_write_bytes

        atomic_write_bytes(ROOT / os.environ[env], shot.read_bytes())
