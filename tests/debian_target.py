"""A Debian root with the moltbot role applied, built once per test session for the modules that check it.

debootstrap builds a minimal Debian root (cached between runs on one machine), the role converges into
it through Ansible's chroot connection from a wheelhouse built here (the target has no package index),
then converges again (the second apply must change nothing). `tests/test_ansible.py` checks what it
made; `tests/test_unit_booted.py` boots a copy of it. The session fixture is in `tests/conftest.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
# What the roles need on a target besides the base system (apt: python3-apt; pip: packaging; the
# gateway's firewall: nftables).
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python3-packaging,python3-apt,systemd,nftables"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECRET = "discord-token-that-must-never-be-printed"


def ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip


def run(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [str(arg) for arg in argv], capture_output=True, text=True, env=ansible_env(), **kwargs
    )


@dataclass
class Converged:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def ids(self, name: str) -> tuple[int, int]:
        for line in self.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3])
        raise AssertionError(f"no user {name} in the target's /etc/passwd")


def cannot_converge() -> str | None:
    """Why this host cannot build the converged root (the tests skip saying so), or None."""
    if not ANSIBLE_PLAYBOOK.exists():
        return "ansible is not installed (pip install -e '.[test]')"
    if os.geteuid() != 0:
        return "the chroot apply needs root (debootstrap and chroot); .ci/run runs as root"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed (apt-get install debootstrap; .ci/run installs it)"
    return None


def debootstrap_root(destination: Path, timings: dict[str, float]) -> None:
    """A fresh minimal Debian root; debootstrap runs once per package list, then it is a tar copy."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {DEBOOTSTRAP_PACKAGES}".encode()).hexdigest()[:12]
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "moltbot-tests"
    cached = cache_dir / f"debootstrap-{SUITE}-{key}.tar"
    started = time.monotonic()
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        building = destination.with_name("debootstrap-building")
        argv = ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}", SUITE, str(building)]
        result = subprocess.run([*argv, MIRROR], capture_output=True, text=True)
        assert result.returncode == 0, (
            f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        partial = cached.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(building), "-cf", str(partial), "."], check=True)
        partial.rename(cached)  # only a complete archive is ever reused
        shutil.rmtree(building)
        timings["debootstrap (no cache)"] = time.monotonic() - started
        started = time.monotonic()
    destination.mkdir()
    subprocess.run(["tar", "-C", str(destination), "-xf", str(cached)], check=True)
    timings["unpack cached root"] = time.monotonic() - started


def converge(work: Path) -> Converged:
    """debootstrap into work/root, apply the role twice; the caller removes work."""
    timings: dict[str, float] = {}
    root = work / "root"
    debootstrap_root(root, timings)
    started = time.monotonic()
    wheelhouse = work / "wheelhouse"
    build = subprocess.run(
        [str(ANSIBLE_DIR / "build-wheelhouse.sh")], capture_output=True, text=True,
        env={**os.environ, "WHEELHOUSE": str(wheelhouse), "PYTHON": sys.executable},
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    timings["wheelhouse"] = time.monotonic() - started

    inventory = work / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"target": {
        "ansible_connection": "community.general.chroot", "ansible_host": str(root),
        "ansible_python_interpreter": "/usr/bin/python3"}}}}))  # fmt: skip
    variables = work / "vars.json"
    variables.write_text(json.dumps({
        "moltbot_checkout": str(REPO), "moltbot_wheelhouse": str(wheelhouse),
        "moltbot_apt_update_cache": False,  # the target has no package index: wheels and debootstrap only
        "moltbot_daemon": {"timezone": "Europe/Berlin", "workers": 2},
        "moltbot_signal": {"url": "http://127.0.0.1:8080", "number": "+4915100000000",
                           "allowed": ["+4915100000001"], "linked_device": False},
        "moltbot_discord_bot_token": SECRET,
        "signal_gateway_packages": ["nftables"], "signal_gateway_apt_update_cache": False,
    }))  # fmt: skip
    variables.chmod(0o600)

    def apply(label: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = run([ANSIBLE_PLAYBOOK, "-i", inventory, "-e", f"@{variables}", "tests/converge.yml"],
                     cwd=ANSIBLE_DIR)  # fmt: skip
        timings[label] = time.monotonic() - started
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        return result

    first = apply("converge")
    second = apply("re-converge")
    return Converged(root, first, second, timings)
