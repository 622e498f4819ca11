#!/bin/sh
# Asks before doing something irreversible (issue #13): `moltbot ask` waits for an admin's answer on
# Signal and exits 0 for yes, 1 for no, 4 when nobody answered in time. Not in tasks.json (a question
# nobody expects would only wait); add it there, e.g.
#   {"task_id": "prune-snapshots", "script_path": "prune-snapshots.sh", "schedule": "weekly on sun at 05:00"}
# Works as the daemon's user and as [daemon] task_user (the request goes through the run's folder).
set -u
snapshots="${SNAPSHOT_DIR:-/tmp/moltbot-snapshots-example}"
old=$(find "$snapshots" -mindepth 1 -maxdepth 1 -mtime +30 2>/dev/null | wc -l)
if [ "$old" -eq 0 ]; then
    echo "no snapshot older than 30 days in $snapshots"
    exit 0
fi
moltbot ask "Delete $old snapshot(s) older than 30 days in $snapshots?" --timeout 30m
case $? in
    0) find "$snapshots" -mindepth 1 -maxdepth 1 -mtime +30 -exec rm -rf {} +
       moltbot notify "deleted $old old snapshot(s)" ;;
    1) echo "kept: an admin said no" ;;
    4) echo "kept: nobody answered within 30 minutes"; exit 4 ;;
    *) echo "moltbot ask failed"; exit 1 ;;
esac
