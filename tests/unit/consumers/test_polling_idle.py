"""Every threaded reader's idle wait (consumers.polling): a number of seconds that ends."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.polling import IdleWaitError, check_idle_s, poll_batches


class _Quiet:
    """A consumer that never returns a record."""

    def poll(self, **_: Any) -> dict[Any, Any]:
        return {}


@pytest.mark.parametrize(
    ("value", "rule"),
    [(float("nan"), "idle.range"), (float("inf"), "idle.range"), (0, "idle.range"),
     (-1, "idle.range"), (86_401, "idle.range"), ("2", "idle.type"), (True, "idle.type"),
     (None, "idle.type")],
)  # fmt: skip
def test_an_idle_wait_that_would_never_end_or_is_no_number_is_refused(
    value: object, rule: str
) -> None:
    with pytest.raises(IdleWaitError, match=rf"until_idle_s: .*\[rule {rule}\]"):
        check_idle_s(value)


def test_a_read_with_a_nan_idle_wait_is_refused_before_it_polls() -> None:
    """A notice or alert subscriber's read(until_idle_s=nan) never returned."""
    with pytest.raises(IdleWaitError):
        next(poll_batches(_Quiet(), lambda: False, until_idle_s=float("nan")))  # type: ignore[arg-type]
    assert list(poll_batches(_Quiet(), lambda: False, until_idle_s=0.3)) == []  # type: ignore[arg-type]
