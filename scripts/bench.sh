#!/usr/bin/env bash
# `make bench`: local services, release builds, an api + consumer with a throwaway key
# pair and rate limits off, then every benchmark. Reports land in target/bench/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/services.sh up
# BENCH_CARGO_PROFILE=profiling (`make profile`): release code with line tables.
PROFILE="${BENCH_CARGO_PROFILE:-release}"
BIN="target/$PROFILE"
cargo build --profile "$PROFILE" --bin api --bin consumer --bin registrar-bench
keys="$($BIN/api keygen --key-id bench)"
export $(grep -v '^#' <<<"$keys" | xargs)
export RATE_LIMIT_PER_MINUTE=0 AUTH_RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warn LOG_FORMAT=json
export PORT="${BENCH_PORT:-18000}" CONSUMER_PORT="${BENCH_CONSUMER_PORT:-18001}"
export BENCH_API="http://127.0.0.1:$PORT"
# The OpenID Connect provider on (the token benchmarks; keygen gave its RSA key), its
# per-client limit counted but never reached.
export OIDC_ISSUER="$BENCH_API" OIDC_CLIENT_RATE_PER_MINUTE=1000000000
# glibc keeps freed argon2 blocks (19 MiB each) in per-thread arenas; bound both.
export MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=1048576
# The broker is the Apache Kafka node of `make run` (scripts/services.sh): what users run.
export KAFKA_BROKERS=127.0.0.1:9092
kafka_version="$(cat "${REGISTRAR_CACHE:-$HOME/.cache/registrar}/kafka/current")"
export BENCH_BROKER_STORAGE="Apache Kafka $kafka_version, one KRaft node, log on local disk"
# A topic and group of its own: no backlog from earlier runs, none left for `make run`.
export KAFKA_TOPIC="bench-$(date +%s)" KAFKA_GROUP_ID="bench-$(date +%s)"
# Redis keys of their own too, deleted at the end: a run leaves hundreds of thousands.
export REDIS_KEY_PREFIX="$KAFKA_TOPIC:"
# The user-events relay publishes every new account's event: part of the work measured.
export USER_EVENTS_TOPIC="$KAFKA_TOPIC.events" CLIENT_EVENTS_TOPIC="$KAFKA_TOPIC.client-events"
# The webhooks benchmark's receiver listens on loopback; its own webhook group.
export WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8 WEBHOOK_GROUP_ID="$KAFKA_TOPIC-webhooks"
topic() { # create|delete name [partitions]
  if [ "$1" = create ]; then
    scripts/services.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
      --create --if-not-exists --topic "$2" --partitions "$3" >/dev/null
  else
    scripts/services.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
      --delete --if-exists --topic "$2" >/dev/null 2>&1 || true
  fi
}
topic create "$KAFKA_TOPIC" 4
topic create "$KAFKA_TOPIC.dlq" 1
topic create "$USER_EVENTS_TOPIC" 4
topic create "$CLIENT_EVENTS_TOPIC" 1
# Shed overload at once instead of queueing for PRODUCE_TIMEOUT_MS: about 0.5 s of
# this machine's intake capacity.
export PRODUCER_QUEUE_MAX_MESSAGES="${PRODUCER_QUEUE_MAX_MESSAGES:-500}"
# A database of its own: the benchmarks leave a million accounts (users-list) and every
# import's users behind, which `make run`'s database should not show.
export DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:${PG_PORT:-5432}/registrar_bench}"
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -p "${PG_PORT:-5432}" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'registrar_bench'" | grep -q 1; then
  PGPASSWORD=postgres psql -h 127.0.0.1 -p "${PG_PORT:-5432}" -U postgres -d postgres -qc 'CREATE DATABASE registrar_bench'
fi
# The schema first: on a fresh machine nothing else has migrated the database yet.
$BIN/api migrate
$BIN/api serve > target/bench-api.log 2>&1 & api=$!
$BIN/consumer > target/bench-consumer.log 2>&1 & consumer=$!
cleanup() {
  kill -TERM $api $consumer 2>/dev/null; wait $api $consumer 2>/dev/null || true
  for t in "$KAFKA_TOPIC" "$KAFKA_TOPIC.dlq" "$USER_EVENTS_TOPIC" "$CLIENT_EVENTS_TOPIC"; do topic delete "$t"; done
  redis-cli -p "${REDIS_PORT:-6379}" --scan --pattern "$REDIS_KEY_PREFIX*" 2>/dev/null \
    | xargs -r -n 1000 redis-cli -p "${REDIS_PORT:-6379}" unlink >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  $BIN/api healthcheck --url "$BENCH_API/api/v1/health/ready" 2>/dev/null && break
  sleep 0.2
done
mkdir -p target/bench
{ echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(date -u +%F)"; echo; } > target/bench/machine.md
ulimit -n 65536 2>/dev/null || true
export BENCH_API_PID=$api BENCH_CONSUMER_PID=$consumer
# BENCH_PERF=api|consumer (`make profile`): perf samples that process for the whole run
# (cpu-clock, DWARF call graphs); the flamegraph is drawn afterwards.
perf_pid=""
if [ -n "${BENCH_PERF:-}" ]; then
  target_pid=$api; [ "$BENCH_PERF" = consumer ] && target_pid=$consumer
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$target_pid" \
    -o "target/bench/perf-$BENCH_PERF.data" 2>target/bench/perf.log & perf_pid=$!
  sleep 1
fi
$BIN/registrar-bench "${@:-all}"
if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
echo "At the end of the run: api RSS $(ps -o rss= -p $api | awk '{printf "%.1f MiB", $1/1024}'), consumer RSS $(ps -o rss= -p $consumer | awk '{printf "%.1f MiB", $1/1024}')" | tee target/bench/memory-end.md
