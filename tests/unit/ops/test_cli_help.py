"""Every ``zf801 ... --help`` reads as paragraphs: each paragraph of a command's help
reflows to the terminal width (lines break only where the next word would not fit), blank
lines still separate paragraphs, and no word of the docstring is lost on the way (names
such as ZF801_MATCH_KEY_SECRET, options such as --skip-bad, paths such as `<keys>/tls`)."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from rich.cells import cell_len
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()
_PADDING = 2
"""Columns of the help's padding (one either side of the text)."""


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(argv path, click command) of the root, every group and every command under it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))
every_command = pytest.mark.parametrize(
    "path, command", COMMANDS, ids=[" ".join(path) or "zf801" for path, _ in COMMANDS]
)


def _paragraphs(help_text: str) -> list[list[str]]:
    """The words of each paragraph of a help text, as the markdown shows them (code spans
    lose their backticks)."""
    text = inspect.cleandoc(help_text).partition("\f")[0]
    return [paragraph.replace("`", "").split() for paragraph in text.split("\n\n")]


def _rendered_paragraphs(output: str) -> list[list[str]]:
    """The lines of each paragraph of the description: between the usage line and the
    first panel, paragraphs separated by blank lines."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    paragraphs: list[list[str]] = [[]]
    for line in lines[start:]:
        if line.startswith("╭"):
            break
        text = line.strip()
        if text:
            paragraphs[-1].append(text)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [paragraph for paragraph in paragraphs if paragraph]


def test_the_walk_covers_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {
        "",
        "publish",
        "alerts",
        "keys",
        "keys init",
        "schemas example",
        "topics apply",
    } <= names
    assert len(names) > 25


@every_command
@pytest.mark.parametrize("columns", [60, 200])
def test_help_paragraphs_reflow_to_the_terminal(
    path: tuple[str, ...], command: Any, columns: int
) -> None:
    assert command.help, f"zf801 {' '.join(path)} has no help text"
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    expected = _paragraphs(command.help)
    rendered = _rendered_paragraphs(result.output)
    assert [" ".join(p).split() for p in rendered] == expected, result.output
    width = columns - _PADDING
    for paragraph in rendered:
        assert all(cell_len(line) <= width for line in paragraph), paragraph
        for line, following in itertools.pairwise(paragraph):
            # A line ends early only if the next word would not have fit on it.
            assert cell_len(line) + 1 + cell_len(following.split()[0]) > width, (
                f"{line!r} breaks before {following.split()[0]!r} at {columns} columns"
            )


def test_underscored_names_and_options_render_as_written() -> None:
    result = runner.invoke(app, ["publish", "--help"], env={"COLUMNS": "200"})
    for word in ("ZF801_MATCH_KEY_SECRET", "ZF801_KEY_PASSPHRASE", "--skip-bad", '"subject"'):
        assert word in result.output, word
    keys = runner.invoke(app, ["keys", "--help"], env={"COLUMNS": "200"})
    assert "<keys>/tls" in keys.output and "ZF801_KEYS_PATH" in keys.output
