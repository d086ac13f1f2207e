#!/bin/sh
# Creates the topics and grants the ACLs of acls.tsv (beside this script), as the admin
# principal. Safe to run again: existing topics and ACLs are left as they are.
#
# Environment: KAFKA_ADMIN_PASSWORD; optional KAFKA_BIN (/opt/kafka/bin),
# KAFKA_BOOTSTRAP (kafka:9092), KAFKA_PARTITIONS (12), KAFKA_REPLICATION (1).
set -eu

BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${KAFKA_BOOTSTRAP:-kafka:9092}
PARTITIONS=${KAFKA_PARTITIONS:-12}
REPLICATION=${KAFKA_REPLICATION:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
: "${KAFKA_ADMIN_PASSWORD:?KAFKA_ADMIN_PASSWORD is required}"

umask 077
ADMIN_CONFIG=$(mktemp)
trap 'rm -f "$ADMIN_CONFIG"' EXIT
cat > "$ADMIN_CONFIG" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
PROPERTIES

topic() {
    "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" \
        --create --if-not-exists --topic "$1" --partitions "$2" \
        --replication-factor "$REPLICATION" --config "retention.ms=$3"
}
topic user-registration "$PARTITIONS" 86400000
topic user-registration.dlq 3 1209600000
topic user-events 6 1209600000
topic oidc-client-events 1 1209600000

grep -v '^[[:space:]]*\(#\|$\)' "$HERE/acls.tsv" | while read -r principal operations type name pattern; do
    set --
    for operation in $(echo "$operations" | tr ',' ' '); do
        set -- "$@" --operation "$operation"
    done
    "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" \
        --add --allow-principal "User:$principal" "$@" \
        "--$type" "$name" --resource-pattern-type "$pattern" > /dev/null
    echo "granted $operations on $type $name ($pattern) to $principal"
done
