"""`--help` text is wrapped by rich, never by the source: typer's rich mode keeps a docstring's
single line breaks (except in a command's first line), so a wrapped summary split the Commands
panel's row and a wrapped paragraph broke mid-sentence on any terminal."""

from __future__ import annotations

import re

import pytest
import typer

from mitobench.cli import app


@pytest.mark.parametrize("group", [(), ("data",), ("models",)], ids=["mitobench", "data", "models"])
def test_each_command_summary_is_one_row(group, cli, monkeypatch) -> None:
    """Wide enough that nothing wraps, every row of the Commands panel names a command: a row with
    a blank name column is a docstring's hard line break (how `doctor` and `raters` looked)."""
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = cli(*group, "--help")
    assert code == 0
    panel = out.split("Commands")[1]
    rows = [line for line in panel.splitlines() if line.startswith("│")]
    assert len(rows) >= 3
    continued = [row for row in rows if re.match(r"│\s{3,}\S", row)]
    assert not continued, continued


def _commands(group, path: str = "mitobench"):
    for name, sub in getattr(group, "commands", {}).items():
        yield f"{path} {name}", sub
        yield from _commands(sub, f"{path} {name}")


def test_no_help_paragraph_is_wrapped_in_the_source() -> None:
    """Every paragraph of every command's help is one line, so rich wraps it to the terminal."""
    wrapped = [
        (path, paragraph)
        for path, command in _commands(typer.main.get_command(app))
        for paragraph in (command.help or "").strip().split("\n\n")
        if "\n" in paragraph.strip()
    ]
    assert not wrapped, wrapped
