"""The README and docs/results.md agree with the committed tables they quote: the results table with
figures/eval-*.csv and the shipped checkpoints, every table copied from a figures/*.md with that file. Data-driven, so regenerating a
table and pasting it into the README keeps this green, and editing only one of them does not."""
import csv
import re
from pathlib import Path

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
# Each document and the fewest copies of figures/*.md tables it holds (a lost table is noticed).
DOCUMENTS = {"README.md": (README, 0), "docs/results.md": (RESULTS, 5), "docs/guide.md": (GUIDE, 2)}
# The results table's rows: the make target in the model cell -> (evaluation CSV, checkpoint).
RESULT_ROWS = {"make train": ("eval-sobel.csv", "sobel.ckpt"),
               "make train-autoencoder": ("eval-autoencoder.csv", "autoencoder.ckpt"),
               "make train-pix2pix-cpu": ("eval-pix2pix.csv", "pix2pix.ckpt"),
               "make train-pix2pix-photos": ("eval-pix2pix-photos.csv", "pix2pix-photos.ckpt"),
               "make train-pix2pix-photos-l1": ("eval-pix2pix-photos-l1.csv", "pix2pix-photos-l1.ckpt")}
# Where each results row is quoted: every row in the README, the shipped Pix2Pix in docs/results.md too.
QUOTED_ROWS = [(doc, t) for doc in ("README.md", "docs/results.md") for t in sorted(RESULT_ROWS)]
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip() for c in cells]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in ``text`` (indented or not): header row first, the |---| row dropped."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 3 and set(block[1].replace("|", "").strip()) <= set("-: "):
            tables.append([split_row(b) for b in block[:1] + block[2:]])
        block = []
    return tables


def numbers(cell: str) -> list[str]:
    return NUMBER.findall(cell.replace("**", ""))


