#!/usr/bin/env python3
"""Chaos run: api and consumer as separate processes against the real services, clients
registering users while faults are injected, then a check that every 202 became exactly
one user and every other answer left nothing.

Faults (each at a point of the load): the consumer kill -9ed and restarted (--kills
times), PostgreSQL restarted, Redis restarted, the Apache Kafka broker restarted twice
(once stopped with SIGTERM, once kill -9ed), the api SIGTERMed and restarted. Prints a table; exits 1 when anything was
lost, duplicated or left behind.

    scripts/chaos.py --users 10000 --clients 8 --kills 3 --duration 150   # make chaos
    scripts/chaos.py --users 1000 --kills 1 --duration 45 --light-argon2  # CI
Standard library only; needs psql and redis-cli (scripts/services.sh installs both).
"""

import argparse
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kafka_topics(action, names, partitions=4, brokers="127.0.0.1:9092", replication=1):
    """Creates or deletes topics on the local broker with Kafka's own TopicCommand."""
    for name in names:
        argv = [str(SERVICES), "kafka-tool", "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server", brokers, f"--{action}", "--topic", name]
        argv += (["--if-not-exists", "--partitions", str(partitions),
                  "--replication-factor", str(replication)] if action == "create"
                 else ["--if-exists"])
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode != 0 and action == "create":
            raise RuntimeError(f"creating topic {name}: {out.stderr.strip()[-500:]}")


def psql(db, sql):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql],
        capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "postgres"},
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.strip()


class Queue:
    """Hands the items of `items` to several threads, each item once."""

    def __init__(self, items):
        self.items, self.lock = iter(items), threading.Lock()

    def __iter__(self):
        while True:
            with self.lock:
                item = next(self.items, None)
            if item is None:
                return
            yield item


class Load:
    """Clients registering `users` numbered users (`<name>-<run>-<i>@example.com`) spread
    evenly over `duration` seconds; `results[email] = (status, registrationId or None)`."""

    def __init__(self, stack, name, users, clients, duration):
        self.stack, self.name, self.users, self.duration = stack, name, users, duration
        self.results, self.lock = {}, threading.Lock()
        self.numbers = Queue(range(users))
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.started = None

    def start(self):
        self.started = time.time()
        for t in self.threads:
            t.start()

    def _client(self):
        run = self.stack.run
        for i in self.numbers:
            due = self.started + i * self.duration / self.users
            if due > time.time():
                time.sleep(due - time.time())
            email = f"{self.name}-{run}-{i}@example.com"
            status, body = self.stack.register(email, f"{self.name}-{run}-{i}-long-secret")
            rid = (body or {}).get("data", {}).get("registrationId") if status == 202 else None
            with self.lock:
                self.results[email] = (status, rid)

    def submitted(self):
        with self.lock:
            return len(self.results)

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def join(self):
        for t in self.threads:
            t.join()
        return time.time() - self.started


