"""simple_main.ipynb runs top to bottom with SMOKE=1 (outputs go to a temporary folder)."""
import re
import shutil
from pathlib import Path

import pytest

import nbformat
from nbclient import NotebookClient

from .conftest import ROOT


@pytest.mark.slow
def test_simple_main_notebook_runs_in_smoke_mode(monkeypatch):
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(ROOT / "simple_main.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "SMOKE -> outputs in" in text and "mean" in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    out = Path(re.search(r"SMOKE -> outputs in (\S+)", text)[1])
    try:  # the kernel saw SMOKE=1 and wrote its checkpoints to a temporary folder, not into the checkout
        assert not out.resolve().is_relative_to(ROOT) and list(out.rglob("*.ckpt")), sorted(out.rglob("*"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
