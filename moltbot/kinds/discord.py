"""``discord`` tasks (read from the Discord Tasks Channel): what their run does.

The run is ``moltbot discord-action TASK``, so it has the runner's timeout,
log and run record. With an agent configured, the agent's answer to the task
is delivered (as the original did); without one, ``action_template`` itself.
The text goes to the durable outbox, not straight to Discord: the Discord
channel delivers it (with a nonce, so a retried post is never posted twice).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from moltbot.config.integrations import DiscordSettings
from moltbot.kinds.base import ActionContext, TaskKind
from moltbot.records import Watcher

__all__ = ["DISCORD", "ActionError", "destination", "prompt_for"]


class ActionError(Exception):
    pass


class DiscordKind(TaskKind):
    name = "discord"
    # [discord] (its ids may come from these variables), and the agent that answers: Letta or Ollama.
    passed_environment = ("TASKS_CHANNEL_ID", "HEARTBEAT_LOG_CHANNEL_ID", "DEFAULT_USER_ID",
                          "LETTA_AGENT_ID", "LETTA_BASE_URL", "OLLAMA_HOST")  # fmt: skip
    passed_secrets = ("LETTA_API_KEY",)  # never DISCORD_BOT_TOKEN: the daemon posts, through the outbox
    settings = ("discord", "letta", "ollama")
    posts_messages = True

    def describe(self, definition: Mapping[str, Any]) -> str:
        return "a Discord task action"

    def act(self, context: ActionContext, definition: Mapping[str, Any]) -> int:
        settings = context.settings
        if settings.discord is None:
            print("moltbot: [discord] is not configured", file=sys.stderr)
            return 2
        try:
            address, text = _decide(definition, context)
        except Exception as exc:  # ActionError, or the agent's own error: the run fails with the reason
            reason = str(exc) if isinstance(exc, ActionError) else f"agent unavailable: {exc}"
            print(f"moltbot: {reason}", file=sys.stderr)
            return 1
        run_id = os.environ.get("MOLTBOT_RUN_ID", "")  # so a refusal can be traced to the task (and pause it)
        context.post(Watcher("discord", address), text, run_id=int(run_id) if run_id.isdigit() else None)
        print(f"→ {address}: {text}")
        return 0


DISCORD = DiscordKind()


def prompt_for(task: Mapping[str, Any]) -> str:
    """The original's wording (NOTES.md §1.7), so agents set up for it answer the same way."""
    template = task.get("action_template") or ""
    return f"[⏰ SCHEDULED TASK TRIGGERED]\n\nTask: {task.get('task_name')}\n\n{template}"


def destination(task: Mapping[str, Any], settings: DiscordSettings) -> str:
    """An outbox address: a channel id, or ``dm:<user id>``; ActionError when the task may not post
    there (not in ``[discord] allowed_targets``, or the Tasks Channel itself)."""
    kind, target = task.get("action_type"), str(task.get("action_target") or "").strip()
    if kind == "user_reminder":
        user = target if target.isdigit() else settings.default_user_id
        if not user:
            raise ActionError("user_reminder without action_target, and no [discord] default_user_id")
        _check_allowed(f"user {user}", user, settings)
        return f"dm:{user}"
    channel = target if kind == "channel_post" and target.isdigit() else settings.heartbeat_log_channel_id
    if not channel:
        raise ActionError(f"{kind} has no target channel, and no [discord] heartbeat_log_channel_id")
    if channel == settings.tasks_channel_id:  # what the bot posts there would count as a task
        raise ActionError(f"channel {channel} is the Tasks Channel: tasks may not post there")
    _check_allowed(f"channel {channel}", channel, settings)
    return channel


def _check_allowed(what: str, target: str, settings: DiscordSettings) -> None:
    if target not in settings.targets:
        # Whoever may post a task does not thereby choose where moltbot speaks.
        raise ActionError(f"{what} is not in [discord] allowed_targets")


def _decide(task: Mapping[str, Any], context: ActionContext) -> tuple[str, str]:
    """Where the task's message goes, and its text: the agent's answer (Letta if configured,
    else Ollama), or the template."""
    settings = context.settings
    assert settings.discord is not None
    address = destination(task, settings.discord)
    text = str(task.get("action_template") or "")
    if settings.letta is not None:
        from moltbot.agents.letta import LettaClient

        letta = settings.letta
        with LettaClient(
            letta.base_url,
            letta.agent_id,
            letta.api_key or None,
            letta.timeout_seconds,
            lock_dir=context.home.data_dir,
        ) as agent:
            text = agent.ask(prompt_for(task))
    elif settings.ollama is not None:
        from moltbot.agents.ollama import OllamaClient

        ollama = settings.ollama
        with OllamaClient(ollama.host, ollama.model, ollama.timeout_seconds) as client:
            text = client.chat([{"role": "user", "content": prompt_for(task)}]).content.strip() or text
    if not text:
        raise ActionError("nothing to send: no action_template and no answer from an agent")
    return address, text
