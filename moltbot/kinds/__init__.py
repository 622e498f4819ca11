"""Task kinds: each one owns its fields, its process's command line and environment, and its action.

| kind | defined in | its run |
|---|---|---|
| ``script`` | tasks.json (the default) | the script itself |
| ``llm`` | tasks.json | ``moltbot llm-action``: the local model's answer to ``prompt`` |
| ``playbook`` | tasks.json | ``moltbot playbook-action``: ``ansible-playbook``, its recap kept |
| ``discord`` | the Discord Tasks Channel | ``moltbot discord-action``: the task's message |
"""

from collections.abc import Mapping
from typing import Any

from moltbot.kinds.base import ActionContext, RunDirContext, TaskKind
from moltbot.kinds.discord import DISCORD
from moltbot.kinds.llm import LLM
from moltbot.kinds.playbook import PLAYBOOK
from moltbot.kinds.script import SCRIPT

__all__ = [
    "CONFIG_KINDS",
    "KINDS",
    "ActionContext",
    "RunDirContext",
    "TaskKind",
    "kind_of",
    "kind_of_definition",
]

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (SCRIPT, LLM, PLAYBOOK, DISCORD)}
CONFIG_KINDS = ("script", "llm", "playbook")  # what tasks.json may declare


def kind_of(name: str) -> TaskKind:
    return KINDS[name]


def kind_of_definition(definition: Mapping[str, Any]) -> TaskKind:
    """The kind of a task as stored (a Discord task's definition names its source instead)."""
    if definition.get("source") == "discord":
        return DISCORD
    return KINDS.get(str(definition.get("kind", "script")), SCRIPT)
