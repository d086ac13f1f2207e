#!/usr/bin/env python3
"""Cluster chaos: a three-node Apache Kafka cluster (KRaft; every node a controller and a
broker) on this machine, the topic with replication factor 3 and min.insync.replicas=2,
the api producing with acks=all and idempotence. Under steady registration load one
broker is kill -9ed and restarted, then another. At the end every 202 must be exactly one
user; the api's 503s are counted and each leader election is timed (from the kill to
the first 202 of a registration whose partition the killed broker led, measured as the
window in which the api answered anything but 202).

    scripts/chaos_cluster.py                      # make chaos-cluster
    scripts/chaos_cluster.py --users 2000 --duration 60 --light-argon2 --bin target/debug
Standard library only; Kafka's jars come from scripts/services.sh (Maven Central).
"""

import argparse
import shutil
import signal
import subprocess
import sys
import time
import uuid
import base64
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import (ROOT, SERVICES, Load, Stack, log, machine_rows,  # noqa: E402
                   print_table, wait_until, kafka_topics)

NODES = (1, 2, 3)


def port(node, controller=False):
    return 29090 + 2 * node + (1 if controller else 0)


class Cluster:
    """Three KRaft nodes in a scratch directory, each restartable."""

    def __init__(self, base):
        self.base = base
        self.procs = {}
        self.classpath = subprocess.run([str(SERVICES), "kafka-jars"], check=True,
                                        capture_output=True, text=True).stdout.strip().splitlines()[-1]
        voters = ",".join(f"{n}@127.0.0.1:{port(n, True)}" for n in NODES)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for n in NODES:
            d = base / f"node{n}"
            d.mkdir(parents=True)
            (d / "server.properties").write_text("\n".join([
                "process.roles=broker,controller",
                f"node.id={n}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{port(n)},CONTROLLER://127.0.0.1:{port(n, True)}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port(n)}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={d}/logs",
                "default.replication.factor=3", "min.insync.replicas=2",
                "offsets.topic.replication.factor=3", "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2",
                "share.coordinator.state.topic.replication.factor=3",
                "share.coordinator.state.topic.min.isr=2",
                "auto.create.topics.enable=false", "group.initial.rebalance.delay.ms=0",
                "num.network.threads=2", "num.io.threads=2", "num.replica.fetchers=1",
                # A dead broker is fenced after this; its partitions' leadership moves then.
                "broker.heartbeat.interval.ms=1000", "broker.session.timeout.ms=6000",
                "unclean.leader.election.enable=false",
                "group.min.session.timeout.ms=3000",
            ]) + "\n")
            self.java(d, ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c",
                          str(d / "server.properties")], wait=True)

    def java(self, d, argv, wait=False):
        cmd = ["java", "-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-cp", self.classpath,
               f"-Dlog4j2.configurationFile={ROOT}/scripts/kafka/log4j2.properties",
               f"-Dkafka.log.file={d}/kafka.log"] + argv
        if wait:
            subprocess.run(cmd, check=True, capture_output=True)
            return None
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)

    def start(self, n):
        d = self.base / f"node{n}"
        self.procs[n] = self.java(d, ["kafka.Kafka", str(d / "server.properties")])

    def kill9(self, n):
        self.procs[n].send_signal(signal.SIGKILL)
        self.procs[n].wait()

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{port(n)}" for n in NODES)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=6000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--bin", default=str(ROOT / "target" / "release"))
    p.add_argument("--light-argon2", action="store_true")
    p.add_argument("--drain-timeout", type=int, default=600)
    p.add_argument("--port", type=int, default=18300)
    p.add_argument("--victims", default="1,2", help="nodes kill -9ed in turn")
    args = p.parse_args()

    base = ROOT / "target" / "chaos-cluster" / f"{int(time.time())}"
    base.mkdir(parents=True)
    cluster = Cluster(base / "kafka")
    for n in NODES:
        cluster.start(n)
    try:
        t0 = time.time()
        wait_until("three brokers", lambda: subprocess.run(
            [str(SERVICES), "kafka-tool", "org.apache.kafka.tools.BrokerApiVersionsCommand",
             "--bootstrap-server", cluster.bootstrap()], capture_output=True, text=True
        ).stdout.count("(id: ") >= 3, 120)
        log(f"cluster of three up after {time.time() - t0:.1f} s")
        stack = Stack("chaoscluster", Path(args.bin), args.port, "", args.light_argon2,
                      brokers=cluster.bootstrap(), replication=3,
                      extra_env={"USER_EVENTS_RELAY": "true"})
        load = Load(stack, "chaoscluster", args.users, args.clients, args.duration)
        answers = []  # (sent at, status) of every registration
        register = stack.register

        def timed_register(email, password):
            sent = time.time()
            status, body = register(email, password)
            answers.append((sent, status))
            return status, body
        stack.register = timed_register

        victims = [int(v) for v in args.victims.split(",")]
        kills = []  # (node, killed at, restarted at)
        load.start()
        for i, node in enumerate(victims):
            while load.submitted() < (i + 1) / (len(victims) + 1) * args.users and load.running():
                time.sleep(0.05)
            killed = time.time()
            cluster.kill9(node)
            log(f"broker {node} kill -9 (submitted {load.submitted()})")
            time.sleep(10)
            cluster.start(node)
            kills.append((node, killed, time.time()))
            log(f"broker {node} restarted")
        load_secs = load.join()
        like = "chaoscluster-" + stack.run + "-%"
        checks, failure, _ = stack.drain_and_check(load.results, like, args.clients, args.drain_timeout)
        stack.stop()
        # A 503 after the api's produce timeout whose record the new leader still wrote
        # (the producer's retry landed after the api gave up) is withdrawn: no consumer
        # persists it, so "non-2xx that left a user" must be 0 here as everywhere.
        # The consumers' registrar_consumer_registrations_withdrawn_total counts them.

        rows = []
        ordered = sorted(answers)
        ends = [k[1] for k in kills[1:]] + [float("inf")]
        for (node, killed, restarted), end in zip(kills, ends):
            # Registrations sent from this kill until the next one.
            window = [(t, s) for t, s in ordered if killed - 6 <= t < end]
            bad = [t for t, s in window if s != 202]
            if bad:
                first_ok = min((t for t, s in window if s == 202 and t > max(bad)), default=None)
                election = (f"{len(bad)} not 202, sent {min(bad) - killed:+.1f} to "
                            f"{max(bad) - killed:+.1f} s from the kill; 202 again for those sent from "
                            + (f"{first_ok - killed:+.1f} s" if first_ok else "(none)"))
            else:
                election = "every registration answered 202"
            rows.append((f"broker {node} kill -9, restarted {restarted - killed:.0f} s later", election))
        codes = {}
        for _, s in answers:
            codes[s] = codes.get(s, 0) + 1
        print_table("cluster chaos run", [r for r in machine_rows(args.light_argon2, "") if r[0] != "broker"] + [
            ("cluster", "3 KRaft nodes (controller + broker), replication factor 3, min.insync.replicas=2, acks=all, idempotent producer"),
            ("clients / users submitted", f"{args.clients} / {len(load.results)} in {load_secs:.0f} s"),
            ("503s", codes.get(503, 0)),
        ] + rows + checks)
        print(f"\nlogs: {stack.logdir}, brokers: {base / 'kafka'}")
        if failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
        stack.drop_database()
        shutil.rmtree(base / "kafka", ignore_errors=True)
        return 0
    finally:
        cluster.stop_all()


if __name__ == "__main__":
    sys.exit(main())
