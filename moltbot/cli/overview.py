"""What moltbot knows, at a glance: ``status`` and ``tasks`` (text and JSON, supersets of the
original scheduler's shapes)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from moltbot.cli.common import EXIT_OK, print_json, ready_core, zone_for_people
from moltbot.cli.health import health_json, health_lines
from moltbot.cli.waiting import question_json, waiting_lines
from moltbot.config.errors import ConfigError
from moltbot.config.settings import Settings
from moltbot.core import Core
from moltbot.local_times import done, wall_clock
from moltbot.records import chain_text
from moltbot.redact import masked_url

__all__ = ["cmd_status", "cmd_tasks", "shown_ping_url", "status_json"]


def status_json(core: Core) -> dict[str, Any]:
    """The original status shape, plus fields the original lacked."""
    tasks = core.task_states()
    running = [task.task_id for task in tasks if task.current_run_id is not None]
    pid = core.daemon_pid()
    questions = core.questions.waiting()
    waiting = {q.task_id: q.asked_at for q in reversed(questions) if q.task_id}  # the oldest wins
    pinged = {task.task_id: task.spec().get("ping_url") for task in core.tasks()}
    try:
        settings = core.settings
    except ConfigError:  # status answers with a broken moltbot.toml (zone_for_people says why)
        settings = Settings()
    heartbeat = settings.heartbeat_url
    nodes = [{"node": n.name, "host": n.host, "since": n.since.isoformat()} for n in core.nodes()]
    return {
        **({"nodes": nodes} if nodes else {}),  # PostgreSQL: the original shape stays on SQLite
        "running": pid is not None,
        "current_task": running[0] if running else None,
        "task_count": len(tasks),
        "daemon_pid": pid,
        "running_tasks": running,
        "tasks": [
            {
                "id": task.task_id,
                "name": task.name,
                "status": task.status,
                "last_run": task.last_run.isoformat() if task.last_run else None,
                "next_run": task.next_run.isoformat() if task.next_run else None,
                "done_at": task.done_at.isoformat() if task.done_at else None,
                "run_count": task.run_count,
                "error_count": task.error_count,
                "last_result": task.last_status,
                "last_error": task.last_error,
                "paused_by": task.paused_by,
                "priority": task.priority,
                "enabled": task.enabled,
                "waiting_since": waiting[task.task_id].isoformat() if task.task_id in waiting else None,
                "ping_url": shown_ping_url(pinged.get(task.task_id)),
                "incidents": [
                    {
                        "kind": incident.kind,
                        "since": incident.opened_at.isoformat(),
                        "failures": incident.failures,
                        "alerted": incident.alerted,
                    }
                    for incident in task.incidents
                ],
                "overdue": any(incident.kind == "overdue" for incident in task.incidents),
                "after": list(task.after),
                "after_failure": list(task.after_failure),
            }
            for task in tasks
        ],
        "questions": [question_json(question) for question in questions],
        "heartbeat": {"url": masked_url(heartbeat), "every_seconds": settings.heartbeat_seconds}
        if heartbeat
        else None,
        **health_json(core.health_report()),  # the daemon's channels and background threads
    }


def shown_ping_url(url: object) -> str | None:
    """A task's ping_url as moltbot shows it: its host and last 4 characters (it is a secret)."""
    return masked_url(url) if isinstance(url, str) and url else None