def wait_until(what, check, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return True
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not reached within {timeout} s")


def http(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, None  # no answer (connection refused or cut)


# After a broker restart the consumer must hold partitions again within this many seconds:
# the coordinator reloads the group, expires the old member (one session, 6 s here) and
# assigns. A consumer blocked in a commit to the dead coordinator waited up to 60 s.
REJOIN_BOUND = 20


def seconds(measured):
    """A watcher's result for the table."""
    if isinstance(measured, float):
        return f"{measured:.1f} s"
    return "never" if measured is None else measured


def consumer_metrics(port):
    """(assigned partitions, group lag, users persisted) from a consumer's /metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return None

    def values(name):
        return [float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    assigned = values("registrar_consumer_assigned_partitions")
    persisted = values("registrar_consumer_users_persisted_total")
    lag = values("registrar_consumer_lag")
    return (int(assigned[0]) if assigned else 0, int(sum(lag)) if lag else None,
            int(persisted[0]) if persisted else 0)


class Process:
    """One binary with its own log file; restartable."""

    def __init__(self, name, argv, env, logdir):
        self.name, self.argv, self.env, self.logdir = name, argv, env, logdir
        self.proc, self.starts = None, 0

    def start(self):
        self.starts += 1
        logf = open(self.logdir / f"{self.name}-{self.starts}.log", "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, grace=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    """api and consumer as processes on a fresh database, topic, group and Redis prefix."""

    def __init__(self, name, bin_dir, port, kafka_properties, light_argon2,
                 group_protocol="classic", brokers="127.0.0.1:9092", replication=1,
                 extra_env=None):
        self.run = run = f"{int(time.time())}"
        self.db = db = f"{name}_{run}"
        self.logdir = logdir = ROOT / "target" / name / run
        logdir.mkdir(parents=True, exist_ok=True)
        self.api_bin, consumer_bin = bin_dir / "api", bin_dir / "consumer"
        for b in (self.api_bin, consumer_bin):
            if not b.exists():
                sys.exit(f"{b} is missing: build it (the make target does)")
        subprocess.run([str(SERVICES), "up"], check=True)
        psql("postgres", f'CREATE DATABASE "{db}"')
        self.topic = topic = f"{name}-{run}"
        self.brokers = brokers
        self.topics = (topic, f"{topic}.dlq", f"{topic}.events")
        kafka_topics("create", self.topics, brokers=brokers, replication=replication)
        keys = subprocess.run([str(self.api_bin), "keygen", "--key-id", "k1"],
                              capture_output=True, text=True, check=True).stdout
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KAFKA_", "DATABASE_", "REDIS_"))}
        for line in keys.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
        self.prefix = f"{name}{run}:"
        env.update({
            "DATABASE_URL": f"postgres://postgres:postgres@127.0.0.1:5432/{db}",
            "REDIS_URL": "redis://127.0.0.1:6379", "REDIS_KEY_PREFIX": self.prefix,
            "KAFKA_BROKERS": brokers, "KAFKA_TOPIC": topic, "USER_EVENTS_TOPIC": f"{topic}.events", "KAFKA_GROUP_ID": topic,
            "KAFKA_PROPERTIES": kafka_properties, "KAFKA_GROUP_PROTOCOL": group_protocol,
            # A kill -9ed consumer's partitions move after this (classic protocol).
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "PORT": str(port), "CONSUMER_PORT": str(port + 1), "HOST": "127.0.0.1",
            "LOG_LEVEL": os.environ.get("CHAOS_LOG_LEVEL", "info"), "LOG_FORMAT": "json",
            "RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_BURST": "1000000",
            "AUTH_RATE_LIMIT_PER_MINUTE": "1000000", "AUTH_RATE_LIMIT_BURST": "1000000",
        })
        if light_argon2:
            env.update({"ARGON2_MEMORY_KIB": "1024", "ARGON2_ITERATIONS": "1"})
        env.update(extra_env or {})
        self.env = env
        subprocess.run([str(self.api_bin), "migrate"], env=env, check=True, capture_output=True)
        self.api = Process("api", [str(self.api_bin), "serve"], env, logdir)
        self.consumer = Process("consumer", [str(consumer_bin)], env, logdir)
        self.processes = [self.api, self.consumer]
        # Whatever ends the run (a failed check, an exception, Ctrl-C), no process of it
        # outlives it to hold a port or consume the next run's topic.
        atexit.register(self.kill_all)
        self.base = f"http://127.0.0.1:{port}"
        self.api.start()
        self.consumer.start()
        wait_until("api ready", lambda: http("GET", f"{self.base}/api/v1/health/ready")[0] == 200, 60)

    def extra_consumer(self, name, port):
        """Another member of the same group, with its own health/metrics port."""
        proc = Process(name, [str(self.consumer.argv[0])], {**self.env, "CONSUMER_PORT": str(port)},
                       self.logdir)
        self.processes.append(proc)
        return proc

    def kill_all(self):
        for proc in self.processes:
            if proc.proc and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()

    def drop_database(self):
        """Removes what a passed run leaves: its database and topics."""
        psql("postgres", f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        kafka_topics("delete", self.topics, brokers=self.brokers)

    def stop(self):
        self.api.terminate()
        self.consumer.terminate()

    def register(self, email, password):
        return http("POST", f"{self.base}/api/v1/users", {
            "firstName": "Chaos", "lastName": "Monkey", "email": email, "password": password,
            "gender": "female", "sex": "female", "occupation": "Engineer"})

    def logged_registrations(self, event):
        """How many registrations the logs of this run name under `event`."""
        ids = set()
        for path in self.logdir.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if f'"{event}"' in line:
                    try:
                        ids.add(json.loads(line).get("registration_id"))
                    except ValueError:
                        ids.add(line)
        return len(ids)

    def drain_and_check(self, results, like, clients, timeout):
        """Waits until every accepted registration is a user, then checks the promises:
        each 202 exactly one user and one `user.registered` audit row, no non-2xx left a
        user or a pending key, every accepted registration polls `completed`. Returns
        (table rows, failure text or None, seconds waited for the drain)."""
        accepted = {e: rid for e, (s, rid) in results.items() if s == 202}
        refused = [e for e, (s, _) in results.items() if s != 202]
        db = self.db
        t0 = time.time()
        wait_until("drain", lambda: int(psql(db, f"SELECT count(*) FROM users WHERE email LIKE '{like}'"))
                   >= len(accepted), timeout)
        drain = time.time() - t0
        rows = psql(db, f"SELECT email, count(*) FROM users WHERE email LIKE '{like}' GROUP BY email")
        users = {l.split("|")[0]: int(l.split("|")[1]) for l in rows.splitlines() if l}
        audits = psql(db, "SELECT count(*) FROM user_audit_log a JOIN users u ON u.id = a.user_id "
                          f"WHERE a.action = 'user.registered' AND u.email LIKE '{like}' "
                          "GROUP BY a.user_id HAVING count(*) > 1")
        persisted = sum(1 for e in accepted if e in users)
        lost = len(accepted) - persisted
        duplicated = sum(n - 1 for n in users.values()) + len([l for l in audits.splitlines() if l])
        refused_left = [e for e in refused if e in users]
        pending_left = []
        for e in refused:
            out = subprocess.run(["redis-cli", "-p", "6379", "EXISTS", f"{self.prefix}user:pending:{e}"],
                                 capture_output=True, text=True).stdout.strip()
            if out == "1":
                pending_left.append(e)

        not_completed = []
        poll_lock = threading.Lock()
        polls = Queue(list(accepted.items()))

        def poller():
            for email, rid in polls:
                status, body = http("GET", f"{self.base}/api/v1/users/{email}?registrationId={rid}")
                if status != 200 or (body or {}).get("data", {}).get("status") != "completed":
                    with poll_lock:
                        not_completed.append((email, status))

        pollers = [threading.Thread(target=poller) for _ in range(clients)]
        for t in pollers:
            t.start()
        for t in pollers:
            t.join()
        codes = {}
        for s, _ in results.values():
            codes[s] = codes.get(s, 0) + 1
        table = [
            ("answers", ", ".join(f"{'no answer' if c == 0 else c}: {n}" for c, n in sorted(codes.items()))),
            ("accepted (202)", len(accepted)),
            ("persisted", persisted),
            ("lost (must be 0)", lost),
            ("duplicated (must be 0)", duplicated),
            ("non-2xx that left a user (must be 0)", len(refused_left)),
            ("503s whose record was written anyway, skipped as withdrawn",
             self.logged_registrations("withdrawn_registration_skipped")),
            ("failed publishes a consumer had taken, answered 202",
             self.logged_registrations("registration_taken_despite_publish_error")),
            ("non-2xx that left a pending key (must be 0)", len(pending_left)),
            ("accepted not polling completed (must be 0)", len(not_completed)),
        ]
        failure = None
        if lost or duplicated or refused_left or pending_left or not_completed:
            failure = (f"lost {lost}, duplicated {duplicated}, refused-left {refused_left[:5]}, "
                       f"pending-left {pending_left[:5]}, not completed {not_completed[:5]}")
        return table, failure, drain


def machine_rows(light_argon2, kafka_properties):
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        ("machine", f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().machine}"),
        ("argon2", "light (1 MiB, 1 pass)" if light_argon2 else "production defaults"),
        ("broker", f"Apache Kafka {kafka_version()}, one KRaft node"),
        ("KAFKA_PROPERTIES", kafka_properties or "(none: idempotent producer, acks=all)"),
    ]


def kafka_version():
    cache = Path(os.environ.get("REGISTRAR_CACHE", Path.home() / ".cache" / "registrar"))
    try:
        return (cache / "kafka" / "current").read_text().strip()
    except OSError:
        return "(unknown)"


def print_table(title, rows):
    print(f"\n| {title} | |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--kills", type=int, default=3, help="consumer kill -9s")
    p.add_argument("--only-kills", action="store_true",
                   help="inject only the consumer kills (crash-recovery measurement)")
    p.add_argument("--duration", type=float, default=150,
                   help="seconds over which the submissions are spread, so faults land mid-load")
    p.add_argument("--bin", default=str(ROOT / "target" / "release"))
    p.add_argument("--light-argon2", action="store_true",
                   help="cheap hashing parameters (CI), not the production defaults")
    p.add_argument("--drain-timeout", type=int, default=600)
    p.add_argument("--port", type=int, default=18100)
    p.add_argument("--kafka-properties", default="",
                   help="KAFKA_PROPERTIES for both binaries (default none: the production "
                        "producer, idempotent with acks=all)")
    p.add_argument("--group-protocol", default="classic", choices=["classic", "consumer"])
    args = p.parse_args()

    stack = Stack("chaos", Path(args.bin), args.port, args.kafka_properties, args.light_argon2,
                  args.group_protocol)
    run, base = stack.run, stack.base
    api, consumer, logdir = stack.api, stack.consumer, stack.logdir

    load = Load(stack, "chaos", args.users, args.clients, args.duration)
    results, submitted = load.results, load.submitted

    # Faults at fractions of the load; consumer kills spread over it.
    plan = [((k + 1) / (args.kills + 5), "consumer kill -9") for k in range(args.kills)]
    if args.only_kills:
        plan = [((k + 1) / (args.kills + 1), "consumer kill -9") for k in range(args.kills)]
    else:
        n = args.kills + 6
        plan = [((k + 1) / n, "consumer kill -9") for k in range(args.kills)]
        plan += [((args.kills + 1) / n, "PostgreSQL restart"),
                 ((args.kills + 2) / n, "Redis restart"),
                 ((args.kills + 3) / n, "broker SIGTERM + restart"),
                 ((args.kills + 4) / n, "broker kill -9 + restart"),
                 ((args.kills + 5) / n, "api SIGTERM + restart")]
    plan.sort()
    injected, last_fault_end, resumed, rejoined, watchers = [], None, [], [], []
    consumer_port = args.port + 1

    def time_to_resume(started_at, into, slot, interrupted):
        """Seconds until the consumer holds partitions again, into `into[slot]`; "next
        fault first" when `interrupted` is set before that."""
        deadline = started_at + 300
        while time.time() < deadline:
            if interrupted.is_set():
                into[slot] = "next fault first"
                return
            m = consumer_metrics(consumer_port)
            if m and m[0] > 0:
                into[slot] = time.time() - started_at
                return
            time.sleep(0.5)
        into[slot] = None

    broker_watch = []

    def watch(into):
        interrupted = threading.Event()
        into.append("watching")
        watcher = threading.Thread(target=time_to_resume,
                                   args=(time.time(), into, len(into) - 1, interrupted), daemon=True)
        watcher.start()
        watchers.append(watcher)
        return interrupted

    def inject(fault):
        t0 = time.time()
        if fault == "consumer kill -9":
            consumer.kill9()
            consumer.start()
            watch(resumed)
        elif fault == "PostgreSQL restart":
            version = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v))[-1]
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            subprocess.run(sudo + ["pg_ctlcluster", "--skip-systemctl-redirect", version,
                                   "main", "restart"], check=True, capture_output=True)
        elif fault == "Redis restart":
            subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
            subprocess.run([str(SERVICES), "up"], check=True, capture_output=True)
        elif fault.startswith("broker"):
            # A rejoin still awaited when the broker goes down again is not measured.
            for interrupted in broker_watch:
                interrupted.set()
            stop = [str(SERVICES), "stop-kafka"] + (["--kill"] if "kill -9" in fault else [])
            subprocess.run(stop, check=True, capture_output=True)
            subprocess.run([str(SERVICES), "up"], check=True, capture_output=True)
            # The running consumer lost its partitions with the coordinator; it must
            # hold them again soon after the broker is back, not a request timeout later.
            broker_watch.append(watch(rejoined))
        elif fault == "api SIGTERM + restart":
            api.terminate()
            api.start()
            wait_until("api ready again", lambda: http("GET", f"{base}/api/v1/health/live")[0] == 200, 60)
        injected.append((fault, time.time() - t0))
        log(f"{fault} done in {time.time() - t0:.1f} s (submitted {submitted()})")
        return time.time()

    load.start()
    for fraction, fault in plan:
        while submitted() < fraction * args.users and load.running():
            time.sleep(0.05)
        last_fault_end = inject(fault)
    load_secs = load.join()

    like = f"chaos-{run}-%"
    log(f"load done: {sum(1 for s, _ in results.values() if s == 202)} accepted; waiting for the drain")
    checks, failure, _ = stack.drain_and_check(results, like, args.clients, args.drain_timeout)
    drain_secs = time.time() - last_fault_end
    for watcher in watchers:
        watcher.join()
    stack.stop()
    print_table("chaos run", machine_rows(args.light_argon2, args.kafka_properties) + [
        ("clients / users submitted", f"{args.clients} / {len(results)} in {load_secs:.0f} s"),
        ("faults injected", ", ".join(f"{f} ({d:.1f} s)" for f, d in injected)),
        ("consumer holding partitions again after each kill -9",
         ", ".join(seconds(r) for r in resumed)),
        (f"consumer holding partitions again after each broker restart (must be ≤ {REJOIN_BOUND} s)",
         ", ".join(seconds(r) for r in rejoined)),
    ] + checks + [("drain after the last fault", f"{drain_secs:.1f} s")])
    print(f"\nlogs: {logdir}")
    if any(not isinstance(r, float) for r in resumed):
        failure = failure or "a restarted consumer never got partitions"
    if any(r is None or (isinstance(r, float) and r > REJOIN_BOUND) for r in rejoined):
        failure = failure or f"the consumer did not hold partitions within {REJOIN_BOUND} s of a broker restart"
    if failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    stack.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
