#!/usr/bin/python3
"""A small HTTP/1.1 reverse proxy on 127.0.0.1 that injects faults in front of a real server.

Used by the upload-adapter tests (Tests/TestSupport/CloudServers.swift): the client talks to the
proxy, the proxy forwards to a real moto / Glance / Keystone. Standard library only, one thread
per connection, one request per connection (every answer carries `Connection: close`).

The request line and headers are forwarded byte for byte, Host included, so an AWS SigV4
signature computed for the proxy's host:port still verifies upstream. Bodies with Content-Length
and chunked bodies (forwarded in their chunked form) are both handled; `Expect: 100-continue` is
answered by the proxy itself, and interim 1xx answers from upstream are swallowed.

Rules (from --rules FILE, a JSON list, or the command-line shorthands), tried in order; a rule
matches on an optional method and a path regex (re.search on the request target, query included)
and fires `times` times (default 1), then stops matching:
  {"action": "status", "status": 503, "times": 2, "method": "PUT", "path": "/file$", "body": "..."}
      answer with that status and a short body instead of forwarding (the body is read first)
  {"action": "drop", "after_bytes": 65536, "method": "PUT", "path": "..."}
      read that many bytes of the request body, then close the connection without answering
Every injected fault is one line "FAULT <n> <action> <method> <target>" in --log (flushed at
once), so a test can count them.

Usage: fault-proxy.py --upstream http://127.0.0.1:5000 [--port 0] [--port-file F] [--pid-file F]
                      [--log F] [--rules FILE] [--method M] [--path REGEX]
                      [--fail-first N --status 503] [--drop-after-bytes B]
"""
import argparse
import json
import os
import re
import socket
import socketserver
import sys
import threading
import urllib.parse

MAX_HEAD = 256 * 1024


class Rule:
    def __init__(self, spec):
        self.action = spec.get("action", "status")
        if self.action not in ("status", "drop"):
            raise ValueError(f"unknown action {self.action!r}")
        self.method = spec.get("method")
        self.path = re.compile(spec.get("path", ""))
        self.times = int(spec.get("times", 1))
        self.status = int(spec.get("status", 503))
        self.body = spec.get("body", f"fault-proxy: injected {self.status}\n").encode()
        self.after_bytes = int(spec.get("after_bytes", 0))
        self.fired = 0

    def matches(self, method, target):
        if self.fired >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path.search(target) is not None


class State:
    def __init__(self, rules, log_path):
        self.rules = rules
        self.lock = threading.Lock()
        self.injected = 0
        self.log = open(log_path, "a", buffering=1) if log_path else sys.stderr

    def take(self, method, target):
        """The rule that fires for this request, counted, or None."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.fired += 1
                    self.injected += 1
                    self.log.write(f"FAULT {self.injected} {rule.action} {method} {target}\n")
                    self.log.flush()
                    return rule
        return None

    def note(self, line):
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()


class Reader:
    """Buffered reads from a socket, keeping exact bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise ValueError("header too large")
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:end], self.buf[end:]
        return head

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def read_exact(self, n):
        out = []
        while n > 0:
            if not self.buf:
                self._fill()
            piece = self.buf[:n]
            self.buf = self.buf[len(piece):]
            out.append(piece)
            n -= len(piece)
        return b"".join(out)

    def read_to_eof(self):
        out = [self.buf]
        self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return b"".join(out)
            out.append(data)

    def iter_body(self, headers, limit=None):
        """Yields the raw body bytes (chunked framing kept), at most `limit` bytes if given."""
        sent = 0

        def cut(data):
            nonlocal sent
            if limit is not None and sent + len(data) > limit:
                data = data[:limit - sent]
            sent += len(data)
            return data

        if "chunked" in headers.get("transfer-encoding", "").lower():
            while limit is None or sent < limit:
                line = self.read_line()
                yield cut(line)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while limit is None or sent < limit:  # trailers up to the empty line
                        trailer = self.read_line()
                        yield cut(trailer)
                        if trailer == b"\r\n":
                            return
                    return
                remaining = size + 2  # data and its CRLF
                while remaining > 0 and (limit is None or sent < limit):
                    piece = self.read_exact(min(remaining, 65536))
                    remaining -= len(piece)
                    yield cut(piece)
        else:
            remaining = int(headers.get("content-length", "0") or 0)
            while remaining > 0 and (limit is None or sent < limit):
                piece = self.read_exact(min(remaining, 65536))
                remaining -= len(piece)
                yield cut(piece)


