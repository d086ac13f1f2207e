#!/usr/bin/env python3
"""Where the samples of a folded perf profile (inferno-collapse-perf output) went.

Each sample is charged to the innermost frame that belongs to a known component (walking
from the leaf towards the root), so nested layers are not counted twice; samples of the
kernel are charged to the component that made the system call. Prints a Markdown table.
Usage: profile_summary.py FILE.folded
"""
import collections
import re
import sys

# (component, pattern over one frame); the first match from the leaf wins.
COMPONENTS = [
    ("HPKE sealing (X25519, key schedule)", r"hpke::|curve25519|x25519"),
    ("AEAD (XChaCha20-Poly1305)", r"chacha20|poly1305"),
    ("Avro encoding", r"apache_avro|events::registration"),
    ("password policy, validation", r"password_policy|domain::(registration|email|username)"),
    ("JSON (serde_json)", r"serde_json|serde::"),
    ("metrics (prometheus)", r"prometheus::|metrics::track"),
    ("tracing", r"tracing_core|tracing_subscriber|tracing::|tracing_opentelemetry"),
    ("request ids, uuid", r"uuid::|request_id"),
    ("Redis client", r"redis::|deadpool_redis|combine::"),
    ("rdkafka, librdkafka", r"rd_kafka|rdkafka|^rdk:"),
    ("hyper (HTTP/1)", r"hyper::|hyper_util::|httparse|http::"),
    ("axum routing, middleware", r"axum::|tower_http::|tower::|matchit"),
    ("tokio runtime, I/O", r"tokio::"),
    ("malloc, free", r"malloc|^_int_|free|realloc|tcache|unlink_chunk|memcpy|memmove"),
]
COMPILED = [(name, re.compile(p)) for name, p in COMPONENTS]


def main(path):
    total = 0
    charged = collections.Counter()
    threads = collections.Counter()
    for line in open(path, encoding="utf-8", errors="replace"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[re.sub(r"[-_]?\d+$", "", frames[0])] += n
        for frame in reversed(frames):
            hit = next((name for name, p in COMPILED if p.search(frame)), None)
            if hit:
                charged[hit] += n
                break
        else:
            charged["other (kernel scheduling, libc)"] += n
    print("| component | share of the process's CPU samples |")
    print("|---|---|")
    for name, n in charged.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    print()
    print("| thread | share |")
    print("|---|---|")
    for name, n in threads.most_common(8):
        print(f"| {name} | {100 * n / total:.1f} % |")


if __name__ == "__main__":
    main(sys.argv[1])
