#!/usr/bin/env python3
"""Checks the results file of a bench/run or bench/scale smoke run (the figures themselves are
not judged: timing belongs to the benchmarks). Prints what is wrong and exits 1, or prints "ok".

usage: check_bench_results.py run JSON --keyop-threads N [--peers a,b]
       check_bench_results.py scale JSON --keyop-threads N --workers 1,2 --pool-cpus N [--oversubscribe]
"""
import argparse
import json
import os
import sys

CERTS = ("rsa2048", "ecdsa_p256")
GOALS = (
    "full handshakes per core >= 90% of the ceiling",
    "resumed >= 5x full",
    ">= 1.5x the best peer on full handshakes",
    ">= 1.5x the best peer on 4 KiB messages",
    "<= 16 KiB per idle TLS session",
    "zero backend connections during handshake-only runs",
)

problems = []


def want(ok, what):
    if not ok:
        problems.append(what)
    return ok


def check_measurement(m, what):
    """A measurement that ran: sessions counted, under 1 % failed. On a busy machine the load
    generator may saturate its CPU (exit 3, "client-saturated"): the figure is then a floor,
    which the tables mark, not a failure."""
    if not want(m is not None, f"{what}: missing"):
        return
    status = m.get("status")
    if not want(status in ("ok", "client-saturated"), f"{what}: status {status!r}: {m.get('error', '')}"):
        return
    b = m.get("bench", {})
    want(b.get("sessions", 0) > 0, f"{what}: no sessions counted")
    want(b.get("error_ratio", 1) <= 0.01, f"{what}: {b.get('error_ratio')} of sessions failed")
    want(m.get("exit") == {"ok": 0, "client-saturated": 3}[status],
         f"{what}: starttls-bench exited {m.get('exit')} ({status})")


def check_ceiling(ceilings, keyop):
    """ceilings: {cert: ceiling} (bench/run) or {cert: ceiling of its one certificate} (scale)."""
    for cert, c in ceilings.items():
        if not want(c.get("handshakes_per_s_per_core", 0) > 0, f"ceiling {cert}: no figure: {c.get('error')}"):
            continue
        signer = "worker (BoringSSL)" if keyop == "0" else "key-op process (OpenSSL)"
        want(c.get("signer") == signer, f"ceiling {cert}: signer {c.get('signer')!r}, expected {signer!r}")


def check_server_commands(d, keyop):
    """Every starttlsd the suite started was told --keyop-threads as asked (0 included)."""
    servers = [c["command"] for c in d["commands"] if c["label"].startswith("starttlsd ")
               and "/" not in c["label"]]
    want(servers, "no starttlsd command line recorded")
    for cmd in servers:
        words = cmd.split()
        if want("--keyop-threads" in words, f"starttlsd started without --keyop-threads: {cmd}"):
            got = words[words.index("--keyop-threads") + 1]
            want(keyop == "auto" or got == keyop, f"starttlsd got --keyop-threads {got}, asked {keyop}")


