"""simple_main.ipynb runs top to bottom with SMOKE=1 (outputs go to a temporary folder)."""
import os

import nbformat
from nbclient import NotebookClient

from .conftest import ROOT


def test_simple_main_notebook_runs_in_smoke_mode(monkeypatch):
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(ROOT / "simple_main.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "SMOKE -> outputs in" in text and "mean" in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert os.environ["SMOKE"] == "1"
