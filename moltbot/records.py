"""The plain values the store records and the core hands out: tasks, runs, events, messages.

Immutable, and free of Peewee and SQLite: transports and handlers read these
and never touch the store. They are typed NamedTuples rather than frozen
dataclasses, for ``moltbot status``'s sake: defining a frozen dataclass costs
~1 ms at import (its methods are compiled then), seven times a NamedTuple's,
and building one per task costs twice as much (status shows 10 000 tasks in
well under 150 ms; benchmarks/bench_status.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

# Runs have a module of their own (records.py had grown to its limit); they are records too.
from moltbot.run_record import ACTIVE_RUN_STATES, RAN_RUN_STATES, TERMINAL_RUN_STATES, HostRecap, Run

__all__ = [
    "ACTIVE_RUN_STATES",
    "ADMINS",
    "ALERTS",
    "HEALTH",
    "HEARTBEAT",
    "RAN_RUN_STATES",
    "RELOAD",
    "TERMINAL_RUN_STATES",
    "ChannelHealth",
    "Event",
    "HealthReport",
    "HostRecap",
    "Incident",
    "Node",
    "OutboxMessage",
    "PingHealth",
    "Plan",
    "Question",
    "ReloadOutcome",
    "Run",
    "Task",
    "TaskState",
    "ThreadHealth",
    "Watcher",
    "chain_text",
]

ALERTS = "alerts"  # the outbox channel of alerts not yet handed to the chat channels
ADMINS = "admins"  # the outbox address of whoever gets a channel's alerts
HEALTH = "health"  # the meta row where the daemon keeps its HealthReport
HEARTBEAT = "heartbeat"  # the daemon's heartbeat, among the pings of a HealthReport
RELOAD = "reload"  # the meta row where the daemon keeps the outcome of its last reload


class Node(NamedTuple):
    """A daemon sharing the database with others (PostgreSQL): its name, host and since when."""

    name: str
    host: str
    since: datetime


class Incident(NamedTuple):
    """A task failing (``failing``) or without success for too long (``overdue``), until a success."""

    id: int
    task_id: str
    kind: str  # moltbot/incidents.py: FAILING | OVERDUE
    opened_at: datetime  # the first failure; overdue: the last success (or registration)
    failures: int  # consecutive failed scheduled occurrences
    alerted: bool  # the admins were told it is open
    last_alert_at: datetime | None


class PairedPerson(NamedTuple):
    """Someone paired with ``moltbot pair``: an admin, kept in the database (``person``)."""

    id: int
    uuid: str  # the account (ACI): what identifies them
    number: str | None  # None when their number is hidden
    paired_at: datetime


class Pairing(NamedTuple):
    """A one-time pairing code (only its salted hash is kept)."""

    id: int
    salt: str
    code_hash: str
    created_at: datetime
    expires_at: datetime
    created_by: str  # who ran `moltbot pair`
    wrong: int  # wrong codes received while it was open
    closed_at: datetime | None
    outcome: str | None  # paired | expired | cancelled | too many wrong codes
    person_id: int | None


class Watcher(NamedTuple):
    """A chat that asked for something: where its answers go."""

    channel: str
    address: str
    reply_to: int | None = None  # the request's id on that channel (Signal: its timestamp), to quote
    reply_author: str | None = None


class TaskState(NamedTuple):
    """A task's line in ``status``."""

    task_id: str
    name: str
    status: str  # idle | running | paused | error
    last_run: datetime | None
    next_run: datetime | None
    run_count: int
    error_count: int
    last_status: str | None
    last_error: str | None
    paused_by: str | None
    priority: int
    enabled: bool
    current_run_id: int | None
    schedule_key: str  # schedule text @ zone
    done_at: datetime | None = None  # a one-shot that has run: when it (last) ran
    incidents: tuple[Incident, ...] = ()  # open ones: failing, overdue
    after: tuple[str, ...] = ()  # runs after each success of these (tasks.json's ``after``)
    after_failure: tuple[str, ...] = ()  # and after each final failure of these

    def incident_note(self) -> str:
        """``failing (3 failures)``, ``overdue``: what status adds for the open incidents."""
        notes = [
            f"failing ({incident.failures} failure{'' if incident.failures == 1 else 's'})"
            if incident.kind == "failing"
            else "overdue"
            for incident in self.incidents
        ]
        return ", ".join(notes)

    @property
    def chain(self) -> str:
        return chain_text(self.after, self.after_failure)


