"""The HTTP server: a WSGI layer (control API, realism, validation, call log) in front of moto."""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import control, shapes
from .config import EmulatorConfig
from .models import install
from .realism import RUNTIME, THROTTLE_MESSAGE

_REGION_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/")
_READS = frozenset({"DescribeKey", "ListKeys", "DescribeCustomKeyStores", "ListAliases"})

StartResponse = Callable[..., Any]


def _speedups() -> None:
    """Cache two per-request introspections moto repeats (notes §1.5.8); pure caching."""
    import moto.backends as moto_backends
    import moto.core.responses as moto_responses

    if getattr(moto_backends, "_ksdelete_cached", False):
        return
    modules = tuple(moto_backends.list_of_moto_modules())
    patches: list[tuple[Any, str, Any]] = [
        (moto_backends, "list_of_moto_modules", lambda: modules),
        (moto_backends, "_ksdelete_cached", True),
        (
            moto_responses,
            "method_names_from_class",
            functools.cache(vars(moto_responses)["method_names_from_class"]),
        ),
    ]
    for module, name, value in patches:
        setattr(module, name, value)


class EmulatorApp:
    """WSGI app: ``/_emulator/*`` control endpoints, KMS (with realism), then the rest of moto."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        install()
        _speedups()
        self._moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator"):
            body = _read_body(environ)
            status, doc = control.handle(
                environ.get("REQUEST_METHOD", "GET"), path, environ.get("QUERY_STRING", ""), body
            )
            return _respond(start_response, status, json.dumps(doc).encode(), "application/json")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("TrentService."):
            return self._moto(environ, start_response)  # type: ignore[no-any-return]
        return self._kms(environ, start_response, target.split(".", 1)[1])

    def _kms(
        self, environ: dict[str, Any], start_response: StartResponse, operation: str
    ) -> Iterable[bytes]:
        body = _read_body(environ)
        match = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        try:
            params: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            params = None
        cfg = RUNTIME.config
        if cfg.latency_ms > 0:
            time.sleep(cfg.latency_ms / 1000.0)
        status, payload = self._answer(environ, operation, region, body, params, cfg)
        error = None
        if status >= 300:
            try:
                error = str(json.loads(payload).get("__type", "")).rsplit("#", 1)[-1] or None
            except (ValueError, AttributeError):
                error = "<non-JSON>"
        call: dict[str, Any] = {
            "operation": operation,
            "region": region,
            "status": status,
            "error": error,
        }
        if isinstance(params, dict):
            for member, name in (("KeyId", "key_id"), ("CustomKeyStoreId", "custom_key_store_id")):
                if isinstance(params.get(member), str):
                    call[name] = params[member]
        found: list[str] = []
        if cfg.validate and operation in shapes.kms_model().operation_names:
            found = shapes.validate_response_body(operation, status, payload)
        with RUNTIME.lock:
            RUNTIME.calls.append(call)
            RUNTIME.problems.extend(found)
        return _respond(start_response, status, payload, "application/x-amz-json-1.1")

    def _answer(
        self,
        environ: dict[str, Any],
        operation: str,
        region: str,
        body: bytes,
        params: Any,
        cfg: EmulatorConfig,
    ) -> tuple[int, bytes]:
        if operation not in shapes.kms_model().operation_names:
            return _error(400, "UnknownOperationException", f"Unknown operation {operation}")
        if RUNTIME.throttled(region, operation):
            return _error(400, "ThrottlingException", THROTTLE_MESSAGE)
        if RUNTIME.faulted(operation):
            return _error(
                500,
                "KMSInternalException",
                "The request was rejected because an internal exception occurred. "
                "The request can be retried.",
            )
        if params is None or not isinstance(params, dict):
            return _error(400, "SerializationException", "Request body is not a JSON object")
        if cfg.validate:
            problems = shapes.validate_request(operation, params)
            if problems:
                count = len(problems)
                return _error(
                    400,
                    "ValidationException",
                    f"{count} validation error{'s' if count > 1 else ''} detected: "
                    + "; ".join(problems),
                )
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            return lambda data: None

        # One lock around the whole KMS action: moto's own actions (aliases, tags, ...) iterate
        # the key dict, which clock-driven deletion mutates.
        with RUNTIME.lock:
            chunks = self._moto(environ, capture)
            try:
                payload = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        return int(captured.get("status", 500)), payload


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"__type": code, "message": message}).encode()


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    if stream is None or length <= 0:
        return b""
    data: bytes = stream.read(length)
    return data


def _respond(
    start_response: StartResponse, status: int, payload: bytes, content_type: str
) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    start_response(
        f"{status} {reason.get(status, 'Status')}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [payload]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        # Like AWS, every answer's Date header carries the service's clock: here the emulated
        # one, so clients that read server time (ksdelete does) follow advance() and time_scale.
        return formatdate(RUNTIME.clock.epoch() if timestamp is None else timestamp,
                          usegmt=True)


def build_server(host: str, port: int, config: EmulatorConfig | None = None) -> BaseWSGIServer:
    """Create (bind) the threaded server; apply ``config`` to the process-wide runtime."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    cfg = config or EmulatorConfig()
    cfg.check()
    RUNTIME.apply_config(cfg.to_dict())
    RUNTIME.reseed()
    app = EmulatorApp()
    return make_server(host, port, app, threaded=True, request_handler=_QuietHandler)


def serve(
    host: str = "127.0.0.1",
    port: int = 4566,
    config: EmulatorConfig | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or KeyboardInterrupt).

    Once it accepts requests, call ``ready(url)`` if given, else print exactly one line
    ``KMS emulator listening on http://HOST:PORT``. ``port=0`` picks a free port.
    """
    server = build_server(host, port, config)
    url = f"http://{host}:{server.server_port}"
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="kms-emulator", daemon=True)
    thread.start()
    try:
        if ready is not None:
            ready(url)
        else:
            print(f"KMS emulator listening on {url}", flush=True)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
