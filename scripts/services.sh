#!/usr/bin/env bash
# Makes PostgreSQL, Redis, Apache Kafka and a development SMTP server (MailDev) available
# on 127.0.0.1: starts them when installed, installs them when missing (Debian packages
# for PostgreSQL, Redis and a JDK; Kafka's jars from Maven Central through scripts/kafka/
# pom.xml, and `npm install maildev`, once, cached outside the checkout), then creates the
# database and the topics; installs OpenSSL's headers the build needs.
# Idempotent: rerun it any time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REGISTRAR_CACHE:-$HOME/.cache/registrar}"
KAFKA_CACHE="$CACHE/kafka"
KAFKA_VERSIONS="${KAFKA_VERSIONS:-4.4.0 4.3.2 4.2.0 4.1.2}"
# At most 512 MiB: the broker shares two cores and the memory with everything else.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
DATA="${REGISTRAR_DATA:-$ROOT/.local}"
# The broker on 127.0.0.1:$KAFKA_PORT is one per machine, whichever checkout started it,
# so its storage is too: a restart from another checkout (a CI clone, say) must find the
# same topics and records, not a freshly formatted log directory.
KAFKA_DATA="${KAFKA_DATA:-$CACHE/kafka-data}"
PG_HOST=127.0.0.1 PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
DB_NAME="${DB_NAME:-registrar}"
TOPIC="${KAFKA_TOPIC:-user-registration}"
EVENTS_TOPIC="${USER_EVENTS_TOPIC:-user-events}"
CLIENT_EVENTS_TOPIC="${CLIENT_EVENTS_TOPIC:-oidc-client-events}"
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

# Apache Kafka from Maven Central. The machine's Maven resolves scripts/kafka/pom.xml (the
# broker, Kafka's tools, a log binding) into $KAFKA_CACHE/<version>/libs, once; the local
# Maven repository sits beside it, so nothing lands in ~/.m2. The newest version that
# resolves wins (KAFKA_VERSIONS, newest first); the one in use is in $KAFKA_CACHE/current.
ensure_java() {
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
}

ensure_kafka_jars() {
  ensure_java
  if [ -f "$KAFKA_CACHE/current" ] && [ -f "$KAFKA_CACHE/$(cat "$KAFKA_CACHE/current")/libs/.complete" ]; then
    return 0
  fi
  if ! command -v mvn >/dev/null; then apt_install maven; fi
  mkdir -p "$KAFKA_CACHE"
  local v
  for v in $KAFKA_VERSIONS; do
    log "resolving Apache Kafka $v from Maven Central into $KAFKA_CACHE/$v (once)"
    rm -rf "$KAFKA_CACHE/$v/libs"
    if mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$v" \
        -Dmaven.repo.local="$KAFKA_CACHE/m2" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_CACHE/$v/libs" >&2; then
      touch "$KAFKA_CACHE/$v/libs/.complete"
      echo "$v" > "$KAFKA_CACHE/current"
      return 0
    fi
    log "Apache Kafka $v did not resolve; trying the next version"
  done
  log "no Apache Kafka version of '$KAFKA_VERSIONS' resolved from Maven Central"
  return 1
}

kafka_classpath() { echo "$KAFKA_CACHE/$(cat "$KAFKA_CACHE/current")/libs/*"; }

# Runs one of Kafka's classes (a tool) on the broker's classpath; its log goes to a file.
kafka_tool() {
  ensure_kafka_jars
  mkdir -p "$KAFKA_DATA"
  java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$(kafka_classpath)" \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
    -Dkafka.log.file="$KAFKA_DATA/tools.log" "$@"
}

