"""The acceptance window: which event times a processor accepts, per event family.

Time is judged against the processor's own clock (kept by NTP: the one clock the bus
trusts), never against the newest event seen, so one event from a writer whose clock is
a year ahead moves nothing for anyone else. Each family has a rule (``sign/REPLAY.md``):

- a **window** ``[now - past, now + future]``: an event that would cause an effect is
  refused outside it (``CLOCK_AHEAD``, ``TOO_OLD``), so the replay guard needs to remember
  ids only for that long;
- whether the **replay guard** judges it at all. An event that *removes* an effect (a
  release, an expiry notice) has neither: refusing it would keep an order alive, and
  applying it twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.event_types import EventFamily, family_of
from schemas.settings import Settings, get_settings
from sign.errors import ClockAhead, TooOld

__all__ = ["AcceptancePolicy", "Rule", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """Accept ``now - past <= ce_time <= now + future``."""

    past: timedelta
    future: timedelta

    def check(self, event_id: str, event_time: datetime, now: datetime) -> None:
        """Raise :class:`ClockAhead` or :class:`TooOld` outside the window."""
        if event_time > now + self.future:
            raise ClockAhead(
                f"ce_id {event_id}: ce_time {event_time.isoformat()} is "
                f"{_span(event_time - now)} ahead of this processor's clock "
                f"({now.isoformat()}); at most {_span(self.future)} is accepted"
            )
        if event_time < now - self.past:
            raise TooOld(
                f"ce_id {event_id}: ce_time {event_time.isoformat()} is "
                f"{_span(now - event_time)} old; events of this kind are accepted for "
                f"{_span(self.past)}"
            )

    @property
    def span(self) -> timedelta:
        return self.past + self.future


@dataclass(frozen=True, slots=True)
class Rule:
    """How an event family's time and repetition are judged."""

    window: Window | None
    replay_checked: bool


_REMOVAL = Rule(window=None, replay_checked=False)


class AcceptancePolicy:
    """The rule for each event family (families without one use ``OTHER``'s)."""

    def __init__(self, rules: Mapping[EventFamily, Rule]) -> None:
        if EventFamily.OTHER not in rules:
            raise ValueError("an acceptance policy needs a rule for EventFamily.OTHER")
        self._rules = dict(rules)
        self._by_type: dict[str, Rule] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, replay_checked: bool = True
    ) -> AcceptancePolicy:
        """The processors' policy: windows from ``ZF801_ACCEPT_*``, removals exempt.
        Without ``replay_checked`` the windows hold but no replay verdict is given (a
        replay of a topic judges repeats itself, per topic)."""
        settings = settings or get_settings()
        future = timedelta(seconds=settings.accept_future_s)

        def window(past_s: float) -> Rule:
            return Rule(Window(timedelta(seconds=past_s), future), replay_checked=replay_checked)

        return cls({
            EventFamily.ORDER: window(settings.accept_past_orders_s),
            EventFamily.REMOVAL: _REMOVAL,
            EventFamily.ACKNOWLEDGEMENT: window(settings.accept_past_acknowledgements_s),
            EventFamily.SIGHTING: window(settings.accept_past_sightings_s),
            EventFamily.OTHER: window(settings.accept_past_orders_s),
        })  # fmt: skip

    @classmethod
    def history(cls) -> AcceptancePolicy:
        """For a reader of a stream's whole history (a court reading its alerts): no
        window and no replay verdict; the reader de-duplicates by event id itself."""
        return cls({EventFamily.OTHER: _REMOVAL})

    def rule_for(self, event_type: str) -> Rule:
        rule = self._by_type.get(event_type)
        if rule is None:
            family = family_of(event_type)
            rule = self._rules.get(family, self._rules[EventFamily.OTHER])
            if len(self._by_type) < 1024:  # event types are few; never grow on junk
                self._by_type[event_type] = rule
        return rule

    @property
    def retention(self) -> timedelta:
        """How long an event id must be remembered: the widest window's span."""
        spans = [rule.window.span for rule in self._rules.values() if rule.window is not None]
        return max(spans, default=timedelta(0))


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"
