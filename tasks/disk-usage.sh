#!/bin/sh
# Report file-system usage; exit 1 when any mounted file system is above the
# threshold, so a full disk shows up as a failed run (and an alert).
threshold=${DISK_USAGE_THRESHOLD:-90}
df -P -x tmpfs -x devtmpfs -x overlay 2>/dev/null || df -P
worst=$(df -P -x tmpfs -x devtmpfs -x overlay 2>/dev/null | awk 'NR > 1 { sub("%", "", $5); if ($5 > max) max = $5 } END { print max + 0 }')
echo "highest usage: ${worst}% (threshold ${threshold}%)"
[ "$worst" -le "$threshold" ]