class Task(NamedTuple):
    """A task's definition (as its source gave it) and its scheduling state."""

    task_id: str
    name: str
    definition: str  # the tasks.json entry (or the Discord message's JSON), as JSON
    schedule_key: str  # schedule text @ zone; a change re-anchors
    anchor: datetime  # when this schedule was first registered
    priority: int
    overlap: str
    enabled: bool
    removed: bool
    status: str
    next_run: datetime | None
    last_run: datetime | None
    last_finished: datetime | None
    last_status: str | None
    run_count: int
    error_count: int
    last_error: str | None
    paused_by: str | None  # None | "user" | "shutdown" | "discord"
    current_run_id: int | None

    def spec(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.definition)
        return result

    def chains(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The tasks it runs after: on their success (``after``), on their final failure."""
        spec = self.spec()
        return tuple(spec.get("after", ())), tuple(spec.get("after_failure", ()))

    @property
    def chain(self) -> str:
        return chain_text(*self.chains())


def chain_text(after: Sequence[str], after_failure: Sequence[str]) -> str:
    """When a chained task runs, for people: "after backup", "after backup, or after upload fails"."""
    parts = [f"after {' or '.join(after)}"] if after else []
    if after_failure:
        parts.append(f"after {' or '.join(after_failure)} fails")
    return ", or ".join(parts)


class Plan(NamedTuple):
    """What to do with a due task (core/planning.py decides, the store applies it in one claim)."""

    run_for: datetime | None  # the occurrence to run now, if any
    next_run: datetime | None
    # occurrences not run: (status, scheduled_for, message)
    records: tuple[tuple[str, datetime, str], ...] = ()
    queue: tuple[datetime, ...] = ()  # occurrences written down to run one after another (catch-up)


class Question(NamedTuple):
    """A question for the admins (``moltbot ask``, an approval) and its answer, once there is one."""

    id: int
    number: int  # as the admins see it: "yes 2"
    asked_at: datetime
    expires_at: datetime
    text: str
    choices: tuple[str, ...]  # the first is the "yes"
    sent_to: tuple[str, ...]  # the conversations it went to ("signal:<address>")
    origin: str  # "approval" | "ask"
    task_id: str | None
    scheduled_for: datetime | None  # an approval's occurrence
    run_id: int | None  # the run that asks; an approval's run once started
    status: str  # "open" | "answered" | "expired"
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None


# How an event's message words its action, where the two differ.
_ACTION_WORDS = {"completed": "succeeded", "timeout": "timed out", "stop_requested": "stop requested"}


class Event(NamedTuple):
    """A line of the task log (``moltbot logs``)."""

    id: int
    timestamp: datetime
    task_id: str
    action: str
    message: str
    duration: float | None

    @property
    def text(self) -> str:
        """The message with its action said once: ``run 20 started (remote)`` as it is; a run's
        end, ``run 7: exit code 1 after 2.0s``, as ``run 7 failed: exit code 1 after 2.0s``."""
        word = _ACTION_WORDS.get(self.action, self.action.replace("_", " "))
        head, colon, rest = self.message.partition(": ")
        if colon and head.startswith("run ") and head[4:].isdigit():
            if rest.startswith(f"{word}: "):
                return f"{head} {rest}"
            return f"{head} {rest}" if rest.startswith(word) else f"{head} {word}: {rest}"
        return self.message if word in self.message else f"{word}: {self.message}"


class OutboxMessage(NamedTuple):
    """A message moltbot promised to deliver: written first, then sent, then marked."""

    id: int
    channel: str
    address: str
    kind: str  # text | run-finished
    text: str | None
    run_id: int | None  # run-finished: formatted when sent, from the run
    reply_to: int | None  # the command's id on its channel, to quote it
    reply_author: str | None
    created_at: datetime
    due_at: datetime
    attempts: int
    status: str  # pending | sending | sent | failed
    sent_at: datetime | None
    last_error: str | None

    @property
    def watcher(self) -> Watcher:
        return Watcher(self.channel, self.address, self.reply_to, self.reply_author)

    @property
    def is_alert(self) -> bool:
        """For the admins: handed to each of them when it is sent."""
        return self.address == ADMINS


class ChannelHealth(NamedTuple):
    """A chat channel as the daemon sees it."""

    name: str
    state: str  # connecting (not yet) | connected | reconnecting | down (until fixed and restarted)
    since: datetime  # when it entered that state
    error: str | None  # the last error (still shown once it is connected again)

    @property
    def up(self) -> bool:
        return self.state == "connected"


class ThreadHealth(NamedTuple):
    """A background thread of the daemon (``moltbot/threads.py``)."""

    name: str
    state: str  # running | restarting (waiting out its backoff after an unexpected error)
    since: datetime
    error: str | None  # the last unexpected error (still shown once it runs again)
    failures: int  # in a row, without a good pass between them


class PingHealth(NamedTuple):
    """How pings to one monitor fare (``moltbot/pings.py``): the heartbeat's, or a task's."""

    name: str  # "heartbeat" or a task id
    url: str  # masked (redact.masked_url)
    state: str  # ok | failed (the last ping)
    since: datetime  # the first ping that fared so, in a row
    error: str | None  # the last failure (still shown once pings get through again)


class ReloadOutcome(NamedTuple):
    """What the daemon's last reload did, numbered: ``moltbot reload`` waits for a newer one."""

    number: int
    at: datetime
    ok: bool  # False: nothing was changed (``text`` says why)
    text: str  # "reloaded: tasks.json (added b); [signal] restarted; needs a restart: …"


class HealthReport(NamedTuple):
    """What the daemon last recorded of its channels, threads and pings (it records every change)."""

    channels: tuple[ChannelHealth, ...]
    threads: tuple[ThreadHealth, ...]
    pings: tuple[PingHealth, ...] = ()

    def as_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{"channels": {name: {state, since, error}}, "threads": {name: {..., failures}}, "pings": ...}."""
        return {
            "channels": {c.name: {**c._asdict(), "since": c.since.isoformat()} for c in self.channels},
            "threads": {t.name: {**t._asdict(), "since": t.since.isoformat()} for t in self.threads},
            "pings": {p.name: {**p._asdict(), "since": p.since.isoformat()} for p in self.pings},
        }

    @classmethod
    def from_json(cls, text: str) -> HealthReport:
        data = json.loads(text)  # written by the daemon (core/health.py), not from outside
        return cls(
            tuple(ChannelHealth(**_with_instant(v)) for v in data["channels"].values()),
            tuple(ThreadHealth(**_with_instant(v)) for v in data["threads"].values()),
            tuple(PingHealth(**_with_instant(v)) for v in data.get("pings", {}).values()),
        )


def _with_instant(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "since": datetime.fromisoformat(fields["since"])}
