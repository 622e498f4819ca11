"""The schema: Peewee models (the one definition of every table) and the migrations.

Loaded only when a database is created or migrated (``store.open_db``): the
store's queries are plain SQL on the same per-thread connection, so a command
like ``moltbot status`` never pays for importing Peewee (~45 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    DatabaseProxy,
    DoubleField,
    Field,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
)
from playhouse.migrate import SqliteMigrator
from playhouse.migrate import migrate as migrate_schema

from moltbot.store.connection import (
    SCHEMA_VERSION,
    connection,
    from_db,
    is_postgresql,
    to_db,
    write_transaction,
)

__all__ = ["MODELS", "migrate"]


class _StoreConnection(SqliteDatabase):
    """Peewee on the store's connection for this thread (it never opens or closes its own)."""

    def _connect(self) -> Any:
        return connection()

    def _close(self, conn: Any) -> None:
        pass  # the store owns it


database = DatabaseProxy()
database.initialize(_StoreConnection("moltbot-store"))


class UTCDateTimeField(Field):
    """An aware datetime stored as a fixed-width UTC ISO-8601 string."""

    field_type = "TEXT"

    def db_value(self, value: datetime | None) -> str | None:
        return to_db(value)

    def python_value(self, value: str | None) -> datetime | None:
        return from_db(value)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Task(BaseModel):
    """A task's definition (as JSON) and its scheduling state."""

    task_id = TextField(primary_key=True)
    name = TextField()
    definition = TextField()  # the tasks.json entry, as loaded
    schedule_key = TextField()  # schedule text @ zone; a change re-anchors
    anchor = UTCDateTimeField()  # when this schedule was first registered
    priority = IntegerField(default=5)
    overlap = TextField(default="skip")  # skip | queue: may it come due while running?
    enabled = BooleanField(default=True)
    removed = BooleanField(default=False)  # gone from its source; history kept
    status = TextField(default="idle")  # idle | running | paused | error
    next_run = UTCDateTimeField(null=True, index=True)
    last_run = UTCDateTimeField(null=True)  # when the last attempt started
    last_finished = UTCDateTimeField(null=True)
    last_status = TextField(null=True)
    run_count = IntegerField(default=0)
    error_count = IntegerField(default=0)
    last_error = TextField(null=True)
    paused_by = TextField(null=True)  # None | "user" | "shutdown" | "discord"
    current_run_id = BigIntegerField(null=True)


class Run(BaseModel):
    """One attempt (or one recorded non-attempt: skipped, missed)."""

    id = BigAutoField()
    task_id = TextField()
    status = TextField(index=True)
    trigger = TextField()
    requested_by = TextField(null=True)
    attempt = IntegerField(default=1)
    scheduled_for = UTCDateTimeField(null=True)
    queued_at = UTCDateTimeField(null=True)
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    exit_code = IntegerField(null=True)
    message = TextField(null=True)
    stdout_tail = TextField(null=True)
    stderr_tail = TextField(null=True)
    log_path = TextField(null=True)
    owner_pid = IntegerField(null=True)
    stop_requested = BooleanField(default=False)
    recap = TextField(null=True)  # playbook runs: the per-host recap, JSON
    node = TextField(null=True)  # the node that started it ([daemon] node; shown on PostgreSQL)
    session_id = BigIntegerField(null=True)  # the daemon session that started it (store/sessions.py)

    class Meta:
        indexes = ((("task_id", "id"), False),)


class Checkpoint(BaseModel):
    task_id = TextField(primary_key=True)
    data = TextField()
    run_id = BigIntegerField(null=True)
    updated_at = UTCDateTimeField()


class Event(BaseModel):
    """The original scheduler's task_log: what happened, for ``moltbot logs``."""

    id = BigAutoField()
    timestamp = UTCDateTimeField(index=True)
    task_id = TextField()
    action = TextField()
    message = TextField()
    duration = DoubleField(null=True)

    class Meta:
        indexes = ((("task_id", "id"), False),)


class Meta(BaseModel):
    key = TextField(primary_key=True)
    value = TextField()