kafka_answers() {
  timeout 30 "$ROOT/scripts/services.sh" kafka-tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

# One KRaft node, broker and controller, on 127.0.0.1:$KAFKA_PORT (controller on the next
# port). scripts/kafka/server.properties is the configuration; the data directory is
# machine-wide, since one broker serves every checkout on the machine.
start_kafka() {
  ensure_kafka_jars
  mkdir -p "$KAFKA_DATA"
  { cat "$ROOT/scripts/kafka/server.properties"
    echo "# Written by scripts/services.sh"
    echo "log.dirs=$KAFKA_DATA/logs"
    echo "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$((KAFKA_PORT + 1))"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT"
    echo "controller.quorum.bootstrap.servers=127.0.0.1:$((KAFKA_PORT + 1))"
  } > "$KAFKA_DATA/server.properties"
  if [ ! -f "$KAFKA_DATA/logs/meta.properties" ]; then
    log "formatting the broker's storage in $KAFKA_DATA/logs (once)"
    local cluster; cluster="$(kafka_tool kafka.tools.StorageTool random-uuid)"
    kafka_tool kafka.tools.StorageTool format --standalone --ignore-formatted --cluster-id="$cluster" \
      -c "$KAFKA_DATA/server.properties" >/dev/null
  fi
  log "starting Apache Kafka $(cat "$KAFKA_CACHE/current") (data in $KAFKA_DATA, log in $KAFKA_DATA/kafka.log)"
  # exec: the subshell becomes the JVM, holding none of this script's pipes.
  (exec nohup java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -cp "$(kafka_classpath)" \
      -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
      -Dkafka.log.file="$KAFKA_DATA/kafka.log" \
      kafka.Kafka "$KAFKA_DATA/server.properties" </dev/null >>"$KAFKA_DATA/stdout.log" 2>&1) &
  echo $! > "$KAFKA_DATA/kafka.pid"
  wait_port "$KAFKA_PORT" Kafka 90
}

ensure_kafka() {
  ensure_kafka_jars
  if port_open "$KAFKA_PORT" && ! kafka_answers; then
    log "the broker on port $KAFKA_PORT does not answer; restarting it"
    stop_kafka
  fi
  if ! port_open "$KAFKA_PORT"; then start_kafka; fi
  local existing="" t
  for _ in $(seq 1 30); do
    if existing="$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list 2>/dev/null)"; then
      break
    fi
    sleep 1
  done
  for t in "$TOPIC" "$TOPIC.dlq" "$EVENTS_TOPIC" "$CLIENT_EVENTS_TOPIC"; do
    if ! grep -qx -- "$t" <<<"$existing"; then
      log "creating topic $t ($PARTITIONS partitions)"
      kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
        --create --if-not-exists --topic "$t" --partitions "$PARTITIONS" >/dev/null
    fi
  done
  log "Apache Kafka ready on 127.0.0.1:$KAFKA_PORT (topics $TOPIC, $TOPIC.dlq, $EVENTS_TOPIC, $CLIENT_EVENTS_TOPIC)"
}

# SIGTERM (a controlled shutdown), or SIGKILL with `stop-kafka --kill`; waits for the
# process to exit so a successor finds the storage unlocked.
stop_kafka() {
  local signal="${1:-TERM}" pidfile="$KAFKA_DATA/kafka.pid" pid=""
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then pid="$(cat "$pidfile")"; fi
  if [ -z "$pid" ]; then pid="$(pgrep -f "kafka.Kafka $KAFKA_DATA/server.properties" | head -1 || true)"; fi
  if [ -n "$pid" ]; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "Kafka did not exit within 60 s of SIG$signal; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
  log "Kafka stopped (SIG$signal)"
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

case "${1:-up}" in
  up) ensure_build_deps; ensure_postgres; ensure_redis; ensure_prometheus; ensure_maildev; ensure_kafka ;;
  kafka-jars) ensure_kafka_jars; kafka_classpath ;;
  kafka-tool) shift; kafka_tool "$@" ;;
  stop-kafka) if [ "${2:-}" = "--kill" ]; then stop_kafka KILL; else stop_kafka TERM; fi ;;
  prometheus) ensure_prometheus ;;
  maildev) ensure_maildev ;;
  chromium) ensure_chromium ;;
  *) echo "usage: $0 [up|prometheus|maildev|chromium|kafka-jars|kafka-tool CLASS ARGS...|stop-kafka [--kill]]" >&2; exit 2 ;;
esac
