#!/usr/bin/env python3
"""Sends many messages at once through the proxy, one SMTP session per message, with smtplib.

Every *.eml file in --messages DIR is one message (exact bytes, CRLF line endings included;
smtplib adds only the dot-stuffing and the final "."), sent from sender-STEM@load.test to
rcpt-STEM@load.test, STEM being the file name without ".eml". One thread per file connects and
says EHLO; then all of them wait at a barrier, so every session is open before any of them starts
a mail transaction, and the transactions overlap. Exits 0 only if every session connected, had every
command accepted and quit cleanly; otherwise prints one line per failed session and exits 1.
Standard library only.
"""
import argparse
import os
import smtplib
import sys
import threading
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", required=True, help="folder of *.eml files, one session each")
    p.add_argument("--timeout", type=float, default=30, help="socket timeout and barrier wait, seconds")
    a = p.parse_args()

    names = sorted(n for n in os.listdir(a.messages) if n.endswith(".eml"))
    if not names:
        print("no messages in %s" % a.messages)
        return 1
    messages = []
    for n in names:
        with open(os.path.join(a.messages, n), "rb") as f:
            messages.append((n, f.read()))

    barrier = threading.Barrier(len(messages), timeout=a.timeout)
    failures = []
    lock = threading.Lock()
    open_at_barrier = [0]

    def fail(name, what):
        with lock:
            failures.append("%s: %s" % (name, what))

    def session(name, data):
        s = None
        try:
            s = smtplib.SMTP(a.host, a.port, local_hostname="load.test", timeout=a.timeout)
            code, reply = s.ehlo()
            if code != 250:
                raise smtplib.SMTPResponseException(code, reply)
            with lock:
                open_at_barrier[0] += 1
        except Exception as e:  # reported below; the barrier must still be reached
            fail(name, "before the barrier: %r" % e)
            s = None
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            fail(name, "barrier broken (a session took longer than %ss to open)" % a.timeout)
            return
        if s is None:
            return
        try:
            stem = name[:-len(".eml")]
            refused = s.sendmail("sender-%s@load.test" % stem, ["rcpt-%s@load.test" % stem], data)
            if refused:
                fail(name, "refused recipients: %r" % refused)
            code, reply = s.quit()
            if code != 221:
                fail(name, "QUIT: %d %r" % (code, reply))
        except Exception as e:
            fail(name, "transaction: %r" % e)
            try:
                s.close()
            except Exception:
                pass

    threads = [threading.Thread(target=session, args=m, daemon=True) for m in messages]
    start = time.monotonic()
    for t in threads:
        t.start()
    deadline = start + 4 * a.timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        failures.append("%d sessions still running after %ss" % (stuck, 4 * a.timeout))

    print("%d sessions, %d open at once, %d failures, %.2fs"
          % (len(messages), open_at_barrier[0], len(failures), time.monotonic() - start))
    for f in sorted(failures):
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
