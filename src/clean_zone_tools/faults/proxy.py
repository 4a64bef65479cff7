"""A fault-injection proxy between Airflow and the local AWS endpoint.

Outages are tested without restarting the endpoint, so its state (objects, queues, the ledger)
is untouched while Airflow sees the failure. Every request is forwarded as it is unless a fault
is switched on, for all services or only some (``s3``, ``sqs``, ``sns``, ``events``: read from
the request's SigV4 credential scope):

``refuse``    the connection is reset before any answer (what a dead endpoint looks like)
``stall``     the request is held without an answer until the fault is switched off
``slow``      each request waits ``delay_seconds`` before it is forwarded
``error``     an HTTP 500 ``InternalError`` (503 ``ServiceUnavailable`` with ``status=503``)
``throttle``  S3's 503 ``SlowDown``, or 400 ``ThrottlingException`` for the other services

The switch is the proxy's own path, which no AWS SDK uses::

    curl -X POST localhost:4567/_faults -d '{"mode": "error", "services": ["sns"]}'
    curl -X POST localhost:4567/_faults -d '{"mode": "off"}'
    curl localhost:4567/_faults              # the current fault and what it did so far

A fault may carry ``"seconds": N`` to switch itself off after N seconds. From Python,
:class:`FaultSwitch` does the same.

Run: ``python -m clean_zone_tools.faults.proxy --listen 4567 --upstream http://127.0.0.1:4566``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import struct
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CONTROL_PATH = "/_faults"
MODES = ("off", "refuse", "stall", "slow", "error", "throttle")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_CHUNK = 1 << 16


def request_service(headers: Any) -> str:
    """The AWS service a request is for, from its SigV4 credential scope ('' when unsigned)."""
    match = _SCOPE.search(headers.get("Authorization", "") or "")
    return match.group(1) if match else ""


@dataclass
class Fault:
    mode: str = "off"
    services: list[str] = field(default_factory=list)  # empty: every service
    delay_seconds: float = 2.0
    status: int = 500
    until: float | None = None  # time.monotonic() at which it switches itself off

    def applies_to(self, service: str) -> bool:
        if self.mode == "off":
            return False
        if self.until is not None and time.monotonic() >= self.until:
            return False
        return not self.services or service in self.services


class FaultState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault = Fault()
        self._changed = threading.Condition(self._lock)
        self.counts: Counter[str] = Counter()

    def set(self, spec: dict[str, Any]) -> Fault:
        mode = str(spec.get("mode", "off"))
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        services = spec.get("services") or []
        if not isinstance(services, list) or not all(isinstance(name, str) for name in services):
            raise ValueError('services must be a list of names, e.g. ["sns"]')
        seconds = spec.get("seconds")
        fault = Fault(
            mode=mode,
            services=services,
            delay_seconds=float(spec.get("delay_seconds", 2.0)),
            status=int(spec.get("status", 503 if mode == "throttle" else 500)),
            until=time.monotonic() + float(seconds) if seconds is not None else None,
        )
        with self._changed:
            self._fault = fault
            self._changed.notify_all()
        return fault

    def current(self) -> Fault:
        with self._lock:
            return self._fault

    def wait_for_change(self, seen: Fault, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._fault is not seen or not seen.applies_to(""), timeout)

    def describe(self) -> dict[str, Any]:
        fault = self.current()
        described = asdict(fault)
        described["remaining_seconds"] = (
            None if fault.until is None else max(0.0, round(fault.until - time.monotonic(), 1))
        )
        described.pop("until")
        described["injected"] = dict(self.counts)
        return described


def _protocol(service: str, headers: Any) -> str:
    """How the SDK expects this request's errors: S3's XML, the JSON protocol, or the query one."""
    if service in ("s3", ""):
        return "s3"
    if headers.get("X-Amz-Target") or "json" in (headers.get("Content-Type") or ""):
        return "json"
    return "query"


def _error_body(protocol: str, mode: str, status: int) -> tuple[int, str, bytes]:
    if mode == "throttle":
        status = 503 if protocol == "s3" else 400
        code = {"s3": "SlowDown", "json": "ThrottlingException", "query": "Throttling"}[protocol]
        message = "Rate exceeded (injected by the fault proxy)"
    else:
        code = "ServiceUnavailable" if status == 503 else "InternalError"
        message = "Injected by the fault proxy"
    if protocol == "json":
        return status, "application/x-amz-json-1.0", json.dumps({"__type": code, "message": message}).encode()
    error = f"<Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    if protocol == "query":
        error = f"<ErrorResponse>{error}<RequestId>fault-proxy</RequestId></ErrorResponse>"
    return status, "text/xml", f'<?xml version="1.0" encoding="UTF-8"?>{error}'.encode()


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        if self.path.split("?", 1)[0] == CONTROL_PATH:
            self._control()
            return
        state = self.server.state
        service = request_service(self.headers)
        fault = state.current()
        if fault.applies_to(service):
            state.counts[f"{fault.mode}:{service or 'unsigned'}"] += 1
            if fault.mode == "refuse":
                self._reset()
                return
            if fault.mode == "stall":
                while fault.applies_to(service):
                    state.wait_for_change(fault, timeout=0.5)
                    fault = state.current()
            elif fault.mode == "slow":
                time.sleep(fault.delay_seconds)
            elif fault.mode in ("error", "throttle"):
                self._drain_body()
                protocol = _protocol(service, self.headers)
                status, content_type, body = _error_body(protocol, fault.mode, fault.status)
                self._answer(status, content_type, body)
                return
        self._forward()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle  # noqa: N815

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, which the SDK reports as a connection error.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _drain_body(self) -> None:
        for _ in self._body_chunks():
            pass

    def _body_chunks(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self) -> None:  # noqa: PLR0912 - a proxy's plumbing: chunked or not, HEAD or not
        upstream = http.client.HTTPConnection(
            self.server.upstream_host, self.server.upstream_port, timeout=300
        )
        try:
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    upstream.putheader(name, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            for chunk in self._body_chunks():
                upstream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
            self.send_response_only(response.status, response.reason)
            length = response.getheader("Content-Length")
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if length is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                while chunk := response.read(_CHUNK):
                    self.wfile.write(chunk)
        except OSError as error:
            self.server.state.counts["upstream_error"] += 1
            if not self.wfile.closed:
                self._answer(502, "text/plain", f"fault proxy: upstream unreachable: {error}".encode())
        finally:
            upstream.close()

    def _control(self) -> None:
        if self.command == "GET":
            self._answer(200, "application/json", json.dumps(self.server.state.describe()).encode())
            return
        if self.command != "POST":
            self._answer(405, "text/plain", b"GET or POST")
            return
        try:
            spec = json.loads(b"".join(self._body_chunks()) or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            self.server.state.set(spec)
        except ValueError as error:
            self._answer(400, "application/json", json.dumps({"error": str(error)}).encode())
            return
        self._answer(200, "application/json", json.dumps(self.server.state.describe()).encode())


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], upstream: str, verbose: bool = False) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.state = FaultState()
        self.verbose = verbose
        super().__init__(listen, ProxyHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="fault-proxy", daemon=True)
        thread.start()
        return thread


class FaultSwitch:
    """Switches a running proxy's fault over HTTP (the suite and tests use this)."""

    def __init__(self, proxy_url: str) -> None:
        self.url = proxy_url.rstrip("/") + CONTROL_PATH

    def set(self, mode: str, services: list[str] | None = None, **options: Any) -> dict[str, Any]:
        body = json.dumps({"mode": mode, "services": services or [], **options}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST")  # noqa: S310 - loopback control only
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback control only
            return json.loads(response.read())

    def off(self) -> dict[str, Any]:
        return self.set("off")

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - loopback control only
            return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.faults.proxy",
        description="Forward AWS requests to the local endpoint, failing them on demand "
        f"(POST {CONTROL_PATH} to switch a fault on or off).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--listen", type=int, default=4567, help="port to listen on")
    parser.add_argument("--upstream", default="http://127.0.0.1:4566", help="the endpoint to forward to")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        server = ProxyServer((args.host, args.listen), args.upstream, verbose=args.verbose)
    except (OSError, ValueError) as error:
        print(f"fault proxy: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    print(f"fault proxy: {server.url} -> {args.upstream} (faults: {server.url}{CONTROL_PATH})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
