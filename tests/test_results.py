"""``make results`` (src.reports.results): every committed figure has a maker, every piece's command still parses,
and the runner pins, resumes, isolates the timed pieces and names the failures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from src.errors import UserError
from src.io.tables import commit_id
from src.reports import results
from src.reports.results import PIECES, Piece, run, source_of

from .conftest import ROOT
from .test_doc_commands import dry_parse, make_targets


def test_every_committed_figure_is_made_by_a_piece_or_named_with_its_source():
    files = subprocess.run(["git", "ls-files", "figures"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    orphans = [f for f in files if not f.endswith(".gitkeep") and source_of(f) is None]
    assert len(files) > 50 and not orphans, f"no piece of make results (or OTHER_SOURCES) makes {orphans}"


@pytest.mark.parametrize("piece", PIECES, ids=lambda p: p.name)
def test_every_pieces_command_parses_against_the_current_command_line(piece, monkeypatch):
    for line in piece.commands:
        words = line.format(python="python").split()
        if words[0] == "make":
            assert words[2] in make_targets(), f"{piece.name}: no Makefile target {words[2]}"
            continue
        assert words[:2] == ["python", "-m"], line
        dry_parse(words[2], words[3:], monkeypatch)


def _piece(name, tmp_path, code, cores="one", minutes=1):
    """A piece whose one command runs ``code`` (Python, no braces) with ``OUT`` = its file in ``tmp_path``."""
    out = tmp_path / f"{name}.txt"
    return Piece(name, (f"{{python}} -c {json.dumps(f'OUT = {str(out)!r}; ' + code)}",), (), minutes, cores)


STAMP = ("import os, time; t0 = time.time(); time.sleep(0.4); cores = sorted(os.sched_getaffinity(0)); "
         "open(OUT, 'w').write(repr((cores, os.environ.get('OMP_NUM_THREADS'), t0, time.time())))")


def test_one_core_pieces_run_pinned_side_by_side_and_timed_pieces_alone(tmp_path):
    pieces = [_piece("a", tmp_path, STAMP), _piece("b", tmp_path, STAMP), _piece("t", tmp_path, STAMP, "alone")]
    lines = []
    assert run(pieces, tmp_path / "state.json", cores=[0, 1], say=lines.append) == []
    a, b, t = (eval((tmp_path / f"{n}.txt").read_text()) for n in "abt")
    assert {tuple(a[0]), tuple(b[0])} == {(0,), (1,)} and a[1] == b[1] == "1"  # one core, one thread each
    assert a[2] < b[3] and b[2] < a[3]  # side by side
    assert len(t[0]) == len(sorted(__import__("os").sched_getaffinity(0))) and t[2] >= max(a[3], b[3])  # alone
    assert any("3/3 done" in line and "t finished" in line for line in lines)


def test_a_finished_piece_is_skipped_at_the_same_commit_and_forced_again(tmp_path):
    piece = _piece("once", tmp_path, "open(OUT, 'a').write('x')")
    state = tmp_path / "state.json"
    run([piece], state, cores=[0], say=lambda s: None)
    recorded = json.loads(state.read_text())["once"]
    assert recorded["commit"] == commit_id() and recorded["minutes"] >= 0
    lines = []
    run([piece], state, cores=[0], say=lines.append)
    assert (tmp_path / "once.txt").read_text() == "x" and "skipped" in lines[0]
    run([piece], state, cores=[0], force=True, say=lines.append)
    assert (tmp_path / "once.txt").read_text() == "xx"


def test_a_failing_piece_is_named_with_its_last_line_and_the_rest_go_on(tmp_path):
    bad = _piece("bad", tmp_path, "import sys; sys.exit('the data folder is missing')")
    good = _piece("good", tmp_path, "open(OUT, 'w').write('ok')")
    lines = []
    assert run([bad, good], tmp_path / "state.json", cores=[0], say=lines.append) == ["bad"]
    assert (tmp_path / "good.txt").read_text() == "ok"
    assert any("bad FAILED (exit 1): the data folder is missing" in line for line in lines)
    assert "bad" not in json.loads((tmp_path / "state.json").read_text())


def test_an_unknown_piece_is_refused_in_one_line():
    with pytest.raises(UserError, match="no piece named nope"):
        results.choose(["nope"])
    proc = subprocess.run([sys.executable, "-m", "src.reports.results", "--only", "nope"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1


def test_the_listing_names_every_piece_and_the_total():
    text = results.listing(PIECES, {})
    assert all(f"{p.name}: ~{p.minutes} min" in text for p in PIECES) and "min on one core" in text


def test_a_pieces_fresh_tables_carry_its_command_commit_and_date(tmp_path):
    table, own, old = tmp_path / "t.md", tmp_path / "own.md", tmp_path / "old.md"
    old.write_text("| a |\n|---|\n| 0 |\n")
    import os
    os.utime(old, (0, 0))  # written before the piece ran: not its output
    code = (f"open({str(table)!r}, 'w').write('| a |\\n|---|\\n| 1 |\\n'); "
            f"open({str(own)!r}, 'w').write('| b |\\n|---|\\nMade by me at commit abc, 2026-01-01.\\n')")
    piece = Piece("tab", (f"{{python}} -c {json.dumps(code)}",), (str(tmp_path / "*.md"),), 1)
    run([piece], tmp_path / "state.json", cores=[0], say=lambda s: None)
    last = table.read_text().splitlines()[-1]
    assert table.read_text().startswith("| a |\n|---|\n| 1 |\n\nMade by `python -c")
    assert f"(`make results ONLY=tab`) at commit {commit_id()}, " in last
    assert own.read_text().count("at commit") == 1 and "Made by" not in old.read_text()


def test_the_results_page_shows_the_pieces_and_their_total_as_they_are():
    page = (ROOT / "docs" / "results.md").read_text()
    assert results.pieces_markdown() in page and f"`{results.listing(PIECES, {}).splitlines()[-1]}`" in page


def test_a_table_made_from_uncommitted_code_says_so_in_its_commit(tmp_path, monkeypatch):
    """commit_id() is HEAD, plus "+changes" while the code under src/ differs from it (other files do not count)."""
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("r\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.chdir(tmp_path)
    head = commit_id()
    assert head and "+" not in head and head != "unknown"
    (tmp_path / "README.md").write_text("changed\n")
    assert commit_id() == head
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert commit_id() == head + "+changes"
