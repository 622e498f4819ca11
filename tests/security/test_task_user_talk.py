"""``moltbot notify`` and ``moltbot ask`` in runs as the task user (issue #13), which may not write the
database: their requests go through the run's folder (``moltbot/relay.py``), and what a run puts there
instead of a request is refused without harm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from moltbot.relay import MAX_REQUESTS
from tests.conftest import wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, say, signal_toml
from tests.users import Sandbox, sandbox, users

__all__ = ["sandbox", "users"]
Boxes = Callable[..., Sandbox]

ASKING = (
    'answer=$(moltbot ask "Delete 3 snapshots?" {options})\n'
    'code=$?\necho "answer=$answer code=$code"\nexit $code\n'
)


def texts(gateway: FakeGateway, containing: str) -> list[str]:
    return [text for text in gateway.texts_to(OWNER) if containing in text]


def task(
    box_script: Callable[[str, str], Path], task_id: str, body: str, **extra: object
) -> dict[str, object]:
    box_script(f"{task_id}.sh", body)
    return {"task_id": task_id, "script_path": f"{task_id}.sh", "schedule": "daily at 03:00", **extra}


def run_in_background(box: Sandbox, task_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(box.cli_argv("run", task_id, "--json"), env=box.environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_ask_and_notify_as_the_task_user_reach_the_admins_and_the_answer_is_the_exit_code(
    sandbox: Boxes, gateway: FakeGateway
) -> None:
    box = sandbox()
    tasks = [
        task(box.script, "yes", ASKING.format(options="")),
        task(box.script, "no", ASKING.format(options="--choices yes,no")),
        task(box.script, "late", ASKING.format(options="--timeout 2s")),
        task(box.script, "backup", 'moltbot notify "disk at 91%, pruning" || exit 9\nid -un\n'),
    ]
    box.write_tasks(*tasks, settings=box.settings + signal_toml(gateway))
    box.start()
    wait_until(gateway.connected, what="the daemon's websocket")

    for task_id, word, code in (("yes", "yes", 0), ("no", "no", 1)):
        run = run_in_background(box, task_id)
        (question,) = wait_until(
            lambda t=task_id: texts(gateway, f"{t}: Delete 3 snapshots?"), what="the question"
        )
        assert question.startswith(f"❓ {task_id}: Delete 3 snapshots? yes / no (until "), question
        status = box.cli("status", check=True).stdout
        assert f"{task_id}: running, waiting for an answer since " in status, status
        say(gateway, word)
        out, err = run.communicate(timeout=60)
        result = json.loads(out)
        assert f"answer={word} code={code}" in result["stdout"], (result, err)
        assert result["exit_code"] == code, result

    result = json.loads(box.cli("run", "late", "--json", timeout=60).stdout)
    assert result["exit_code"] == 4 and "no answer within 2s" in result["stderr"], result
    (late,) = box.query("SELECT status FROM question WHERE task_id = 'late'")
    assert late == ["expired"]  # closed with the run

    result = json.loads(box.cli("run", "backup", "--json", timeout=60).stdout)
    assert result["status"] == "success" and box.users.task.name in result["stdout"], result
    wait_until(lambda: texts(gateway, "backup: disk at 91%, pruning"), what="the notification on Signal")
    assert list(box.home.runs_dir.iterdir()) == []


def test_a_pending_ask_is_closed_by_a_shutdown_and_never_asked_again(
    sandbox: Boxes, gateway: FakeGateway
) -> None:
    box = sandbox()
    asking = task(box.script, "prune", ASKING.format(options="--timeout 10m"), schedule="in 1 seconds")
    box.write_tasks(asking, settings=box.settings + signal_toml(gateway))
    daemon = box.start()
    wait_until(lambda: texts(gateway, "prune: Delete 3 snapshots?"), what="the question")
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(30) == 0, daemon.output()
    assert box.query("SELECT status, run_id FROM question") == [["expired", 1]]  # closed with its run
    assert box.query("SELECT status FROM run WHERE id = 1") == [["interrupted"]]
    assert list(box.home.runs_dir.iterdir()) == []

    box.start()  # the interrupted run is resumed: a new run, which asks its own question, once
    wait_until(
        lambda: len(texts(gateway, "prune: Delete 3 snapshots?")) == 2, what="the resumed run's question"
    )
    say(gateway, "yes")
    wait_until(
        lambda: box.query("SELECT status FROM run WHERE id = 2") == [["success"]], what="the resumed run"
    )
    assert box.query("SELECT status, answer, run_id FROM question ORDER BY id") == [
        ["expired", "", 1], ["answered", "yes", 2]
    ]  # fmt: skip
    assert len(texts(gateway, "prune: Delete 3 snapshots?")) == 2


TOKEN = "0000000000000000"
HOSTILE = f"""\
d="$MOLTBOT_RUN_DIR" t={TOKEN}
bait=$(mktemp) && printf '{{"text": "via a link"}}' >"$bait"
ln -s "$bait" "$d/notify-1-$t.json"
ln -s "$MOLTBOT_HOME/data/moltbot.db" "$d/ask-2-$t.json"
head -c 40000 /dev/zero | tr '\\0' a | sed 's/^/{{"text": "/; s/$/"}}/' >"$d/notify-3-$t.json"
printf '{{"text": ' >"$d/notify-4-$t.json"
while [ ! -e "$d/go" ]; do sleep 0.1; done
moltbot notify "still here" || exit 9
i=10
while [ $i -lt {MAX_REQUESTS + 20} ]; do
  printf '{{"text": "flood %d"}}' $i >"$d/.f" && mv "$d/.f" "$d/notify-$i-$t.json"
  i=$((i+1))
