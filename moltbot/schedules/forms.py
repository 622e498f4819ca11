"""The schedule forms: cron-like wall times, intervals, one-shots; each answers ``next_after``.

Every schedule answers one question, ``next_after(after, anchor)``: the first
fire instant strictly after ``after``, as an aware UTC datetime, or ``None``
when a one-shot has nothing left. ``anchor`` is the instant the task was first
registered with this schedule; interval and relative schedules count from it,
so the next run always comes from the schedule and never from when the last
run happened to finish (no drift).

Wall-clock schedules (daily, weekly, cron, hourly, ...) name wall times in the
task's IANA zone, and each wall time runs once: one that does not exist (a
spring-forward gap) at the first instant after the gap, an ambiguous one (a
fall-back overlap) at its first occurrence. That holds for every form, ``*``
fields included (Debian's cron runs those in both passes of a repeated hour;
an owner who wants runs by elapsed time writes ``every 1h``). cronsim lists
the wall times an expression names, in UTC where no clock changes, and
``resolve_wall_time`` turns each into its instant.

The one promise every schedule keeps, checked in ``Schedule.next_after``:
the next instant is strictly after the one asked about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

__all__ = ["Cron", "Every", "Never", "Once", "Schedule", "ScheduleError", "resolve_wall_time"]


class ScheduleError(ValueError):
    """A schedule string (or one of its fields) cannot be understood."""


class Schedule:
    """Base class: a parsed schedule bound to its zone."""

    text: str
    zone: ZoneInfo
    one_shot: bool = False

    def next_after(self, after: datetime, anchor: datetime) -> datetime | None:
        """The first fire instant strictly after ``after`` (None: a one-shot with nothing left)."""
        found = self._next(after, anchor)
        if found is not None and found <= after:  # a bug here would run an occurrence twice
            raise ScheduleError(f"{self.text!r} ({self.zone.key}): next instant {found} is not after {after}")
        return found

    def _next(self, after: datetime, anchor: datetime) -> datetime | None:
        raise NotImplementedError

    def upcoming(self, after: datetime, anchor: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire instants after ``after`` (fewer for one-shots)."""
        instants: list[datetime] = []
        current = after
        while len(instants) < count:
            nxt = self.next_after(current, anchor)
            if nxt is None:
                break
            instants.append(nxt)
            current = nxt
        return instants


@dataclass
class Cron(Schedule):
    """A 5-field cron expression evaluated in ``zone`` (via cronsim)."""

    text: str
    zone: ZoneInfo
    expression: str

    def _next(self, after: datetime, anchor: datetime) -> datetime | None:
        wall = after.astimezone(self.zone).replace(tzinfo=None, fold=0)
        # The expression's wall times after ``after``'s own, listed in UTC (no clock changes there;
        # cronsim drops seconds and steps forward). In a repeated hour, the wall times whose first
        # occurrence already passed resolve to before ``after`` and are passed over.
        for candidate in CronSim(self.expression, wall.replace(tzinfo=UTC)):
            instant = resolve_wall_time(candidate.replace(tzinfo=None), self.zone)
            if instant > after:
                return instant
        return None  # cronsim's iterator never ends


@dataclass
class Every(Schedule):
    """A fixed interval counted from the anchor.

    Seconds, minutes and hours are elapsed time (a 2h interval stays 2h across
    DST); days and weeks are calendar steps in ``zone`` that keep the anchor's
    wall-clock time (or ``at``), as a user of "every 2 days at 09:00" expects.
    """

    text: str
    zone: ZoneInfo
    step: timedelta
    calendar: bool = False
    at: time | None = None

    def _next(self, after: datetime, anchor: datetime) -> datetime | None:
        if not self.calendar:
            if after < anchor:
                return (anchor + self.step).astimezone(UTC)
            steps = (after - anchor) // self.step + 1
            return (anchor + steps * self.step).astimezone(UTC)
        return self._next_calendar(after, anchor)

    def _next_calendar(self, after: datetime, anchor: datetime) -> datetime:
        local_anchor = anchor.astimezone(self.zone)
        wall = self.at or local_anchor.time().replace(tzinfo=None, fold=0)
        days = self.step.days
        start_day = local_anchor.date()
        # With an explicit time the first occurrence may be the anchor day
        # itself; without one, the anchor instant is "now" and we step first.
        first_index = 0 if self.at is not None else 1
        elapsed = (after.astimezone(self.zone).date() - start_day).days
        index = max(first_index, elapsed // days - 1)
        while True:
            day = start_day + timedelta(days=index * days)
            candidate = resolve_wall_time(datetime.combine(day, wall), self.zone)
            if candidate > after and candidate > anchor:
                return candidate
            index += 1


@dataclass
class Once(Schedule):
    """A one-shot: at a fixed instant, after a delay from the anchor, or at a
    wall-clock time on the anchor's local date plus ``day_offset`` days."""

    text: str
    zone: ZoneInfo
    instant: datetime | None = None
    delay: timedelta | None = None
    local_clock: time | None = None
    day_offset: int = 0
    one_shot: bool = True

    def fire_time(self, anchor: datetime) -> datetime:
        if self.instant is not None:
            return self.instant
        if self.delay is not None:
            return (anchor + self.delay).astimezone(UTC)
        assert self.local_clock is not None
        day = anchor.astimezone(self.zone).date() + timedelta(days=self.day_offset)
        return resolve_wall_time(datetime.combine(day, self.local_clock), self.zone)

    def _next(self, after: datetime, anchor: datetime) -> datetime | None:
        fire = self.fire_time(anchor)
        return fire if fire > after else None


def resolve_wall_time(wall: datetime, zone: ZoneInfo) -> datetime:
    """Turn a naive wall-clock time in ``zone`` into a UTC instant.

    A time that does not exist (spring-forward gap) becomes the first instant
    after the gap; an ambiguous one (fall-back fold) its first occurrence.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 uses the offset from before the transition, which lands
    # after the gap; the transition itself is the wall time with fold=1 moved
    # back to the first wall minute that exists.
    later = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(instant, later), max(instant, later)
    return _find_transition(low, high, zone)


def _find_transition(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """Binary-search the UTC instant where ``zone``'s offset changes."""
    offset_low = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_low:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0) if high.microsecond else high


@dataclass
class Never(Schedule):
    """No schedule of its own: a chained task runs only after the tasks it names (``after``)."""

    text: str
    zone: ZoneInfo

    def _next(self, after: datetime, anchor: datetime) -> datetime | None:
        return None
