# The two commands of the README: `make run` and `make test`. The manual: docs/ (make docs).
.PHONY: run test services rules lint fmt bench chaos chaos-short api-fuzz api-fuzz-short \
	chaos-cluster scale-out scale-out-short fuzz fuzz-short soak profile e2e client console deploy-check docs config-reference

CARGO ?= cargo

run:
	scripts/run.sh

# The binaries first: crash tests run the real consumer as a process they can kill -9.
test: services rules
	$(CARGO) build --bin api --bin consumer
	$(CARGO) test --workspace
	$(MAKE) chaos-short scale-out-short api-fuzz-short fuzz-short e2e deploy-check

# Faults while clients register (docs/src/reliability.md "Chaos"): 10 000 users, production hashing.
chaos: services
	$(CARGO) build --release --bin api --bin consumer
	scripts/chaos.py --users 10000 --clients 8 --kills 3 --duration 150

# The CI version: one fault of each kind, 1 000 users, the debug binaries of `make test`.
chaos-short: services
	$(CARGO) build --bin api --bin consumer
	scripts/chaos.py --users 1000 --clients 8 --kills 1 --duration 45 --light-argon2 --bin target/debug

# A three-node KRaft cluster (replication factor 3, min.insync.replicas=2): one broker
# kill -9ed and restarted under load, then another (docs/src/reliability.md).
chaos-cluster: services
	$(CARGO) build --release --bin api --bin consumer
	scripts/chaos_cluster.py --users 6000 --duration 120

# Three consumers under steady load; one joins, one leaves, one is kill -9ed
# (docs/src/reliability.md "Scale-out").
scale-out: services
	$(CARGO) build --release --bin api --bin consumer
	scripts/scale_out.py --users 6000 --duration 120

scale-out-short: services
	$(CARGO) build --bin api --bin consumer
	scripts/scale_out.py --users 1500 --duration 45 --light-argon2 --bin target/debug

# Generated requests from the OpenAPI document (schemathesis in .local/venv), all routes,
# anonymous, user and admin (docs/src/reliability.md "Generated input").
api-fuzz: services
	$(CARGO) build --bin api --bin consumer
	scripts/api_fuzz.py --examples 100

api-fuzz-short: services
	$(CARGO) build --bin api --bin consumer
	scripts/api_fuzz.py --examples 40 --min-cases 1000

# libFuzzer on the parsers of outside bytes (docs/src/reliability.md "Fuzzing"): 10 minutes per target,
# new inputs kept in fuzz/corpus; the short version reads the corpus only.
fuzz:
	scripts/fuzz.sh --seconds 600 --keep

fuzz-short:
	scripts/fuzz.sh --seconds 30 --sanitizer none

# 30 minutes at half of the measured capacity; RSS, throughput and lag plotted
# (docs/src/reliability.md "Soak").
soak: services
	$(CARGO) build --release --bin api --bin consumer
	scripts/soak.py --minutes 30 --svg docs/src/soak.svg

# The TypeScript client's unit and integration tests and the sign-up page in a real
# Chromium, against a real api and consumer (docs/src/typescript-client.md).
e2e: services
	$(CARGO) build --bin api --bin consumer
	scripts/e2e.py

# The operators' console into console/dist (served by the api at /console; CONSOLE_DIR).
console:
	cd console && npm ci --no-audit --no-fund --loglevel=error && npm run build

# Regenerates the TypeScript client's types from the api's OpenAPI document.
client:
	$(CARGO) build --bin api
	target/debug/api openapi > clients/typescript/openapi.json
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run generate

# The Helm chart rendered by the real helm (default and TLS/SASL values) and every
# manifest, rendered and k8s/, checked against the Kubernetes schemas (docs/src/deployment.md).
deploy-check:
	scripts/deploy_check.sh

# The manual as HTML in target/book (mdBook, installed once from crates.io into
# ~/.cache/registrar/mdbook). Not part of `make test`: the Markdown is checked there.
MDBOOK_VERSION ?= 0.5.4
MDBOOK := $(or $(REGISTRAR_CACHE),$(HOME)/.cache/registrar)/mdbook/bin/mdbook
docs:
	@test -x $(MDBOOK) || $(CARGO) install mdbook --version $(MDBOOK_VERSION) --locked \
		--root $(dir $(MDBOOK))..
	$(MDBOOK) build docs

# Rewrites docs/src/configuration.md from the binaries' clap definitions.
config-reference:
	UPDATE_DOCS=1 $(CARGO) test -p registrar-tests --test it -- docs::the_configuration_reference

services:
	scripts/services.sh up

# The alerting rules: syntax (with the Prometheus config that loads them) and their unit
# tests (deploy/prometheus/alerts.test.yml). promtool comes with scripts/services.sh.
rules:
	scripts/services.sh prometheus
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/alerts.test.yml

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	scripts/bench.sh

# One benchmark with perf on the api (or consumer), drawn with inferno (
# docs/src/benchmarks.md): `make profile ARGS="api poll --concurrency 64"`.
profile:
	scripts/profile.sh $(ARGS)
