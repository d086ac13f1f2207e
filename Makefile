# The two commands of the README: `make run` and `make test`.
.PHONY: run test services lint fmt bench

CARGO ?= cargo

run:
	scripts/run.sh

# The binaries first: crash tests run the real consumer as a process they can kill -9.
test: services
	$(CARGO) build --bin api --bin consumer
	$(CARGO) test --workspace

services:
	scripts/services.sh up

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	scripts/bench.sh
