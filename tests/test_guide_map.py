"""The guide's map of ``src/`` is the real one: every package is in it, and each imports only what its row allows."""
import re

from .conftest import ROOT
from .test_layout import GRAPH, MODULES

GUIDE = ROOT / "docs" / "guide.md"


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def map_rows() -> dict[str, set[str] | None]:
    """package -> the packages its row allows (None: anything), read from the guide's table."""
    text = GUIDE.read_text().split("## The map of `src/`", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str] | None] = {}
    every = [re.findall(r"`(\w+)`", line.split("|")[1]) for line in text.splitlines() if line.startswith("| `")]
    order = [p for names in every for p in names]
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        _, names, _, allowed, _ = line.split("|")
        packages = re.findall(r"`(\w+)`", names)
        if allowed.strip() == "anything":
            allow = None
        elif allowed.strip().startswith("everything above"):
            above = order[: order.index(packages[0])]
            allow = set(above) - set(re.findall(r"`(\w+)`", allowed))
        else:
            allow = set(re.findall(r"`(\w+)`", allowed))
        for p in packages:
            rows[p] = allow
    return rows


def test_the_guide_maps_every_package_of_src():
    packages = {package_of(m) for m in MODULES if package_of(m)}
    packages = {p for p in packages if (ROOT / "src" / p).is_dir() or (ROOT / "src" / f"{p}.py").is_file()}
    assert packages == set(map_rows()), f"in src but not in the map: {packages - set(map_rows())}; " \
                                        f"in the map but not in src: {set(map_rows()) - packages}"


def test_each_package_imports_only_what_its_row_in_the_guide_allows():
    rows = map_rows()
    wrong = []
    for module, deps in GRAPH.items():
        allow = rows.get(package_of(module))
        if allow is None:
            continue
        wrong += [f"{module} -> {d}" for d in deps if package_of(d) not in allow | {package_of(module)}]
    assert not wrong, "imports the guide's map does not allow:\n" + "\n".join(sorted(wrong))


def test_the_map_check_catches_an_import_the_guide_does_not_allow():
    GRAPH["src.io.files"].add("src.models.networks")
    try:
        try:
            test_each_package_imports_only_what_its_row_in_the_guide_allows()
        except AssertionError as exc:
            assert "src.io.files -> src.models.networks" in str(exc)
        else:
            raise AssertionError("the planted import went unnoticed")
    finally:
        GRAPH["src.io.files"].discard("src.models.networks")
