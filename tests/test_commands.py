"""The chat-command layer in-process on a real store: grammar, roles, never a crash."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.commands import COMMANDS, MAX_TEXT_CHARS, ParseError, handle, parse, without_decoration
from moltbot.core import Core, Reply, Request, Watcher
from tests.conftest import Env

WATCHER = Watcher("signal", "+4915100000001", 1, "+4915100000001")


@pytest.fixture
def core(env: Env) -> Iterator[Core]:
    env.script("backup.sh", "true\n")
    env.write_tasks({"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"})
    core = Core(env.home)
    core.open()
    core.sync(core.load_specs())
    yield core


@pytest.mark.parametrize(
    "text",
    ["run:backup", "run backup", "/run backup", "!RUN: backup", "  Run :backup  ", "run:  backup"],
)
def test_the_grammar_is_forgiving(text: str) -> None:
    command, argument = parse(text)
    assert (command.name, argument) == ("run", "backup")


# The grammar as one pattern, as it was until issue #12 (quadratic on long runs of spaces): the
# reference the linear parser must agree with, on texts short enough for it.
OLD_GRAMMAR = re.compile(r"\s*[/!]?\s*([A-Za-z][A-Za-z-]*)\s*(?::\s*(.*?)|\s+(.*?))?\s*", re.DOTALL)


def old_parse(text: str) -> tuple[str, str | None] | None:
    """(command, argument) as the old parser read them; None where it refused the text."""
    match = OLD_GRAMMAR.fullmatch(text)
    if not match:
        return None
    name, argument = match[1].lower(), (match[2] if match[2] is not None else match[3]) or None
    found = COMMANDS.get(name)
    needs_one = found is not None and found.required and found.argument is not None
    if found is None or (found.argument is None and argument) or (needs_one and not argument):
        return None
    return name, argument


def new_parse(text: str) -> tuple[str, str | None] | None:
    try:
        command, argument = parse(text)
    except ParseError:
        return None
    return command.name, argument


@settings(max_examples=500)
@given(
    text=st.lists(
        st.one_of(
            st.sampled_from([*COMMANDS, "RUN", "x", "a-b", "2", "_", ":", "/", "!", "-"]),
            st.sampled_from([" ", "\t", "\n", "\x1c", "\u00a0", "\u2028", "\u3000", "\u200b"]),
            st.text(max_size=6),
        ),
        max_size=6,
    ).map("".join)
)
def test_the_linear_parser_reads_what_the_old_grammar_read(text: str) -> None:
    # Since #14 the phone's decoration around a command (end punctuation, emoji) is taken off first.
    assert new_parse(text) == old_parse(without_decoration(text))


def test_a_text_over_the_bound_is_refused_unread(core: Core) -> None:
    at_bound = "status" + " " * (MAX_TEXT_CHARS - len("status"))
    assert handle(core, Request(at_bound, "admin", "t", WATCHER)).text.startswith("moltbot:")
    over = handle(core, Request(at_bound + " ", "admin", "t", WATCHER)).text
    assert over == f"⛔ too long: a message to moltbot is at most {MAX_TEXT_CHARS} characters"


def test_help_is_generated_from_the_declarations(core: Core) -> None:
    text = handle(core, Request("help", "admin", "test", WATCHER)).text
    for command in COMMANDS.values():
        assert f"{command.usage}: {command.help}" in text
    viewer_help = handle(core, Request("help", "viewer", "test", WATCHER)).text
    assert "run:TASK" not in viewer_help and "status:" in viewer_help


def test_unknown_names_suggest_the_closest(core: Core) -> None:
    assert "did you mean status?" in handle(core, Request("stats", "admin", "t", WATCHER)).text
    assert "did you mean backup?" in handle(core, Request("next:bakup", "admin", "t", WATCHER)).text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda name, sep, arg: f"{name}{sep}{arg}",
            st.sampled_from([*COMMANDS, "RUN", "/status", "!logs", "x"]),
            st.sampled_from([":", " ", " : ", "::", ""]),
            st.text(max_size=30),
        ),
    ),
    role=st.sampled_from(["admin", "viewer"]),
)
def test_any_text_gets_a_reply_and_never_a_crash(core: Core, text: str, role: str) -> None:
    reply = handle(core, Request(text, role, "fuzz", WATCHER))
    assert isinstance(reply, Reply) and reply.text.strip()


def test_a_proposal_waits_two_minutes_for_its_yes_and_an_absent_agent_is_said(env: Env) -> None:
    from datetime import UTC, datetime

    from handlers.agent import Interpreter
    from moltbot.agents.ollama import OllamaClient
    from moltbot.clock import FakeClock
    from tests.fake_agents import FakeOllama

    env.script("backup.sh", "true\n")
    env.write_tasks({"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"})
    clock = FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    core = Core(env.home, clock)
    core.open()
    core.sync(core.load_specs())
    call = {"function": {"name": "pause", "arguments": {"task": "backup"}}}
    ollama = FakeOllama(
        answer=lambda body: {"role": "assistant", "content": "", "tool_calls": [call]}
    ).start()
    with OllamaClient(ollama.url, "llama3.2", timeout=5) as client:
        interpreter = Interpreter(core, lambda messages, tools: client.chat(messages, tools))
        ask = Request("hold the backup please", "admin", "signal:owner", WATCHER)
        yes = Request("yes", "admin", "signal:owner", WATCHER)

        def unread() -> Reply:
            raise AssertionError("a yes is never handled as a command")

        assert interpreter.interpret(ask).text.startswith("→ pause:backup?")
        clock.advance(seconds=121)
        assert interpreter.answer(yes, unread).text.startswith("nothing is waiting")  # too late
        assert interpreter.interpret(ask).text.startswith("→ pause:backup?")
        other = Request("yes", "admin", "signal:someone-else", WATCHER)
        assert interpreter.answer(other, unread).text.startswith("nothing is waiting")  # not theirs
        group = WATCHER._replace(address="group.b3Bz")
        assert interpreter.answer(yes._replace(watcher=group), unread).text.startswith("nothing is waiting")
        clock.advance(seconds=60)
        assert interpreter.answer(yes, unread).text.startswith("→ pause:backup ✓")
        viewer = interpreter.interpret(Request("hold the backup", "viewer", "signal:viewer", WATCHER))
        assert viewer.text.startswith("⛔ not something I may do")  # and pause was not even offered
        assert "pause" not in {tool["function"]["name"] for tool in ollama.requests[-1]["tools"]}
        ollama.stop()
        down = interpreter.interpret(ask)
        assert down.text.startswith("agent unavailable (Ollama at") and "commands:" in down.text


def test_resuming_a_task_that_is_not_paused_says_so(core: Core) -> None:
    reply = handle(core, Request("resume:backup", "admin", "t", WATCHER)).text
    assert reply.startswith("▶ backup is not paused; next in "), reply
    handle(core, Request("pause:backup", "admin", "t", WATCHER))
    assert handle(core, Request("resume:backup", "admin", "t", WATCHER)).text.startswith(
        "▶ backup resumed, next "
    )


@pytest.mark.parametrize(
    ("text", "name", "argument"),
    [("Status?", "status", None), ("status.", "status", None), ("Run backup!", "run", "backup"),
     ("run: backup 👍", "run", "backup"), ("👋 status", "status", None), ("next:backup?!", "next", "backup"),
     ("status 🙏🏽", "status", None), ("logs…", "logs", None)],
)  # fmt: skip
def test_a_phones_punctuation_and_emoji_around_a_command_are_ignored(
    text: str, name: str, argument: str | None
) -> None:
    command, parsed = parse(text)
    assert (command.name, parsed) == (name, argument)


def test_punctuation_does_not_hide_an_unknown_task(core: Core) -> None:
    reply = handle(core, Request("run bakup!", "admin", "t", WATCHER)).text
    assert reply.startswith("unknown task 'bakup'; did you mean backup?"), reply


@pytest.mark.parametrize("text", ["what is going on with the backup?", "please check the disk"])
def test_free_text_without_a_model_gets_a_sentence_and_the_short_help(core: Core, text: str) -> None:
    reply = handle(core, Request(text, "admin", "t", WATCHER)).text
    assert reply.startswith("I understand commands, not sentences"), reply  # "please" is no `pause`
    assert "[ollama]" in reply and "commands: status" in reply


def test_a_near_typo_before_words_still_gets_did_you_mean(core: Core) -> None:
    reply = handle(core, Request("pase backup", "admin", "t", WATCHER)).text
    assert reply.startswith("unknown command 'pase'; did you mean pause?"), reply


def test_tasks_shows_a_one_shot_by_its_instant(env: Env) -> None:
    env.script("once.sh", "true\n")
    env.write_tasks({"task_id": "once", "script_path": "once.sh", "schedule": "in 10 minutes"})
    core = Core(env.home)
    core.open()
    core.sync(core.load_specs())
    line = handle(core, Request("tasks", "admin", "t", WATCHER)).text
    assert "once: once, " in line and "in 10 minutes" not in line, line  # not "in 10 minutes" forever
