#!/usr/bin/env python3
"""Soak run: api and consumer (release binaries, production hashing) under a steady mix
of registrations, logins and status polls at half of the capacity measured first, for
--minutes. Samples the resident memory (RSS) of both processes, the throughput and the
group's lag every 10 s and draws them in an SVG.

Passes when, after the warm-up (the first sixth of the run), RSS of each binary grows
less than 10 %, no request failed, and the lag stays bounded (below 30 s worth of
registrations) and ends at 0 with every registration persisted.

    scripts/soak.py --minutes 30          # make soak
Standard library only; reuses the process stack of scripts/chaos.py.
"""

import argparse
import re
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import (ROOT, Queue, Stack, http, log, machine_rows, print_table, psql,  # noqa: E402
                   wait_until)

SAMPLE_SECS = 10


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def group_lag(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return None
    lags = re.findall(r"^registrar_consumer_lag\{[^}]*\} (\S+)$", text, re.M)
    return int(sum(float(v) for v in lags)) if lags else None


def svg(samples, path, title):
    """Three stacked panels over time: RSS (MiB) of both binaries, requests/s by kind, lag."""
    w, h, left, top, gap = 900, 180, 70, 40, 50
    t_max = max(s["t"] for s in samples) or 1
    panels = [
        ("RSS (MiB)", [("api", "#1f77b4", lambda s: s["api_rss"] / 1024),
                       ("consumer", "#d62728", lambda s: s["consumer_rss"] / 1024)]),
        ("requests/s", [("registrations", "#2ca02c", lambda s: s["rps"]["register"]),
                        ("logins", "#9467bd", lambda s: s["rps"]["login"]),
                        ("polls", "#ff7f0e", lambda s: s["rps"]["poll"])]),
        ("group lag (records)", [("lag", "#8c564b", lambda s: s["lag"] or 0)]),
    ]
    height = top + len(panels) * (h + gap)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + left + 20}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="15">{title}</text>']
    for i, (name, series) in enumerate(panels):
        y0 = top + i * (h + gap)
        v_max = max((f(s) for s in samples for _, _, f in series), default=1) or 1
        v_max *= 1.1
        out.append(f'<rect x="{left}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
        out.append(f'<text x="5" y="{y0 + 12}">{name}</text>')
        for frac in (0, 0.5, 1):
            y = y0 + h - frac * h
            out.append(f'<text x="{left - 5}" y="{y + 4}" text-anchor="end">{v_max * frac:.0f}</text>')
        for frac in (0, 0.25, 0.5, 0.75, 1):
            x = left + frac * w
            out.append(f'<text x="{x}" y="{y0 + h + 15}" text-anchor="middle">{t_max * frac / 60:.0f} min</text>')
        for j, (label, colour, f) in enumerate(series):
            points = " ".join(f"{left + s['t'] / t_max * w:.1f},{y0 + h - f(s) / v_max * h:.1f}"
                              for s in samples)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
            out.append(f'<text x="{left + w - 110}" y="{y0 + 15 + 14 * j}" fill="{colour}">{label}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--bin", default=str(ROOT / "target" / "release"))
    p.add_argument("--light-argon2", action="store_true",
                   help="cheap hashing parameters (quick try-outs), not the production defaults")
    p.add_argument("--port", type=int, default=18300)
    p.add_argument("--svg", default=None, help="where to write the plot (default: the run's log dir)")
    p.add_argument("--kafka-properties", default="")
    p.add_argument("--group-protocol", default="classic", choices=["classic", "consumer"])
    args = p.parse_args()

    stack = Stack("soak", Path(args.bin), args.port, args.kafka_properties, args.light_argon2,
                  args.group_protocol)
    run, base, consumer_port = stack.run, stack.base, args.port + 1
    counter = iter(range(10**9))
    counter_lock = threading.Lock()

    def next_user():
        with counter_lock:
            i = next(counter)
        return f"soak-{run}-{i}@example.com", f"soak-{run}-{i}-long-secret"

    # Capacity: a burst of registrations (how fast does the consumer persist them?) and
    # 10 s of logins as fast as the clients go (the api hashes each).
    burst = 400 if args.light_argon2 else 200
    burst_users = [next_user() for _ in range(burst)]
    t0 = time.time()
    for email, password in burst_users:
        status, _ = stack.register(email, password)
        assert status == 202, f"registration during the capacity burst answered {status}"
    like = f"soak-{run}-%"
    wait_until("burst persisted", lambda: int(psql(stack.db, f"SELECT count(*) FROM users WHERE email LIKE '{like}'")) >= burst, 300)
    register_capacity = burst / (time.time() - t0)
    logins, login_lock = [0], threading.Lock()
    t_end = time.time() + 10

    # Each client its own accounts: the lockout counts attempts in flight per account
    # (more than LOGIN_MAX_ATTEMPTS parallel logins to one account answer 429).
    def login_loop(first):
        i = first
        while time.time() < t_end:
            email, password = burst_users[i % len(burst_users)]
            status, _ = http("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
            assert status == 200, f"login during the capacity probe answered {status}"
            with login_lock:
                logins[0] += 1
            i += args.clients
    probes = [threading.Thread(target=login_loop, args=(c,)) for c in range(args.clients)]
    for t in probes:
        t.start()
    for t in probes:
        t.join()
    login_capacity = logins[0] / 10
    # Half of the capacity, shared: registrations and logins both cost a hash.
    register_rate = register_capacity / 4
    login_rate = login_capacity / 4
    poll_rate = max(20.0, 10 * register_rate)
    log(f"capacity: {register_capacity:.1f} registrations/s persisted, {login_capacity:.1f} logins/s; "
        f"soak mix: {register_rate:.1f} registrations/s, {login_rate:.1f} logins/s, {poll_rate:.0f} polls/s")

    # The load: a schedule of (due time, kind), handed to the clients in order.
    duration = args.minutes * 60
    schedule = []
    for kind, rate in (("register", register_rate), ("login", login_rate), ("poll", poll_rate)):
        n = int(duration * rate)
        schedule += [(k / rate, kind) for k in range(n)]
    schedule.sort()
    errors, counts = [], {"register": 0, "login": 0, "poll": 0}
    state_lock = threading.Lock()
    registered = []  # (email, registrationId) accepted during the soak
    next_login = [0]  # logins take the capacity burst's accounts in turn
    started = time.time()
    jobs = Queue(schedule)

    def client():
        for due, kind in jobs:
            wait = started + due - time.time()
            if wait > 0:
                time.sleep(wait)
            if kind == "register":
                email, password = next_user()
                status, body = stack.register(email, password)
                ok = status == 202
                if ok:
                    with state_lock:
                        registered.append((email, body["data"]["registrationId"]))
            elif kind == "login":
                with state_lock:
                    n = next_login[0]
                    next_login[0] += 1
                email, password = burst_users[n % len(burst_users)]
                status, _ = http("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
                ok = status == 200
            else:
                with state_lock:
                    target = registered[-1] if registered else None
                if target is None:
                    continue
                status, _ = http("GET", f"{base}/api/v1/users/{target[0]}?registrationId={target[1]}")
                ok = status == 200
            with state_lock:
                counts[kind] += 1
                if not ok:
                    errors.append((kind, status, round(time.time() - started)))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    samples, previous = [], dict(counts)
    next_sample = started
    while any(t.is_alive() for t in threads):
        next_sample += SAMPLE_SECS
        time.sleep(max(0.0, next_sample - time.time()))
        with state_lock:
            now_counts = dict(counts)
        samples.append({
            "t": time.time() - started,
            "api_rss": rss_kib(stack.api.proc.pid),
            "consumer_rss": rss_kib(stack.consumer.proc.pid),
            "rps": {k: (now_counts[k] - previous[k]) / SAMPLE_SECS for k in counts},
            "lag": group_lag(consumer_port),
        })
        previous = now_counts
        s = samples[-1]
        if len(samples) % 6 == 0:
            log(f"{s['t'] / 60:.1f} min: rss api {s['api_rss'] // 1024} MiB, consumer "
                f"{s['consumer_rss'] // 1024} MiB, lag {s['lag']}, errors {len(errors)}")

    # Drain: every registration of the soak persisted, lag back to 0.
    t_drain = time.time()
    total = burst + len(registered)
    wait_until("soak drained", lambda: int(psql(stack.db, f"SELECT count(*) FROM users WHERE email LIKE '{like}'")) >= total, 600)
    drain_secs = time.time() - t_drain
    try:
        wait_until("lag 0", lambda: group_lag(consumer_port) == 0, 120)
        lag_end = 0
    except RuntimeError:
        lag_end = group_lag(consumer_port)
    stack.stop()

    warm = [s for s in samples if s["t"] >= duration / 6]
    def growth(key):
        first = sum(s[key] for s in warm[:3]) / max(1, len(warm[:3]))
        last = max(s[key] for s in warm[-3:])
        return first, last, (last - first) / first * 100 if first else 0.0
    api_first, api_last, api_growth = growth("api_rss")
    con_first, con_last, con_growth = growth("consumer_rss")
    lag_bound = register_rate * 30
    peak_lag = max((s["lag"] or 0) for s in warm) if warm else 0
    svg_path = Path(args.svg) if args.svg else stack.logdir / "soak.svg"
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg(samples, svg_path, f"Registrar soak, {args.minutes:g} min, {time.strftime('%Y-%m-%d', time.gmtime())}")
    rows = machine_rows(args.light_argon2, args.kafka_properties) + [
        ("duration", f"{args.minutes:g} min, {len(samples)} samples every {SAMPLE_SECS} s"),
        ("measured capacity", f"{register_capacity:.1f} registrations/s persisted, {login_capacity:.1f} logins/s"),
        ("load (half of it, shared)", f"{register_rate:.1f} registrations/s, {login_rate:.1f} logins/s, {poll_rate:.0f} polls/s"),
        ("requests", ", ".join(f"{k}: {v}" for k, v in counts.items())),
        ("errors (must be 0)", len(errors)),
        ("api RSS after warm-up → end", f"{api_first / 1024:.1f} → {api_last / 1024:.1f} MiB ({api_growth:+.1f} %, must be < 10 %)"),
        ("consumer RSS after warm-up → end", f"{con_first / 1024:.1f} → {con_last / 1024:.1f} MiB ({con_growth:+.1f} %, must be < 10 %)"),
        ("peak lag after warm-up", f"{peak_lag} (bound {lag_bound:.0f} = 30 s of registrations)"),
        ("lag at the end", lag_end),
        ("drain after the load", f"{drain_secs:.1f} s"),
        ("plot", str(svg_path)),
    ]
    print_table("soak run", rows)
    failure = []
    if errors:
        failure.append(f"{len(errors)} errors, first {errors[:5]}")
    if api_growth >= 10 or con_growth >= 10:
        failure.append("RSS grew 10 % or more after the warm-up")
    if peak_lag > lag_bound or lag_end != 0:
        failure.append("lag not bounded or not back to 0")
    if failure:
        print("FAILED: " + "; ".join(failure), file=sys.stderr)
        return 1
    stack.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
