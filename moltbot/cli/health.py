"""The running daemon's channels and threads, as ``moltbot status`` shows them (human and JSON)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from moltbot.core import HealthReport
from moltbot.local_times import stamped

__all__ = ["health_json", "health_lines"]


def health_json(report: HealthReport | None) -> dict[str, Any]:
    """``{"channels": {name: {...}}, "threads": {name: {...}}}``; empty without a daemon."""
    return report.as_json() if report is not None else {"channels": {}, "threads": {}, "pings": {}}


def health_lines(report: HealthReport | None, zone: ZoneInfo) -> list[str]:
    """A "channels" part (each channel, and why one is not connected) and a line on the threads."""
    if report is None:
        return []
    lines = []
    if report.channels:
        width = max(len(channel.name) for channel in report.channels)
        lines.append("channels:")
        for channel in report.channels:
            error = f" ({channel.error})" if channel.error and not channel.up else ""
            since = stamped(channel.since, zone)
            lines.append(f"  {channel.name:<{width}}  {channel.state} since {since}{error}")
    troubled = [thread for thread in report.threads if thread.state == "restarting" or thread.failures]
    lines.append(f"threads: {len(report.threads) - len(troubled)} running")
    for thread in troubled:
        failures = f"{thread.failures} failure{'s' if thread.failures != 1 else ''} in a row"
        since = stamped(thread.since, zone)
        lines.append(f"  {thread.name} {thread.state} since {since} after {failures} ({thread.error})")
    if report.pings:
        width = max(len(ping.name) for ping in report.pings)
        lines.append("pings (to outside monitors):")
        for ping in report.pings:
            error = f": {ping.error}" if ping.error and ping.state == "failed" else ""
            since = stamped(ping.since, zone)
            lines.append(f"  {ping.name:<{width}}  {ping.state} since {since} ({ping.url}{error})")
    return lines
