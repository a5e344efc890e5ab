#!/usr/bin/env python3
"""Sends one message with Python's smtplib over STARTTLS (RFC 3207) and exits non-zero on any
failure, a certificate that does not verify included. The message file holds the exact bytes to
send, CRLF line endings included; smtplib adds only the dot-stuffing and the final ".".

What the test checks is printed on stdout, one item a line:
    ehlo-clear: <the EHLO reply before STARTTLS, its lines joined with " | ">
    tls: <protocol> <cipher>
    ehlo-tls: <the EHLO reply inside TLS, joined the same way>
"""
import argparse
import smtplib
import ssl
import sys


def named_context(cafile, server_name):
    """A client context that trusts only cafile and checks the certificate against server_name.

    smtplib.SMTP.starttls() passes the host it connected to (here an address) as the server
    name; the override puts the name the certificate is issued for in its place, for both SNI
    and the host name check."""

    class Context(ssl.SSLContext):
        def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
            return super().wrap_socket(sock, *args, server_hostname=server_name, **kwargs)

    ctx = Context(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=cafile)
    # PROTOCOL_TLS_CLIENT already sets these; stated so that a change of default cannot
    # silently turn verification off.
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    return ctx


def joined(reply):
    return reply.decode("utf-8", "replace").replace("\n", " | ")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--helo", default="client.test")
    p.add_argument("--cafile", required=True, help="the only CA trusted")
    p.add_argument("--server-name", required=True, help="the name the certificate must carry")
    p.add_argument("--from", dest="sender", required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--message", required=True)
    a = p.parse_args()
    with open(a.message, "rb") as f:
        data = f.read()
    ctx = named_context(a.cafile, a.server_name)
    with smtplib.SMTP(a.host, a.port, local_hostname=a.helo, timeout=30) as s:
        code, reply = s.ehlo()
        print("ehlo-clear: %d %s" % (code, joined(reply)), flush=True)
        if not s.has_extn("starttls"):
            print("STARTTLS is not offered")
            return 1
        # starttls() forgets what the clear-text EHLO said (RFC 3207 4.2); the EHLO after it is
        # the one that counts.
        code, reply = s.starttls(context=ctx)
        if code != 220:
            print("STARTTLS answered %d %s" % (code, joined(reply)))
            return 1
        print("tls: %s %s" % (s.sock.version(), s.sock.cipher()[0]), flush=True)
        code, reply = s.ehlo()
        print("ehlo-tls: %d %s" % (code, joined(reply)), flush=True)
        if code != 250:
            return 1
        refused = s.sendmail(a.sender, a.to, data)
        if refused:
            print("refused recipients: %r" % refused)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
