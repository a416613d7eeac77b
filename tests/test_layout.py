"""The layout (issue "one-hop layout"): imports point down the layers only, no module imports itself back
through others, every package says in its docstring what it holds and may import, and no file is huge."""
import ast
from pathlib import Path

import pytest

from .conftest import ROOT

SRC = ROOT / "src"
# Lowest first. A module may import its own layer and the ones before it, never one after it.
LAYERS = [
    {"errors"},
    {"cli", "threads"},
    {"io"},
    {"kernels"},
    {"filters"},
    {"download"},
    {"dataset"},
    {"models"},
    {"inference"},
    {"evaluation"},
    {"training"},
    {"reports"},
    {"studies", "bench"},
    {"demo", "testing", "experiment"},  # experiment and testing: the old paths, thin shims
]
MAX_PACKAGE_LINES = 1500
# studies holds one self-contained module per study (a reader opens the one behind a table, never the package
# whole), so it grows by a module a question; models likewise by a module a paper's network (the one behind a
# --model name); everything else stays under the common limit
PACKAGE_LINES = {"studies": 1800, "models": 1700}
MAX_TRAINING_LINES = 1000
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every ``src...`` module that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("src")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
            found.add(node.module)
            # "from src.filters import pairs" imports the submodule src.filters.pairs
            found |= {f"{node.module}.{a.name}" for a in node.names if (SRC.parent / (node.module.replace(".", "/") + f"/{a.name}.py")).exists()}
    return found


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}
GRAPH = {m: {i for i in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add its package to LAYERS")


def test_every_package_of_src_has_a_layer():
    for m in MODULES:
        if m != "src":
            layer(m)


def test_imports_point_down_the_layers_only():
    upward = [f"{m} -> {i}" for m, deps in GRAPH.items() if m != "src" for i in deps if layer(i) > layer(m)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_the_module_import_graph_has_no_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_cycle_check_finds_a_planted_cycle():
    GRAPH["src.errors"].add("src.cli")
    try:
        with pytest.raises(pytest.fail.Exception, match="import cycle"):
            test_the_module_import_graph_has_no_cycle()
    finally:
        GRAPH["src.errors"].discard("src.cli")


def test_each_package_docstring_says_what_it_may_import():
    for init in SRC.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init.relative_to(ROOT)} has no docstring"
        if init.parent.name not in ("filters", "dataset", "models"):  # the public API packages list their exports
            assert "May import" in doc, f"{init.relative_to(ROOT)}: say what the package may import"


def test_no_source_file_is_too_long_to_read_at_once():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long


def test_nothing_patches_sys_path():
    offenders = [str(p.relative_to(ROOT)) for p in [*SRC.rglob("*.py"), *ROOT.glob("*.py"), *ROOT.glob("scripts/*.py"),
                                                      *ROOT.glob("*.ipynb")]
                 if "sys.path.insert" in p.read_text() and p.name != "user.py"]  # user.py: the --filter module:function search
    assert not offenders, offenders


@pytest.mark.parametrize("module", ["src.inference.predict", "src.testing.predict", "src.evaluation.evaluate"])
def test_a_cli_starts_without_a_double_import_warning(module):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-W", "default", "-m", module, "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "usage:" in res.stdout
    assert "RuntimeWarning" not in res.stderr, res.stderr


def test_the_data_commands_and_src_dataset_start_without_torch():
    import subprocess
    import sys

    code = "import sys, src.dataset, src.download.download, src.cli, src.io.tables; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


def package_lines(package: str) -> int:
    return sum(len(p.read_text().splitlines()) for p in (SRC / package).rglob("*.py"))


def test_no_package_is_too_large_to_read_in_one_sitting():
    large = {p.name: n for p in SRC.iterdir()
             if p.is_dir() and (n := package_lines(p.name)) > PACKAGE_LINES.get(p.name, MAX_PACKAGE_LINES)}
    assert not large, f"packages over {MAX_PACKAGE_LINES} lines ({PACKAGE_LINES} apart): {large}"


def test_training_stays_small_enough_for_a_newcomer():
    assert package_lines("training") <= MAX_TRAINING_LINES


def test_studies_and_benchmarks_do_not_import_each_other():
    crossed = [f"{m} -> {i}" for m, deps in GRAPH.items() for i in deps
               if {m.split(".")[1], i.split(".")[1]} == {"studies", "bench"}]
    assert not crossed, crossed


def test_nothing_in_src_imports_the_old_experiment_paths():
    users = [f"{m} -> {i}" for m, deps in GRAPH.items() if not m.startswith("src.experiment")
             for i in deps if i.startswith("src.experiment")]
    assert not users, users


OLD_PATHS = {  # what the README, notebooks and users' scripts were taught before the split
    "src.experiment.train": ("src.training.train", "train"),
    "src.experiment.config": ("src.training.config", "TrainConfig"),
    "src.experiment.teach": ("src.training.teach", "teach"),
    "src.experiment.zoo": ("src.studies.zoo", "run_one"),
    "src.experiment.sweep": ("src.studies.sweep", "main"),
    "src.experiment.bench": ("src.bench.speed", "main"),
    "src.experiment.gpu_bench": ("src.bench.gpu", "main"),
    "src.experiment.knobs": ("src.bench.knobs", "main"),
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_module_path_is_the_new_module(old):
    import importlib

    new, name = OLD_PATHS[old]
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_every_old_experiment_module_is_a_thin_shim():
    for path in (SRC / "experiment").glob("*.py"):
        if path.name != "__init__.py":
            assert len(path.read_text().splitlines()) <= 13, f"{path.name} is more than a shim"


def test_an_old_command_path_still_runs():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-W", "default", "-m", "src.experiment.train", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "usage:" in res.stdout, res.stderr
    assert "RuntimeWarning" not in res.stderr, res.stderr


def function_local_imports(path: Path) -> list[tuple[int, str]]:
    """(first line, the statement's lines joined) of each import statement inside a function."""
    lines = path.read_text().splitlines()
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [(n.lineno, " ".join(lines[n.lineno - 1:n.end_lineno])) for n in ast.walk(fn)
                      if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(set(found))


def test_every_function_local_import_says_why_on_its_line():
    """A function-local import hides what a module needs: it is for start-up cost (torch, Lightning, gradio) or
    an optional dependency, and says so (``# start-up: torch only when called``)."""
    silent = [f"{p.relative_to(ROOT)}:{n}: {text.strip()}" for p in [*SRC.rglob("*.py"), ROOT / "demo_gradio.py"]
              for n, text in function_local_imports(p) if "#" not in text]
    assert not silent, "function-local imports without a reason:\n" + "\n".join(silent)


MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_a_screen():
    """Functions read as parse -> typed run -> write; a long one is split into named steps."""
    long = [f"{p.relative_to(ROOT)}:{n.name}: {n.end_lineno - n.lineno + 1} lines"
            for p in [*SRC.rglob("*.py"), ROOT / "demo_gradio.py"] for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long
