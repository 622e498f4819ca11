"""Whether a user named in the configuration may run tasks (``[daemon] task_user``, a task's ``user``)."""

from __future__ import annotations

__all__ = ["unfit_task_user"]


def unfit_task_user(name: str) -> str | None:
    """Why ``name`` cannot run tasks, or None: it must exist here and must not be root."""
    import pwd  # only when a configuration names a user

    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return f"no user {name!r} on this host"
    if uid == 0:
        return "tasks may not run as root: name an unprivileged user of their own"
    return None