def cmd_status(args: argparse.Namespace) -> int:
    core = ready_core(args)
    if args.json:
        print_json(status_json(core))
        return EXIT_OK
    tasks = core.task_states()
    pid = core.daemon_pid()
    daemon = f"running (pid {pid})" if pid else "not running"
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "no tasks"
    lines = [f"moltbot daemon: {daemon} · {len(tasks)} tasks ({summary})"]
    nodes = core.nodes()  # several daemons on one PostgreSQL database
    if nodes:
        zone = zone_for_people(core)
        lines.append(
            "nodes: " + ", ".join(f"{n.name} on {n.host} (since {wall_clock(n.since, zone)})" for n in nodes)
        )
    if tasks:
        zone = zone_for_people(core)
        rows = [("TASK", "STATUS", "LAST RUN", "RESULT", "NEXT RUN", "RUNS", "ERRORS")]
        for task in tasks:
            last = wall_clock(task.last_run, zone) if task.last_run else "-"
            nxt = (
                "done"
                if task.done_at
                else wall_clock(task.next_run, zone)
                if task.next_run
                else task.chain or "-"
            )
            state = task.status + (f" ({task.paused_by})" if task.paused_by else "")
            state += f", {task.incident_note()}" if task.incidents else ""
            result = task.last_status or "-"
            runs, errors = str(task.run_count), str(task.error_count)
            rows.append(
                (task.task_id, state, last, result, nxt if task.enabled else "disabled", runs, errors)
            )
        widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
        template = "  ".join(f"{{:{width}}}" for width in widths)
        lines += [template.format(*row).rstrip() for row in rows]
        lines.append(f"(times in {zone.key})")
    lines += waiting_lines(core.questions.waiting(), zone_for_people(core))
    lines += health_lines(core.health_report(), zone_for_people(core))
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    from moltbot.config.spec import split_schedule_key
    from moltbot.kinds import kind_of_definition

    core = ready_core(args)
    done_at = {state.task_id: state.done_at for state in core.task_states() if state.done_at}
    listing = []
    for task in core.tasks():
        spec = task.spec()
        schedule_text, zone = split_schedule_key(task.schedule_key)
        after, after_failure = task.chains()
        listing.append(
            {
                "task_id": task.task_id,
                "name": task.name,
                "schedule": schedule_text,
                "timezone": zone,
                "enabled": task.enabled,
                "priority": task.priority,
                "script_path": spec.get("script_path"),
                "runs": kind_of_definition(spec).describe(spec),
                "description": spec.get("description", ""),
                "done_at": done_at[task.task_id].isoformat() if task.task_id in done_at else None,
                "approve": bool(spec.get("approve", False)),
                "approve_timeout": spec.get("approve_timeout", "1h") if spec.get("approve") else None,
                "ping_url": shown_ping_url(spec.get("ping_url")),
                "notify": spec.get("notify", "failure"),
                "alert_after": spec.get("alert_after", 1),
                "alert_repeat": spec.get("alert_repeat", "24h"),
                "expect_success_within": spec.get("expect_success_within"),
                "after": list(after),
                "after_failure": list(after_failure),
            }
        )
    if args.json:
        print_json(listing)
        return EXIT_OK
    zone = zone_for_people(core)
    for item in listing:
        state = "" if item["enabled"] else " [disabled]"
        ran = f", {done(done_at[item['task_id']], zone)}" if item["done_at"] else ""
        alerts = _alerts_line(item)
        ran += f", asks an admin first (waits {item['approve_timeout']})" if item["approve"] else ""
        when = ", or ".join(
            filter(None, [item["schedule"], chain_text(item["after"], item["after_failure"])])
        )
        print(
            f"{item['task_id']}{state}: {item['name']} - {when} ({item['timezone']}){ran}, "
            f"priority {item['priority']}, runs {item['runs']}{alerts}"
            + (f", pings {item['ping_url']}" if item["ping_url"] else "")
        )
    return EXIT_OK


def _alerts_line(item: dict[str, Any]) -> str:
    """``, alerts after 3 failures, reminds every 24h, expects success within 26h`` (defaults unsaid)."""
    parts = []
    if item["notify"] != "failure":
        parts.append(f"notify {item['notify']}")
    if item["alert_after"] != 1:
        parts.append(f"alerts after {item['alert_after']} failures")
    repeat = item["alert_repeat"]
    if repeat != "24h":
        parts.append(f"reminds every {repeat}" if repeat != "never" else "no reminders")
    if item["expect_success_within"]:
        parts.append(f"expects success within {item['expect_success_within']}")
    return "".join(f", {part}" for part in parts)
