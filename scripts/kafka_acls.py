#!/usr/bin/env python3
"""Checks that the Strimzi KafkaUsers in the YAML files given grant exactly the ACLs of
an acls.tsv (principal, operations, resource type, name, pattern), no more, no less."""
import sys

import yaml


def from_tsv(path):
    acls = set()
    for line in open(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        principal, operations, kind, name, pattern = line.split()
        for op in operations.split(","):
            acls.add((principal, op, kind, name, pattern))
    return acls


def from_kafka_users(path):
    acls = set()
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "KafkaUser":
            continue
        principal = doc["metadata"]["name"]
        assert doc["spec"]["authentication"]["type"].startswith("scram-sha-"), principal
        for acl in doc["spec"]["authorization"]["acls"]:
            r = acl["resource"]
            # Strimzi says `prefix` where the Kafka tools say `prefixed`.
            pattern = {"prefix": "prefixed"}.get(r.get("patternType", "literal"), r.get("patternType"))
            for op in acl["operations"]:
                acls.add((principal, op, r["type"], r["name"], pattern))
    return acls


def main():
    wanted = from_tsv(sys.argv[1])
    failed = False
    for path in sys.argv[2:]:
        got = from_kafka_users(path)
        if got != wanted:
            failed = True
            print(f"{path}: missing {sorted(wanted - got)}, extra {sorted(got - wanted)}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
