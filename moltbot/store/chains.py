"""Chained runs: which tasks run after a task's end, queued in the transaction that records it.

``task_chain`` holds the edges of tasks.json's ``after`` and ``after_failure``
(upstream, on which end, downstream), rebuilt from the definitions whenever
tasks are synced. ``queue_follow_ups`` is called by ``finish_run`` at a run's
final end: the follow-up runs are rows in the same commit as that end, so a
crash can neither lose them nor queue them twice. Only tasks.json's tasks are
chained (a Discord Tasks-Channel task is never an end of an edge).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from moltbot.store.connection import after_commit, insert_id, is_postgresql, sql, to_db
from moltbot.store.events import add_event

__all__ = ["CHAIN_TABLE", "chains_by_task", "on_chained_runs", "queue_follow_ups", "rebuild_chains"]

# The end of a run each list follows; the trigger of a chained run is "<field>:<upstream>".
_ON_END = {"success": "after", "failed": "after_failure", "timeout": "after_failure"}
_listeners: list[Callable[[], None]] = []
CHAIN_TABLE = (
    "CREATE TABLE IF NOT EXISTS task_chain (upstream TEXT NOT NULL, on_end TEXT NOT NULL, "
    "downstream TEXT NOT NULL, PRIMARY KEY (upstream, on_end, downstream)) WITHOUT ROWID"
)


def on_chained_runs(listener: Callable[[], None]) -> None:
    """Call ``listener`` after each commit that queued a chained run (the daemon wakes its queue)."""
    _listeners.append(listener)


def chains_by_task() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each chained task's ``after`` and ``after_failure`` (for status: one query for every task)."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for upstream, on_end, downstream in sql(
        "SELECT upstream, on_end, downstream FROM task_chain ORDER BY downstream, on_end, upstream"
    ):
        found.setdefault(downstream, ([], []))[on_end == "after_failure"].append(upstream)
    return {task_id: (tuple(after), tuple(failure)) for task_id, (after, failure) in found.items()}


def rebuild_chains() -> None:
    """Inside a write transaction: the edges, from every registered tasks.json task's definition."""
    sql("DELETE FROM task_chain")
    for field in ("after", "after_failure"):
        if is_postgresql():
            # The same edges in jsonb's words: a definition is always JSON (definition_json()).
            sql(
                "INSERT INTO task_chain (upstream, on_end, downstream) "
                f"SELECT edge #>> '{{}}', '{field}', task.task_id "
                "FROM task, jsonb_array_elements(CASE "
                f"WHEN jsonb_typeof(task.definition::jsonb -> '{field}') = 'array' "
                f"THEN task.definition::jsonb -> '{field}' ELSE '[]'::jsonb END) AS edge "
                "WHERE task.removed = FALSE AND task.task_id NOT LIKE 'discord-%' "
                "AND jsonb_typeof(edge) = 'string' AND edge #>> '{}' NOT LIKE 'discord-%' "
                "ON CONFLICT DO NOTHING"
            )
            continue
        sql(
            "INSERT INTO task_chain (upstream, on_end, downstream) "
            f"SELECT edge.value, '{field}', task.task_id "
            f"FROM task, json_each(task.definition, '$.{field}') AS edge "
            "WHERE task.removed = FALSE AND task.task_id NOT LIKE 'discord-%' "
            "AND json_valid(task.definition) "
            f"AND json_type(task.definition, '$.{field}') = 'array' AND edge.type = 'text' "
            "AND edge.value NOT LIKE 'discord-%' ON CONFLICT DO NOTHING"
        )


def queue_follow_ups(upstream: str, run_id: int, status: str, now: datetime) -> int:
    """Inside ``finish_run``'s transaction: a run of each task chained to this end; how many were queued.

    A paused or disabled task's run is recorded as skipped (as a request's is when
    the task runs with ``overlap: skip``), so the history says what the chain did."""
    field = _ON_END.get(status)
    if field is None:  # interrupted, or any end that is not the run's own result
        return 0
    rows = sql(
        "SELECT task.task_id, task.paused_by, task.enabled, task.current_run_id, task.overlap "
        "FROM task_chain JOIN task ON task.task_id = task_chain.downstream "
        "WHERE task_chain.upstream = ? AND task_chain.on_end = ? AND task.removed = FALSE "
        "ORDER BY task.task_id",
        (upstream, field),
    ).fetchall()
    trigger, stamp, queued = f"{field}:{upstream}", to_db(now), 0
    for task_id, paused_by, enabled, current_run_id, overlap in rows:
        refusal = None
        if paused_by not in (None, "shutdown"):  # a shutdown's pause ends at the restart, which runs it
            refusal = f"not run: {task_id} is paused (chained after {upstream}'s run {run_id})"
        elif not enabled:
            refusal = f"not run: {task_id} is disabled (chained after {upstream}'s run {run_id})"
        elif current_run_id is not None and overlap == "skip":
            refusal = f"already running (run {current_run_id}); overlap policy: skip"
        status_now = "queued" if refusal is None else "skipped"
        new_run = insert_id(
            "INSERT INTO run (task_id, status, trigger, attempt, queued_at, finished_at, message, "
            "stop_requested) VALUES (?, ?, ?, 1, ?, ?, ?, FALSE)",
            (task_id, status_now, trigger, stamp, None if refusal is None else stamp, refusal),
        )
        add_event(now, task_id, "queued", f"run {new_run} queued ({trigger}, run {run_id})")
        if refusal is None:
            queued += 1
        else:
            add_event(now, task_id, "skipped", f"run {new_run}: {refusal}")
    if queued:
        after_commit(_tell_listeners)
    return queued


def _tell_listeners() -> None:
    for listener in list(_listeners):
        listener()
