# The two commands of the README: `make run` and `make test`.
.PHONY: run test services lint fmt bench chaos chaos-short api-fuzz

CARGO ?= cargo

run:
	scripts/run.sh

# The binaries first: crash tests run the real consumer as a process they can kill -9.
test: services
	$(CARGO) build --bin api --bin consumer
	$(CARGO) test --workspace
	$(MAKE) chaos-short

# Faults while clients register (README "Chaos"): 10 000 users, production hashing.
chaos: services
	$(CARGO) build --release --bin api --bin consumer
	scripts/chaos.py --users 10000 --clients 8 --kills 3 --duration 150

# The CI version: one fault of each kind, 1 000 users, the debug binaries of `make test`.
chaos-short: services
	$(CARGO) build --bin api --bin consumer
	scripts/chaos.py --users 1000 --clients 8 --kills 1 --duration 45 --light-argon2 --bin target/debug

# Generated requests from the OpenAPI document (schemathesis in .local/venv), all routes,
# anonymous, user and admin (README "Generated input"). Not yet in `make test`.
api-fuzz: services
	$(CARGO) build --bin api --bin consumer
	scripts/api_fuzz.py --examples 100

services:
	scripts/services.sh up

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	scripts/bench.sh
