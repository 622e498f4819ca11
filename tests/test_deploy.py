"""The shipped systemd unit is valid and runs the installed moltbot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moltbot.cli.common import EXIT_CONFIG

UNIT = Path(__file__).parent.parent / "deploy" / "moltbot.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_file_verifies(tmp_path: Path) -> None:
    # Point it at this venv's moltbot: verify checks that ExecStart exists.
    moltbot = Path(sys.executable).parent / "moltbot"
    unit = tmp_path / "moltbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/moltbot/venv/bin/moltbot", str(moltbot)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if "moltbot.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_the_unit_reloads_with_sighup_and_lets_the_daemon_stop_its_tasks() -> None:
    text = UNIT.read_text()
    assert """ExecReload=/bin/sh -c 'kill -HUP "$MAINPID"'""" in text  # test_unit_booted.py reloads it
    assert "KillMode=mixed" in text and "KillSignal=SIGTERM" in text
    assert "ExecStart=/opt/moltbot/venv/bin/moltbot daemon" in text
    assert "Type=notify" in text and "WatchdogSec=60" in text and "Restart=always" in text


def test_a_config_or_home_error_stops_the_unit_instead_of_restarting_it_forever() -> None:
    text = UNIT.read_text()
    # The daemon exits EXIT_CONFIG before READY=1 when it cannot start as configured; a restart
    # every RestartSec would only repeat that (and systemd's start limit never trips at 5 s).
    assert f"RestartPreventExitStatus={EXIT_CONFIG}" in text
    # RestartPreventExitStatus= does not apply to ExecStartPre=: a `moltbot check` there would
    # crash-loop on the same errors (the daemon checks them itself).
    assert not [line for line in text.splitlines() if line.startswith("ExecStartPre=")]


def test_the_unit_grants_only_what_starting_tasks_as_the_task_user_takes() -> None:
    """The security tests start the daemon with these capabilities (tests/users.py): the same ones."""
    from tests.users import UNIT_CAPABILITIES

    lines = UNIT.read_text().splitlines()
    granted = {"CAP_" + name.upper() for name in UNIT_CAPABILITIES.split(",")}
    for setting in ("CapabilityBoundingSet", "AmbientCapabilities"):
        (value,) = [line.split("=", 1)[1] for line in lines if line.startswith(f"{setting}=")]
        assert set(value.split()) == granted
    assert "NoNewPrivileges=yes" in lines  # no task gains a privilege by exec (a setuid sudo)
    (writable,) = [line.split("=", 1)[1].split() for line in lines if line.startswith("ReadWritePaths=")]
    assert "/var/lib/moltbot" not in writable and "/var/lib/moltbot/data" in writable
    assert "LoadCredential=DISCORD_BOT_TOKEN:/etc/moltbot/credentials/DISCORD_BOT_TOKEN" in lines


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_exposure_is_what_the_readme_says() -> None:
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout
    if not version.startswith("systemd 252"):
        pytest.skip("the README's figure is systemd 252's (another version weighs differently)")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)], capture_output=True, text=True
    )
    score = float(
        result.stdout.strip().splitlines()[-1].split("exposure level for moltbot.service: ")[1].split()[0]
    )
    readme = (UNIT.parent.parent / "README.md").read_text()
    assert f"**{score} OK**" in readme, score
