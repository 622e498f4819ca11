"""Approvals (``approve: true``): a due occurrence waits for an admin's yes instead of starting.

The planner's decision is kept (the ``missed`` and ``overlap`` policies, the
next run), except that what it would start or queue becomes a question,
written down in the claim's transaction: one per occurrence (a unique index),
so a restart never asks twice. The yes queues that occurrence (attempt 1: the
database refuses a second execution); a no or the timeout records it as
skipped (``core/questions.py``).
"""

from __future__ import annotations

from moltbot.config.spec import TaskSpec
from moltbot.core.api import Core
from moltbot.records import Plan

__all__ = ["hold"]


def hold(core: Core, spec: TaskSpec, plan: Plan) -> Plan:
    """``plan`` for an ``approve: true`` task: its occurrences asked about, none started."""
    if not spec.approve:
        return plan
    occurrences = [*([plan.run_for] if plan.run_for is not None else []), *plan.queue]
    for occurrence in occurrences:
        core.questions.ask(
            f"{spec.task_id} is due ({'one-shot' if spec.schedule.one_shot else spec.schedule_text}).",
            timeout=spec.approve_timeout,
            origin="approval",
            task_id=spec.task_id,
            scheduled_for=occurrence,
        )
    return plan._replace(run_for=None, queue=())
