"""Ansible callback plugin: write the per-host recap of a playbook run to $MOLTBOT_RECAP_FILE.

Loaded by ansible-playbook (not by moltbot) when moltbot runs a playbook task; it adds nothing to
the output, which stays Ansible's own. Kept free of moltbot imports: it runs in Ansible's Python.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: moltbot_recap
type: aggregate
short_description: writes the per-host recap to the file named by MOLTBOT_RECAP_FILE
description: Used by moltbot's playbook tasks; see moltbot/kinds/playbook.py.
"""

MESSAGE_LIMIT = 300


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "moltbot_recap"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.messages: dict[str, str] = {}  # host -> the last failure's message, for the reply

    def _remember(self, result, prefix: str) -> None:
        outcome = result._result  # as Ansible's own callbacks read a task's result
        message = str(outcome.get("msg") or outcome.get("stderr") or outcome.get("reason") or "").strip()
        task = result._task.get_name() if result._task else ""
        text = f"{prefix}{task}: {message}" if message else f"{prefix}{task}"
        self.messages[result._host.get_name()] = text.splitlines()[0][:MESSAGE_LIMIT] if text else ""

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self._remember(result, "")

    def v2_runner_on_unreachable(self, result) -> None:
        self._remember(result, "unreachable at ")

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("MOLTBOT_RECAP_FILE")
        if not path:
            return
        hosts = []
        for host in sorted(stats.processed):
            counts = stats.summarize(host)
            hosts.append({
                "host": host, "ok": counts["ok"], "changed": counts["changed"], "failed": counts["failures"],
                "unreachable": counts["unreachable"], "skipped": counts["skipped"],
                "message": self.messages.get(host, ""),
            })  # fmt: skip
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"hosts": hosts}, handle)
