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
# glibc keeps freed argon2 blocks (19 MiB each) in per-thread arenas; bound both.
export MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=1048576
TANSU="${REGISTRAR_CACHE:-$HOME/.cache/registrar}/tansu/bin/tansu"
# BENCH_BROKER=memory (default): a scratch tansu with in-memory storage on :19092, so the
# numbers show Registrar rather than the sqlite engine; BENCH_BROKER=sqlite uses the
# persistent broker of `make run`.
broker_pid=""
scratch_broker="tansu broker --listener-url tcp://127.0.0.1:19092"
# tansu takes seconds to exit on SIGTERM; in-memory storage has nothing to lose.
stop_scratch_broker() {
  pkill -TERM -f "$scratch_broker" 2>/dev/null || return 0
  for _ in $(seq 1 30); do pgrep -f "$scratch_broker" >/dev/null || return 0; sleep 0.1; done
  pkill -KILL -f "$scratch_broker" 2>/dev/null || true
  for _ in $(seq 1 30); do pgrep -f "$scratch_broker" >/dev/null || return 0; sleep 0.1; done
}
if [ "${BENCH_BROKER:-memory}" = memory ]; then
  # One left by an interrupted run would serve this one and skew its CPU figures.
  stop_scratch_broker
  mkdir -p .local/bench-tansu
  (cd .local/bench-tansu && exec "$TANSU" broker --listener-url tcp://127.0.0.1:19092 \
     --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine memory://tansu/ \
     </dev/null >tansu.log 2>&1) & broker_pid=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null && break; sleep 0.1; done
  export KAFKA_BROKERS=127.0.0.1:19092 BENCH_BROKER_STORAGE="tansu 0.6, memory storage"
else
  export KAFKA_BROKERS=127.0.0.1:9092 BENCH_BROKER_STORAGE="tansu 0.6, sqlite storage"
fi
# A topic and group of its own: no backlog from earlier runs, none left for `make run`.
export KAFKA_TOPIC="bench-$(date +%s)" KAFKA_GROUP_ID="bench-$(date +%s)"
# Redis keys of their own too, deleted at the end: a run leaves hundreds of thousands.
export REDIS_KEY_PREFIX="$KAFKA_TOPIC:"
"$TANSU" topic create "$KAFKA_TOPIC" --partitions 4 --broker "tcp://$KAFKA_BROKERS" >/dev/null
"$TANSU" topic create "$KAFKA_TOPIC.dlq" --partitions 1 --broker "tcp://$KAFKA_BROKERS" >/dev/null
# The user-events relay publishes every new account's event: part of the work measured.
export USER_EVENTS_TOPIC="$KAFKA_TOPIC.events"
"$TANSU" topic create "$USER_EVENTS_TOPIC" --partitions 4 --broker "tcp://$KAFKA_BROKERS" >/dev/null
# Shed overload at once instead of queueing for PRODUCE_TIMEOUT_MS: about 0.5 s of
# this machine's intake capacity.
export PRODUCER_QUEUE_MAX_MESSAGES="${PRODUCER_QUEUE_MAX_MESSAGES:-500}"
$BIN/api serve > target/bench-api.log 2>&1 & api=$!
$BIN/consumer > target/bench-consumer.log 2>&1 & consumer=$!
cleanup() {
  kill -TERM $api $consumer 2>/dev/null; wait $api $consumer 2>/dev/null || true
  [ -z "$broker_pid" ] || stop_scratch_broker
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
