#!/usr/bin/env bash
# Makes PostgreSQL, Redis, a Kafka-API broker (tansu) and a development SMTP server
# (MailDev) available on 127.0.0.1: starts them when installed, installs them when
# missing (Debian packages for PostgreSQL and Redis; `cargo install tansu` and
# `npm install maildev` once, cached outside the checkout), then creates the database
# and the topics; installs OpenSSL's headers the build needs.
# Idempotent: rerun it any time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REGISTRAR_CACHE:-$HOME/.cache/registrar}"
TANSU_ROOT="$CACHE/tansu"
TANSU="$TANSU_ROOT/bin/tansu"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
DATA="${REGISTRAR_DATA:-$ROOT/.local}"
# The broker on 127.0.0.1:$KAFKA_PORT is one per machine, whichever checkout started it,
# so its storage is too: a restart from another checkout (a CI clone, say) must find the
# same topics and records, not a fresh sqlite file.
TANSU_DATA="${TANSU_DATA:-$CACHE/tansu-data}"
PG_HOST=127.0.0.1 PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
DB_NAME="${DB_NAME:-registrar}"
TOPIC="${KAFKA_TOPIC:-user-registration}"
EVENTS_TOPIC="${USER_EVENTS_TOPIC:-user-events}"
PARTITIONS="${KAFKA_PARTITIONS:-4}"
MAILDEV_ROOT="$CACHE/maildev"
MAILDEV_VERSION="${MAILDEV_VERSION:-2.2.1}"
MAILDEV_SMTP_PORT="${MAILDEV_SMTP_PORT:-1025}"
MAILDEV_WEB_PORT="${MAILDEV_WEB_PORT:-1080}"

log() { printf '[services] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do port_open "$1" && return 0; sleep 0.1; done
  log "$2 did not open port $1 within $3 s"; return 1
}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
  log "installing $* from the OS packages"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_build_deps() {
  # librdkafka is compiled with OpenSSL (Kafka over TLS and SASL): headers and pkg-config.
  if ! pkg-config --exists openssl 2>/dev/null; then apt_install libssl-dev pkg-config; fi
}

ensure_postgres() {
  if ! port_open "$PG_PORT"; then
    if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql postgresql-client; fi
    local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
    log "starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port "$PG_PORT" PostgreSQL 30
  fi
  # A fresh package install only trusts local socket peers; give the `postgres` role the
  # password the default DATABASE_URL uses (with trust auth it is ignored).
  if ! PGPASSWORD=postgres psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    log "setting the postgres role's local password"
    $SUDO -u postgres psql -p "$PG_PORT" -tAc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 \
      || su postgres -c "psql -p $PG_PORT -tAc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  fi
  if ! PGPASSWORD=postgres psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    log "creating database $DB_NAME"
    PGPASSWORD=postgres psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE \"$DB_NAME\""
  fi
  log "PostgreSQL ready on $PG_HOST:$PG_PORT (database $DB_NAME)"
}

ensure_redis() {
  if ! port_open "$REDIS_PORT"; then
    if ! command -v redis-server >/dev/null; then apt_install redis-server; fi
    log "starting Redis"
    mkdir -p "$DATA/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir "$DATA/redis" --logfile "$DATA/redis/redis.log"
    wait_port "$REDIS_PORT" Redis 15
  fi
  log "Redis ready on 127.0.0.1:$REDIS_PORT"
}

ensure_tansu_binary() {
  if [ -x "$TANSU" ]; then return 0; fi
  log "building tansu $TANSU_VERSION once (about 17 minutes); cached in $TANSU_ROOT"
  mkdir -p "$TANSU_ROOT"
  cargo install tansu --version "$TANSU_VERSION" --locked --features libsql,dynostore \
    --root "$TANSU_ROOT" >&2
}

ensure_tansu() {
  ensure_tansu_binary
  if port_open "$KAFKA_PORT" && ! tansu_answers; then
    log "tansu on port $KAFKA_PORT does not answer; restarting it"
    stop_tansu
  fi
  if ! port_open "$KAFKA_PORT"; then
    mkdir -p "$TANSU_DATA"
    log "starting tansu (sqlite storage in $TANSU_DATA)"
    # The sqlite path is relative to the working directory: run from the data dir so
    # topics and messages survive a restart.
    # exec: the subshell becomes tansu, holding none of this script's pipes.
    (cd "$TANSU_DATA" && exec nohup "$TANSU" broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine sqlite://tansu.db </dev/null >>tansu.log 2>&1) &
    echo $! > "$TANSU_DATA/tansu.pid"
    wait_port "$KAFKA_PORT" tansu 30
  fi
  local existing; existing="$("$TANSU" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" 2>/dev/null || true)"
  for t in "$TOPIC" "$TOPIC.dlq" "$EVENTS_TOPIC"; do
    if ! grep -q "\"$t\"\|^$t\$\|[[:space:]]$t\([[:space:]]\|\$\)" <<<"$existing"; then
      log "creating topic $t ($PARTITIONS partitions)"
      "$TANSU" topic create "$t" --partitions "$PARTITIONS" --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 || true
    fi
  done
  log "tansu ready on 127.0.0.1:$KAFKA_PORT (topics $TOPIC, $TOPIC.dlq, $EVENTS_TOPIC)"
}

