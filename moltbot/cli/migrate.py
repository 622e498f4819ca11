"""``moltbot migrate --to URL``: copy this home's SQLite database into PostgreSQL."""

from __future__ import annotations

import argparse
import sys

from moltbot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from moltbot.config.home import Home

__all__ = ["cmd_migrate"]


def cmd_migrate(args: argparse.Namespace) -> int:
    from moltbot.core.migration import MigrationRefused, migrate_to_postgresql

    home = Home.from_env(args.home)
    try:
        copies = migrate_to_postgresql(home, args.to)
    except MigrationRefused as exc:
        print(f"moltbot migrate: {exc}", file=sys.stderr)
        return EXIT_USAGE if str(exc).startswith("--to") else EXIT_FAILED
    width = max(len(copy.table) for copy in copies)
    for copy in copies:
        mark = "✓" if copy.same and copy.source_rows == copy.target_rows else "✗ DIFFERENT"
        print(f"{copy.table:<{width}}  {copy.source_rows:>8} → {copy.target_rows:<8} {mark}")
    if not all(copy.same for copy in copies):
        print("moltbot migrate: the copy differs (✗ above); do not switch to it", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"copied and compared {len(copies)} tables. Next: set [daemon] database in moltbot.toml on every node"
    )
    return EXIT_OK
