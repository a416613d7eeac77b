"""Every command the docs quote still runs: each ``python -m src...`` line parses against the current command line
(a dry parse: the module's own ``main`` up to ``parse_args``, no work done) and each ``make`` target exists.

A quoted line that is a fragment (``...``, ``…``) or holds a placeholder in capitals (``--checkpoint C``) is not a
command; optional parts in square brackets are dropped before parsing; a module named without arguments must exist
with a ``main``; a command after ``git checkout REV &&`` is history and parses against that commit, not this one.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?:\.[a-z]+)?|[A-Z])$")  # NAME, C, OUT.onnx


def code_lines(text: str) -> list[str]:
    """The lines of fenced code blocks (continuations joined) and the inline code spans of ``text`` (a span may wrap
    across lines)."""
    lines, prose, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            prose.append(line)
        elif lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + line.strip()
        else:
            lines.append(line.strip())
    spans = re.findall(r"`([^`]+)`", "\n".join(prose))
    return lines + [" ".join(span.split()) for span in spans]


def quoted_commands(text: str, program: str) -> list[str]:
    """Each quoted command line starting at ``program`` (``python -m src.`` or ``make``), comment stripped."""
    found = []
    for line in code_lines(text):
        at = line.find(program)
        if at < 0 or (at and line[at - 1] not in " $;(&") or "git checkout" in line[:at]:
            continue  # not at a command's start, or history (it parses against the commit it checks out)
        command = re.split(r"\s+#", line[at:], maxsplit=1)[0].strip()
        found.append(re.sub(r"\s*->.*$", "", command))
    return found


def runnable(command: str) -> list[str] | None:
    """``command`` as argv after ``python -m`` (optional ``[...]`` parts dropped), or None for a fragment."""
    command = re.sub(r"\[[^\]]*\]", " ", command)
    if "..." in command or "…" in command:
        return None
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if any(PLACEHOLDER.match(token) for token in argv[3:]):
        return None
    return argv[2:]


def all_commands(program: str) -> list[tuple[str, str]]:
    return sorted({(doc, c) for doc in DOCUMENTS for c in quoted_commands((ROOT / doc).read_text(), program)})


class DryRun(Exception):
    """Raised by the patched ``parse_args`` once the arguments parsed: no work is done."""


PARSE_ARGS = argparse.ArgumentParser.parse_args


def dry_parse(module: str, args: list[str], monkeypatch) -> None:
    """Run ``module``'s ``main`` with ``args`` until its arguments are parsed (``--help`` exits 0 there); a parse
    error raises ``SystemExit`` with a non-zero code."""

    def parse_then_stop(self, argv=None, namespace=None):
        PARSE_ARGS(self, argv, namespace)
        raise DryRun

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [module, *args])
    try:
        mod = importlib.import_module(module)
        main = getattr(mod, "main", None)
        if main is None and hasattr(mod, "__path__"):  # a package: python -m runs its __main__
            main = getattr(importlib.import_module(module + ".__main__"), "main", None)
        assert main is not None, f"{module} has no main()"
        try:
            main(args)
        except TypeError as exc:
            if "positional argument" not in str(exc):
                raise
            main()
    except DryRun:
        return
    except SystemExit as exc:
        if exc.code in (0, None):  # --help
            return
        raise
    raise AssertionError(f"{module}: main() returned without parsing its arguments")


PYTHON_COMMANDS = all_commands("python -m src.")


def test_the_docs_quote_commands_at_all():
    assert len(PYTHON_COMMANDS) > 30 and len(all_commands("make ")) > 10


@pytest.mark.parametrize("document, command", PYTHON_COMMANDS)
def test_every_quoted_command_parses_against_the_current_command_line(document, command, monkeypatch, capsys):
    argv = runnable(command)
    if argv is None:
        return  # a fragment or a placeholder: not a command line
    module, args = argv[0].rstrip(":,."), argv[1:]
    if not args:  # the module named, not run: it must exist and have a command line
        assert hasattr(importlib.import_module(module), "main") or importlib.util.find_spec(module + ".__main__")
        return
    try:
        dry_parse(module, args, monkeypatch)
    except SystemExit as exc:
        pytest.fail(f"{document}: `{command}` no longer parses: {capsys.readouterr().err.strip().splitlines()[-1:]}"
                    f" (exit {exc.code})")


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m for line in text.splitlines() if (m := re.match(r"^([A-Za-z0-9_.-]+):", line) and line.split(":")[0])}


@pytest.mark.parametrize("document, command", all_commands("make "))
def test_every_quoted_make_target_exists(document, command):
    words = command.split()
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    missing = [t for t in targets if re.fullmatch(r"[a-z0-9-]+", t) and t not in make_targets()]
    assert not missing, f"{document}: `{command}` names no Makefile target {missing}"


def test_a_stale_command_is_caught(monkeypatch):
    """The checker itself: an option that does not exist fails the dry parse."""
    with pytest.raises(SystemExit):
        dry_parse("src.studies.operators", ["table", "--no-such-option"], monkeypatch)
    dry_parse("src.studies.operators", ["table", "--repeats", "3"], monkeypatch)