class Inbox(BaseModel):
    """A command as received; (channel, sender, sent_at) is its identity."""

    id = BigAutoField()
    channel = TextField()
    sender = TextField()
    sent_at = BigIntegerField()
    chat = TextField()
    text = TextField()
    received_at = UTCDateTimeField()

    class Meta:
        indexes = ((("channel", "sender", "sent_at"), True),)


class Outbox(BaseModel):
    """A message to deliver: written first, then sent, then marked."""

    id = BigAutoField()
    channel = TextField()
    address = TextField()
    kind = TextField()
    text = TextField(null=True)
    run_id = BigIntegerField(null=True)
    reply_to = BigIntegerField(null=True)
    reply_author = TextField(null=True)
    created_at = UTCDateTimeField()
    due_at = UTCDateTimeField()
    attempts = IntegerField(default=0)
    status = TextField(default="pending")
    sent_at = UTCDateTimeField(null=True)
    last_error = TextField(null=True)
    session_id = BigIntegerField(null=True)  # who is sending it (status 'sending')

    class Meta:
        indexes = ((("status", "due_at"), False),)


class RunWatch(BaseModel):
    """A chat waiting for a run's end; its outbox row is queued in the transaction that ends it."""

    id = BigAutoField()
    run_id = BigIntegerField(index=True)
    channel = TextField()
    address = TextField()
    reply_to = BigIntegerField(null=True)
    reply_author = TextField(null=True)


class Question(BaseModel):
    """A question for the admins (an approval, ``moltbot ask``): asked, then answered or expired."""

    id = BigAutoField()
    number = IntegerField()  # as shown ("yes 2"): the smallest not used by another open question
    asked_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()
    text = TextField()  # the question as the admins read it
    choices = TextField()  # JSON list; the first is the "yes"
    asked_of = TextField(default="admins")
    sent_to = TextField()  # JSON list of the conversations it went to ("signal:<address>")
    origin = TextField()  # approval | ask
    task_id = TextField(null=True)  # approval: the task; ask: the run's task, if any
    scheduled_for = UTCDateTimeField(null=True)  # approval: the occurrence
    run_id = BigIntegerField(null=True)  # ask: the run that asks; approval: the run it started
    status = TextField(default="open")  # open | answered | expired
    answer = TextField(null=True)
    answered_by = TextField(null=True)
    answered_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("status", "expires_at"), False),)


MODELS = [Task, Run, Checkpoint, Event, Meta]
CHAT_MODELS = [Inbox, Outbox, RunWatch]


# Each entry moves the schema up one version, using playhouse.migrate's
# SqliteMigrator (add_column, add_index, ...); the version lives in PRAGMA
# user_version so it is read without touching any table.
def _migrate_1(db: DatabaseProxy) -> None:
    db.create_tables(MODELS)


def _migrate_2(db: DatabaseProxy) -> None:
    """Due tasks are found per priority level (store/tasks.py: due_tasks)."""
    migrate_schema(SqliteMigrator(db.obj).add_index("task", ("priority", "next_run"), False))


def _migrate_3(db: DatabaseProxy) -> None:
    """Chat traffic: inbox, outbox, run watchers (store/messages.py)."""
    db.create_tables(CHAT_MODELS)


def _migrate_4(db: DatabaseProxy) -> None:
    """Playbook runs keep their per-host recap (``run.recap``)."""
    # A database created at schema 1 by this version already has it (create_tables uses the models).
    if "recap" not in {column.name for column in db.get_columns("run")}:
        migrate_schema(SqliteMigrator(db.obj).add_column("run", "recap", Run.recap))


# Rows that are executions (or promises of one) of a scheduled occurrence:
# skipped and missed rows record occurrences that were not run.
_OCCURRENCE_EXECUTION = "scheduled_for IS NOT NULL AND status NOT IN ('skipped', 'missed')"


