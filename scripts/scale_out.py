#!/usr/bin/env python3
"""Scale-out run: three consumers of one group under steady registration load; a fourth
joins, one leaves cleanly (SIGTERM) and one is kill -9ed mid-run. At the end every 202
must be exactly one user (nothing lost, nothing duplicated), the group's lag must be back
to 0, and the partitions must be spread over the survivors. Prints a table and a
timeline of the assignment (partitions held per consumer, group lag).

    scripts/scale_out.py                                    # make scale-out
    scripts/scale_out.py --users 1500 --duration 40 --light-argon2 --bin target/debug  # CI
Standard library only; reuses the process stack of scripts/chaos.py.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import (ROOT, Load, Stack, consumer_metrics, log, machine_rows,  # noqa: E402
                   print_table, wait_until)

PARTITIONS = 4  # the topic Stack creates


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=6000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=120,
                   help="seconds over which the submissions are spread (steady load)")
    p.add_argument("--bin", default=str(ROOT / "target" / "release"))
    p.add_argument("--light-argon2", action="store_true",
                   help="cheap hashing parameters (CI), not the production defaults")
    p.add_argument("--drain-timeout", type=int, default=600)
    p.add_argument("--port", type=int, default=18200)
    p.add_argument("--kafka-properties", default="")
    p.add_argument("--group-protocol", default="classic", choices=["classic", "consumer"])
    args = p.parse_args()

    stack = Stack("scaleout", Path(args.bin), args.port, args.kafka_properties, args.light_argon2,
                  args.group_protocol)
    run = stack.run
    # Consumers by name: (process, metrics port). c1 is the stack's own.
    consumers = {"c1": (stack.consumer, args.port + 1)}
    for n in (2, 3):
        proc = stack.extra_consumer(f"c{n}", args.port + n)
        proc.start()
        consumers[f"c{n}"] = (proc, args.port + n)

    def alive():
        return {n: port for n, (proc, port) in consumers.items() if proc.proc.poll() is None}

    def assignment():
        seen = {n: consumer_metrics(port) for n, port in alive().items()}
        return {n: s for n, s in seen.items() if s is not None}

    def spread():
        """True when the live consumers hold every partition between them, each at least one."""
        a = assignment()
        held = [s[0] for s in a.values()]
        return len(a) == len(alive()) and sum(held) == PARTITIONS and min(held) >= 1

    t0 = time.time()
    wait_until("three consumers sharing the partitions", spread, 120)
    log(f"three consumers share {PARTITIONS} partitions after {time.time() - t0:.1f} s")

    timeline = []  # (seconds since load start, {name: partitions}, lag)
    stop_sampling = threading.Event()

    def sampler():
        while not stop_sampling.is_set():
            a = assignment()
            lags = [s[1] for s in a.values() if s[1] is not None]
            timeline.append((time.time() - started, {n: s[0] for n, s in a.items()},
                             max(lags) if lags else None))
            stop_sampling.wait(1)

    load = Load(stack, "scaleout", args.users, args.clients, args.duration)
    results = load.results

    events = []  # (name, at seconds, seconds until the partitions were spread again)

    def event(name, action):
        at = time.time()
        action()
        try:
            wait_until(f"partitions spread after {name}", spread, 120)
            settled = time.time() - at
        except RuntimeError:
            settled = None
        events.append((name, at - started, settled))
        log(f"{name}: partitions spread again after "
            f"{'NEVER' if settled is None else f'{settled:.1f} s'}: {assignment()}")

    def join():
        proc = stack.extra_consumer("c4", args.port + 4)
        proc.start()
        consumers["c4"] = (proc, args.port + 4)

    plan = [(0.25, "c4 joins", join),
            (0.50, "c2 leaves (SIGTERM)", lambda: consumers["c2"][0].terminate()),
            (0.75, "c3 kill -9", lambda: consumers["c3"][0].kill9())]
    started = time.time()
    sampling = threading.Thread(target=sampler, daemon=True)
    sampling.start()
    load.start()
    for fraction, name, action in plan:
        delay = started + fraction * args.duration - time.time()
        if delay > 0:
            time.sleep(delay)
        event(name, action)
    load_secs = load.join()

    like = f"scaleout-{run}-%"
    checks, failure, drain = stack.drain_and_check(results, like, args.clients, args.drain_timeout)
    t_lag = time.time()

    def lag_zero():
        lags = [s[1] for s in assignment().values() if s[1] is not None]
        return bool(lags) and max(lags) == 0
    try:
        wait_until("group lag back to 0", lag_zero, 120)
        lag_back = f"{time.time() - t_lag + drain:.1f} s after the load"
    except RuntimeError:
        lag_back = "NOT within 120 s"
        failure = failure or "the group's lag did not return to 0"
    stop_sampling.set()
    final = assignment()
    for name, (proc, _) in consumers.items():
        proc.terminate()
    stack.api.terminate()

    peak_lag = max((lag for _, _, lag in timeline if lag is not None), default=0)
    settled_all = all(s is not None for _, _, s in events)
    if not settled_all:
        failure = failure or "partitions were not spread over the live consumers after an event"
    rows = machine_rows(args.light_argon2, args.kafka_properties) + [
        ("clients / users submitted", f"{args.clients} / {len(results)} in {load_secs:.0f} s"),
        ("partitions", PARTITIONS),
    ] + [(f"{name} at {at:.0f} s", "partitions spread again after "
          + ("NEVER" if s is None else f"{s:.1f} s")) for name, at, s in events] + checks + [
        ("peak group lag", peak_lag),
        ("group lag back to 0", lag_back),
        ("users persisted per consumer (last start)",
         ", ".join(f"{n}: {s[2]}" for n, s in sorted(final.items()))),
        ("final assignment", ", ".join(f"{n}: {s[0]}" for n, s in sorted(final.items()))),
    ]
    print_table("scale-out run", rows)
    print("\ntimeline (s: partitions per consumer, group lag)")
    last = None
    for at, held, lag in timeline:
        shown = (tuple(sorted(held.items())), lag)
        if shown != last:
            print(f"  {at:6.1f}  {' '.join(f'{n}={h}' for n, h in sorted(held.items()))}  lag={lag}")
            last = shown
    print(f"\nlogs: {stack.logdir}")
    if failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    stack.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
