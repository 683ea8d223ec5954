"""``zf801 schemas encode|decode`` on hostile stdin: ``/dev/zero``, a document nested
100,000 deep, duplicate keys, no document or two. Stdin is read as ``zf801 publish``
reads its input (:mod:`ops.publish_input`): at most 1 MiB, strict JSON, the same
messages; exit 1, never a defect message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.publish_input import MAX_LINE_BYTES
from schemas.registry import EXAMPLE_DIR

runner = CliRunner()
HOTEL = (EXAMPLE_DIR / "sightings" / "HotelCheckIn.json").read_text("utf-8")


def _clean_error(result: object, message: str) -> None:
    output = getattr(result, "output", "")
    assert getattr(result, "exit_code", None) == 1, output
    assert f"error: {message}" in output
    assert "unexpected" not in output and "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "limit"),
    [
        (["encode", "HotelCheckIn"], MAX_LINE_BYTES),
        (["decode"], MAX_LINE_BYTES),
        (["decode", "--hex"], 3 * MAX_LINE_BYTES),
    ],
)
def test_endless_stdin_is_refused_after_the_limit(args: list[str], limit: int) -> None:
    """The real command with ``/dev/zero`` as stdin (the runner takes bytes, not a device);
    under a 2 GB address-space cap, so reading it all would fail, not fill the machine."""
    script = (
        "import resource, sys; from ops.cli import main; "
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "sys.argv = ['zf801', *sys.argv[1:]]; main()"
    )
    with Path("/dev/zero").open("rb") as zero:
        done = subprocess.run(
            [sys.executable, "-c", script, "schemas", *args],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "ZF801_MODE": "test", "COLUMNS": "220"},
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert f"error: stdin: longer than {limit} bytes: refused" in done.stderr
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_encode_takes_a_document_of_exactly_the_limit() -> None:
    document = json.dumps(json.loads(HOTEL)).encode()
    padded = document + b" " * (MAX_LINE_BYTES - len(document))
    result = runner.invoke(app, ["schemas", "encode", "HotelCheckIn", "--hex"], input=padded)
    assert result.exit_code == 0, result.output
    too_long = runner.invoke(app, ["schemas", "encode", "HotelCheckIn"], input=padded + b" ")
    _clean_error(too_long, f"stdin: longer than {MAX_LINE_BYTES} bytes: refused")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "\n", "stdin line 1: not valid JSON: nested too deeply"),
        ('{"a": 1, "a": 2}', "stdin line 1: key 'a' appears twice in one object"),
        ('{"a": NaN}', "stdin line 1: a: NaN is not a JSON number [rule json.number]"),
        ("", "stdin: no JSON document"),
        ("\n\n", "stdin: no JSON document"),
        ("{}\n{}\n", "stdin line 2: a second JSON document; encode takes one"),
        ("{not json", "stdin line 1: not valid JSON: Expecting property name"),
    ],
)
def test_encode_refuses_what_publish_refuses_with_its_message(text: str, message: str) -> None:
    result = runner.invoke(app, ["schemas", "encode", "HotelCheckIn"], input=text)
    _clean_error(result, message)


def test_encode_takes_a_pretty_printed_document_with_a_bom() -> None:
    result = runner.invoke(app, ["schemas", "encode", "HotelCheckIn"], input="\ufeff" + HOTEL)
    assert result.exit_code == 0, result.output
    decoded = runner.invoke(app, ["schemas", "decode"], input=result.stdout_bytes)
    assert json.loads(decoded.stdout) == json.loads(HOTEL)


def test_decode_takes_hex_with_line_ends_and_spaces() -> None:
    encoded = runner.invoke(app, ["schemas", "encode", "HotelCheckIn", "--hex"], input=HOTEL)
    digits = encoded.stdout.strip()
    spaced = "\n".join(
        " ".join(digits[i : i + 2] for i in range(start, min(start + 60, len(digits)), 2))
        for start in range(0, len(digits), 60)
    )
    decoded = runner.invoke(app, ["schemas", "decode", "--hex"], input=spaced + "\n")
    assert decoded.exit_code == 0, decoded.output
    assert json.loads(decoded.stdout) == json.loads(HOTEL)
