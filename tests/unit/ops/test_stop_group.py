"""Stopping a processor's process group: a process that ignores SIGTERM leaves its
threads' stacks in its log before it is killed, so a hang at shutdown can be read after
the fact."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ops.deployment import STACKS_SIGNAL, spawn, stop_group

# what ``ops.cli.main`` installs, then a shutdown that never finishes
_HANGS = textwrap.dedent(f"""
    import faulthandler, signal, time
    faulthandler.register({int(STACKS_SIGNAL)}, all_threads=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    def closing_forever():
        while True:
            time.sleep(0.05)
    closing_forever()
""")


def _started(tmp_path: Path, code: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "proc.log"
    process = spawn([sys.executable, "-c", code], {}, log)
    deadline = time.monotonic() + 10
    while b"ready" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    return process, log


def test_a_process_deaf_to_sigterm_logs_its_stacks_then_is_killed(tmp_path: Path) -> None:
    process, log = _started(tmp_path, _HANGS)
    code = stop_group(process, timeout_s=0.5)
    assert code == -signal.SIGKILL
    text = log.read_text("utf-8", "replace")
    assert "closing_forever" in text and "Current thread" in text, text


def test_a_process_that_stops_is_not_asked_for_stacks(tmp_path: Path) -> None:
    process, log = _started(tmp_path, 'print("ready", flush=True); import time; time.sleep(60)')
    assert stop_group(process, timeout_s=5) == -signal.SIGTERM
    assert "Current thread" not in log.read_text("utf-8", "replace")


def test_the_console_script_writes_its_stacks_on_the_signal(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, threading, os, signal, time
        import ops.cli
        sys.argv = ["zf801", "--help"]
        threading.Timer(0.3, os.kill, (os.getpid(), {int(STACKS_SIGNAL)})).start()
        ops.cli.app = lambda: time.sleep(2)  # the command: still running when asked
        ops.cli.main()
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert b"Current thread" in done.stderr and b"main" in done.stderr, done.stderr