def parse_head(head):
    lines = head.decode("iso-8859-1").split("\r\n")
    first = lines[0]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return first, headers


def set_connection_close(head):
    """The response head with any Connection / Keep-Alive header replaced by Connection: close."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line and not line.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join([lines[0]] + kept + [b"Connection: close", b"", b""])


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        state = self.server.state
        client = self.request
        reader = Reader(client)
        try:
            head = reader.read_head()
        except (EOFError, ValueError, OSError):
            return
        first, headers = parse_head(head)
        parts = first.split(" ")
        method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("?", "?")
        if headers.get("expect", "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        rule = state.take(method, target)
        try:
            if rule is not None and rule.action == "drop":
                for _ in reader.iter_body(headers, limit=rule.after_bytes):
                    pass
                client.shutdown(socket.SHUT_RDWR)
                return
            if rule is not None:
                for _ in reader.iter_body(headers):
                    pass
                reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                          504: "Gateway Timeout", 429: "Too Many Requests"}.get(rule.status, "Fault")
                client.sendall(f"HTTP/1.1 {rule.status} {reason}\r\nContent-Type: text/plain\r\n"
                               f"Content-Length: {len(rule.body)}\r\nConnection: close\r\n\r\n".encode() + rule.body)
                return
            self.forward(reader, head, headers, method)
        except (EOFError, OSError) as error:
            state.note(f"ERROR {method} {target}: {error}")

    def forward(self, reader, head, headers, method):
        upstream = socket.create_connection(self.server.upstream, timeout=600)
        try:
            upstream.sendall(head)
            for piece in reader.iter_body(headers):
                upstream.sendall(piece)
            up = Reader(upstream)
            while True:
                response_head = up.read_head()
                status_line, response_headers = parse_head(response_head)
                status = int(status_line.split(" ")[1])
                if 100 <= status < 200 and status != 101:
                    continue  # interim answer: the proxy already sent its own 100 Continue
                break
            self.request.sendall(set_connection_close(response_head))
            if method == "HEAD" or status in (204, 304):
                return
            if "chunked" in response_headers.get("transfer-encoding", "").lower() \
                    or "content-length" in response_headers:
                for piece in up.iter_body(response_headers):
                    self.request.sendall(piece)
            else:
                self.request.sendall(up.read_to_eof())
        finally:
            upstream.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the real server")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--port-file", help="where to write the port once listening")
    parser.add_argument("--pid-file")
    parser.add_argument("--log", help="one line per injected fault (default: stderr)")
    parser.add_argument("--rules", help="a JSON file holding a list of rules")
    parser.add_argument("--method", help="for the shorthands: only this method")
    parser.add_argument("--path", default="", help="for the shorthands: a regex on the request target")
    parser.add_argument("--fail-first", type=int, help="answer --status to the first N matching requests")
    parser.add_argument("--status", type=int, default=503)
    parser.add_argument("--drop-after-bytes", type=int, help="once: read B body bytes, then close")
    args = parser.parse_args()

    specs = []
    if args.rules:
        with open(args.rules) as f:
            specs += json.load(f)
    if args.fail_first:
        specs.append({"action": "status", "status": args.status, "times": args.fail_first,
                      "method": args.method, "path": args.path})
    if args.drop_after_bytes is not None:
        specs.append({"action": "drop", "after_bytes": args.drop_after_bytes, "times": 1,
                      "method": args.method, "path": args.path})
    rules = [Rule(spec) for spec in specs]

    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        parser.error("--upstream must be http://HOST:PORT")
    server = Server(("127.0.0.1", args.port), Handler)
    server.upstream = (upstream.hostname, upstream.port or 80)
    server.state = State(rules, args.log)
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(args.pid_file + ".tmp", args.pid_file)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    server.state.note(f"LISTEN 127.0.0.1:{server.server_address[1]} -> {args.upstream} with {len(rules)} rule(s)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
