"""What a Discord task's run does: decide the text, queue it for delivery.

``moltbot discord-action TASK`` runs this as the task's process (so it has
the runner's timeout, log and run record). With an agent configured, the
agent's answer to the task is delivered (as the original did); without one,
``action_template`` itself. The text goes to the durable outbox, not straight
to Discord: the Discord bridge delivers it (with a nonce, so a retried post
is never posted twice).
"""

from __future__ import annotations

import os
from typing import Any

from moltbot.config import DiscordSettings, LettaSettings, OllamaSettings
from moltbot.store import messages

__all__ = ["ACTION_ENVIRONMENT", "ActionError", "destination", "perform", "prompt_for"]

# What a Discord task's own process needs of the daemon's environment to resolve the same
# settings and reach the agent. Only these, only for moltbot's built-in action: ordinary
# tasks never see the daemon's environment.
ACTION_ENVIRONMENT = (
    "LETTA_API_KEY",
    "LETTA_AGENT_ID",
    "LETTA_BASE_URL",
    "OLLAMA_HOST",
    "TASKS_CHANNEL_ID",
    "HEARTBEAT_LOG_CHANNEL_ID",
    "DEFAULT_USER_ID",
)


class ActionError(Exception):
    pass


def prompt_for(task: dict[str, Any]) -> str:
    """The original's wording (NOTES.md §1.7), so agents set up for it answer the same way."""
    template = task.get("action_template") or ""
    return f"[⏰ SCHEDULED TASK TRIGGERED]\n\nTask: {task.get('task_name')}\n\n{template}"


def destination(task: dict[str, Any], settings: DiscordSettings) -> str:
    """An outbox address: a channel id, or ``dm:<user id>``."""
    kind, target = task.get("action_type"), str(task.get("action_target") or "").strip()
    if kind == "user_reminder":
        user = target if target.isdigit() else settings.default_user_id
        if not user:
            raise ActionError("user_reminder without action_target, and no [discord] default_user_id")
        return f"dm:{user}"
    channel = target if kind == "channel_post" and target.isdigit() else settings.heartbeat_log_channel_id
    if not channel:
        raise ActionError(f"{kind} has no target channel, and no [discord] heartbeat_log_channel_id")
    return channel


def perform(
    task: dict[str, Any],
    settings: DiscordSettings,
    ollama: OllamaSettings | None,
    now: Any,
    letta: LettaSettings | None = None,
) -> tuple[str, str]:
    """Queue the task's message; (address, text). Agent: Letta if configured, else Ollama."""
    address = destination(task, settings)
    text = str(task.get("action_template") or "")
    if letta is not None:
        from moltbot.agents.letta import LettaClient

        with LettaClient(
            letta.base_url, letta.agent_id, letta.api_key or None, letta.timeout_seconds
        ) as agent:
            text = agent.ask(prompt_for(task))
    elif ollama is not None:
        from moltbot.agents.ollama import OllamaClient

        with OllamaClient(ollama.host, ollama.model, ollama.timeout_seconds) as client:
            text = client.chat([{"role": "user", "content": prompt_for(task)}]).content.strip() or text
    if not text:
        raise ActionError("nothing to send: no action_template and no answer from an agent")
    run_id = os.environ.get("MOLTBOT_RUN_ID", "")  # so a refusal can be traced to the task (and pause it)
    messages.enqueue_message("discord", address, text, now, run_id=int(run_id) if run_id.isdigit() else None)
    return address, text
