"""A Debian root booted with systemd-nspawn, systemd as its PID 1, driven from outside with nsenter.

This works on a host that does not run systemd itself (the CI machine is a VM whose PID 1 is not
systemd, with no system bus and no systemd-machined): `--register=no` needs no machined, and
`--keep-unit` keeps nspawn from asking the host's systemd for a scope over D-Bus (without it nspawn
stops at "Failed to open system bus"). With `--keep-unit` the container lives in the cgroup nspawn
was started in, so each machine gets a cgroup of its own first: the container's systemd then manages
that subtree only, two machines booted at once (other test sessions) do not share one, and whatever
is left at the end can be killed with `cgroup.kill`. On a host that runs systemd, nspawn asks it for
a scope as usual (not tried: the CI host has no systemd). Commands run inside through
`nsenter --target <the container's PID 1> --all` (`machinectl shell` and `systemd-run --machine`
need machined).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_runs_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()  # sd_booted()'s test


def cannot_boot() -> str | None:
    """Why this host cannot boot a container (the tests skip saying so), or None."""
    if os.geteuid() != 0:
        return "booting a container needs root"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is not installed (apt-get install systemd-container; .ci/run installs it)"
    if shutil.which("nsenter") is None:
        return "nsenter is not installed (util-linux)"
    if not host_runs_systemd() and not cgroup_mounts():
        return "no cgroup file system is mounted under /sys/fs/cgroup (systemd in the container needs one)"
    return None


def cgroup_mounts() -> dict[str, Path]:
    """The hierarchies a container's systemd uses, by /proc/self/cgroup's name for them: "" for the
    unified (v2) one, "name=systemd" for v1's (a hybrid host, like the CI machine, has both)."""
    mounts: dict[str, Path] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, where, kind, options = line.split()[:4]
        if kind == "cgroup2":
            mounts[""] = Path(where)
        elif kind == "cgroup" and "name=systemd" in options.split(","):
            mounts["name=systemd"] = Path(where)
    return mounts


@contextmanager
def copy_on_write(original: Path, work: Path) -> Iterator[Path]:
    """A copy of the root `original` to boot and change, leaving `original` as it was.

    An overlay mount (instant; a real copy of the converged root took 6 to 24 s on the 2-core CI
    machine, depending on the disk's other load), or a real copy where overlayfs cannot be mounted
    (e.g. work on an overlay itself)."""
    upper, scratch, merged = work / "upper", work / "overlay-work", work / "root"
    for directory in (upper, scratch, merged):
        directory.mkdir()
    options = f"lowerdir={original},upperdir={upper},workdir={scratch}"
    mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        merged.rmdir()
        subprocess.run(["cp", "-a", "--reflink=auto", str(original), str(merged)], check=True)
    try:
        yield merged
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(merged)], check=True)


class Machine:
    """`root` booted as the machine `name`; `boot()` returns once systemd finished starting up."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log_path = log
        self.name = f"moltbot-test-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen[bytes] | None = None
        self.leader = 0  # the container's PID 1, as the host numbers it
        self.cgroups: list[Path] = []

    def boot(self, timeout: float = 120) -> None:
        argv = ["systemd-nspawn", "--boot", f"--directory={self.root}", f"--machine={self.name}",
                "--register=no", "--private-network", "--console=read-only"]  # fmt: skip
        if not host_runs_systemd():
            argv.append("--keep-unit")
            self.cgroups = self._own_cgroups()
            # Join them before nspawn starts: the shell moves itself, then becomes nspawn.
            joins = " && ".join(f"echo $$ > {group}/cgroup.procs" for group in self.cgroups)
            argv = ["sh", "-c", f'{joins} && exec "$@"', "sh", *argv]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        self.leader = self._until(deadline, self._find_leader, "the container's PID 1")
        # `is-system-running --wait` returns once start-up is over; before the container's systemd
        # listens on its private socket, it fails at once: try again.
        state = self._until(deadline, self._started_up, "systemd in the container to finish starting up")
        if state not in ("running", "degraded"):
            raise AssertionError(f"the container's systemd is {state}:\n{self.log()}")

    def run(
        self, *argv: str, user: tuple[int, int] | None = None, env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """argv inside the machine (its namespaces, root and PID 1's view), as root or `user` (uid, gid)."""
        return subprocess.run(self.command(*argv, user=user, env=env), capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def command(
        self, *argv: str, user: tuple[int, int] | None = None, env: dict[str, str] | None = None
    ) -> list[str]:
        ids = [f"--setuid={user[0]}", f"--setgid={user[1]}"] if user else []
        variables = [f"{key}={value}" for key, value in {"PATH": PATH, **(env or {})}.items()]
        return ["nsenter", f"--target={self.leader}", "--all", "--wd=/", *ids, "--",
                "/usr/bin/env", "-i", *variables, *argv]  # fmt: skip

    def systemctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", *args, timeout=timeout)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        shown = self.systemctl("show", unit, *(f"--property={name}" for name in properties))
        assert shown.returncode == 0, shown.stderr
        return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "--no-pager", "--output=short-monotonic", f"--unit={unit}").stdout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def poweroff(self, timeout: float = 90) -> None:
        """An orderly shutdown (nspawn passes SIGTERM on as the container's poweroff), then clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Whatever outlived a shutdown that went wrong (or nspawn killed above) is in our cgroup.
        unified = next((group for group in self.cgroups if (group / "cgroup.kill").exists()), None)
        if unified is not None and self._processes(unified):
            (unified / "cgroup.kill").write_text("1")
            deadline = time.monotonic() + 10
            while self._processes(unified) and time.monotonic() < deadline:
                time.sleep(0.05)  # cgroup.kill is asynchronous; rmdir needs the processes gone
        for group in self.cgroups:
            self._remove_cgroup(group)
        # nspawn leaves this behind when the host's /run is not a tmpfs ("we can't allow that").
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------------

    def _own_cgroups(self) -> list[Path]:
        ours = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            ours[controllers] = path
        groups = []
        for name, mount in cgroup_mounts().items():
            group = mount / ours.get(name, "/").lstrip("/") / self.name
            group.mkdir()
            groups.append(group)
        return groups

    def _find_leader(self) -> int | None:
        """The child of nspawn (or of its shell) that is PID 1 of a new PID namespace."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {self.process.returncode}:\n{self.log()}")
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            ppid = re.search(r"^PPid:\s*(\d+)$", text, re.MULTILINE)
            nspid = re.search(r"^NSpid:\s*(.*)$", text, re.MULTILINE)
            if (
                ppid
                and nspid
                and int(ppid.group(1)) == self.process.pid
                and nspid.group(1).split()[-1] == "1"
            ):
                return int(status.parent.name)
        return None

    def _started_up(self) -> str | None:
        try:
            result = self.systemctl("is-system-running", "--wait", timeout=60)
        except subprocess.TimeoutExpired:
            return None
        state = result.stdout.strip()
        return state if state not in ("", "offline", "unknown") else None

    def _until(self, deadline: float, probe: Callable[[], T | None], what: str) -> T:
        while True:
            value = probe()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")
            time.sleep(0.1)

    @staticmethod
    def _processes(group: Path) -> bool:
        return any(procs.read_text().strip() for procs in group.rglob("cgroup.procs"))

    @staticmethod
    def _remove_cgroup(group: Path) -> None:
        if not group.exists():
            return
        for directory, _, _ in sorted(os.walk(group), key=lambda entry: -len(entry[0])):
            try:
                os.rmdir(directory)
            except OSError:
                pass
