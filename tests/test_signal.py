"""Signal end to end: a real daemon process against a fake gateway on 127.0.0.1.

Frames go in over the gateway's websocket (or its normal-mode receive), the
daemon answers through POST /v2/send; nothing of moltbot is mocked.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Callable

import pytest

from moltbot import store
from moltbot.store import messages
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import BOT, FakeGateway, SendFault, note_to_self_frame, text_frame

pytestmark = pytest.mark.both_backends  # and on PostgreSQL (tests/pg.py)

OWNER = "+4915100000001"
OWNER_UUID = "0b0e0a2c-1111-4222-8333-444455556666"
VIEWER_UUID = "9c9d0a2c-1111-4222-8333-444455556666"
STRANGER_UUID = "5e5e5e5e-1111-4222-8333-444455556666"
GROUP = "mHN1kiXgMXpKz5Ah2l110NLQHzIrYaFuC3c3mzpSoaE="
GROUP_REST = "group." + base64.b64encode(GROUP.encode()).decode()


_last_ms = 0


def now_ms() -> int:
    """Now, in ms, never the same twice: (sender, timestamp) is a message's identity."""
    global _last_ms
    _last_ms = max(_last_ms + 1, int(time.time() * 1000))
    return _last_ms


def signal_toml(gateway: FakeGateway, **extra: str) -> str:
    values = {
        "url": f'"{gateway.url}"',
        "number": f'"{BOT}"',
        "allowed": f'["{OWNER}", "{OWNER_UUID}"]',
        "viewers": f'["{VIEWER_UUID}"]',
        "groups": f'["{GROUP}"]',
        "timeout_seconds": "2",
        **extra,
    }
    return "[signal]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())


@pytest.fixture
def bot(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> Callable[..., DaemonProcess]:
    """Start the daemon with Signal on the fake gateway; wait until its socket is up."""

    def start(
        *tasks: dict[str, object], wait_connected: bool = True, ollama: str | None = None, **settings: str
    ) -> DaemonProcess:
        toml = signal_toml(gateway, **settings)
        if ollama:
            toml += f'\n[ollama]\nhost = "{ollama}"\nmodel = "llama3.2"\ntimeout_seconds = 10\n'
        env.write_tasks(*tasks, settings=toml)
        daemon = start_daemon()
        if wait_connected:
            wait_until(gateway.connected, what="the daemon's websocket")
        return daemon

    return start


def say(gateway: FakeGateway, text: str, sender: str = OWNER_UUID, number: str | None = OWNER,
        group: str | None = None) -> int:  # fmt: skip
    timestamp = now_ms()
    assert gateway.push(text_frame(sender, text, timestamp, number, group))
    return timestamp


def replies(gateway: FakeGateway, count: int, recipient: str = OWNER) -> list[str]:
    wait_until(
        lambda: len(gateway.texts_to(recipient)) >= count, timeout=15, what=f"{count} replies to {recipient}"
    )
    return gateway.texts_to(recipient)


def echo_task(env: Env, task_id: str = "job", body: str = "echo hello from job\n") -> dict[str, object]:
    env.script(f"{task_id}.sh", body)
    return {"task_id": task_id, "script_path": f"{task_id}.sh", "schedule": "daily at 03:00"}


def test_status_round_trip_quotes_the_command(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    sent_at = say(gateway, "status")
    (body,) = gateway.wait_for_sent(1)
    assert body["recipients"] == [OWNER] and body["number"] == BOT
    assert body["message"].startswith("moltbot: 1 tasks") and "○ job" in body["message"]
    assert (body["quote_timestamp"], body["quote_author"]) == (sent_at, OWNER)


def test_run_acknowledges_then_reports_the_result_with_output(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env, body="echo first line\necho done-marker\n"))
    sent_at = say(gateway, "/Run  job")
    first, second = replies(gateway, 2)
    assert first.startswith("▶ job started (run ")
    assert second.startswith("✅ job finished in") and second.endswith("first line\ndone-marker")
    # The 👀 and the typing indicator go from the receiving thread, the replies from the outbox's: a
    # short run's replies may come first (CI saw it once).
    wait_until(lambda: gateway.reactions, what="the 👀 reaction")
    assert gateway.reactions[0]["reaction"] == "👀" and gateway.reactions[0]["timestamp"] == sent_at
    assert ("PUT", OWNER) in gateway.typing
    env.db()
    (run,) = store.recent_runs("job", 5)
    assert (run.trigger, run.requested_by) == ("remote", f"signal:{OWNER_UUID}")


def test_every_command_answers(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env), echo_task(env, "slow", "sleep 30\n"))
    script = [
        ("tasks", "job: daily at 03:00"),
        ("next:job", "job (UTC):"),
        ("pause:job", "⏸ job paused"),
        ("resume:job", "▶ job resumed, next in"),
        ("run:slow", "▶ slow started"),
        ("stop:slow", "⏹ stopping slow"),
        ("logs", "job"),
        ("logs:job", "resumed by user"),
        ("output:slow", "⏹ slow stopped after"),
        ("history:slow", "slow: the last 1 run, oldest first\n⏹"),
        ("help", "run:TASK: run a task now"),
        ("help:pause", "pause:TASK: pause a task's schedule (admins)"),
        ("stauts", "did you mean status?"),
        ("run:jbo", "did you mean job?"),
        ("pause", "pause needs a task"),
    ]
    expected = 0
    for command, needle in script:
        say(gateway, command)
        expected += 1
        if command == "stop:slow":
            expected += 1  # the stopped run's result follows
            wait_until(lambda: any(t.startswith("⏹ slow stopped after") for t in gateway.texts_to(OWNER)),
                       what="the stopped run's result")  # fmt: skip
        if command == "output:slow":
            assert needle in replies(gateway, expected)[-1]
            continue
        texts = replies(gateway, expected)
        assert any(needle in text for text in texts[-2:]), (command, texts[-2:])
    # The chat that started the run and stopped it watches it once: one result.
    results = [t for t in gateway.texts_to(OWNER) if t.startswith("⏹ slow stopped") and "\n" not in t]
    assert len(results) == 1, results  # output:slow's answer has its "(no output)" line


