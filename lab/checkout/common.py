"""Plumbing shared by the checkout lab's services: the ground-truth log,
live parameters, a threaded HTTP/1.1 server and a bounded keep-alive
client pool.

`services.py` builds every role from these. Nothing here knows the shop:
it only records, for each request a service served or made, what really
happened (time, ends, method, path, status or error, elapsed time, try
number, and whether it timed out, found the pool exhausted or was reset),
so the analyses can be checked against facts instead of against trawl's
own reading of the capture.
"""

import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How often a service looks for new parameters (a fault being injected).
# 200 ms keeps injected fault times within a fraction of a second of the
# scenario's timeline while costing nothing measurable.
PARAMS_POLL_S = 0.2

# Longest request body a lab service reads. The lab's own bodies are a few
# hundred bytes; anything larger is a bug in the lab, answered 413.
MAX_BODY_BYTES = 64 * 1024


def rfc3339(ns):
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class Truth:
    """One JSONL file of ground-truth records, one line per request served
    or made, flushed per line so a killed service loses nothing written."""

    def __init__(self, path, service, pod):
        self.service = service
        self.pod = pod
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8", buffering=1)

    def record(self, side, start_ns, end_ns, **fields):
        rec = {
            "time": rfc3339(start_ns),
            "ts_ns": start_ns,
            "end_ns": end_ns,
            "elapsed_ms": round((end_ns - start_ns) / 1e6, 3),
            "recorded_by": self.service,
            "side": side,
        }
        rec.update(fields)
        line = json.dumps(rec, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")


class Params:
    """A service's parameters, reloaded when the runner rewrites
    `<state>/params/<service>.json` (atomically, by rename)."""

    def __init__(self, path):
        self.path = path
        self._mtime = None
        self._values = {}
        self._reload()
        t = threading.Thread(target=self._watch, daemon=True)
        t.start()

    def _reload(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if st.st_mtime_ns == self._mtime:
            return
        with open(self.path, encoding="utf-8") as f:
            self._values = json.load(f)
        self._mtime = st.st_mtime_ns

    def _watch(self):
        while True:
            time.sleep(PARAMS_POLL_S)
            try:
                self._reload()
            except (OSError, ValueError) as e:
                print(f"Could not reload {self.path}: {e}", file=sys.stderr)

    def __getitem__(self, key):
        return self._values[key]


def reset_socket(sock):
    """Closes with SO_LINGER 0, so the kernel sends RST instead of FIN:
    what a client does with a connection it gives up on mid-response."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Connections waiting to be accepted; above the load generator's
    # workers so a burst is queued, not refused.
    request_queue_size = 256
    allow_reuse_address = True


class Handler(BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, JSON in and out, one truth
    record per request served. Subclasses implement `route(method, path,
    body, ctx)` and return (status, payload dict)."""

    protocol_version = "HTTP/1.1"
    # Head and body leave in one write (buffered until the flush below) with
    # Nagle off: two small writes would otherwise wait for the client's
    # delayed ACK, adding ~40 ms per hop that no real service has.
    wbufsize = -1
    disable_nagle_algorithm = True
    truth = None  # set by serve()
    client_names = {}  # IP -> service name, for the truth log

    def log_message(self, fmt, *args):  # the truth log replaces access logs
        pass

    def _handle(self, method):
        start = time.time_ns()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            status, payload = 413, {"error": "body too large"}
            body = b""
        else:
            body = self.rfile.read(length) if length else b""
        ctx = {
            "request_id": self.headers.get("X-Request-Id", ""),
            "attempt": int(self.headers.get("X-Attempt", "1") or 1),
        }
        path = self.path
        if length <= MAX_BODY_BYTES:
            try:
                data = json.loads(body) if body else {}
                status, payload = self.route(method, path, data, ctx)
            except Exception as e:  # a bug in the lab: say so, answer 500
                print(f"{self.truth.service}: {method} {path}: {e!r}", file=sys.stderr)
                status, payload = 500, {"error": repr(e)}
        out = json.dumps(payload).encode()
        error = None
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            self.wfile.flush()
        except OSError as e:
            # The client gave up (payment-service resets timed-out gateway calls).
            error = "client_reset" if isinstance(e, ConnectionResetError) else f"write_failed: {e.strerror}"
            self.close_connection = True
        ip, port = self.client_address[:2]
        sip, sport = self.connection.getsockname()[:2]
        self.truth.record(
            "server", start, time.time_ns(),
            client=self.client_names.get(ip, ip), client_ip=ip, client_port=port,
            server=self.truth.service, server_pod=self.truth.pod, server_ip=sip, server_port=sport,
            protocol="http", method=method, path=path.split("?")[0],
            status=status if error is None else None, response_status=status, error=error,
            request_id=ctx["request_id"], attempt=ctx["attempt"],
            timeout=bool(payload.get("timeout")), pool_exhausted=bool(payload.get("pool_exhausted")),
            reset=error == "client_reset",
        )

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


def serve(handler_cls, listen, truth, client_names, ready_file):
    host, port = listen.rsplit(":", 1)
    handler_cls.truth = truth
    handler_cls.client_names = client_names
    server = Server((host, int(port)), handler_cls)
    with open(ready_file, "w") as f:
        f.write(str(os.getpid()))
    server.serve_forever(poll_interval=0.5)


class Result:
    __slots__ = ("status", "body", "error", "timeout", "pool_exhausted", "reset")

    def __init__(self, status=None, body=None, error=None, timeout=False, pool_exhausted=False, reset=False):
        self.status = status
        self.body = body
        self.error = error
        self.timeout = timeout
        self.pool_exhausted = pool_exhausted
        self.reset = reset

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 400


class Upstream:
    """A keep-alive connection pool to one server, found by name through
    the namespace's resolver (real DNS queries to dnsmasq). `pool_size`
    bounds the connections in use; with `pool_wait` set, a caller that
    waits longer gets `pool_exhausted` instead of a connection."""

    def __init__(self, truth, server, host, port, pool_size=64):
        self.truth = truth
        self.server = server
        self.host = host
        self.port = port
        self._idle = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(pool_size)

    def call(self, method, path, body=None, timeout=10.0, pool_wait=None, request_id="", attempt=1):
        start = time.time_ns()
        got = self._slots.acquire(timeout=pool_wait) if pool_wait is not None else self._slots.acquire()
        if not got:
            res = Result(error="pool_exhausted", pool_exhausted=True)
            self._record(start, None, None, method, path, res, request_id, attempt, False)
            return res
        try:
            return self._call(start, method, path, body, timeout, request_id, attempt)
        finally:
            self._slots.release()

    def _call(self, start, method, path, body, timeout, request_id, attempt):
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        for _ in range(2):  # a reused connection the server closed: one fresh try
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
                reused = False
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"X-Request-Id": request_id, "X-Attempt": str(attempt), "Host": f"{self.host}:{self.port}"}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            local = peer = None
            new_conn = conn.sock is None
            try:
                if conn.sock is None:
                    conn.connect()
                local = conn.sock.getsockname()[:2]
                peer = conn.sock.getpeername()[:2]
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (TimeoutError, socket.timeout):
                # Give up on it: RST, so the server and the capture see it.
                if conn.sock is not None:
                    reset_socket(conn.sock)
                    conn.sock = None
                res = Result(error="timeout", timeout=True, reset=True)
                self._record(start, local, peer, method, path, res, request_id, attempt, new_conn)
                return res
            except socket.gaierror as e:
                conn.close()
                res = Result(error=f"dns_failure: {e.strerror}")
                self._record(start, None, None, method, path, res, request_id, attempt, True)
                return res
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                if reused:
                    conn, reused = None, False
                    continue
                res = Result(error=f"connection_failed: {e!r}")
                self._record(start, local, peer, method, path, res, request_id, attempt, True)
                return res
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                res = Result(error=f"connection_failed: {e!r}")
                self._record(start, local, peer, method, path, res, request_id, attempt, True)
                return res
            try:
                parsed = json.loads(data) if data else {}
            except ValueError:
                parsed = {}
            res = Result(status=resp.status, body=parsed)
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            self._record(start, local, peer, method, path, res, request_id, attempt, new_conn)
            return res
        raise AssertionError("unreachable")

    def _record(self, start, local, peer, method, path, res, request_id, attempt, new_conn):
        self.truth.record(
            "client", start, time.time_ns(),
            client=self.truth.service, client_pod=self.truth.pod,
            client_ip=local[0] if local else None, client_port=local[1] if local else None,
            server=self.server, server_ip=peer[0] if peer else None, server_port=peer[1] if peer else self.port,
            protocol="http", method=method, path=path.split("?")[0],
            status=res.status, error=res.error, request_id=request_id, attempt=attempt,
            timeout=res.timeout, pool_exhausted=res.pool_exhausted, reset=res.reset,
            new_connection=bool(new_conn),
        )
