"""The notebooks: main.ipynb (Pix2Pix) and simple_main.ipynb (seed autoencoder + compact net) run top to bottom,
write under runs/ (or the folder a test names) unless `SHIP = True` in their first cell, never change the
checkout, name the project's kernel, and `make notebook` executes a copy instead of the committed notebook."""
import ast
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient

from src.io.tables import read_csv
from src.models import load_model
from src.models.pix2pix import UNetGenerator

from .conftest import ROOT, git_status

NOTEBOOKS = ("main.ipynb", "simple_main.ipynb")
KERNEL = {"name": "learn-filters", "display_name": "learn-filters (.venv)", "language": "python"}


@dataclass
class Run:
    """One notebook executed top to bottom in the repository root, as Jupyter would."""

    nb: nbformat.NotebookNode
    out: Path  # the folder its files went to
    status_before: set[str] | None  # git status (ignored files included) around the run
    status_after: set[str] | None

    @property
    def text(self) -> str:
        return "".join(o.get("text", "") for c in self.nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def execute(name: str, env: dict[str, str], out: Path | None = None) -> Run:
    """Run ``name`` with ``env`` (and no other notebook setting) on the .venv's own kernel, python3: the tests
    must not depend on `make kernel` having registered learn-filters."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("SMOKE", "PROFILE", "PIX2PIX_OUT", "PIX2PIX_STEPS"):
            mp.delenv(key, raising=False)
        for key, value in {**env, "PYTHONWARNINGS": "ignore"}.items():
            mp.setenv(key, value)
        before = git_status()
        nb = nbformat.read(ROOT / name, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
        return Run(nb, out, before, git_status())


@pytest.fixture(scope="module")
def main_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("main-smoke")
    # the committed run uses 600 steps; the cells are the same
    return execute("main.ipynb", {"PROFILE": "smoke", "PIX2PIX_STEPS": "40", "PIX2PIX_OUT": str(out)}, out)


@pytest.fixture(scope="module")
def main_cpu(tmp_path_factory):
    out = tmp_path_factory.mktemp("main-cpu")
    return execute("main.ipynb", {"PROFILE": "cpu", "PIX2PIX_OUT": str(out)}, out)


@pytest.fixture(scope="module")
def simple_smoke():
    run = execute("simple_main.ipynb", {"SMOKE": "1"})
    run.out = Path(re.search(r"SMOKE -> outputs in (\S+)", run.text)[1])  # the notebook's own temporary folder
    yield run
    if not run.out.resolve().is_relative_to(ROOT):
        shutil.rmtree(run.out, ignore_errors=True)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_in_smoke_mode(main_smoke):
    models, figures = main_smoke.out / "models", main_smoke.out / "figures"
    assert isinstance(load_model(models / "pix2pix-smoke.ckpt"), UNetGenerator)
    assert not (models / "pix2pix.ckpt").exists()  # the shipped (cpu profile) name is left alone
    assert {p.name for p in figures.iterdir()} >= {
        "pix2pix-smoke-examples.png", "pix2pix-smoke-curves.png", "pix2pix-smoke-test.csv", "pix2pix-smoke-grid.png"}


@pytest.mark.slow
def test_notebook_cpu_profile_loads_the_shipped_run_instead_of_training(main_cpu):
    """PROFILE=cpu (the committed notebook's profile) finds the shipped models/pix2pix.ckpt to be this profile's
    finished run, loads it without training (or copying it), and reproduces its committed test table."""
    assert "LOADED, not retrained: models/pix2pix.ckpt" in main_cpu.text
    assert not (main_cpu.out / "models").exists()  # nothing trained, nothing written next to the figures
    ours, shipped = read_csv(main_cpu.out / "figures" / "pix2pix-test.csv"), read_csv(ROOT / "figures" / "pix2pix-test.csv")
    assert [r["image"] for r in ours] == [r["image"] for r in shipped]
    assert [r["psnr"] for r in ours] == pytest.approx([r["psnr"] for r in shipped], abs=1e-6)


@pytest.mark.slow
def test_simple_main_notebook_runs_in_smoke_mode(simple_smoke):
    assert "SMOKE -> outputs in" in simple_smoke.text and "mean" in simple_smoke.text
    assert not any(o.get("output_type") == "error" for c in simple_smoke.nb.cells for o in c.get("outputs", []))
    # the kernel saw SMOKE=1 and wrote its checkpoints to a temporary folder, not into the checkout
    out = simple_smoke.out
    assert not out.resolve().is_relative_to(ROOT) and list(out.rglob("*.ckpt")), sorted(out.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize("run", ["main_smoke", "main_cpu", "simple_smoke"])
def test_running_a_notebook_leaves_the_checkouts_git_status_unchanged(run, request):
    run = request.getfixturevalue(run)
    if run.status_before is None:
        pytest.skip("not a git checkout: no git status to compare")
    assert run.status_after == run.status_before, sorted(run.status_after ^ run.status_before)
    assert list(run.out.rglob("*.png")), f"nothing written to {run.out}"  # it wrote, only elsewhere


def first_code_cell(name: str) -> str:
    cell = next(c.source for c in nbformat.read(ROOT / name, as_version=4).cells if c.cell_type == "code")
    return "\n".join(line for line in cell.splitlines() if not line.startswith("%"))  # IPython magics


def output_folder(name: str, ship: bool) -> Path:
    """The first cell's OUT for a Jupyter user who sets SHIP and no environment variable."""
    body = ast.parse(first_code_cell(name)).body
    out = next(n.value for n in body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "OUT")
    names = {"SHIP": ship, "SMOKE": False, "ROOT": Path("."), "Path": Path, "os": SimpleNamespace(environ={}),
             "tempfile": tempfile}
    return eval(compile(ast.Expression(out), name, "eval"), names)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_write_under_runs_unless_ship_is_set_in_the_first_cell(name):
    assert re.search(r"^SHIP = False  # True: write models/", first_code_cell(name), re.M)
    assert output_folder(name, ship=False) == Path("runs") / Path(name).stem
    assert output_folder(name, ship=True) == Path(".")  # models/ and figures/: what the repository ships
    assert subprocess.run(["git", "check-ignore", "-q", f"runs/{Path(name).stem}/models/x.ckpt"], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_name_the_kernel_make_kernel_registers(name):
    assert nbformat.read(ROOT / name, as_version=4).metadata.kernelspec == KERNEL
    assert f'--name {KERNEL["name"]} --display-name "{KERNEL["display_name"]}"' in (ROOT / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_notebook_executes_a_copy_not_the_committed_notebook(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    res = subprocess.run(["make", "--no-print-directory", "-n", "notebook", "PYTHON=python3"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, MAKEFLAGS=""))
    command = next(line for line in res.stdout.splitlines() if "nbconvert" in line)
    assert "--inplace" not in command and "--output-dir runs --output main.ipynb" in command
    assert "--ExecutePreprocessor.kernel_name=python3" in command  # runs before `make kernel` too
