#!/usr/bin/env bash
# Stop the Redmine that scripts/redmine-up.sh started (by its recorded pids); idempotent.
set -uo pipefail

STATE="${REDMINE_STATE_DIR:-/tmp/pmsync-redmine}"

stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
}

for f in "$STATE/server.pid" "$STATE/launcher.pid"; do
    if [ -s "$f" ]; then
        stop_pid "$(cat "$f")"
        rm -f "$f"
    fi
done
rm -f "$STATE/env"
echo "redmine-down: stopped" >&2