def check_run(d, args):
    peers = [p for p in args.peers.split(",") if p and p != "none"]
    by_id = {m["id"]: m for m in d["measurements"]}
    rows = [f"{mode}/{cert}/c16" for cert in CERTS for mode in ("handshake", "resume", "resume12")]
    for target in ["starttlsd"] + peers:
        want(d["peers"].get(target, {}).get("status") == "ok", f"{target}: {d['peers'].get(target)}")
        for row in rows + ["message/4k/c16"]:
            check_measurement(by_id.get(f"{target}/{row}"), f"{target}/{row}")
    check_measurement(by_id.get("starttlsd/message/1m/c16"), "starttlsd/message/1m/c16")
    check_measurement(by_id.get("starttlsd/plain/4k/c16"), "starttlsd/plain/4k/c16")
    check_measurement(by_id.get("direct/plain/4k/c16"), "direct/plain/4k/c16")
    for target in ["starttlsd"] + peers:
        for row in (f"{mode}/{cert}/c16" for cert in CERTS for mode in ("resume", "resume12")):
            want(by_id.get(f"{target}/{row}", {}).get("bench", {}).get("resumed_ratio", 0) > 0.9,
                 f"{target}/{row}: sessions were not resumed")
    # resume12 is TLS 1.2: starttls-bench was asked for it.
    for m in by_id.values():
        if m.get("mode") == "resume12":
            want("--tls12" in m.get("command", "").split(), f"{m['id']}: run without --tls12")
    want(sorted(d["ceiling"]) == sorted(CERTS), f"ceilings for {sorted(d['ceiling'])}")
    check_ceiling(d["ceiling"], args.keyop_threads)
    check_server_commands(d, args.keyop_threads)

    # Every figure is printed beside its peers as a ratio starttlsd / peer.
    for row in rows + ["message/4k/c16"]:
        f = d["figures"].get(row)
        if not want(f and f.get("starttlsd"), f"figure {row}: no starttlsd figure"):
            continue
        for p in peers:
            if want(f.get(p), f"figure {row}: no {p} figure"):
                want(abs(f.get(f"ratio_{p}", 0) - f["starttlsd"] / f[p]) < 0.01,
                     f"figure {row}: ratio_{p} {f.get(f'ratio_{p}')} is not {f['starttlsd']} / {f[p]}")
        if row.startswith("handshake/"):
            want(f.get("ceiling_per_core", 0) > 0 and f.get("percent_of_ceiling_per_core", 0) > 0,
                 f"figure {row}: no share of the ceiling")

    s = d["summary"]
    pr = s.get("plain_relay", {})
    want(pr.get("through_proxy_sessions_per_s", 0) > 0 and pr.get("direct_sessions_per_s", 0) > 0
         and pr.get("proxy_over_direct", 0) > 0, f"plain relay overhead: {pr}")
    if args.idle:
        want(s.get("idle_bytes_per_session", {}).get("starttlsd", 0) > 0,
             f"idle sessions: no memory per session: {s.get('idle_bytes_per_session')}")
    hs = s.get("backend_sessions_in_handshake_runs", {})
    want(len(hs) == 6 and all(v == 0 for v in hs.values()),
         f"backend sessions during handshake-only runs: {hs}")
    r12 = s.get("resumed_tls12_over_full", {})
    want(sorted(r12) == sorted(f"{cert}/c16" for cert in CERTS) and all(v.get("ratio") for v in r12.values()),
         f"resumed TLS 1.2 / full: {r12}")
    for goal in GOALS:
        g = s.get("goals", {}).get(goal)
        want(g is not None and g.get("met") in (True, False, None), f"goal {goal!r}: {g}")
    if peers:
        want(s.get("goals", {}).get(GOALS[2], {}).get("met") is not None, "the peer goal was not judged")

    plot = d.get("plot")
    if want(plot and os.path.exists(plot), f"plot {plot!r} missing"):
        with open(plot, "rb") as f:
            want(f.read(8) == b"\x89PNG\r\n\x1a\n", f"plot {plot} is not a PNG")


def check_scale(d, args):
    check_ceiling({d.get("cert"): d["ceiling"]}, args.keyop_threads)
    check_server_commands(d, args.keyop_threads)
    points = {p["workers"]: p for p in d["points"]}
    skipped = {s["workers"]: s["why"] for s in d.get("skipped", [])}
    for n in (int(x) for x in args.workers.split(",")):
        # A worker count is measured when the pool has a CPU per worker and one to spare, or,
        # with --oversubscribe, exactly a CPU per worker (the load generator sharing the last).
        over = args.oversubscribe and n == args.pool_cpus
        if n + 1 <= args.pool_cpus or over:
            p = points.get(n)
            if want(p is not None, f"{n} workers: not measured ({skipped.get(n)})"):
                check_measurement(p.get("measurement"), f"{n} workers")
                want(p.get("handshakes_per_s", 0) > 0, f"{n} workers: no rate")
                want((p.get("status") == "oversubscribed") == over,
                     f"{n} workers on {args.pool_cpus} CPUs: status {p.get('status')!r}")
                # Each worker thread pinned to a CPU of its own (read back from the threads).
                pinned = sorted((p.get("worker_cpus") or {}).values())
                want(len(pinned) == n and len(set(pinned)) == n and all("," not in c for c in pinned),
                     f"{n} workers: pinned {p.get('worker_cpus')}")
                one = points.get(1, {}).get("handshakes_per_s")
                if one:
                    want(abs(p.get("ratio_to_1_worker", 0) - p["handshakes_per_s"] / one) < 0.01,
                         f"{n} workers: ratio {p.get('ratio_to_1_worker')} to one worker's {one}")
        else:
            want(n in skipped and "pool" in skipped[n] and n not in points,
                 f"{n} workers on {args.pool_cpus} CPUs: not skipped with a reason ({points.get(n)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", choices=("run", "scale"))
    ap.add_argument("json")
    ap.add_argument("--keyop-threads", required=True)
    ap.add_argument("--peers", default="none")
    ap.add_argument("--idle", action="store_true", help="the run measured idle sessions")
    ap.add_argument("--workers", default="1")
    ap.add_argument("--pool-cpus", type=int, default=0)
    ap.add_argument("--oversubscribe", action="store_true", help="bench/scale ran with --oversubscribe")
    args = ap.parse_args()
    with open(args.json) as f:
        d = json.load(f)
    want(d.get("suite") == f"bench/{args.suite}", f"suite {d.get('suite')!r}")
    want(d.get("finished") and not d.get("interrupted"), "the run did not finish")
    (check_run if args.suite == "run" else check_scale)(d, args)
    for p in problems:
        print(p)
    if problems:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
