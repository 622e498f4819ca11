"""Chat commands: declared once, parsed tolerantly, authorized by role, answered briefly.

The grammar is the original bot's (``status``, ``run:TASK``, ``pause:TASK``,
``resume:TASK``, ``logs``, ``logs:TASK``) plus ``stop``, ``tasks``,
``next``, ``output``, ``history`` and ``help``. Case does not matter; ``/run backup``,
``!run: backup`` and ``RUN backup`` all mean ``run:backup``. Everything is
done through the core API (``moltbot.core.Core``), so a command works on a
task whatever its kind. A text over ``MAX_TEXT_CHARS`` is refused unread
(``too_long``), and parsing takes time linear in the text (issue #12).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from handlers import format as fmt
from moltbot.core import UNREAD, AmbiguousTask, Core, Reply, Request, UnknownTask
from moltbot.local_times import clock_time, done, with_weekday
from moltbot.run_history import summary_lines

__all__ = [
    "COMMANDS",
    "MAX_TEXT_CHARS",
    "Command",
    "ParseError",
    "allowed",
    "closest_command",
    "handle",
    "parse",
    "short_help",
    "too_long",
]

ROLES = ("viewer", "admin")  # an admin may do everything a viewer may
# The longest text a chat front hands on. A command is a verb and a task id (tens of characters)
# and free text for the model a few sentences; 4096 leaves room for both twice over (Signal itself
# sends a text over 2000 bytes as an attachment) while whatever reads it, the model included,
# gets a few KB at most, whoever sends it (issue #12: 128 KB once stalled the daemon for 117 s).
MAX_TEXT_CHARS = 4096


@dataclass(frozen=True)
class Command:
    name: str
    argument: str | None  # "TASK", "COMMAND" or None
    required: bool
    role: str
    help: str
    action: Callable[[Core, Request, str | None], Reply]

    @property
    def usage(self) -> str:
        if self.argument is None:
            return self.name
        return f"{self.name}:{self.argument}" if self.required else f"{self.name}[:{self.argument}]"


COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, role: str = "viewer", argument: str | None = None, required: bool = True
) -> Callable[[Callable[[Core, Request, str | None], Reply]], Callable[[Core, Request, str | None], Reply]]:
    def register(
        action: Callable[[Core, Request, str | None], Reply],
    ) -> Callable[[Core, Request, str | None], Reply]:
        COMMANDS[name] = Command(name, argument, required, role, help, action)
        return action

    return register


class ParseError(ValueError):
    pass


# The command's name, after an optional "/" or "!". Matched (not fullmatched) on the stripped text
# with nothing lazy or repeated after it, so it costs one pass whatever follows: the old single
# pattern ended in a lazy ``(.*?)`` before ``\s*`` and took 117 s on a name, a colon and 128 000
# spaces (issue #12).
_NAME = re.compile(r"[/!]?\s*([A-Za-z][A-Za-z-]*)")


def parse(text: str) -> tuple[Command, str | None]:
    """``run:backup``, ``/run backup``, ``Run: backup`` -> (run, "backup"); ParseError explains.

    Linear in the text's length (str.strip and one anchored match), so any text is safe to
    parse; the fronts still refuse a text over ``MAX_TEXT_CHARS`` first (``too_long``).
    """
    stripped = without_decoration(text or "")
    match = _NAME.match(stripped)
    if not match:
        raise ParseError(_help_hint(None))
    rest = stripped[match.end() :]
    after = rest.lstrip()
    if after.startswith(":"):
        argument = after[1:].lstrip() or None
    elif rest == "" or rest[0].isspace():
        argument = after or None
    else:  # the name runs into something that is neither a separator nor a letter ("run2")
        raise ParseError(_help_hint(None))
    name = match[1].lower()
    found = COMMANDS.get(name)
    if found is None:
        raise ParseError(_help_hint(name, sentence=argument is not None))
    if found.argument is None and argument:
        raise ParseError(f"{found.name} takes no argument. {found.usage}: {found.help}")
    if found.required and found.argument and not argument:
        raise ParseError(f"{found.name} needs a {found.argument.lower()}: {found.usage}")
    return found, argument


def too_long(text: str) -> Reply | None:
    """The short refusal of a text over ``MAX_TEXT_CHARS``, for a front to send before it parses
    or interprets anything; None when the text is within the bound."""
    if len(text) <= MAX_TEXT_CHARS:
        return None
    return Reply(f"⛔ too long: a message to moltbot is at most {MAX_TEXT_CHARS} characters")


def closest_command(word: str, cutoff: float) -> str | None:
    """The command ``word`` is likely a typo of (``cutoff`` at least 0.5), or None.

    difflib's ratio is at most 2·len(name)/(len(name)+len(word)), below 0.5 once the word is
    over three times the longest name: such a word is not compared at all, since indexing it
    costs difflib ~20 ms per 64 KB (issue #12)."""
    if not word or len(word) > 3 * max(map(len, COMMANDS)):
        return None
    close = difflib.get_close_matches(word, list(COMMANDS), n=1, cutoff=cutoff)
    return close[0] if close else None


# What a phone adds around a command: end punctuation, emoji (with their skin tones, joiners and
# variation selectors). Task names are letters, digits, "-", "_" and ".", never ending in one of these.
_END_PUNCTUATION = frozenset(".,!?;…¡¿")
_DECORATION_CATEGORIES = frozenset({"So", "Sk", "Cf", "Mn", "Me"})


def _decoration(char: str) -> bool:
    return char.isspace() or char in _END_PUNCTUATION or unicodedata.category(char) in _DECORATION_CATEGORIES


def without_decoration(text: str) -> str:
    """``"Run backup! 👍"`` -> ``"Run backup"``; emoji in front go too (``"👋 status"``). Linear."""
    end = len(text)
    while end and _decoration(text[end - 1]):
        end -= 1
    start = 0
    while start < end and (
        text[start].isspace() or unicodedata.category(text[start]) in _DECORATION_CATEGORIES
    ):
        start += 1
    return text[start:end]


def _help_hint(name: str | None, sentence: bool = False) -> str:
    if not name:
        return f"send a command.\n{short_help()}"
    shown = repr(name if len(name) <= 40 else name[:40] + "…")  # the reply stays phone-sized
    # Words follow: a typo must be a near one ("pase backup"), or it is a sentence ("please check
    # the disk" is no `pause`), the same bound the model's front uses (agent.py: is_free_text).
    close = closest_command(name, 0.75 if sentence else 0.5)
    if sentence and close is None:
        return (
            "I understand commands, not sentences (free text needs a local model: [ollama] in "
            f"moltbot.toml).\n{short_help()}"
        )
    hint = f"unknown command {shown}; did you mean {close}?" if close else f"unknown command {shown}."
    return f"{hint}\n{short_help()}"


def short_help() -> str:
    return "commands: " + ", ".join(c.usage for c in COMMANDS.values()) + "\n(help:COMMAND for more)"


def allowed(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def handle(core: Core, request: Request) -> Reply:
    """The reply to one command (never raises for bad input: it explains instead)."""
    refusal = too_long(request.text)
    if refusal is not None:
        return refusal
    try:
        found, argument = parse(request.text)
    except ParseError as error:
        return Reply(str(error))
    if not allowed(request.role, found.role):
        return Reply(f"⛔ {found.name} is for admins; you may use: {', '.join(_commands_for(request.role))}")
    try:
        return found.action(core, request, argument)
    except AmbiguousTask as error:
        return Reply(str(error))
    except UnknownTask as error:
        hint = f"; did you mean {error.suggestion}?" if error.suggestion else ""
        unread = f"; {UNREAD}" if error.unread else ""
        return Reply(f"unknown task {error.name!r}{hint}{unread} (tasks: list them)")


def _commands_for(role: str) -> list[str]:
    return [c.name for c in COMMANDS.values() if allowed(role, c.role)]


# --- the commands -----------------------------------------------------------------------


@command("status", "every task: state, last result, next run")
def _status(core: Core, request: Request, argument: str | None) -> Reply:
    running = core.daemon_pid() is not None
    return Reply(fmt.status(core.task_states(), core.clock.now(), running, core.nodes()))


@command("tasks", "the tasks and their schedules")
def _tasks(core: Core, request: Request, argument: str | None) -> Reply:
    lines = []
    zone = core.local_zone()
    for task in core.task_states():
        spec = core.definition(task.task_id)
        state = (
            " (disabled)" if not task.enabled else f" (paused: {task.paused_by})" if task.paused_by else ""
        )
        ran = f" · {done(task.done_at, zone)}" if task.done_at else ""
        schedule = (
            (spec.get("schedule") and _one_shot_at(core, task.task_id, zone))
            or spec.get("schedule")
            or _interval(spec)
        )
        when = (
            task.chain
            if schedule == "?" and task.chain
            else ", or ".join(filter(None, [schedule, task.chain]))
        )
        lines.append(f"{fmt.symbol(task)} {task.task_id}: {when}{state}{ran}")
    return Reply("\n".join(lines) or "no tasks")


def _one_shot_at(core: Core, task_id: str, zone: ZoneInfo) -> str | None:
    """A relative one-shot by its instant (``once, Thu 26 Nov 14:03:00 CET``): its text (``in 10s``)
    was about the moment it was registered, and reads as still to come long after."""
    from moltbot.schedules.forms import Once

    task = core.task(task_id)
    schedule = core.schedule_of(task) if task is not None else None
    if task is None or not isinstance(schedule, Once) or schedule.instant is not None:
        return None  # "at 2026-12-24T18:00" says when already
    return f"once, {with_weekday(schedule.fire_time(task.anchor), zone)}"


def _interval(spec: dict[str, object]) -> str:
    minutes = spec.get("interval_minutes")
    return f"every {minutes}m" if minutes else "?"


@command("run", "run a task now; its result follows", role="admin", argument="TASK")
def _run(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    task = core.resolve(argument)
    # An occurrence waiting for approval: run:TASK is the yes (it runs that occurrence, once).
    approved = core.questions.approve_by_run(task.task_id, request.requester, request.watcher)
    if approved is not None:
        return Reply(approved.text, run_id=approved.run_id)
    run = core.request_run(task.task_id, "remote", requested_by=request.requester, watcher=request.watcher)
    if run.status == "skipped":
        return Reply(f"⏭ {run.task_id}: {run.message}")
    return Reply(f"▶ {run.task_id} started (run {run.id})", run_id=run.id)


@command("stop", "stop a task's running run", role="admin", argument="TASK")
def _stop(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    run = core.request_stop(argument, watcher=request.watcher)
    if run is None:
        return Reply(f"{core.resolve(argument).task_id} is not running")
    return Reply(f"⏹ stopping {run.task_id} (run {run.id})", run_id=run.id)


@command("pause", "pause a task's schedule", role="admin", argument="TASK")
def _pause(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    task = core.pause(argument)
    return Reply(f"⏸ {task.task_id} paused")


@command("resume", "resume a paused task", role="admin", argument="TASK")
def _resume(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    was_paused = bool(core.resolve(argument).paused_by)
    task = core.resume(argument)
    following = f"next {fmt.in_(task.next_run, core.clock.now())}" if task.next_run else "no next run"
    if not was_paused:
        return Reply(f"▶ {task.task_id} is not paused; {following}")
    return Reply(f"▶ {task.task_id} resumed, {following}")


@command("logs", "recent events, of all tasks or one", argument="TASK", required=False)
def _logs(core: Core, request: Request, argument: str | None) -> Reply:
    now, zone = core.clock.now(), core.local_zone()
    events = core.logs(argument, 10)
    lines = [
        f"{clock_time(e.timestamp, zone, now)} {e.task_id}: {fmt.named(e.text, request.requester)}"
        for e in reversed(events)
    ]
    return Reply("\n".join(lines) or "no events yet")


@command("next", "a task's next run times", argument="TASK")
def _next(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    task = core.resolve(argument)
    done_at = core.done_at(task)
    if done_at is not None:
        return Reply(f"{task.task_id}: {done(done_at, core.local_zone())}")
    zone = core.zone_of(task)
    times = core.next_runs(task.task_id, 5)
    if not times:
        return Reply(f"{task.task_id}: {task.chain or 'no upcoming runs'}")
    now = core.clock.now()
    also = f"\nand {task.chain}" if task.chain else ""
    return Reply(
        f"{task.task_id} ({zone.key}):\n"
        + "\n".join(f"{with_weekday(t, zone)} ({fmt.in_(t, now)})" for t in times)
        + also
    )


@command("output", "the last run's result, stdout and stderr", role="admin", argument="TASK")
def _output(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    run = core.last_output(argument)
    if run is None:
        return Reply(f"{core.resolve(argument).task_id} has not run yet")
    return Reply(fmt.output(run))


@command(
    "history",
    "the last 20 runs at a glance: ✅ ok ❌ failed ⏱ timed out ⏹ stopped ⏭ skipped 💤 missed ⏳ running",
    argument="TASK",
)
def _history(core: Core, request: Request, argument: str | None) -> Reply:
    assert argument is not None
    # A viewer may not read a run's output (output: is for admins): the reason without stderr's line.
    with_output = allowed(request.role, COMMANDS["output"].role)
    return Reply("\n".join(summary_lines(core.history(argument), core.clock.now(), with_output)))


@command("help", "the commands, or one in detail", argument="COMMAND", required=False)
def _help(core: Core, request: Request, argument: str | None) -> Reply:
    if argument:
        found = COMMANDS.get(argument.strip().lstrip("/!").lower())
        if found is None:
            return Reply(_help_hint(argument))
        role = "" if found.role == "viewer" else " (admins)"
        return Reply(f"{found.usage}: {found.help}{role}")
    lines = [f"{c.usage}: {c.help}" for c in COMMANDS.values() if allowed(request.role, c.role)]
    return Reply("\n".join(lines))
