"""HTTP layer: a threading HTTP/1.1 server, authentication, header checks, faults and rate limit.

Order of work for an API request: count it in the log, wait ``latency_ms``, apply a
forced or random fault, apply the rate limit, check credentials (401), the
``anthropic-version`` and ``anthropic-beta`` headers (400) and the workspace (403), then
route it. Every response carries ``request-id``; a dropped connection carries nothing.
"""

import base64
import hmac
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .api import Api
from .control import Control
from .errors import ApiError, invalid_request
from .store import Store
from .traffic import Faults, RateLimiter, RequestLog, TrafficConfig, rate_limit_headers

logger = logging.getLogger(__name__)

BETA_TOKEN = "managed-agents-2026-04-01"
CONTROL_PREFIX = "/_emulator/"
MAX_BODY_BYTES = 10 * 1024 * 1024
_ID_TRANSLATION = bytes.maketrans(b"+/", b"xY")


@dataclass(slots=True)
class Emulator:
    """Everything a request handler needs: settings, state, log, faults and routes."""

    api_key: str
    workspace_id: str | None
    store: Store
    config: TrafficConfig
    log: RequestLog
    faults: Faults
    limiter: RateLimiter
    api: Api
    control: Control

    @classmethod
    def build(cls, *, api_key: str, workspace_id: str | None, store: Store, config: TrafficConfig, seed: int) -> "Emulator":
        log = RequestLog()
        faults = Faults(seed)
        limiter = RateLimiter()
        return cls(
            api_key=api_key,
            workspace_id=workspace_id,
            store=store,
            config=config,
            log=log,
            faults=faults,
            limiter=limiter,
            api=Api(store, log),
            control=Control(store=store, log=log, faults=faults, limiter=limiter, config=config),
        )


def request_id_new() -> str:
    return "req_011C" + base64.b64encode(os.urandom(15)).translate(_ID_TRANSLATION).decode("ascii")


def error_body(error: ApiError, request_id: str) -> dict:
    return {"type": "error", "error": {"type": error.error_type, "message": error.message}, "request_id": request_id}


class EmulatorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer bound to exactly the given host, with daemon handler threads."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    """Serve one keep-alive connection; every response has a Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "anthropic-emulator"
    # The headers and the body leave in two writes. With Nagle's algorithm on, the body
    # waits for the client's delayed ACK of the headers: about 40 ms on every request
    # of a kept-alive connection after its second one.
    disable_nagle_algorithm = True
    server: EmulatorServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    # Request handling

    def _handle(self, method: str) -> None:
        emulator = self.server.emulator
        request_id = request_id_new()
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)

        try:
            raw = self._read_body()
        except ValueError as exc:
            self._send_error(invalid_request(str(exc)), request_id)
            self.close_connection = True
            return

        if path.startswith(CONTROL_PREFIX):
            self._handle_control(emulator, method, path, raw, request_id)
            return
        self._handle_api(emulator, method, path, query, raw, request_id)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length_text = self.headers.get("content-length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise ValueError("content-length: must be an integer, got %r." % length_text) from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError("content-length: must be between 0 and %d bytes, got %d." % (MAX_BODY_BYTES, length))
        return self.rfile.read(length)

    def _handle_control(self, emulator: Emulator, method: str, path: str, raw: bytes, request_id: str) -> None:
        try:
            body = self._json(raw)
            status, payload = emulator.control.dispatch(method, path, body)
        except ApiError as error:
            self._send_error(error, request_id)
            return
        self._send_json(status, payload, request_id)

    def _handle_api(self, emulator: Emulator, method: str, path: str, query: dict, raw: bytes, request_id: str) -> None:
        route, params, path_known = emulator.api.match(method, path)
        self._log_generation = emulator.log.record_request(
            "%s %s" % (method, route.template if route else "(unmatched)"), params
        )
        config = emulator.config

        if config.latency_ms > 0:
            time.sleep(config.latency_ms / 1000)

        fault = emulator.faults.draw(config)
        if fault == "drop":
            self._drop(emulator)
            return
        if fault == "slow":
            time.sleep(config.slow_seconds)
        elif fault is not None:
            self._send_fault(emulator, fault, request_id)
            return

        try:
            if config.rate_limit > 0:
                allowed, wait_seconds, headers = emulator.limiter.acquire(config.rate_limit)
                if not allowed:
                    raise ApiError(429, "rate_limit_error", "Rate limit of %g requests per second exceeded; retry after %d s." % (config.rate_limit, wait_seconds), headers)
            self._check_headers(emulator)
            if route is None:
                if path_known:
                    raise ApiError(405, "invalid_request_error", "Method %s is not allowed on %s." % (method, path))
                raise ApiError(404, "not_found_error", "No endpoint %s %s." % (method, path))
            body = self._json(raw)
            status, payload = route.handler(params, query, body)
        except ApiError as error:
            emulator.log.record_status(error.status, generation=self._log_generation)
            self._send_error(error, request_id)
            return
        except Exception:
            logger.exception("Request %s %s failed (request id %s)", method, path, request_id)
            error = ApiError(500, "api_error", "Internal emulator error; see the emulator's log for request %s." % request_id)
            emulator.log.record_status(500, generation=self._log_generation)
            self._send_error(error, request_id)
            return

        # Counted before sending: a client that has its response must find it in the log.
        emulator.log.record_status(status, generation=self._log_generation)
        self._send_json(status, payload, request_id)

    def _check_headers(self, emulator: Emulator) -> None:
        """Raise 401 for missing or wrong credentials, 400 for missing version or beta, 403 for another workspace."""
        key = self.headers.get("x-api-key")
        authorization = self.headers.get("authorization", "")
        if key is None and authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
        if not key:
            raise ApiError(401, "authentication_error", "Missing API key; send x-api-key or Authorization: Bearer.")
        if not hmac.compare_digest(key.encode("utf-8"), emulator.api_key.encode("utf-8")):
            raise ApiError(401, "authentication_error", "Invalid API key.")

        if not self.headers.get("anthropic-version", "").strip():
            raise invalid_request("anthropic-version: header is required.")
        betas = [token.strip() for token in self.headers.get("anthropic-beta", "").split(",")]
        if BETA_TOKEN not in betas:
            raise invalid_request("anthropic-beta: this endpoint requires the %s beta." % BETA_TOKEN)

        workspace = self.headers.get("anthropic-workspace-id")
        if emulator.workspace_id and workspace is not None and workspace != emulator.workspace_id:
            raise ApiError(403, "permission_error", "The API key cannot act on workspace %s." % workspace)

    def _json(self, raw: bytes) -> object:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise invalid_request("The request body is not valid JSON.") from None

    # Responses

    def _drop(self, emulator: Emulator) -> None:
        """Close the connection without sending a response."""
        emulator.log.record_status("drop", generation=self._log_generation)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_fault(self, emulator: Emulator, fault: int, request_id: str) -> None:
        if fault == 429:
            error = ApiError(429, "rate_limit_error", "Rate limit exceeded (forced by the emulator).", rate_limit_headers(emulator.config.rate_limit, 0, 1))
        elif fault == 529:
            error = ApiError(529, "overloaded_error", "Overloaded (injected by the emulator).")
        else:
            error = ApiError(500, "api_error", "Internal server error (injected by the emulator).")
        emulator.log.record_status(fault, generation=self._log_generation)
        self._send_error(error, request_id)

    def _send_error(self, error: ApiError, request_id: str) -> None:
        self._send_json(error.status, error_body(error, request_id), request_id, error.headers)

    def _send_json(self, status: int, payload: object, request_id: str, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", request_id)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("Client closed the connection before response %s was sent", request_id)
            self.close_connection = True
