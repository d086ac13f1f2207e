#!/bin/sh
# Starts one Apache Kafka node (KRaft: broker and controller in one process) that admits
# only authenticated clients: its client listener takes SASL/SCRAM-SHA-512, the
# controller listener listens on loopback only and takes SASL/PLAIN, and the authorizer
# denies whatever no ACL allows (deploy/kafka/acls.tsv, applied by setup.sh).
#
# The SCRAM credentials are created when the storage is first formatted; change one
# later with kafka-configs.sh --alter --entity-type users.
#
# Environment: KAFKA_ADMIN_PASSWORD, KAFKA_CONTROLLER_PASSWORD, KAFKA_API_PASSWORD,
# KAFKA_CONSUMER_PASSWORD, KAFKA_OPERATOR_PASSWORD (letters, digits, - and _ only);
# optional KAFKA_BIN (/opt/kafka/bin), KAFKA_DATA (/var/lib/kafka/data),
# KAFKA_ADVERTISED_HOST (kafka), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093).
set -eu

die() { echo "start.sh: $*" >&2; exit 2; }
password() {
    eval "value=\${$1:-}"
    [ -n "$value" ] || die "$1 is required"
    case $value in *[!A-Za-z0-9_-]*) die "$1 may hold only letters, digits, - and _" ;; esac
    [ ${#value} -ge 16 ] || die "$1 must be at least 16 characters"
    printf '%s' "$value"
}
ADMIN=$(password KAFKA_ADMIN_PASSWORD)
CONTROLLER=$(password KAFKA_CONTROLLER_PASSWORD)
API=$(password KAFKA_API_PASSWORD)
CONSUMER=$(password KAFKA_CONSUMER_PASSWORD)
OPERATOR=$(password KAFKA_OPERATOR_PASSWORD)

BIN=${KAFKA_BIN:-/opt/kafka/bin}
DATA=${KAFKA_DATA:-/var/lib/kafka/data}
HOST=${KAFKA_ADVERTISED_HOST:-kafka}
PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
mkdir -p "$DATA/logs"
CONFIG=$DATA/server.properties
umask 077
cat > "$CONFIG" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=SASL_PLAINTEXT://:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$CONTROLLER" user_controller="$CONTROLLER";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
auto.create.topics.enable=false
log.dirs=$DATA/logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES

if [ ! -f "$DATA/logs/meta.properties" ]; then
    # `=`: a cluster id may start with `-`, which would read as an option.
    "$BIN/kafka-storage.sh" format --standalone --cluster-id="$("$BIN/kafka-storage.sh" random-uuid)" \
        -c "$CONFIG" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN]" \
        --add-scram "SCRAM-SHA-512=[name=registrar-api,password=$API]" \
        --add-scram "SCRAM-SHA-512=[name=registrar-consumer,password=$CONSUMER]" \
        --add-scram "SCRAM-SHA-512=[name=registrar-operator,password=$OPERATOR]" > /dev/null
fi
exec "$BIN/kafka-server-start.sh" "$CONFIG"
