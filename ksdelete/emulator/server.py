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
from urllib.parse import parse_qs

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import awsconfig, cloudtrail, control, logs, shapes, sts
from .config import EmulatorConfig
from .models import EmulatorKmsBackend, install
from .realism import CLOUDTRAIL_THROTTLE_MESSAGE, RUNTIME, THROTTLE_MESSAGE

_REGION_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/")
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/")
_KEY_MEMBERS = ("KeyId", "TargetKeyId", "DestinationKeyId")
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
        refused = _unsigned_session(environ, start_response)
        if refused is not None:
            return refused
        # The caller's account (see _account): moto answers from that account's backends.
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = _account(environ)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target == cloudtrail.TARGET_PREFIX + "LookupEvents":
            return self._lookup_events(environ, start_response)
        if target == logs.TARGET_PREFIX + "FilterLogEvents":
            return self._filter_log_events(environ, start_response)
        if target.startswith("TrentService."):
            return self._kms(environ, start_response, target.split(".", 1)[1])
        if target == awsconfig.TARGET_PREFIX + awsconfig.OPERATION:
            return self._select_config(environ, start_response)
        cred = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if cred is not None and cred.group(3) == "sts":
            answered = self._sts(environ, start_response, cred.group(1), cred.group(2))
            if answered is not None:
                return answered
        return self._moto(environ, start_response)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ STS
    def _sts(
        self, environ: dict[str, Any], start_response: StartResponse, access_key_id: str,
        region: str,
    ) -> Iterable[bytes] | None:
        """GetCallerIdentity and AssumeRole (ksdelete.emulator.sts); any other STS action goes
        to moto (body restored)."""
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace"),
                                              keep_blank_values=True).items()}
        action = form.get("Action", "")
        account = _account(environ)
        answered = sts.answer(action, form, access_key_id, account)
        if answered is None:
            return None
        if action != "GetCallerIdentity":  # as before: the call log holds no identity checks
            found = sts.problems(action, answered.status, answered.body) \
                if RUNTIME.config.validate else []
            call = {"service": "sts", "operation": action, "region": region,
                    "account": account, "status": answered.status, "error": None,
                    **answered.logged}
            with RUNTIME.lock:
                RUNTIME.calls.append(call)
                RUNTIME.problems.extend(found)
        return _respond(start_response, answered.status, answered.body, "text/xml",
                        answered.request_id)

    # ------------------------------------------------------------------ AWS Config
    def _select_config(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """SelectAggregateResourceConfig over every account's keys (emulator.awsconfig)."""
        body = _read_body(environ)
        match = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        cfg = RUNTIME.config
        try:
            params: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            params = None
        named = {o.strip() for o in cfg.fault_operations.split(",")}
        if "config:" + awsconfig.OPERATION in named and RUNTIME.faulted(
                "config:" + awsconfig.OPERATION):
            # Only when named: a hub without config:SelectAggregateResourceConfig.
            status, payload = _error(400, "AccessDeniedException", "User is not authorized to "
                                     "perform: config:SelectAggregateResourceConfig")
        elif not isinstance(params, dict):
            status, payload = _error(400, "ValidationException", "Request body is not JSON")
        else:
            problems = shapes.validate_request(awsconfig.OPERATION, params, "config") \
                if cfg.validate else []
            if problems:
                status, payload = _error(400, "ValidationException", "; ".join(problems))
            else:
                try:
                    with RUNTIME.lock:
                        keys = _config_keys()
                        result = awsconfig.select(params, region, keys)
                    status, payload = 200, json.dumps(result).encode()
                except awsconfig.ConfigError as exc:
                    status, payload = _error(400, exc.code, exc.message)
        found: list[str] = []
        if cfg.validate:
            found = shapes.validate_response_body(awsconfig.OPERATION, status, payload,
                                                  "config")
        with RUNTIME.lock:
            RUNTIME.calls.append({"service": "config", "operation": awsconfig.OPERATION,
                                  "region": region, "account": _account(environ),
                                  "status": status, "error": _error_code(status, payload)})
            RUNTIME.problems.extend(f"config {p}" for p in found)
        return _respond(start_response, status, payload, "application/x-amz-json-1.1",
                        cloudtrail.new_uuid())

    # ------------------------------------------------------------------ CloudTrail
    def _lookup_events(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        arrived = round(time.time(), 4)
        body = _read_body(environ)
        match = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        cfg = RUNTIME.config
        if cfg.latency_ms > 0:
            time.sleep(cfg.latency_ms / 1000.0)
        status, payload = self._lookup_answer(region, _account(environ), body, cfg)
        found: list[str] = []
        if cfg.validate:
            found = shapes.validate_response_body("LookupEvents", status, payload, "cloudtrail")
        call: dict[str, Any] = {
            "service": "cloudtrail",
            "operation": "LookupEvents",
            "region": region,
            "account": _account(environ),
            "status": status,
            "error": _error_code(status, payload),
            "arrived": arrived,
            "wall": round(time.time(), 4),
        }
        with RUNTIME.lock:
            RUNTIME.calls.append(call)
            RUNTIME.problems.extend(f"cloudtrail {p}" for p in found)
        request_id = cloudtrail.new_uuid()
        return _respond(start_response, status, payload, "application/x-amz-json-1.1", request_id)

    # ------------------------------------------------------------------ CloudWatch Logs
    def _filter_log_events(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        arrived = round(time.time(), 4)
        body = _read_body(environ)
        match = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        cfg = RUNTIME.config
        if cfg.latency_ms > 0:
            time.sleep(cfg.latency_ms / 1000.0)
        try:
            params: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            params = None
        if not isinstance(params, dict):
            status, payload = _error(400, "InvalidParameterException", "Request body is not JSON")
        elif RUNTIME.throttled(region, "logs:FilterLogEvents", _account(environ)):
            status, payload = _error(400, "ThrottlingException", "Rate exceeded")
        else:
            problems = shapes.validate_request("FilterLogEvents", params, "logs") \
                if cfg.validate else []
            if problems:
                status, payload = _error(400, "InvalidParameterException", "; ".join(problems))
            else:
                try:
                    account = _account(environ)
                    with RUNTIME.lock:
                        control.backend_for(region, account).tick()
                        result = logs.filter_log_events(region, params, account)
                    status, payload = 200, json.dumps(result).encode()
                except logs.LogsError as exc:
                    status, payload = _error(400, exc.code, exc.message)
        found: list[str] = []
        if cfg.validate:
            found = shapes.validate_response_body("FilterLogEvents", status, payload, "logs")
        with RUNTIME.lock:
            RUNTIME.calls.append({"service": "logs", "operation": "FilterLogEvents",
                                  "region": region, "account": _account(environ),
                                  "status": status, "error": _error_code(status, payload),
                                  "arrived": arrived, "wall": round(time.time(), 4)})
            RUNTIME.problems.extend(f"logs {p}" for p in found)
        return _respond(start_response, status, payload, "application/x-amz-json-1.1",
                        cloudtrail.new_uuid())

    def _lookup_answer(self, region: str, account: str, body: bytes, cfg: EmulatorConfig
                       ) -> tuple[int, bytes]:
        if RUNTIME.throttled(region, "cloudtrail:LookupEvents", account):
            return _error(400, "ThrottlingException", CLOUDTRAIL_THROTTLE_MESSAGE)
        named = {o.strip() for o in cfg.fault_operations.split(",")}
        if "cloudtrail:LookupEvents" in named and RUNTIME.faulted("cloudtrail:LookupEvents"):
            # Only when named: a caller without cloudtrail:LookupEvents.
            return _error(400, "AccessDeniedException", "User is not authorized to perform: "
                          "cloudtrail:LookupEvents")
        try:
            params: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return _error(400, "ValidationException", "Request body is not a JSON object")
        try:
            cloudtrail.check_lookup(params)
            if cfg.validate:
                problems = shapes.validate_request("LookupEvents", params, "cloudtrail")
                if problems:
                    return _error(400, "ValidationException", "; ".join(problems))
            with RUNTIME.lock:
                control.backend_for(region, account).tick()
                result = cloudtrail.lookup_events(region, params, account)
        except cloudtrail.TrailError as exc:
            return _error(400, exc.code, exc.message)
        return 200, json.dumps(result).encode()

    def _kms(
        self, environ: dict[str, Any], start_response: StartResponse, operation: str
    ) -> Iterable[bytes]:
        arrived = round(time.time(), 4)
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
        request_id = cloudtrail.new_uuid()
        context = cloudtrail.begin_call()
        try:
            status, payload = self._answer(environ, operation, region, body, params, cfg)
        finally:
            cloudtrail.end_call()
        # The event's time is when the call took effect: under a fast emulated clock, a
        # DeletionDate (set while answering) minus its window is never after its event.
        when = RUNTIME.clock.epoch()
        error = _error_code(status, payload)
        if isinstance(params, dict):
            self._record(environ, operation, region, params, status, payload, context,
                         request_id, when)
        call: dict[str, Any] = {
            "operation": operation,
            "region": region,
            "account": _account(environ),
            "status": status,
            "error": error,
            "arrived": arrived,  # when it came in: where a quota counts it
            "wall": round(time.time(), 4),  # when it was answered (benchmarks split runs by it)
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
        return _respond(
            start_response, status, payload, "application/x-amz-json-1.1", request_id
        )

    def _record(
        self,
        environ: dict[str, Any],
        operation: str,
        region: str,
        params: dict[str, Any],
        status: int,
        payload: bytes,
        context: cloudtrail.CallContext,
        request_id: str,
        when: float,
    ) -> None:
        """The call's CloudTrail event, and its key's last usage when a crypto call succeeded."""
        names_key = any(isinstance(params.get(m), str) for m in _KEY_MEMBERS)
        if not (
            names_key
            or context.keys
            or operation == "CreateKey"
            or operation in cloudtrail.STORE_OPERATIONS
        ):
            return
        doc: Any = None
        if status < 300:
            try:
                doc = json.loads(payload) if payload.strip() else {}
            except ValueError:
                doc = None
        with RUNTIME.lock:
            backend = control.backend_for(region, _account(environ))
            keys = list(context.keys) or _named_keys(backend, params, doc)
            event_id = cloudtrail.new_uuid()
            if status < 300 and operation in cloudtrail.TRACKED_OPERATIONS:
                for key in context.used:
                    if key.id in backend.keys:
                        backend.record_usage(key, operation, when, event_id, request_id)
            error = None
            if status >= 300:
                code = _error_code(status, payload) or "InternalFailure"
                try:
                    message = str(json.loads(payload).get("message", ""))
                except (ValueError, AttributeError):
                    message = ""
                error = (code, message)
            logged = cloudtrail.camel_members(params)
            if operation in ("Decrypt", "ReEncrypt") and keys and "keyId" not in logged:
                logged["keyId" if operation == "Decrypt" else "sourceKeyId"] = keys[0].arn
            if operation in ("Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey",
                             "GenerateDataKeyWithoutPlaintext"):
                algorithm = "encryptionAlgorithm" if operation != "ReEncrypt" else \
                    "destinationEncryptionAlgorithm"
                if operation.startswith("GenerateDataKey"):
                    algorithm = ""
                if algorithm:
                    logged.setdefault(algorithm, "SYMMETRIC_DEFAULT")
            caller = _caller(environ)
            record = cloudtrail.api_event(
                operation=operation,
                region=region,
                when=when,
                caller=caller,
                request_id=request_id,
                event_id=event_id,
                request_parameters=logged or None,
                response_elements=_response_elements(operation, doc),
                keys=keys,
                error=error,
            )
            cloudtrail.record_api_event(region, when, caller, record, keys)

    def _answer(
        self,
        environ: dict[str, Any],
        operation: str,
        region: str,
        body: bytes,
        params: Any,
        cfg: EmulatorConfig,
    ) -> tuple[int, bytes]:
        unknown = {op.strip() for op in cfg.unknown_operations.split(",") if op.strip()}
        if operation not in shapes.kms_model().operation_names or operation in unknown:
            return _error(400, "UnknownOperationException", f"Unknown operation {operation}")
        if RUNTIME.throttled(region, operation, _account(environ)):
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
            problems = shapes.request_errors(operation, params)
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


def _account(environ: dict[str, Any]) -> str:
    """The caller's account: moto's X-Moto-Account-Id header if sent, else the account of the
    principal the `principals` knob maps the caller's access key to, else the default one."""
    from moto.core.models import DEFAULT_ACCOUNT_ID

    given = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if given:
        return str(given)
    cred = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return cloudtrail.account_of(cred.group(1), DEFAULT_ACCOUNT_ID) if cred \
        else DEFAULT_ACCOUNT_ID


def _unsigned_session(environ: dict[str, Any], start_response: StartResponse
                      ) -> Iterable[bytes] | None:
    """A request signed with an AssumeRole access key but without that session's token (or
    with another): refused as AWS refuses it, in the protocol of the service asked."""
    cred = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    session = RUNTIME.sessions.get(cred.group(1)) if cred else None
    if cred is None or session is None or \
            environ.get("HTTP_X_AMZ_SECURITY_TOKEN") == session.session_token:
        return None
    message = "The security token included in the request is invalid."
    if cred.group(3) == "sts":
        answered = sts.error_answer(403, "InvalidClientTokenId", message)
        return _respond(start_response, answered.status, answered.body, "text/xml",
                        answered.request_id)
    status, payload = _error(400, "UnrecognizedClientException", message)
    return _respond(start_response, status, payload, "application/x-amz-json-1.1")


def _caller(environ: dict[str, Any]) -> cloudtrail.Caller:
    cred = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return cloudtrail.Caller(
        access_key_id=cred.group(1) if cred else "ANONYMOUS",
        account=_account(environ),
        source_ip=str(environ.get("REMOTE_ADDR") or "127.0.0.1"),
        user_agent=str(environ.get("HTTP_USER_AGENT") or ""),
    )


def _error_code(status: int, payload: bytes) -> str | None:
    if status < 300:
        return None
    try:
        return str(json.loads(payload).get("__type", "")).rsplit("#", 1)[-1] or None
    except (ValueError, AttributeError):
        return "<non-JSON>"


def _named_keys(backend: EmulatorKmsBackend, params: dict[str, Any], doc: Any) -> list[Any]:
    """Keys named by a call the emulator's own actions did not resolve (moto's actions)."""
    out: list[Any] = []
    wanted = [params.get(m) for m in _KEY_MEMBERS]
    if isinstance(doc, dict) and isinstance(doc.get("KeyMetadata"), dict):
        wanted.append(doc["KeyMetadata"].get("KeyId"))
    for ident in wanted:
        if not isinstance(ident, str):
            continue
        key = None
        if ident.startswith("alias/") or ":alias/" in ident:
            name = "alias/" + ident.split(":alias/", 1)[-1].removeprefix("alias/")
            key = next((k for k in list(backend.keys.values()) if name in k.aliases), None)
        else:
            key = backend.keys.get(ident.split(":key/", 1)[-1])
        if key is not None and all(k is not key for k in out):
            out.append(key)
    return out


def _response_elements(operation: str, doc: Any) -> dict[str, Any] | None:
    """What KMS logs as ``responseElements`` for a successful call (kms-gates-facts §6): the key
    ARN and state for Schedule/CancelKeyDeletion, new IDs for creations, null otherwise (reads,
    cryptographic operations and empty answers)."""
    if not isinstance(doc, dict):
        return None
    if operation == "ScheduleKeyDeletion":
        out: dict[str, Any] = {"keyId": doc.get("KeyId"), "keyState": doc.get("KeyState")}
        if "DeletionDate" in doc:
            out["deletionDate"] = cloudtrail.human_date(float(doc["DeletionDate"]))
        if "PendingWindowInDays" in doc:
            out["pendingWindowInDays"] = doc["PendingWindowInDays"]
        return out
    if operation == "CancelKeyDeletion":
        return {"keyId": doc.get("KeyId")}
    if operation == "CreateKey" and isinstance(doc.get("KeyMetadata"), dict):
        meta = dict(doc["KeyMetadata"])
        for name in ("CreationDate", "DeletionDate", "ValidTo"):
            if isinstance(meta.get(name), int | float):
                meta[name] = cloudtrail.human_date(float(meta[name]))
        return {"keyMetadata": cloudtrail.camel_members(meta)}
    if operation == "CreateCustomKeyStore":
        return {"customKeyStoreId": doc.get("CustomKeyStoreId")}
    if operation == "CreateGrant":
        return {"grantId": doc.get("GrantId")}
    return None


def _config_keys() -> list[dict[str, Any]]:
    """Every key in a custom key store that Config could know of, in every account and Region:
    those that exist, and those deleted when their window ended (Config lags)."""
    out: list[dict[str, Any]] = []
    for backend in control.all_backends():
        backend.tick()
        where = {"account": backend.account_id, "region": backend.region_name}
        for key in list(backend.keys.values()):
            store = getattr(key, "custom_key_store_id", None)
            if store:
                out.append({**where, "id": key.id, "store": store,
                            "created": float(key.creation_date), "deleted": None})
        for key_id, (created, deleted, store) in backend.deleted_keys.items():
            if store:
                out.append({**where, "id": key_id, "store": store, "created": created,
                            "deleted": deleted})
    return out


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
    start_response: StartResponse,
    status: int,
    payload: bytes,
    content_type: str,
    request_id: str | None = None,
) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
              500: "Internal Server Error"}
    start_response(
        f"{status} {reason.get(status, 'Status')}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            ("x-amzn-RequestId", request_id or str(uuid.uuid4())),
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
