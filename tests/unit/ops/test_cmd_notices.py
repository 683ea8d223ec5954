"""``zf801 notices``: its options refused before anything is read, and how it shows a unit's
action notices (table, one line per notice when following, JSON) with the records it refused
counted and named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from consumers.notices import Notice
from consumers.own_stream import Refusal
from ops.cli import app
from ops.cmd_notices import notices_view, reading_unit, unit_option
from ops.stream_view import ReadSummary, as_json, follow, summary, table
from ops.terminal import json_line
from schemas.settings import Settings
from tests.builders import trust_set

UNIT, OTHER_UNIT = "110105000000", "110000000000"
runner = CliRunner()


def _notice(**fields: object) -> Notice:
    record = {
        "notice_id": "n-1", "hit_id": "h-1", "reporting_unit_code": UNIT, "sighting_id": "s-1",
        "action": "DETAIN", "concealed": False, "court_code": "BJ01", "order_id": "o-1",
        "case_number": "（2026）京01执1号", "handler": {"name": "王法官", "phone": "13900139000"},
        "instructions": "立即控制", "documents": [{"document_id": "（2026）京01执1号之一"}],
        **fields,
    }  # fmt: skip
    return Notice(event_id="n-1", event_type="cn.zf801.bus.v1.ActionNotice",
                  signed_by="BUS-MATCHER", offset=3, record=record,
                  document={"notice_id": "n-1", "action": record["action"]})  # fmt: skip


PLAIN = _notice()
CONCEALED = _notice(action="CONTACT_COURT", concealed=True, order_id=None, case_number=None,
                    handler=None, instructions=None, documents=[])  # fmt: skip
VIEW = notices_view(UNIT)
FORGED = Refusal(0, 7, "BAD_SIGNATURE", "key k1: signature does not match the event")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key store holding the other unit's key only (as that unit's own machine would)."""
    home = tmp_path_factory.mktemp("notices")
    trust_set(home, [OTHER_UNIT])
    return home


@pytest.mark.parametrize(
    ("code", "rule"),
    [("1101050000", "named by 12 digits"), ("BJ01", "named by 12 digits"),
     ("110105000000 ", "named by 12 digits"), ("999999999999", "not in the agency list")],
)  # fmt: skip
def test_as_refuses_a_code_that_names_no_police_unit(code: str, rule: str) -> None:
    with pytest.raises(typer.BadParameter, match=rule) as raised:
        unit_option(code)
    assert raised.value.param_hint == "'--as'"


def test_as_refuses_a_unit_whose_key_is_not_in_the_key_store(home: Path) -> None:
    settings = Settings(home=home, security="plaintext")
    assert reading_unit(OTHER_UNIT, settings) == OTHER_UNIT
    with pytest.raises(typer.BadParameter, match=f"no signing key and certificate of police "
                       f"unit {UNIT}.*reads its own notices with its own key"):  # fmt: skip
        reading_unit(UNIT, settings)


def test_under_mtls_as_needs_the_units_tls_identity(tmp_path: Path) -> None:
    keystore = trust_set(tmp_path, [OTHER_UNIT])
    settings = Settings(home=tmp_path, security="mtls")
    assert reading_unit(OTHER_UNIT, settings) == OTHER_UNIT
    keystore.tls_layout.identity(OTHER_UNIT).key.unlink()  # a signing key, no TLS identity
    with pytest.raises(typer.BadParameter, match=f"no TLS identity of police unit {OTHER_UNIT}"):
        reading_unit(OTHER_UNIT, settings)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--as", "BJ01"], "Invalid value for '--as': 'BJ01' is not a police unit code"),
        (["--as", "999999999999"], "999999999999 is not in the agency list"),
        (["--as", UNIT, "--format", "xml"], "Invalid value for '--format'"),
        (["--as", UNIT, "--until-idle", "0"], "Invalid value for '--until-idle'"),
        ([], "Missing option '--as'"),
    ],
)
def test_the_command_refuses_a_bad_option_before_reading(
    home: Path, arguments: list[str], expected: str
) -> None:
    env = {"ZF801_HOME": str(home), "ZF801_SECURITY": "plaintext", "COLUMNS": "300"}
    result = runner.invoke(app, ["notices", *arguments], env=env)
    assert result.exit_code == 2
    assert expected in " ".join(result.stderr.replace("│", " ").split())


def test_the_command_refuses_a_unit_whose_key_it_lacks(home: Path) -> None:
    env = {"ZF801_HOME": str(home), "ZF801_SECURITY": "plaintext", "COLUMNS": "300"}
    result = runner.invoke(app, ["notices", "--as", UNIT], env=env)
    assert result.exit_code == 2
    assert "Invalid value for '--as': no signing key and certificate of police unit" in " ".join(
        result.stderr.replace("│", " ").split()
    )
    assert result.stdout == ""


def test_table_shows_what_to_do_and_a_concealed_notice_names_the_court_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    table(VIEW, [PLAIN, CONCEALED], ReadSummary(2, (FORGED,), passed_over=1))
    captured = capsys.readouterr()
    out = captured.out
    assert f"Action notices of police unit {UNIT}" in out
    [plain_row] = [line for line in out.splitlines() if "DETAIN" in line]
    for cell in ("BJ01", "o-1", "（2026）京01执1号", "王法官 13900139000", "之一", "s-1"):
        assert cell in plain_row
    [concealed_row] = [line for line in out.splitlines() if "CONTACT_COURT" in line]
    assert "BJ01" in concealed_row and "o-1" not in concealed_row
    assert (
        "2 notice(s); 1 refused (dead-lettered and audited); 1 refused record(s) passed over "
        "(audited on an earlier read)" in out
    )
    assert (
        "refused: partition 0 offset 7: BAD_SIGNATURE: key k1: signature does not match"
        in captured.err
    )


def test_follow_prints_each_notice_before_the_stream_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def stream() -> Iterator[Notice]:
        yield PLAIN
        assert "DETAIN" in capsys.readouterr().out
        yield CONCEALED

    assert follow(VIEW, stream()) == 2
    assert "CONTACT_COURT" in capsys.readouterr().out


def test_json_is_one_object_per_notice_and_the_summary_goes_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = json.loads(json_line(as_json(PLAIN)))
    assert document == {"id": "n-1", "type": "cn.zf801.bus.v1.ActionNotice",
                        "signed_by": "BUS-MATCHER",
                        "record": {"notice_id": "n-1", "action": "DETAIN"}}  # fmt: skip
    summary(VIEW, ReadSummary(0), Console(stderr=True))
    captured = capsys.readouterr()
    assert captured.out == "" and "0 notice(s)" in captured.err


def test_hostile_text_in_a_notice_is_shown_escaped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    hostile = _notice(handler={"name": "[red]王\x1b[2J法官\u202e[/red]", "phone": "1"})
    table(VIEW, [hostile], ReadSummary(1, (Refusal(0, 1, "MISADDRESSED", "\x1b[2Jx"),)))
    captured = capsys.readouterr()
    assert "[red]王\\x1b[2J法官\\u202e[/red]" in captured.out
    assert "\x1b[2J" not in captured.out + captured.err and "\u202e" not in captured.out
