"""What moltbot's own processes let others do to them, and what they hand on: dumpability, capabilities.

- Non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): the kernel then refuses a
  same-user process ``/proc/PID/environ``, ``/proc/PID/mem`` and ptrace, so a
  task running as the daemon's user cannot read the daemon's secrets (nor a
  helper's: the actions of llm, Discord and playbook tasks). Reset by every
  ``execve``, so each moltbot process sets it itself, first thing.
- Capabilities: under the unit the daemon gets CAP_SETUID, CAP_SETGID and
  CAP_KILL as *ambient* capabilities, which every child would inherit. The
  daemon keeps them in its effective set (to start a task as the task user,
  and to signal that user's processes) and empties its ambient and
  inheritable sets before it starts any thread or child, so no child gets any.
  Capabilities are per thread: this must run on the main thread before others.
- ``PR_SET_NO_NEW_PRIVS``: nothing the daemon starts can gain privileges by
  ``execve`` (setuid binaries such as sudo, file capabilities).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import ctypes

__all__ = [
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "capabilities",
    "die_with_parent",
    "keep_capabilities_to_self",
    "missing_capabilities",
    "no_new_privileges",
    "undumpable",
]

CAP_KILL: Final = 5
CAP_SETGID: Final = 6
CAP_SETUID: Final = 7
_NAMES = {CAP_KILL: "CAP_KILL", CAP_SETGID: "CAP_SETGID", CAP_SETUID: "CAP_SETUID"}

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522


def _libc() -> ctypes.CDLL:
    import ctypes  # here: `moltbot run` loads this module too, and needs none of it

    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int, arg3: int = 0) -> None:
    import ctypes

    if _libc().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)):
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}): {os.strerror(errno)}")


def undumpable() -> None:
    """No same-user process may read this one's environment or memory from now on (nor a core dump)."""
    _prctl(_PR_SET_DUMPABLE, 0)


def no_new_privileges() -> None:
    """This process and everything it starts can never gain privileges through ``execve``."""
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def die_with_parent(signum: int) -> None:
    """``signum`` when the process that started this one ends (a helper outliving a crashed daemon
    would go on with nobody to record it; it is non-dumpable, so crash recovery cannot find it by
    its environment). ``getppid`` read before and after closes the race with a parent already gone."""
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


def keep_capabilities_to_self() -> None:
    """Empty the ambient and inheritable sets (this thread's; children inherit neither), keeping the
    permitted and effective ones for this process alone."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]

    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    libc = _libc()
    header, data = Header(_CAPABILITY_VERSION_3, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    if not (data[0].inheritable or data[1].inheritable):
        return
    for part in data:
        part.inheritable = 0
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def capabilities(kind: str = "CapEff", pid: int | str = "self") -> int:
    """A capability set of a process, as the kernel shows it in /proc/PID/status (CapEff, CapPrm, ...)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{kind}:"):
                return int(line.split()[1], 16)
    raise LookupError(f"no {kind} in /proc/{pid}/status")


def missing_capabilities(*wanted: int) -> list[str]:
    """The names of the capabilities in ``wanted`` this process does not have in its effective set."""
    effective = capabilities()
    return [_NAMES.get(cap, str(cap)) for cap in wanted if not effective & (1 << cap)]
