#!/usr/bin/env bash
# `make profile`: one benchmark under perf, drawn as a flamegraph.
#   scripts/profile.sh [api|consumer] [benchmark args...]
#   scripts/profile.sh api intake --concurrency 64 --seconds 10   (the default)
#   scripts/profile.sh api poll --concurrency 64 --seconds 10
# Installs perf (Debian's linux-perf) and inferno (cargo, cached in ~/.cache/registrar) when
# missing, builds the `profiling` cargo profile (release + line tables), runs the
# benchmark through scripts/bench.sh with perf attached to the chosen process, and writes
# target/bench/flamegraph-<process>-<benchmark>.svg plus the top functions by self time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${REGISTRAR_CACHE:-$HOME/.cache/registrar}"
INFERNO="$CACHE/inferno/bin"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

which_process="${1:-api}"; shift || true
[ $# -gt 0 ] || set -- intake --concurrency 64 --seconds 10
bench_name="$1"

if ! command -v perf >/dev/null || ! perf --version >/dev/null 2>&1; then
  echo "[profile] installing perf (linux-perf) from the OS packages" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
if [ ! -x "$INFERNO/inferno-flamegraph" ]; then
  echo "[profile] installing inferno once (about 1 minute); cached in $CACHE/inferno" >&2
  cargo install inferno --version 0.12.8 --locked --root "$CACHE/inferno" >/dev/null
fi
# Sampling another process needs perf_event access; allow it for this machine's run.
if [ "$(cat /proc/sys/kernel/perf_event_paranoid)" -gt 1 ]; then
  echo 1 | $SUDO tee /proc/sys/kernel/perf_event_paranoid >/dev/null || true
fi

mkdir -p target/bench
BENCH_CARGO_PROFILE=profiling BENCH_PERF="$which_process" scripts/bench.sh "$@"

data="target/bench/perf-$which_process.data"
out="target/bench/flamegraph-$which_process-$bench_name"
perf script -i "$data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" > "$out.folded"
"$INFERNO/inferno-flamegraph" --title "$which_process during $*" < "$out.folded" > "$out.svg"
# Self time by function: the last frame of every folded stack, summed.
awk '{n=$NF; $NF=""; sub(/ $/, ""); k=split($0, f, ";"); self[f[k]] += n; total += n}
     END {for (fn in self) printf "%6.2f %%  %s\n", 100*self[fn]/total, fn}' "$out.folded" \
  | sort -rn | head -40 > "$out.top.txt"
echo "[profile] flamegraph: $out.svg; top functions by self time: $out.top.txt" >&2
head -25 "$out.top.txt"
