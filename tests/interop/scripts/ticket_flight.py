#!/usr/bin/env python3
"""Watches when a STARTTLS server's session ticket reaches the client, with Python's ssl over
memory BIOs (so that every byte on the socket is seen) and no certificate check.

After the handshake it waits --quiet-ms for bytes the client did not ask for, then sends EHLO,
reads the reply, and sends QUIT. Printed, one item a line:
    version: <protocol>
    ticket-after-handshake: yes|no   (a resumable session before anything else was read)
    unasked-bytes: <bytes that arrived while the client was silent after its Finished>
    ehlo-tls: <the EHLO reply's code>
    ticket: yes|no                   (a resumable session once the reply was read)
    reused: yes|no                   (with --resume: a second connection resumed that session)
"""
import argparse
import select
import socket
import ssl
import sys
import time


class Conn:
    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.deadline = time.monotonic() + timeout
        self.plain = b""
        self.tls = None

    def recv_raw(self, wait):
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return b""
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        return data

    def reply(self):
        """One SMTP reply, in clear or over TLS."""
        while True:
            lines = self.plain.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":
                    self.plain = b"\r\n".join(lines[i + 1:])
                    return int(line[:3])
            if time.monotonic() > self.deadline:
                raise TimeoutError("no reply")
            data = self.recv_raw(0.2)
            if self.tls is None:
                self.plain += data
            else:
                self.incoming.write(data)
                try:
                    self.plain += self.tls.read(65536)
                except ssl.SSLWantReadError:
                    pass

    def send(self, text):
        if self.tls is None:
            self.sock.sendall(text)
        else:
            self.tls.write(text)
            self.flush()

    def flush(self):
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)

    def starttls(self, ctx, session=None):
        self.send(b"EHLO client.test\r\n")
        if self.reply() != 250:
            raise RuntimeError("EHLO refused")
        self.send(b"STARTTLS\r\n")
        if self.reply() != 220:
            raise RuntimeError("STARTTLS refused")
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="mx.test", session=session)
        while True:
            try:
                self.tls.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                if time.monotonic() > self.deadline:
                    raise TimeoutError("handshake")
                self.incoming.write(self.recv_raw(0.2))


def resumable(tls):
    s = tls.session
    return s is not None and s.has_ticket


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls12", action="store_true")
    ap.add_argument("--quiet-ms", type=int, default=300)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if args.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c = Conn(args.port, 15)
    if c.reply() != 220:
        raise RuntimeError("no greeting")
    c.starttls(ctx)
    print(f"version: {c.tls.version()}")
    print(f"ticket-after-handshake: {'yes' if resumable(c.tls) else 'no'}")
    unasked = 0
    end = time.monotonic() + args.quiet_ms / 1000
    while time.monotonic() < end:
        data = c.recv_raw(max(0.0, end - time.monotonic()))
        unasked += len(data)
        c.incoming.write(data)
    print(f"unasked-bytes: {unasked}")
    c.send(b"EHLO client.test\r\n")
    print(f"ehlo-tls: {c.reply()}")
    print(f"ticket: {'yes' if resumable(c.tls) else 'no'}")
    session = c.tls.session
    c.send(b"QUIT\r\n")
    c.reply()
    c.sock.close()
    if args.resume:
        c2 = Conn(args.port, 15)
        c2.reply()
        c2.starttls(ctx, session=session)
        print(f"reused: {'yes' if c2.tls.session_reused else 'no'}")
        c2.send(b"QUIT\r\n")
        c2.reply()
        c2.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
