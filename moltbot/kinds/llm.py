"""``llm`` tasks: a prompt for the local Ollama model instead of a script.

The run is ``moltbot llm-action TASK``: it asks the model, prints the answer
(the run's output, so ``run:`` answers with it) and delivers it to
``deliver_to``: the admins (``signal:admins``, as an alert) or a Discord
channel (``discord:<id>``), through the durable outbox.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from moltbot.config.reader import TaskReader
from moltbot.kinds.base import ActionContext, TaskKind
from moltbot.records import Watcher

__all__ = ["LLM"]


class LlmKind(TaskKind):
    name = "llm"
    fields = ("prompt", "model", "deliver_to")
    passed_environment = ("OLLAMA_HOST",)  # only the model: no Letta key, no Discord channel ids
    settings = ("ollama",)
    posts_messages = True

    def read(self, reader: TaskReader) -> None:
        prompt = reader.get("prompt", (str,), "", required=True)
        if "prompt" in reader.entry and not prompt.strip():
            reader.problem("prompt", "must not be empty")
        reader.get("model", (str,), "")
        deliver_to = reader.get("deliver_to", (str,), "")
        if deliver_to and not re.fullmatch(r"signal:admins|discord:\d{15,21}", deliver_to):
            reader.problem(
                "deliver_to", f"expected 'signal:admins' or 'discord:<channel id>', got {deliver_to!r}"
            )
        reader.refuse(("script_path",), "an llm task has a prompt, not a script")
        reader.refuse(("user",), "an llm task is moltbot's own action: it runs as the daemon's user")

    def describe(self, definition: Mapping[str, Any]) -> str:
        return "a prompt for the model"

    def act(self, context: ActionContext, definition: Mapping[str, Any]) -> int:
        from moltbot.agents.ollama import OllamaClient

        ollama = context.settings.ollama
        if ollama is None:
            print("moltbot: agent unavailable: no [ollama] section in moltbot.toml", file=sys.stderr)
            return 1
        model = definition.get("model") or ollama.model
        try:
            with OllamaClient(ollama.host, model, ollama.timeout_seconds) as client:
                answer = client.chat([{"role": "user", "content": definition["prompt"]}]).content.strip()
        except Exception as exc:  # AgentUnavailable names the cause
            print(f"moltbot: agent unavailable: {exc}", file=sys.stderr)
            return 1
        print(answer)
        target = str(definition.get("deliver_to") or "")
        if target == "signal:admins":
            context.alert(answer)
        elif target.startswith("discord:"):
            context.post(Watcher("discord", target.split(":", 1)[1]), answer)
        return 0


LLM = LlmKind()
