#!/bin/sh
# Build moltbot's wheel and every dependency's wheel into one folder (the "wheelhouse") that the
# moltbot role copies to the target and installs from with --no-index: the target needs no PyPI.
#
#   ansible/build-wheelhouse.sh [TARGET_PYTHON]      e.g. 3.11 (Debian 12) or 3.13 (Debian 13)
#
# Dependencies are downloaded for the target's Python and this machine's architecture (binary wheels
# only, so nothing is compiled on the target). SOURCE_DATE_EPOCH pins the timestamps inside the
# moltbot wheel, so rebuilding an unchanged checkout gives the same bytes and the role reports no change.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}   # the controller's Python, with pip
target_python=${1:-$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
out=${WHEELHOUSE:-$repo/dist/wheelhouse}
arch=$(uname -m)
SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 315532800)
export SOURCE_DATE_EPOCH
rm -rf "$out"
mkdir -p "$out"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$repo"
"$python" -m pip download --quiet --dest "$out" --only-binary=:all: --python-version "$target_python" \
    --platform "manylinux_2_28_$arch" --platform "manylinux2014_$arch" "$out"/moltbot-*.whl
# The postgresql extra (several nodes on one database: README), for hosts that set moltbot_database_url.
"$python" -m pip download --quiet --dest "$out" --only-binary=:all: --python-version "$target_python" \
    --platform "manylinux_2_28_$arch" --platform "manylinux2014_$arch" "psycopg2-binary>=2.9"
echo "wheelhouse for Python $target_python ($arch): $out"
ls "$out"