stop_tansu() {
  local pidfile="$TANSU_DATA/tansu.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  local pattern="tansu broker --listener-url tcp://127.0.0.1:$KAFKA_PORT"
  pkill -f "$pattern" 2>/dev/null || true
  # Wait for the process, not only the port: a successor that opens the sqlite file
  # while the old broker still holds it gets a storage error on its first consumer-group
  # write, and tansu 0.6 then stops serving storage until restarted.
  for _ in $(seq 1 150); do pgrep -f "$pattern" >/dev/null || break; sleep 0.1; done
  if pgrep -f "$pattern" >/dev/null; then
    log "tansu did not exit within 15 s of SIGTERM; killing it"
    pkill -9 -f "$pattern" 2>/dev/null || true
    for _ in $(seq 1 50); do pgrep -f "$pattern" >/dev/null || break; sleep 0.1; done
  fi
  log "tansu stopped"
}

# promtool (alerting-rule checks and unit tests) and a real Prometheus for the scrape test,
# from Debian's `prometheus` package. Only the binaries are used: the package's own
# service is never started (the scrape test runs its own instance on a free port).
ensure_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then return 0; fi
  log "installing Prometheus (promtool and the server) from the OS packages"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d refusing: the package's post-install must not start a system service.
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null; $SUDO chmod +x "$policy"; created=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -n "$created" ]; then $SUDO rm -f "$policy"; fi
  # A package service started anyway (an init that ignores policy-rc.d) would hold 9090.
  pkill -x prometheus 2>/dev/null || true
}

# MailDev (npm): SMTP on $MAILDEV_SMTP_PORT, web UI and REST API on $MAILDEV_WEB_PORT. The
# consumer's mailer sends there by default; the tests read the mails from its REST API.
ensure_maildev() {
  local bin="$MAILDEV_ROOT/node_modules/.bin/maildev"
  if port_open "$MAILDEV_WEB_PORT" && port_open "$MAILDEV_SMTP_PORT"; then return 0; fi
  if [ ! -x "$bin" ]; then
    if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
    log "installing MailDev $MAILDEV_VERSION from npm into $MAILDEV_ROOT"
    mkdir -p "$MAILDEV_ROOT"
    npm install --no-audit --no-fund --loglevel=error --prefix "$MAILDEV_ROOT" "maildev@$MAILDEV_VERSION" >&2
  fi
  log "starting MailDev (SMTP 127.0.0.1:$MAILDEV_SMTP_PORT, web http://127.0.0.1:$MAILDEV_WEB_PORT)"
  mkdir -p "$MAILDEV_ROOT/mail"
  (exec nohup "$bin" --ip 127.0.0.1 --web-ip 127.0.0.1 --smtp "$MAILDEV_SMTP_PORT" \
      --web "$MAILDEV_WEB_PORT" --mail-directory "$MAILDEV_ROOT/mail" \
      </dev/null >>"$MAILDEV_ROOT/maildev.log" 2>&1) &
  wait_port "$MAILDEV_WEB_PORT" MailDev 30
  wait_port "$MAILDEV_SMTP_PORT" "MailDev SMTP" 30
}

# Debian's Chromium for the browser test (scripts/e2e.py drives it with playwright-core).
ensure_chromium() {
  if command -v chromium >/dev/null; then return 0; fi
  log "installing Chromium from the OS packages (browser test)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
}

tansu_answers() {
  timeout 10 "$TANSU" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
}

case "${1:-up}" in
  up) ensure_build_deps; ensure_postgres; ensure_redis; ensure_prometheus; ensure_maildev; ensure_tansu ;;
  prometheus) ensure_prometheus ;;
  maildev) ensure_maildev ;;
  chromium) ensure_chromium ;;
  tansu-binary) ensure_tansu_binary ;;
  stop-tansu) stop_tansu ;;
  *) echo "usage: $0 [up|tansu-binary|prometheus|maildev|chromium|stop-tansu]" >&2; exit 2 ;;
esac
