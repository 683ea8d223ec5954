"""``zf801 topics apply --catalog`` and ``zf801 acls plan --catalog/--agencies`` given a
device, a folder or deeply nested YAML: a one-line error naming the file and the rule,
exit 1, no memory filled and no "unexpected" defect message."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["topics", "apply", "--dry-run", "--catalog", "/dev/zero"],
            "error: topic catalog /dev/zero is invalid (1 problem): - catalog: not a regular file",
        ),
        (
            ["acls", "plan", "--offline", "--catalog", "/dev/zero"],
            "error: topic catalog /dev/zero is invalid (1 problem): - catalog: not a regular file",
        ),
        (
            ["acls", "plan", "--offline", "--agencies", "/dev/zero"],
            "error: agency list /dev/zero: not a regular file",
        ),
    ],
)
def test_a_device_is_refused_naming_the_file_and_the_rule(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "unexpected" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("option", ["--catalog", "--agencies"])
def test_yaml_nested_too_deeply_is_refused(tmp_path: Path, option: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000, encoding="utf-8")
    result = runner.invoke(app, ["acls", "plan", "--offline", option, str(path)])
    assert result.exit_code == 1
    assert "not valid YAML: nested too deeply" in result.output
    assert "unexpected" not in result.output