done
rm -f "$bait"
"""


def floods(gateway: FakeGateway) -> int:
    """The flood's notifications sent (the outbox gathers alerts that come together in one message)."""
    return sum(text.count("evil: flood ") for text in gateway.texts_to(OWNER))


def test_what_a_run_leaves_instead_of_a_request_is_refused_without_harm(
    sandbox: Boxes, gateway: FakeGateway
) -> None:
    box = sandbox()
    database = box.home.db_path
    box.write_tasks(task(box.script, "evil", HOSTILE), settings=box.settings + signal_toml(gateway))
    daemon = box.start()
    wait_until(gateway.connected, what="the daemon's websocket")
    run = run_in_background(box, "evil")
    (folder,) = wait_until(lambda: list(box.home.runs_dir.iterdir()), what="the run's folder")
    wait_until(lambda: (folder / f"notify-4-{TOKEN}.json").exists(), what="the run's requests")
    planted = folder / f"notify-5-{TOKEN}.json"  # someone else's file (root's), in the run's folder
    planted.write_text('{"text": "planted"}')
    (folder / "go").touch()
    out, err = run.communicate(timeout=120)
    result = json.loads(out)
    assert result["status"] == "success", (result, err)

    wait_until(lambda: texts(gateway, "evil: still here"), what="the good request")
    flood = MAX_REQUESTS - 6  # five refused and one taken count too
    wait_until(lambda: floods(gateway) == flood, what="the requests up to the limit")
    wait_until(lambda: box.cli("outbox", "--json", check=True).stdout.strip() == "[]", what="the outbox sent")
    assert floods(gateway) == flood
    for never in ("via a link", "planted", "aaaa", "SQLite"):
        assert not texts(gateway, never), never
    assert daemon.process.poll() is None
    assert database.exists() and not database.is_symlink()
    assert box.query("SELECT count(*) FROM question") == [[0]]
    assert box.cli("status", check=True).returncode == 0  # and the daemon still answers
    assert os.stat(box.home.runs_dir).st_uid == box.users.daemon.uid
    assert list(box.home.runs_dir.iterdir()) == []


def test_a_notification_a_crash_left_untaken_reaches_the_admins_after_the_restart(
    sandbox: Boxes, gateway: FakeGateway
) -> None:
    box = sandbox()
    go = box.home.tasks_dir / "go"  # where the task user can look for it
    body = (
        'touch "$MOLTBOT_RUN_DIR/started"\n'
        f"while [ ! -e {go} ]; do sleep 0.05; done\nmoltbot notify 'half way' &\nsleep 60\n"
    )
    once = task(box.script, "backup", body, missed="skip")  # not run again after the crash
    box.write_tasks(once, settings=box.settings + signal_toml(gateway))
    daemon = box.start()
    wait_until(gateway.connected, what="the daemon's websocket")
    run = run_in_background(box, "backup")
    try:
        (folder,) = wait_until(
            lambda: [path for path in box.home.runs_dir.iterdir() if (path / "started").exists()],
            what="the run's folder",
        )
        daemon.signal(signal.SIGSTOP)  # frozen: the relay cannot take the request
        try:
            go.touch()
            wait_until(lambda: list(folder.glob("notify-*.json")), what="the notification request")
        finally:
            daemon.kill()  # SIGKILL: the request stays unanswered
        box.start()
        wait_until(lambda: texts(gateway, "backup: half way"), what="the notification, after the restart")
        run_id = folder.name.split("-")[0]
        assert texts(gateway, "backup: half way") == [f"backup: half way (run {run_id})"]
    finally:
        run.kill()
        run.communicate()
