#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (docs/src/reliability.md "Fuzzing") for a time each.
#   scripts/fuzz.sh [--seconds N] [--keep] [--sanitizer address|none] [target...]
# --seconds: run time per target (default 600); --keep: new inputs libFuzzer finds are
# added to the corpus in the repository (the long `make fuzz`), otherwise they go to a
# scratch directory and the repository's corpus is only read (`make fuzz-short`).
# --sanitizer: AddressSanitizer (the default, `make fuzz`) or none (`make fuzz-short`:
# the targets are safe Rust, so panics, hangs and memory growth are what a short run
# finds, and its build takes minutes less in a cold CI run).
# Installs cargo-fuzz once into the machine-wide cache (~/.cache/registrar). libFuzzer's sanitizer flags need
# a nightly compiler: the rustup `nightly` toolchain when installed, otherwise the stable
# one with RUSTC_BOOTSTRAP=1 (which unlocks the same -Z flags on a stable compiler).
# Exit status non-zero on any crash, panic, leak or hang (an input taking > 10 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REGISTRAR_CACHE:-$HOME/.cache/registrar}"
FUZZ_ROOT="$CACHE/cargo-fuzz"
CARGO_FUZZ="$FUZZ_ROOT/bin/cargo-fuzz"
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.1}"
# The instrumented build lives beside the cache, so a fresh clone (CI) reuses it.
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
SECONDS_EACH=600
KEEP=0
SANITIZER=address
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --sanitizer) SANITIZER="$2"; shift 2 ;;
    -*) echo "usage: $0 [--seconds N] [--keep] [--sanitizer address|none] [target...]" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done

log() { printf '[fuzz] %s\n' "$*" >&2; }

if [ ! -x "$CARGO_FUZZ" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION once; cached in $FUZZ_ROOT"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$FUZZ_ROOT" >&2
fi

export PATH="$FUZZ_ROOT/bin:$PATH"

TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  TOOLCHAIN=(+nightly)
  log "compiler: $(rustc +nightly --version)"
else
  export RUSTC_BOOTSTRAP=1
  log "compiler: $(rustc --version) with RUSTC_BOOTSTRAP=1 (no nightly toolchain installed)"
fi

cd "$ROOT/fuzz"
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cargo fuzz list)
fi
# One build directory per sanitizer: switching between them never rebuilds the other.
FUZZ_TARGET_DIR="$FUZZ_TARGET_DIR/$SANITIZER"
log "building ${#TARGETS[@]} targets (release, debug assertions, sanitizer: $SANITIZER)"
cargo "${TOOLCHAIN[@]}" fuzz build --sanitizer "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" >&2

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
declare -A RESULT
failed=0
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "$SCRATCH/$target"
  if [ "$KEEP" = 1 ]; then dirs=("corpus/$target"); else dirs=("$SCRATCH/$target" "corpus/$target"); fi
  log "$target: ${SECONDS_EACH} s"
  if cargo "${TOOLCHAIN[@]}" fuzz run --sanitizer "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" "$target" "${dirs[@]}" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      >"$SCRATCH/$target.log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$SCRATCH/$target.log" | grep -o '[0-9]*$' || echo '?')"
    cov="$(grep -o 'cov: [0-9]*' "$SCRATCH/$target.log" | tail -1 | grep -o '[0-9]*' || echo '?')"
    RESULT[$target]="ok      runs=$runs coverage=$cov corpus=$(ls "corpus/$target" | wc -l)"
  else
    failed=1
    RESULT[$target]="FAILED  see fuzz/artifacts/$target/"
    tail -40 "$SCRATCH/$target.log" >&2
  fi
done

printf '\n%-26s %s\n' target result
for target in "${TARGETS[@]}"; do printf '%-26s %s\n' "$target" "${RESULT[$target]}"; done
exit "$failed"