def _migrate_5(db: DatabaseProxy) -> None:
    """The database refuses a second execution of a scheduled occurrence (store/runs.py).

    Manual runs are their own occurrences: they lose the ``scheduled_for`` they
    used to get (the instant they were asked for, which ``queued_at`` keeps).
    Executions the old planner did twice keep their history, as later attempts.
    """
    sql_ = connection().execute
    sql_("UPDATE run SET scheduled_for = NULL WHERE trigger = 'manual'")
    duplicates = sql_(
        f"SELECT id, task_id, scheduled_for FROM run WHERE {_OCCURRENCE_EXECUTION} AND EXISTS ("
        "SELECT 1 FROM run AS earlier WHERE earlier.task_id = run.task_id "
        "AND earlier.scheduled_for = run.scheduled_for AND earlier.attempt = run.attempt "
        "AND earlier.status NOT IN ('skipped', 'missed') AND earlier.id < run.id) ORDER BY id"
    ).fetchall()
    for run_id, task_id, scheduled_for in duplicates:
        (last,) = sql_(
            "SELECT MAX(attempt) FROM run WHERE task_id = ? AND scheduled_for = ?", (task_id, scheduled_for)
        ).fetchone()
        sql_(
            "UPDATE run SET attempt = ?, message = COALESCE(message, '') || "
            "' (ran again by a daemon from before occurrences were unique)' WHERE id = ?",
            (last + 1, run_id),
        )
    sql_(
        "CREATE UNIQUE INDEX IF NOT EXISTS run_occurrence_attempt ON run (task_id, scheduled_for, attempt) "
        f"WHERE {_OCCURRENCE_EXECUTION}"
    )


def _migrate_6(db: DatabaseProxy) -> None:
    """Questions for the admins: approvals and ``moltbot ask`` (store/questions.py); one per occurrence."""
    db.create_tables([Question])
    connection().execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS question_occurrence ON question (task_id, scheduled_for) "
        "WHERE origin = 'approval'"
    )


def _migrate_7(db: DatabaseProxy) -> None:
    """Incidents: a failing or overdue task's story (store/incidents.py)."""
    from moltbot.store.incidents import CREATE_INCIDENT

    for statement in CREATE_INCIDENT:
        connection().execute(statement)


def _migrate_8(db: DatabaseProxy) -> None:
    """Chains (#13): the edges of tasks.json's ``after`` and ``after_failure`` (store/chains.py)."""
    from moltbot.store.chains import CHAIN_TABLE, rebuild_chains

    connection().execute(CHAIN_TABLE)
    rebuild_chains()


def _migrate_9(db: DatabaseProxy) -> None:
    """Pairing (#14): people paired with `moltbot pair`, and the codes' hashes (store/people.py)."""
    from moltbot.store.people import CREATE_PEOPLE

    for statement in CREATE_PEOPLE:
        connection().execute(statement)


def _migrate_10(db: DatabaseProxy) -> None:
    """Several nodes (#15): daemon sessions, and which node and session started a run or sends a message."""
    from moltbot.store.sessions import CREATE_SESSIONS

    columns = {column.name for column in db.get_columns("run")}
    migrator = SqliteMigrator(db.obj)
    steps = [
        migrator.add_column("run", name, getattr(Run, name))
        for name in ("node", "session_id")
        if name not in columns
    ]
    if "session_id" not in {column.name for column in db.get_columns("outbox")}:
        steps.append(migrator.add_column("outbox", "session_id", Outbox.session_id))
    migrate_schema(*steps)
    for statement in CREATE_SESSIONS:
        connection().execute(statement)


MIGRATIONS: list[Callable[[DatabaseProxy], None]] = [
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
    _migrate_8,
    _migrate_9,
    _migrate_10,
]


def migrate() -> None:
    """Bring the schema up to SCHEMA_VERSION (the caller found it behind)."""
    assert len(MIGRATIONS) == SCHEMA_VERSION, "one migration per schema version"
    if not database.is_closed():
        database.close()  # forget a connection to another database opened earlier in this thread
    if is_postgresql():
        from moltbot.store.pg_schema import create_postgresql

        create_postgresql(database, [*MODELS, *CHAT_MODELS, Question], _OCCURRENCE_EXECUTION)
        return
    with write_transaction():
        conn = connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[version:]:
            step(database)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
