"""``zf801 seal`` and ``zf801 verify-seal`` where FILE.seal.json is a link, a folder or
another agency's seal, and on hostile seals: one line naming the file and the rule, never
a write through a link or an ``unexpected`` error."""

from __future__ import annotations

import base64
import json

import pytest
from typer.testing import CliRunner

from ops.cli import app
from schemas.settings import get_settings
from sign.keystore import KeyStore

runner = CliRunner()


@pytest.fixture
def keys_env(fresh_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("ZF801_KEYS_PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ZF801_TOPIC_PREFIX", "")
    result = runner.invoke(app, ["keys", "init", "--no-publish"])
    assert result.exit_code == 0, result.output
    document = tmp_path / "doc2.txt"
    document.write_text("doc2\n")
    return document


def _run(args: list[str]):
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert "unexpected" not in result.output and "Traceback" not in result.output
    return result, " ".join(result.output.split())


def _seal_of(document):
    return document.with_name(document.name + ".seal.json")


def test_a_link_at_the_seal_is_kept_unless_replace_and_never_written_through(keys_env):
    document = keys_env
    victim = document.with_name("victim.txt")
    victim.write_text("victim\n")
    _seal_of(document).symlink_to(victim.name)
    refused, said = _run(["seal", str(document), "--agency", "BJ01"])
    assert refused.exit_code == 1
    assert "error: seal " in said and "already exists (a symbolic link to victim.txt)" in said
    assert "--replace" in said
    assert victim.read_text() == "victim\n" and _seal_of(document).is_symlink()
    done, said = _run(["seal", str(document), "--agency", "BJ01", "--replace"])
    assert done.exit_code == 0, said
    assert "note: replaced the seal that was at" in said and "a symbolic link to victim.txt" in said
    assert victim.read_text() == "victim\n"
    assert not _seal_of(document).is_symlink()
    assert "seal OK" in _run(["verify-seal", str(document)])[1]


def test_another_agencys_seal_is_named_kept_and_replaced_only_on_request(keys_env):
    document = keys_env
    assert _run(["seal", str(document), "--agency", "SH01"])[0].exit_code == 0
    before = _seal_of(document).read_bytes()
    refused, said = _run(["seal", str(document), "--agency", "BJ01"])
    assert refused.exit_code == 1 and "already exists (sealed by SH01 with key" in said
    assert _seal_of(document).read_bytes() == before
    done, said = _run(["seal", str(document), "--agency", "BJ01", "--replace"])
    assert done.exit_code == 0 and "note: replaced the seal" in said and "sealed by SH01" in said
    assert "sealed by BJ01" in _run(["verify-seal", str(document)])[1]


@pytest.mark.parametrize("options", [[], ["--replace"]])
def test_a_folder_at_the_seal_is_refused_in_one_line(keys_env, options):
    document = keys_env
    _seal_of(document).mkdir()
    refused, said = _run(["seal", str(document), "--agency", "BJ01", *options])
    assert refused.exit_code == 1
    assert f"error: seal {_seal_of(document)}: a folder, not a file; a seal is written" in said
    assert _seal_of(document).is_dir()


def _resigned(document, edit):
    keystore = KeyStore.from_settings(get_settings())
    key = keystore.private_key(keystore.current_key_id("BJ01"))
    path = _seal_of(document)
    seal = json.loads(path.read_text())
    seal["statement"] = edit(seal["statement"])
    seal["signature"] = base64.b64encode(key.sign(seal["statement"].encode("ascii"))).decode()
    path.write_text(json.dumps(seal))


def test_verify_seal_refuses_an_impossible_signing_time_as_malformed(keys_env):
    document = keys_env
    assert _run(["seal", str(document), "--agency", "BJ01"])[0].exit_code == 0
    _resigned(
        document, lambda text: text.split("signed-at: ")[0] + "signed-at: 2026-13-99T99:99:99Z\n"
    )
    refused, said = _run(["verify-seal", str(document)])
    assert refused.exit_code == 1
    assert "seal refused MALFORMED_SEAL: seal " in said
    assert "signed-at '2026-13-99T99:99:99Z' is not an RFC 3339 UTC time" in said


@pytest.mark.parametrize("content", [b"[" * 60000, b" " * (1 << 20)])
def test_verify_seal_refuses_a_hostile_seal_file_as_malformed(keys_env, content):
    document = keys_env
    _seal_of(document).write_bytes(content)
    refused, said = _run(["verify-seal", str(document)])
    assert refused.exit_code == 1 and "seal refused MALFORMED_SEAL: seal " in said


def test_verify_seal_refuses_a_folder_given_as_the_seal(keys_env):
    document = keys_env
    folder = document.with_name("folder")
    folder.mkdir()
    refused, said = _run(["verify-seal", str(document), "--seal", str(folder)])
    assert refused.exit_code == 1
    assert f"seal refused MALFORMED_SEAL: seal {folder}: a folder, not a file" in said
