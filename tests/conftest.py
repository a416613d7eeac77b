import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


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
