#!/bin/sh
# A backup in dry-run mode: list what would be copied from MOLTBOT_HOME/tasks (the scripts; config/
# is the daemon's, closed to a task user). Replace --dry-run and the destination to make it real.
set -eu
source_dir="${BACKUP_SOURCE:-${MOLTBOT_HOME:?}/tasks/}"
destination="${BACKUP_DESTINATION:-/tmp/moltbot-backup-dry-run/}"
if command -v rsync >/dev/null 2>&1; then
    rsync --archive --dry-run --itemize-changes "$source_dir" "$destination"
else
    echo "rsync not installed; would copy:"
    find "$source_dir" -type f
fi
echo "backup dry run finished"
