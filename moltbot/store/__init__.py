"""The store: the SQLite database that is moltbot's source of truth.

It holds tasks, runs, checkpoints, events and chat traffic; nothing outside
this package writes SQL. Only the core side imports it (``moltbot.core``, and
the daemon's own machinery: daemon, executor, recovery, WAL checkpoints):
transports, handlers and the CLI go through the core API. Everything it
offers is imported here, by name.

One SQLite connection per thread (``connection.py``) carries hand-written
SQL in every module, so one transaction can span them all. Peewee defines the
schema and migrates it (``schema.py``), loaded only when a database is
created or behind: importing it costs ~45 ms that ``moltbot status`` cannot
afford (see benchmarks/).
"""

from moltbot.store.chains import on_chained_runs
from moltbot.store.connection import (
    SCHEMA_VERSION,
    after_commit,
    background_checkpoints,
    connection,
    from_db,
    is_locked_error,
    is_open,
    listen_for_outbox,
    outbox_may_have_changed,
    to_db,
    write_transaction,
)
from moltbot.store.database import checkpoint_wal, open_db, restart_wal, schema_version, wal_bytes
from moltbot.store.events import add_event, recent_events
from moltbot.store.history import (
    get_run,
    has_started_a_run,
    last_finished_run,
    last_ran,
    recent_runs,
    set_run_recap,
)
from moltbot.store.incidents import last_successes, open_incidents, open_overdue
from moltbot.store.messages import (
    ADMINS,
    ALERTS,
    accept_inbound,
    due_outbox,
    enqueue_message,
    fail_unroutable,
    hand_over,
    mark_failed,
    mark_sending,
    mark_sent,
    next_outbox_due,
    pending_outbox,
    postpone,
    recover_sending,
    seen,
)
from moltbot.store.notes import clear_checkpoint, get_meta, load_checkpoint, save_checkpoint, set_meta
from moltbot.store.people import (
    add_pairing,
    close_pairing,
    get_pairing,
    open_pairings,
    pair_person,
    paired_people,
    remove_person,
    wrong_code,
)
from moltbot.store.questions import (
    answer_question,
    expired_questions,
    get_question,
    insert_question,
    next_expiry,
    open_questions,
    set_question_run,
)
from moltbot.store.queue import (
    enqueue_run,
    has_queued_runs,
    queued_runs,
    request_stop,
    runs_with_stop_requested,
    skip_queued,
    start_queued,
)
from moltbot.store.retention import prune
from moltbot.store.runs import (
    OccurrenceTaken,
    RunTicket,
    apply_plan,
    begin_retry,
    finish_run,
    recover_abandoned_runs,
)
from moltbot.store.tasks import (
    DueTask,
    SyncResult,
    TaskDefinition,
    due_tasks,
    earliest_next_run,
    get_task,
    list_tasks,
    pause_task,
    resume_task,
    set_next_run,
    sync_tasks,
    task_states,
    tasks_paused_by,
)

__all__ = [
    "ADMINS",
    "ALERTS",
    "SCHEMA_VERSION",
    "DueTask",
    "OccurrenceTaken",
    "RunTicket",
    "SyncResult",
    "TaskDefinition",
    "accept_inbound",
    "add_event",
    "add_pairing",
    "after_commit",
    "answer_question",
    "apply_plan",
    "background_checkpoints",
    "begin_retry",
    "checkpoint_wal",
    "clear_checkpoint",
    "close_pairing",
    "connection",
    "due_outbox",
    "due_tasks",
    "earliest_next_run",
    "enqueue_message",
    "enqueue_run",
    "expired_questions",
    "fail_unroutable",
    "finish_run",
    "from_db",
    "get_meta",
    "get_pairing",
    "get_question",
    "get_run",
    "get_task",
    "hand_over",
    "has_queued_runs",
    "has_started_a_run",
    "insert_question",
    "is_locked_error",
    "is_open",
    "last_finished_run",
    "last_ran",
    "last_successes",
    "list_tasks",
    "listen_for_outbox",
    "load_checkpoint",
    "mark_failed",
    "mark_sending",
    "mark_sent",
    "next_expiry",
    "next_outbox_due",
    "on_chained_runs",
    "open_db",
    "open_incidents",
    "open_overdue",
    "open_pairings",
    "open_questions",
    "outbox_may_have_changed",
    "pair_person",
    "paired_people",
    "pause_task",
    "pending_outbox",
    "postpone",
    "prune",
    "queued_runs",
    "recent_events",
    "recent_runs",
    "recover_abandoned_runs",
    "recover_sending",
    "remove_person",
    "request_stop",
    "restart_wal",
    "resume_task",
    "runs_with_stop_requested",
    "save_checkpoint",
    "schema_version",
    "seen",
    "set_meta",
    "set_next_run",
    "set_question_run",
    "set_run_recap",
    "skip_queued",
    "start_queued",
    "sync_tasks",
    "task_states",
    "tasks_paused_by",
    "to_db",
    "wal_bytes",
    "write_transaction",
    "wrong_code",
]