def matches(value: float, shown: str) -> bool:
    """``shown`` is ``value`` rounded to as many decimals as it shows."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return f"{value:.{decimals}f}" == shown.replace(",", "")


def results_table(document: str = "README.md") -> tuple[list[str], list[list[str]]]:
    for header, *rows in markdown_tables(DOCUMENTS[document][0]):
        if header[:3] == ["model", "params", "test PSNR"]:
            return header, rows
    raise AssertionError(f"{document}: no results table (model | params | test PSNR | ...)")


def eval_mean(name: str) -> dict[str, float]:
    with (ROOT / "figures" / name).open(newline="") as f:
        mean = next(r for r in csv.DictReader(f) if r["image"] == "mean")
    return {k: float(v) for k, v in mean.items() if k not in ("image", "size")}


@pytest.mark.parametrize("document, target", QUOTED_ROWS)
def test_results_table_quotes_the_committed_evaluation_csv(document, target):
    header, rows = results_table(document)
    row = next((r for r in rows if f"(`{target}`)" in r[0]), None)
    assert row is not None, f"{document} results table has no row for `{target}`"
    cells = dict(zip(header, row))
    mean = eval_mean(RESULT_ROWS[target][0])
    quoted = {"test PSNR": ["psnr"], "SSIM": ["ssim"], "zero PSNR": ["zero_psnr"], "MAE": ["mae"],
              "border / inside PSNR": ["border_psnr", "interior_psnr"], "max \\|error\\| (1/255)": ["max_err_255"],
              "8-bit values changed": ["changed_8bit"]}
    scale = {"changed_8bit": 100.0}  # shown in %
    wrong = []
    for column, keys in quoted.items():
        shown = numbers(cells[column])
        if len(shown) != len(keys) or not all(matches(mean[k] * scale.get(k, 1.0), s) for k, s in zip(keys, shown)):
            wrong.append(f"{column}: {document} {cells[column]!r}, figures/{RESULT_ROWS[target][0]} "
                         + " / ".join(f"{mean[k]:.6g}" for k in keys))
    assert not wrong, f"{document} results row `{target}` differs from its CSV: " + "; ".join(wrong)


@pytest.mark.parametrize("document, target", QUOTED_ROWS)
def test_results_table_quotes_the_shipped_checkpoint(document, target):
    from src.models import load_model
    from src.models.networks import count_parameters

    header, rows = results_table(document)
    cells = dict(zip(header, next(r for r in rows if f"(`{target}`)" in r[0])))
    net = load_model(ROOT / "models" / RESULT_ROWS[target][1])
    assert matches(count_parameters(net), cells["params"]), (cells["params"], count_parameters(net))
    info = net.meta["info"]
    time = re.fullmatch(r"([\d,]+) steps, (\d+) s", cells["train time"])
    assert time, f"train time {cells['train time']!r}: expected 'N steps, T s'"
    # the checkpoint's own record of its run: the step budget and the wall time it took
    assert (int(time[1].replace(",", "")), int(time[2])) == (info["steps"], round(info["train_seconds"])), (cells["train time"], info)


def test_committed_evaluation_csv_is_the_shipped_checkpoints_score():
    """figures/eval-*.csv are what `make evaluate` gives for the committed checkpoints today."""
    from src.dataset.sources import load_split
    from src.models import load_model
    from src.evaluation.evaluate import checkpoint_filter, evaluate_images

    test_images = load_split("skimage", "test")
    for csv_name, ckpt in RESULT_ROWS.values():
        net = load_model(ROOT / "models" / ckpt)
        _, mean = evaluate_images(net, checkpoint_filter(net), test_images)
        committed = eval_mean(csv_name)
        for key in ("psnr", "ssim", "mae", "zero_psnr", "border_psnr", "interior_psnr"):
            assert mean[key] == pytest.approx(committed[key], rel=1e-4, abs=1e-6), (csv_name, key)


def committed_tables() -> dict[str, list[list[str]]]:
    return {p.name: t for p in sorted((ROOT / "figures").glob("*.md")) for t in markdown_tables(p.read_text())}


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_every_copy_of_a_figures_table_equals_it(document):
    """A table in the README or docs/results.md whose columns all belong to a committed figures/*.md table is a
    copy of one such table: same rows, same order, every shared cell equal (a copy may leave columns out)."""
    committed = committed_tables()
    assert {"knobs.md", "quantize.md", "sweep-size.md", "depth.md", "zoo.md", "ablation-gan.md"} <= set(committed)
    text, fewest = DOCUMENTS[document]
    copies = 0
    for header, *rows in markdown_tables(text):
        sources = {name: t for name, t in committed.items() if len(header) >= 4 and set(header) <= set(t[0])}
        if not sources:
            continue
        copies += 1
        projected = {name: [[dict(zip(t[0], r))[h] for h in header] for r in t[1:]] for name, t in sources.items()}
        if any(rows == p for p in projected.values()):
            continue
        name, p = max(projected.items(), key=lambda kv: sum(a == b for a, b in zip(rows, kv[1])))
        diff = [f"README {a}\n  {name:>10} {b}" for a, b in zip(rows, p) if a != b]
        pytest.fail(f"{document} table ({' | '.join(header)}) differs from figures/{name} "
                    f"({len(rows)} vs {len(p)} rows):\n" + "\n".join(diff[:5]))
    assert copies >= fewest, f"found only {copies} copies of figures tables in {document}"


def test_table_parser_reads_indented_tables_and_escaped_pipes():
    text = "x\n   | a | b |\n   |---|---:|\n   | 1 \\| 2 | 3 |\n\n| c |\n"
    assert markdown_tables(text) == [[["a", "b"], ["1 \\| 2", "3"]]]
    assert matches(64.69605, "64.70") and matches(9987, "9,987") and not matches(64.69605, "64.69")


def test_the_readme_stays_a_short_manual_with_the_results_apart():
    assert len(README.splitlines()) <= 300, "README.md over 300 lines: move detail to docs/guide.md or docs/results.md"
    assert "docs/results.md" in README and "docs/guide.md" in README


@pytest.mark.parametrize("document", ["README.md", "docs/guide.md", "docs/results.md"])
def test_every_relative_link_and_image_points_at_a_file(document):
    path = ROOT / document
    broken = []
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
        if not target.startswith(("http://", "https://")) and not (path.parent / target).exists():
            broken.append(target)
    assert not broken, f"{document}: links to missing files: {broken}"


def python_examples(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_api_example_runs_from_outside_the_repository(tmp_path):
    """The README's prediction example, as a user runs it in a folder of their own (training examples are left to
    the training tests: they take minutes)."""
    import os
    import subprocess
    import sys

    import cv2
    import skimage.data

    examples = [code for code in python_examples(README) if "predict(" in code and "train(" not in code]
    assert examples, "the README has no prediction example"
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(skimage.data.astronaut()[:97, :131], cv2.COLOR_RGB2BGR))
    (tmp_path / "models").symlink_to(ROOT / "models")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for code in examples:
        check = "\nassert edges.shape == exact.shape == rgb.shape[:2] and abs(edges - exact).max() < 1e-4\nprint('ok')"
        res = subprocess.run([sys.executable, "-c", code + check], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-2000:]


def bench_row(megapixels: float, runtime_prefix: str) -> dict:
    with (ROOT / "figures" / "bench.csv").open(newline="") as f:
        return next(r for r in csv.DictReader(f)
                    if abs(float(r["megapixels"]) - megapixels) < 0.1 and r["runtime"].startswith(runtime_prefix))


def test_the_readmes_speed_answer_quotes_the_committed_bench():
    """Question 4's MP/s, fractions of a copy and ratios to the OpenCV pipeline are figures/bench.csv's default row."""
    answer = README.split("4. **Optimisations that make it fast?**", 1)[1].split("5. **", 1)[0]
    answer = " ".join(answer.split())
    rows = [bench_row(mp, "predict (default") for mp in (1.0, 4.0, 24.0)]
    mps = ", ".join(f"{float(r['mps']):.0f}" for r in rows[:2]) + f" and {float(rows[2]['mps']):.0f} MP/s"
    assert mps in answer, mps
    fractions = [f"{float(r['copy_fraction']):.3f}".rstrip("0") for r in rows]
    shown = re.search(r"that is ([\d.]+)×, ([\d.]+)× and ([\d.]+)× a copy", answer).groups()
    assert all(matches(float(r["copy_fraction"]), s) for r, s in zip(rows, shown)), (shown, fractions)
    ratios = re.search(r"and ([\d.]+)×, ([\d.]+)× and ([\d.]+)× the OpenCV Sobel pipeline", answer).groups()
    assert all(matches(float(r["ratio"]), s) for r, s in zip(rows, ratios)), ratios


def test_the_guides_soak_figures_are_the_committed_soak():
    """docs/guide.md's 'Memory over many jobs' quotes figures/soak.md (`make soak`) as it stands."""
    import re

    soak = (ROOT / "figures" / "soak.md").read_text()
    first, last, peak = (int(v) for v in re.search(
        r"after the first job \| (\d+) MB \|\n\| after the last job \| (\d+) MB \(max (\d+) MB\)", soak).groups())
    growth = int(re.search(r"growth from the first job to the end \| ([+-]\d+) MB", soak).group(1))
    slope = re.search(r"least-squares slope \| ([+-][\d.]+) MB", soak).group(1)
    guide = " ".join((ROOT / "docs" / "guide.md").read_text().split())
    for quoted in (f"{first:,} MB after the first job, {last:,} MB after the fiftieth (max {peak:,})",
                   f"**{growth} MB**" if growth < 0 else f"**+{growth} MB**", f"slope of {slope} MB a job"):
        assert quoted in guide, quoted


def test_the_pix2pix_photos_table_quotes_its_evaluation_csvs():
    """docs/results.md "Learned from photographs": each cell is the mean of the committed evaluate output."""
    header, *rows = next(t for t in markdown_tables(RESULTS) if t[0][:2] == ["checkpoint", "learned from"])
    columns = {"embedded test split (4)": ("", "psnr"), "Kodak (24)": ("-kodak", "psnr"),
               "its 4-px frame on Kodak": ("-kodak", "border_psnr")}
    for row in rows:
        cells = dict(zip(header, row))
        stem = Path(cells["checkpoint"].strip("`")).stem  # models/NAME.ckpt, or a second seed's runs/NAME.ckpt
        for column, (suffix, key) in columns.items():
            value = eval_mean(f"eval-{stem}{suffix}.csv")[key]
            assert matches(value, numbers(cells[column])[-1]), (stem, column, cells[column], value)


def test_the_huge_image_figures_quoted_are_the_committed_bench():
    """figures/huge.md (`python -m src.bench.huge`): its table as it stands in the guide and results.md, and its 100 MP
    tiled row in question 1 of the README and of results.md."""
    huge = (ROOT / "figures" / "huge.md").read_text()
    table = "\n".join(line for line in huge.splitlines() if line.startswith("|"))
    for doc in ("guide.md", "results.md"):
        assert table in (ROOT / "docs" / doc).read_text(), doc
    row = next(line.split("|") for line in table.splitlines() if "100 MP" in line and "| 1024 |" in line)
    seconds, input_gib, extra = row[3].strip(), row[5].strip(), row[7].strip().lstrip("+")
    for text in (README, RESULTS):
        flat = " ".join(text.split())
        assert (f"a 100 MP photo in 1024-px tiles took {seconds} s through the command (read, predict, write), its "
                f"peak memory {extra} GiB above the process and the input's {input_gib} GiB") in flat
