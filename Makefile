# The two commands of the README: `make run` and `make test`.
.PHONY: run test services lint fmt bench

CARGO ?= cargo

run:
	scripts/run.sh

test: services
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
