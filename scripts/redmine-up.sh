#!/usr/bin/env bash
# Start a local Redmine (Debian's packages, SQLite) for the end-to-end tests; idempotent.
#
# Installs redmine, redmine-sqlite and thin with apt-get when Redmine is missing, enables
# the REST API, starts `rails server` (thin) on 127.0.0.1:$REDMINE_PORT in the background,
# waits until it answers, then writes PMSYNC_REDMINE_URL and PMSYNC_REDMINE_KEY (the
# admin's API key) to $REDMINE_STATE_DIR/env and prints them. Running it again while the
# server is up only re-prints them. Stop the server with scripts/redmine-down.sh.
#
# Environment: REDMINE_PORT (3300), REDMINE_STATE_DIR (/tmp/pmsync-redmine),
# REDMINE_WAIT (seconds to wait for the server, 180), REDMINE_HOME (/usr/share/redmine).
# Facts: ../shared/research/pingcode-worktile-redmine-and-others.md §3.7.
set -euo pipefail

PORT="${REDMINE_PORT:-3300}"
STATE="${REDMINE_STATE_DIR:-/tmp/pmsync-redmine}"
WAIT="${REDMINE_WAIT:-180}"
HOME_DIR="${REDMINE_HOME:-/usr/share/redmine}"
URL="http://127.0.0.1:${PORT}"
export RAILS_ENV=production

log() { printf 'redmine-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else die "need root to run: $*"
    fi
}

install_redmine() {
    log "installing redmine, redmine-sqlite and thin (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        redmine redmine-sqlite thin >/dev/null
}

# Run a Rails runner script; on a stale Gemfile.lock (bundler complains), drop the lock and retry.
rails_runner() {
    local out
    if out=$(cd "$HOME_DIR" && ruby bin/rails runner "$1" 2>&1); then
        printf '%s\n' "$out"
        return 0
    fi
    if grep -qiE 'gemfile\.lock|bundler|could not find|gem::' <<<"$out" \
        && [ -f /var/lib/redmine/Gemfile.lock ]; then
        log "bundler complained; removing the stale /var/lib/redmine/Gemfile.lock"
        as_root rm -f /var/lib/redmine/Gemfile.lock
        (cd "$HOME_DIR" && ruby bin/rails runner "$1" 2>&1) && return 0
    fi
    printf '%s\n' "$out" | tail -n 20 >&2
    return 1
}

answers() { curl -fsS -o /dev/null --max-time 5 "$URL/login" 2>/dev/null; }

write_env() {
    mkdir -p "$STATE"
    umask 077
    printf 'PMSYNC_REDMINE_URL=%s\nPMSYNC_REDMINE_KEY=%s\n' "$URL" "$1" >"$STATE/env.tmp"
    mv "$STATE/env.tmp" "$STATE/env"
    cat "$STATE/env"
}

command -v curl >/dev/null || die "curl is required"
[ -f "$HOME_DIR/bin/rails" ] || install_redmine
[ -f "$HOME_DIR/bin/rails" ] || die "Redmine is not installed in $HOME_DIR"

mkdir -p "$STATE"
if answers && [ -s "$STATE/env" ] && grep -q "^PMSYNC_REDMINE_URL=$URL\$" "$STATE/env"; then
    log "already running at $URL"
    cat "$STATE/env"
    exit 0
fi

# REST API on, admin usable without a password change, no mail (a test server), and the
# admin's API key (created on first use).
key=$(rails_runner '
  Setting.rest_api_enabled = "1"
  Setting.notified_events = []
  Setting.text_formatting = ENV["REDMINE_TEXT_FORMATTING"] if ENV["REDMINE_TEXT_FORMATTING"].to_s != ""
  u = User.find_by_login("admin")
  u.must_change_passwd = false
  u.save!
  puts "KEY=#{u.api_key}"
' | sed -n 's/^KEY=//p' | tail -n 1)
[ -n "$key" ] || die "could not enable the REST API or read the admin API key"

if ! answers; then
    log "starting Redmine on $URL (log: $STATE/server.log)"
    (
        cd "$HOME_DIR"
        setsid nohup ruby bin/rails server -u thin -b 127.0.0.1 -p "$PORT" \
            -P "$STATE/server.pid" >"$STATE/server.log" 2>&1 </dev/null &
        echo $! >"$STATE/launcher.pid"
    )
    deadline=$((SECONDS + WAIT))
    until answers; do
        if [ $SECONDS -ge $deadline ]; then
            tail -n 30 "$STATE/server.log" >&2 || true
            die "Redmine did not answer on $URL within ${WAIT}s"
        fi
        if ! kill -0 "$(cat "$STATE/launcher.pid")" 2>/dev/null; then
            tail -n 30 "$STATE/server.log" >&2 || true
            die "the Redmine server exited during start-up"
        fi
        sleep 1
    done
fi

# The REST API must accept the key (not only the login page answer).
curl -fsS -o /dev/null --max-time 10 -H "X-Redmine-API-Key: $key" "$URL/users/current.json" \
    || die "Redmine answers on $URL but the REST API refused the admin key"
log "up at $URL"
write_env "$key"