def test_stop_answers_with_the_result_of_a_run_someone_else_started(
    env: Env, gateway: FakeGateway, bot
) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env, "slow", "echo begun\nsleep 30\n"))
    cli = subprocess.Popen(
        env.cli_argv("run", "slow"), env=env.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        env.db()
        wait_until(lambda: (task := store.get_task("slow")) and task.current_run_id, what="the CLI's run")
        wait_until(lambda: (env.home.root / "logs" / "slow").exists(), what="its first output")
        say(gateway, "stop:slow")
        ack, result = replies(gateway, 2)
        assert re.fullmatch(r"⏹ stopping slow \(run \d+\)", ack), ack
        # On PostgreSQL (both_backends) the result names the node that ran it: "(run 1 on nas-2)".
        assert re.fullmatch(r"⏹ slow stopped after \d+\.\d s \(run \d+( on \S+)?\)\nbegun", result), result
        say(gateway, "logs:slow")
        lines = replies(gateway, 3)[2].splitlines()
        assert re.fullmatch(
            r"\d\d:\d\d slow: run \d+ interrupted: stopped on request after \S+", lines[-1]
        ), lines
        assert re.fullmatch(r"\d\d:\d\d slow: run \d+ started \(manual\)( on \S+)?", lines[-3]), lines
        assert all(
            f"{word}:" not in line for line in lines for word in ("started", "queued", "stop_requested")
        )
    finally:
        cli.communicate(timeout=30)


def test_strangers_get_no_reply_and_admins_a_rate_limited_alert(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    daemon = bot(echo_task(env))
    say(gateway, "run:job secret-words", sender=STRANGER_UUID, number="+4915100000777")
    say(gateway, "status", sender=STRANGER_UUID, number=None)
    say(gateway, "status")
    texts = replies(gateway, 2)
    assert any(
        t.startswith("⚠ ignored 1 message(s) from senders not allowed (last: +4915100000777)") for t in texts
    )
    assert any(t.startswith("moltbot:") for t in texts)
    assert gateway.texts_to("+4915100000777") == [] and gateway.texts_to(STRANGER_UUID) == []
    env.db()
    assert store.recent_runs("job", 5) == []  # nothing ran
    assert "refused a message from " + STRANGER_UUID in daemon.output()
    assert "secret-words" not in daemon.output()  # refusals never log the content
    assert len([t for t in gateway.texts_to(OWNER) if t.startswith("⚠ ignored")]) == 1  # rate-limited


def test_viewers_may_read_but_not_act(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    say(gateway, "run:job", sender=VIEWER_UUID, number=None)
    (refusal,) = replies(gateway, 1, recipient=VIEWER_UUID)
    assert refusal.startswith("⛔ run is for admins; you may use: status, tasks, logs, next, history, help")
    say(gateway, "status", sender=VIEWER_UUID, number=None)
    assert replies(gateway, 2, recipient=VIEWER_UUID)[1].startswith("moltbot:")
    env.db()
    assert store.recent_runs("job", 5) == []


def test_groups_need_an_allowed_group_and_an_allowed_sender(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    say(gateway, "status", sender=STRANGER_UUID, number=None, group=GROUP)  # allowed group, stranger
    say(gateway, "status", group="b3RoZXItZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDA=")  # owner, other group
    say(gateway, "help", group=GROUP)  # owner, allowed group
    (text,) = replies(gateway, 1, recipient=GROUP_REST)
    assert text.startswith("status: every task")
    assert gateway.texts_to(OWNER) == [] or all(t.startswith("⚠ ignored") for t in gateway.texts_to(OWNER))


def test_a_replayed_envelope_runs_once_and_old_or_edited_commands_do_not_run(
    env: Env, gateway: FakeGateway, bot
) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    base = now_ms()  # distinct timestamps: (sender, timestamp) is a message's identity
    frame = text_frame(OWNER_UUID, "run:job", base - 100, OWNER)
    gateway.push(frame)
    gateway.push(frame)  # the same envelope again (a replay)
    gateway.push(text_frame(OWNER_UUID, "run:job", base - 20 * 60_000, OWNER))  # queued 20 min ago
    edit = text_frame(OWNER_UUID, None, base - 60, OWNER)
    edit["envelope"]["editMessage"] = {
        "targetSentTimestamp": 1,
        "dataMessage": {"timestamp": base - 50, "message": "run:job"},
    }
    del edit["envelope"]["dataMessage"]
    gateway.push(edit)
    say(gateway, "status")
    texts = replies(gateway, 4)  # started, finished, edit notice, status
    assert "edits are ignored; send the command again" in texts
    env.db()
    assert len(store.recent_runs("job", 5)) == 1


def test_malformed_frames_never_stop_the_bot(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    daemon = bot(echo_task(env))
    gateway.push_raw("this is not json")
    gateway.push_raw('{"error": "Couldn\'t send message to golang channel"}')
    gateway.push_raw('{"envelope": 5}')
    gateway.push_raw(
        '{"envelope": {"sourceUuid": "x", "receiptMessage": {"isRead": true}}, "account": "' + BOT + '"}'
    )
    gateway.push(
        {
            "envelope": {"sourceUuid": OWNER_UUID, "timestamp": now_ms()},
            "exception": {"message": "x"},
            "account": BOT,
        }
    )
    say(gateway, "status")
    assert replies(gateway, 1)[0].startswith("moltbot:")
    assert "not JSON" in daemon.output()


def test_send_failing_for_a_while_delivers_the_reply_once(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    gateway.faults.append(SendFault(503, count=7))  # more than one attempt's quick retries
    say(gateway, "status")
    texts = replies(gateway, 1)
    assert len(texts) == 1 and gateway.send_requests > 1  # retried, delivered once
    env.db()
    wait_until(lambda: messages.pending_outbox() == [], what="the row marked sent")
    assert len(gateway.texts_to(OWNER)) == 1


def test_a_gateway_that_never_answers_does_not_stop_scheduling(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    env.script("tick.sh", "true\n")
    tick = {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"}
    daemon = bot(echo_task(env), tick, timeout_seconds="0.5")
    gateway.faults.append(SendFault(hang=True, count=100))
    say(gateway, "status")
    env.db()
    wait_until(lambda: any(row.status == "failed" for row in messages.pending_outbox()), timeout=20,
               what="the unanswered send to be given up")  # fmt: skip
    (row,) = messages.pending_outbox()
    assert "may have been delivered" in (row.last_error or "") or "no answer" in (row.last_error or "")
    runs_before = store.get_task("tick").run_count
    wait_until(lambda: store.get_task("tick").run_count >= runs_before + 2, what="scheduling to go on")
    assert gateway.send_requests == 1  # never sent twice
    gateway.release_hung_sends()
    assert daemon.process.poll() is None


def test_gateway_down_at_start_then_back_gets_admins_told(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    gateway.stop()
    env.script("tick.sh", "true\n")
    bot({"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"}, wait_connected=False)
    env.db()
    wait_until(lambda: store.get_task("tick").run_count >= 1, what="scheduling without a gateway")
    gateway.restart()
    wait_until(gateway.connected, timeout=20, what="the daemon to connect once the gateway is up")
    (notice,) = replies(gateway, 1)
    assert notice.startswith("moltbot is back online; resend anything you sent since ")


def test_gateway_restart_mid_run_delivers_the_result_once(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    release = env.home.root / "release"
    bot(echo_task(env, body=f"while [ ! -e {release} ]; do sleep 0.05; done\necho released\n"))
    say(gateway, "run:job")
    replies(gateway, 1)
    gateway.stop()
    release.touch()  # the run ends while the gateway is down
    env.db()
    wait_until(lambda: store.recent_runs("job", 1)[0].status == "success", what="the run to end")
    gateway.restart()
    texts = replies(gateway, 3)  # started, back online, finished
    assert len([t for t in texts if t.startswith("✅ job finished")]) == 1
    assert any(t.startswith("moltbot is back online") for t in texts)


def test_normal_mode_polls_receive(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    gateway.mode = "normal"
    gateway.response_shape = "array"  # the newer /v2/send answer
    bot(echo_task(env), wait_connected=False)
    say(gateway, "status")
    assert replies(gateway, 1)[0].startswith("moltbot:")


def test_linked_device_takes_note_to_self_only(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    own_uuid = "77777777-1111-4222-8333-444455556666"
    bot(echo_task(env), linked_device="true")
    gateway.push(text_frame(OWNER_UUID, "status", now_ms(), OWNER))  # someone writing to the owner: ignored
    gateway.push(note_to_self_frame(own_uuid, "help:status", now_ms()))
    (text,) = replies(gateway, 1, recipient=BOT)
    assert text.startswith("status: every task")
    echo = note_to_self_frame(own_uuid, text, gateway.last_timestamp)
    gateway.push(echo)  # our own reply, synced back: never a command
    gateway.push(note_to_self_frame(own_uuid, "tasks", now_ms()))
    texts = replies(gateway, 2, recipient=BOT)
    assert texts[1].startswith("○ job") and gateway.texts_to(OWNER) == []


def test_scheduled_failures_alert_the_admins(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    env.script("bad.sh", "echo broken >&2\nexit 3\n")
    env.script("good.sh", "true\n")
    bot(
        {"task_id": "bad", "script_path": "bad.sh", "schedule": "in 1 seconds"},
        {"task_id": "good", "script_path": "good.sh", "schedule": "in 1 seconds"},
    )
    (alert,) = replies(gateway, 1)
    assert (
        alert.startswith("⚠ scheduled run: ❌ bad failed")
        and "exit code 3" in alert
        and alert.endswith("broken\noutput:bad for the output, run:bad to try again")
    )


def test_outbox_cli_lists_what_is_not_delivered(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    gateway.faults.append(SendFault(400, {"error": "Failed to send message: Unregistered user"}))
    say(gateway, "status")
    wait_until(lambda: "failed" in env.cli("outbox").stdout, what="the refused message in the outbox")
    listing = env.cli("outbox").stdout
    assert "Unregistered user" in listing and OWNER in listing
    assert gateway.send_requests == 1  # a 400 may have been delivered: never sent again


def test_long_replies_are_split_at_line_ends_in_order(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    tasks = [echo_task(env, f"task-with-a-long-name-{i:03d}") for i in range(60)]
    bot(*tasks)
    say(gateway, "status")
    wait_until(lambda: len(gateway.texts_to(OWNER)) >= 2, what="a status in parts")
    env.db()
    wait_until(lambda: messages.pending_outbox() == [], what="every part delivered")
    parts = gateway.texts_to(OWNER)
    assert all(len(part.encode()) <= 2000 for part in parts)
    joined = "\n".join(parts)
    assert joined.startswith("moltbot: 60 tasks") and joined.count("task-with-a-long-name-") == 60
    assert [line for line in joined.splitlines() if "name-059" in line]  # the last task made it, once
    assert len(parts) == len(set(parts))


def test_split_message_keeps_lines_whole_and_bytes_under_the_limit() -> None:
    from moltbot.signal_chat.delivery import split_message

    text = "\n".join(f"line {i} ü" for i in range(400))
    parts = split_message(text, limit=200)
    assert all(len(part.encode()) <= 200 for part in parts)
    assert "\n".join(parts) == text
    assert split_message("x" * 450, limit=200) == ["x" * 200, "x" * 200, "x" * 50]
    assert split_message("") == [""]


def test_free_text_goes_to_the_agent_with_the_commands_as_its_only_tools(
    env: Env, gateway: FakeGateway, bot
) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_agents import FakeOllama

    def understand(body: dict[str, object]) -> dict[str, object]:
        text = str(body["messages"][-1]["content"])  # type: ignore[index]
        if "email" in text:
            return {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "pause", "arguments": {"task": "email-check"}}}]}  # fmt: skip
        if "how are things" in text:  # a small model writing its call as JSON text
            return {"role": "assistant", "content": '{"name": "status", "arguments": {}}'}
        return {"role": "assistant", "content": "I can only operate moltbot's tasks."}

    ollama = FakeOllama(answer=understand).start()
    try:
        bot(echo_task(env, "email-check"), ollama=ollama.url)
        say(gateway, "how are things going?")
        assert replies(gateway, 1)[0].startswith("→ status ✓\nmoltbot: 1 tasks")
        say(gateway, "please stop the email thing for now")
        assert replies(gateway, 2)[1] == "→ pause:email-check? reply yes within 2 minutes to do it"
        env.db()
        assert store.get_task("email-check").paused_by is None  # not before the yes
        say(gateway, "yes")
        assert replies(gateway, 3)[2].startswith("→ pause:email-check ✓\n⏸ email-check paused")
        assert store.get_task("email-check").paused_by == "user"
        say(gateway, "tell me a joke")
        assert replies(gateway, 4)[3] == "I can only operate moltbot's tasks."
        tools = {tool["function"]["name"] for tool in ollama.requests[0]["tools"]}  # type: ignore[index]
        assert tools == {
            "status",
            "tasks",
            "run",
            "stop",
            "pause",
            "resume",
            "logs",
            "next",
            "output",
            "history",
            "help",
        }
        say(gateway, "stauts")  # a typo is still a typo, not a question for the model
        assert (
            "did you mean status?" in replies(gateway, 5)[4] and len(ollama.requests) == 3
        )  # yes and typos: no model
    finally:
        ollama.stop()


def test_without_an_agent_free_text_gets_the_short_help(env: Env, gateway: FakeGateway, bot) -> None:  # type: ignore[no-untyped-def]
    bot(echo_task(env))
    say(gateway, "could you check the backups please")
    reply = replies(gateway, 1)[0]
    assert reply.startswith("I understand commands, not sentences (free text needs a local model: [ollama]")
    assert "\ncommands: status, tasks" in reply


def test_an_llm_task_answers_run_from_signal_and_delivers_to_the_admins(
    env: Env, gateway: FakeGateway, bot
) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_agents import FakeOllama

    ollama = FakeOllama(
        answer=lambda body: {"role": "assistant", "content": "All 3 backups are fresh."}
    ).start()
    try:
        digest = {"task_id": "digest", "kind": "llm", "prompt": "Summarise the backups.",
                  "schedule": "daily at 03:00", "deliver_to": "signal:admins"}  # fmt: skip
        bot(digest, ollama=ollama.url)
        say(gateway, "run:digest")
        wait_until(lambda: "All 3 backups are fresh." in gateway.texts_to(OWNER), what="the delivered answer")
        texts = replies(gateway, 3)
        assert any(
            t.startswith("✅ digest finished") and t.endswith("All 3 backups are fresh.") for t in texts
        )
        assert ollama.requests[0]["messages"] == [{"role": "user", "content": "Summarise the backups."}]
    finally:
        ollama.stop()
