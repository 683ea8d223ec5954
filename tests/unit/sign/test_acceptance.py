"""The acceptance window: per family, on the processor's clock; removals exempt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.event_types import EXPIRY_NOTICE, HIT, ORDERS, RELEASE, SIGHTINGS, EventFamily
from schemas.settings import Settings
from sign.acceptance import AcceptancePolicy, Rule, Window
from sign.errors import ClockAhead, TooOld

POLICY = AcceptancePolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def test_every_family_has_the_documented_rule():
    for order in ORDERS:
        assert POLICY.rule_for(order).window == Window(timedelta(days=30), timedelta(seconds=300))
    for sighting in SIGHTINGS:
        assert POLICY.rule_for(sighting).window == Window(timedelta(hours=72),
                                                          timedelta(seconds=300))  # fmt: skip
    for removal in (RELEASE, EXPIRY_NOTICE):
        assert POLICY.rule_for(removal) == Rule(window=None, replay_checked=False)
    assert POLICY.rule_for("no.such.Type").replay_checked
    assert POLICY.retention == timedelta(days=30, seconds=300)


def test_window_edges(now):
    window = Window(timedelta(hours=1), timedelta(seconds=300))
    window.check("e", now + timedelta(seconds=300), now)
    window.check("e", now - timedelta(hours=1), now)
    with pytest.raises(ClockAhead, match=r"ahead of this processor's clock"):
        window.check("e", now + timedelta(seconds=301), now)
    with pytest.raises(TooOld, match="accepted for"):
        window.check("e", now - timedelta(hours=1, seconds=1), now)


def test_history_policy_judges_nothing():
    history = AcceptancePolicy.history()
    assert history.rule_for(HIT) == Rule(window=None, replay_checked=False)
    assert history.retention == timedelta(0)


def test_a_policy_needs_a_rule_for_other():
    with pytest.raises(ValueError, match="OTHER"):
        AcceptancePolicy({EventFamily.ORDER: Rule(None, False)})
