#!/usr/bin/env python3
"""Sends one message through the proxy with Python's smtplib (the test's stand-in for a
remote MTA) and exits non-zero on any failure. The message file holds the exact bytes to send,
CRLF line endings included; smtplib adds only the dot-stuffing and the final ".".
"""
import argparse
import smtplib
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--from", dest="sender", required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--message", required=True)
    p.add_argument("--count", type=int, default=1, help="messages to send in one session")
    a = p.parse_args()
    with open(a.message, "rb") as f:
        data = f.read()
    with smtplib.SMTP(a.host, a.port, local_hostname="client.test", timeout=30) as s:
        s.ehlo()
        for _ in range(a.count):
            refused = s.sendmail(a.sender, a.to, data)
            if refused:
                print("refused recipients: %r" % refused)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
