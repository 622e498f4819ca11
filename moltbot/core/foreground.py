"""`moltbot run` with no daemon: the task runs in the CLI's own process, recorded as the daemon would."""

from __future__ import annotations

import signal
import threading

from moltbot import store
from moltbot.core.api import Core
from moltbot.executor import Executor
from moltbot.records import Run
from moltbot.relay import Relay
from moltbot.runner import Supervisor

__all__ = ["run_in_foreground"]


def run_in_foreground(core: Core, name: str, requested_by: str, queued_id: int | None = None) -> Run:
    """No daemon: claim the task, run it in this process and record it as the daemon would
    (``queued_id``: a run queued already, an approved occurrence; else a manual run).
    SIGINT and SIGTERM stop it (recorded as interrupted). RuntimeError when it cannot run here."""
    task = core.resolve(name)
    spec = {spec.task_id: spec for spec in core.load_specs()}.get(task.task_id)
    if spec is None:
        raise RuntimeError(f"{task.task_id} is not in {core.home.tasks_json}")
    now = core.clock.now()
    queued = store.get_run(queued_id) if queued_id is not None else None
    if queued is None:
        queued = store.enqueue_run(task.task_id, "manual", requested_by, now)
    elif queued.status != "queued":
        return queued  # refused already (skipped): nothing to run
    ticket, reason = store.start_queued(queued.id, now)
    if ticket is None:
        store.skip_queued(queued.id, now, f"not started: {reason}")
        raise RuntimeError(f"{task.task_id} is already running")
    store.on_chained_runs(core._wake_daemon_now)  # one started meanwhile runs the chained runs
    with Supervisor() as supervisor:
        relay, stopping = Relay(core), threading.Event()  # relay: the run's notify and ask (task user)
        executor = Executor(core.home, core.clock, core.settings, stopping, supervisor, relay=relay)

        def stop(signum: int, frame: object) -> None:
            executor.cancel(task.task_id, f"{signal.Signals(signum).name} received")

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        flight = executor.launch(ticket, spec)
        executor.drain()
        relay.stop()
        executor.pings.stop()  # what the run's ping_url is owed, within its deadline
    run = store.get_run(flight.ticket.id)
    assert run is not None
    return run
