# SPDX-License-Identifier: MIT
"""Integration test harness for agentd.

Starts agentd from the build tree with a private runtime directory and CODEX_HOME per
test, talks to it over stdio, unix sockets and websockets, validates every message the
server sends against the Codex app-server JSON Schema, and on teardown stops agentd with
SIGTERM and checks that it exited 0, reaped every helper and removed its sockets.

Environment:
  AGENTD_BUILDDIR      build tree holding agentd/agentd (default: the repository root)
  AGENTD_PROTOCOL_DIR  the schema directory (default: <repo>/tests/protocol/app-server-0.169.0)

Only Debian's python3 packages are used: pytest, jsonschema, websockets (10.x: asyncio API).
"""
import asyncio
import base64
import collections
import contextlib
import hashlib
import http.client
import itertools
import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import jsonschema
import pytest
import websockets
import websockets.exceptions

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("AGENTD_BUILDDIR", REPO_ROOT)).resolve()
AGENTD_BIN = BUILDDIR / "agentd" / "agentd"
HELPERS = ("execd", "sandboxd", "authd", "watchd")

def _protocol_dir():
    if os.environ.get("AGENTD_PROTOCOL_DIR"):
        return Path(os.environ["AGENTD_PROTOCOL_DIR"])
    # The copy in the repository first (tests/protocol/), then the shared reference beside it.
    for candidate in (REPO_ROOT / "tests" / "protocol", REPO_ROOT.parent / "shared" / "protocol"):
        if (candidate / "app-server-0.169.0").is_dir():
            return candidate / "app-server-0.169.0"
    return REPO_ROOT / "tests" / "protocol" / "app-server-0.169.0"


PROTOCOL_DIR = _protocol_dir()

# Timeouts (seconds). Nothing in the harness waits without one.
START_TIMEOUT = 10.0  # helpers register in ~0.1 s; agentd serves anyway after 5 s
RECV_TIMEOUT = 5.0
STOP_TIMEOUT = 10.0  # helpers get 3 s after SIGTERM before SIGKILL
TEST_TIMEOUT = 30  # hard per-test watchdog (SIGALRM)

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700

WS_BANNER_RE = re.compile(r"listening on: ws://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)")


class ConnectionClosed(Exception):
    """The server closed the connection (EOF, websocket close)."""


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.error = error


# --------------------------------------------------------------------------------------
# small utilities


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    """Poll @predicate until it returns a truthy value; return it, or fail after @timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        with open(f"/proc/{pid}/wchan") as f:
            return f"{comm}, in {f.read().strip()}"
    except OSError:
        return "?"


def proc_stat(pid):
    """(state, ppid, starttime) of @pid from /proc, or None when there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def children_of(pid):
    """{child pid: starttime} of the live (or zombie) children of @pid."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st[1] == pid:
            out[int(entry)] = st[2]
    return out


def processes_with_env(name, value):
    """Pids of live processes whose environment has @name=@value (helpers inherit agentd's)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------------------
# schema validation of everything the server sends


def _health_schema():
    service_entry = {
        "type": "object",
        "required": ["name", "registered", "pid", "restarts"],
        "properties": {
            "name": {"enum": list(HELPERS)},
            "registered": {"type": "boolean"},
            "pid": {"type": "integer", "minimum": 0},
            "restarts": {"type": "integer", "minimum": 0},
        },
    }
    suite = {
        "type": "object",
        "required": ["status", "services", "connections"],
        "properties": {
            "status": {"enum": ["ok", "stopping"]},
            "services": {"type": "array", "items": service_entry, "minItems": len(HELPERS)},
            "connections": {"type": "integer", "minimum": 1},
        },
    }
    helper = {
        "type": "object",
        "required": ["service", "status", "pid", "uptimeMs", "version"],
        "properties": {
            "service": {"enum": list(HELPERS)},
            "status": {"type": "string"},
            "pid": {"type": "integer", "minimum": 1},
            "uptimeMs": {"type": "integer", "minimum": 0},
            "version": {"type": "string"},
        },
    }
    return {"oneOf": [suite, helper]}


def _unlisted_result_schemas():
    """Results of methods the 0.169 schema routes but does not describe (experimental), in the
    shapes the reference answers them (captured from codex app-server 0.169)."""
    effort = {"type": ["string", "null"]}
    return {
        "collaborationMode/list": {
            "type": "object", "required": ["data"], "additionalProperties": False,
            "properties": {"data": {"type": "array", "items": {
                "type": "object", "required": ["name", "mode", "model", "reasoning_effort"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "mode": {"enum": ["plan", "default"]},
                               "model": {"type": ["string", "null"]}, "reasoning_effort": effort}}}}},
        "account/bedrock/checkGovCloudRequirements": {
            "type": "object", "required": ["isGovCloud", "shouldWarn"], "additionalProperties": False,
            "properties": {"isGovCloud": {"type": "boolean"}, "shouldWarn": {"type": "boolean"}}},
        "thread/readState/update": {
            "type": "object", "required": ["readState"], "additionalProperties": False,
            "properties": {"readState": {
                "type": "object", "required": ["firstUnread", "revision"], "additionalProperties": False,
                "properties": {"revision": {"type": "string", "minLength": 1}, "firstUnread": {"oneOf": [
                    {"type": "null"},
                    {"type": "object", "required": ["type"], "properties": {"type": {"const": "threadStart"}}},
                    {"type": "object", "required": ["type", "turnId"],
                     "properties": {"type": {"const": "turn"}, "turnId": {"type": "string"}}}]}}}}},
    }


def _auth_status_schema():
    auth_method = {"enum": ["apikey", "chatgpt", "chatgptAuthTokens", "agentIdentity", "personalAccessToken", None]}
    return {
        "type": "object",
        "required": ["authMethod", "authToken", "requiresOpenaiAuth"],
        "additionalProperties": False,
        "properties": {
            "authMethod": auth_method,
            "authToken": {"type": ["string", "null"]},
            "requiresOpenaiAuth": {"type": ["boolean", "null"]},
        },
    }


class ProtocolValidator:
    """Checks one server message; returns a list of problems (empty when it conforms)."""

    def __init__(self, schema_dir):
        self.dir = Path(schema_dir)
        self.initialize_response = self._load("v1/InitializeResponse.json")
        self.error = self._load("JSONRPCError.json")
        self.response = self._load("JSONRPCResponse.json")
        self.notification = self._load("ServerNotification.json")
        self.server_request = self._load("ServerRequest.json")
        self.result_validators = {
            "initialize": self.initialize_response,
            # agentd's own extension, not in the schema: its shape as agentd documents it.
            "agentd/health": jsonschema.Draft7Validator(_health_schema()),
            "account/read": self._load("v2/GetAccountResponse.json"),
            "account/login/start": self._load("v2/LoginAccountResponse.json"),
            "account/login/cancel": self._load("v2/CancelLoginAccountResponse.json"),
            "account/logout": self._load("v2/LogoutAccountResponse.json"),
            # v1's getAuthStatus is routed by the reference but not in the 0.169 schema: its shape
            # as the reference answers it (codex-behaviour.md §6.3).
            "getAuthStatus": jsonschema.Draft7Validator(_auth_status_schema()),
        }
        for method, name in (("thread/start", "ThreadStart"), ("thread/resume", "ThreadResume"),
                             ("thread/read", "ThreadRead"), ("thread/list", "ThreadList"),
                             ("thread/loaded/list", "ThreadLoadedList"), ("thread/turns/list", "ThreadTurnsList"),
                             ("thread/archive", "ThreadArchive"), ("thread/unarchive", "ThreadUnarchive"),
                             ("thread/name/set", "ThreadSetName"), ("thread/unsubscribe", "ThreadUnsubscribe"),
                             ("thread/shellCommand", "ThreadShellCommand"), ("turn/start", "TurnStart"), ("turn/steer", "TurnSteer"),
                             ("turn/interrupt", "TurnInterrupt")):
            self.result_validators[method] = self._load(f"v2/{name}Response.json")
        for method, name in (("model/list", "ModelList"), ("config/read", "ConfigRead"),
                             ("configRequirements/read", "ConfigRequirementsRead"), ("skills/list", "SkillsList"),
                             ("hooks/list", "HooksList"), ("plugin/installed", "PluginInstalled")):
            self.result_validators[method] = self._load(f"v2/{name}Response.json")
        for method, schema in _unlisted_result_schemas().items():
            jsonschema.Draft7Validator.check_schema(schema)
            self.result_validators[method] = jsonschema.Draft7Validator(schema)

    def _load(self, relative):
        path = self.dir / relative
        schema = json.loads(path.read_text())
        jsonschema.Draft7Validator.check_schema(schema)
        resolver = jsonschema.RefResolver(base_uri=path.as_uri(), referrer=schema)
        return jsonschema.Draft7Validator(schema, resolver=resolver)

    @staticmethod
    def _errors(validator, instance, label):
        return [
            f"{label}: {e.message} at {'/'.join(map(str, e.absolute_path)) or '<root>'}"
            for e in validator.iter_errors(instance)
        ]

    def check(self, msg, method_of_id):
        if not isinstance(msg, dict):
            return [f"server sent a non-object message: {msg!r}"]
        problems = []
        if "jsonrpc" in msg:
            problems.append("server message carries a 'jsonrpc' field (the reference omits it)")
        if "method" in msg and "id" in msg:
            problems += self._errors(self.server_request, msg, "ServerRequest")
        elif "method" in msg:
            problems += self._errors(self.notification, msg, "ServerNotification")
        elif "error" in msg:
            if msg.get("id", "absent") is None:
                # JSON-RPC's id-null error (parse errors, unreadable ids): the schema's
                # RequestId cannot express it, so it is checked by hand.
                err = msg.get("error")
                if set(msg) != {"error", "id"}:
                    problems.append(f"id-null error has keys {sorted(msg)}, want exactly error,id")
                if not isinstance(err, dict):
                    problems.append("id-null error: 'error' is not an object")
                else:
                    code, text = err.get("code"), err.get("message")
                    if not isinstance(code, int) or isinstance(code, bool):
                        problems.append(f"id-null error: code {code!r} is not an integer")
                    if not isinstance(text, str):
                        problems.append(f"id-null error: message {text!r} is not a string")
                    if set(err) - {"code", "message", "data"}:
                        problems.append(f"id-null error: unexpected error keys {sorted(err)}")
            else:
                problems += self._errors(self.error, msg, "JSONRPCError")
                if set(msg) != {"error", "id"}:
                    problems.append(f"error response has keys {sorted(msg)}, want exactly error,id")
        elif "result" in msg:
            problems += self._errors(self.response, msg, "JSONRPCResponse")
            if set(msg) != {"id", "result"}:
                problems.append(f"response has keys {sorted(msg)}, want exactly id,result")
            method = method_of_id(msg.get("id"))
            if method is None:
                problems.append(f"response to id {msg.get('id')!r}, which no request of this client used")
            elif method in self.result_validators:
                problems += self._errors(self.result_validators[method], msg["result"], f"{method} result")
        else:
            problems.append(f"message is neither request, notification nor response: {msg!r}")
        return problems


# --------------------------------------------------------------------------------------
# clients


def _id_key(value):
    # JSON ids 1 and "1" differ; True is not an id. Keep type in the key.
    return (type(value).__name__, json.dumps(value, sort_keys=True))


class JsonRpcClient:
    """Transport-neutral JSON-RPC client: one queue of server messages, all validated."""

    kind = "?"
    _ids = itertools.count(1_000_001)  # well away from the small ids tests pick by hand

    def __init__(self, validator, owner=None):
        self.validator = validator
        self.owner = owner  # the AgentdProcess, told about helper pids seen in health answers
        self.messages = queue.Queue()
        self.received = []  # every message, in order
        self.notifications = []
        self.violations = []
        self.methods_by_id = {}
        self.closed = threading.Event()
        self.close_info = None
        self.sandbox_warnings = []  # the host-probe configWarnings initialize() took off the queue
        self._held = collections.deque()  # messages initialize() read past, returned first
        self._lock = threading.Lock()

    # -- called by the transport's reader --------------------------------------------
    def _deliver_text(self, text):
        try:
            msg = json.loads(text)
        except ValueError as e:
            with self._lock:
                self.violations.append(f"server sent invalid JSON ({e}): {text[:200]!r}")
            self.messages.put(("invalid", text))
            return
        with self._lock:
            problems = self.validator.check(msg, self._method_of_id)
            self.violations += [f"{p} in {json.dumps(msg)[:300]}" for p in problems]
            self.received.append(msg)
        if self.owner is not None and isinstance(msg, dict) and isinstance(msg.get("result"), dict):
            services = msg["result"].get("services")
            if isinstance(services, list):
                self.owner.note_helper_pids(s.get("pid") for s in services if isinstance(s, dict))
            elif "service" in msg["result"]:
                self.owner.note_helper_pids([msg["result"].get("pid")])
        self.messages.put(("msg", msg))

    def _deliver_closed(self, info=None):
        self.close_info = info
        self.closed.set()
        self.messages.put(("closed", info))

    def _method_of_id(self, id_value):
        return self.methods_by_id.get(_id_key(id_value))

    # -- sending -----------------------------------------------------------------------
    def send_text(self, text, timeout=RECV_TIMEOUT):  # pragma: no cover - per transport
        raise NotImplementedError

    def note_outgoing(self, obj):
        """Remember which method an id was used for, so its response can be validated."""
        if isinstance(obj, dict) and "id" in obj and isinstance(obj.get("method"), str):
            with self._lock:
                self.methods_by_id[_id_key(obj["id"])] = obj["method"]

    def send(self, obj, timeout=RECV_TIMEOUT):
        self.note_outgoing(obj)
        self.send_text(json.dumps(obj), timeout=timeout)

    def send_raw(self, data, timeout=RECV_TIMEOUT):
        """Send one message given as text/bytes exactly (the transport adds its framing)."""
        try:
            self.note_outgoing(json.loads(data))
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        self.send_text(data, timeout=timeout)

    # -- receiving ---------------------------------------------------------------------
    def assert_conforming(self):
        with self._lock:
            problems = list(self.violations)
        assert not problems, f"{self.kind} server messages violate the protocol:\n" + "\n".join(problems)

    def recv(self, timeout=RECV_TIMEOUT):
        if self._held:
            return self._held.popleft()
        return self._recv_new(timeout)

    def _recv_new(self, timeout=RECV_TIMEOUT):
        try:
            kind, value = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.kind}: no message from agentd within {timeout:.1f} s") from None
        self.assert_conforming()
        if kind == "closed":
            self.messages.put((kind, value))  # sticky
            raise ConnectionClosed(f"{self.kind}: connection closed ({value})")
        return value

    def expect_silence(self, window=0.3):
        """Assert nothing arrives within @window (for messages that must not be answered)."""
        if self._held:
            raise AssertionError(f"{self.kind}: unexpected message from agentd: {self._held[0]!r}")
        try:
            kind, value = self.messages.get(timeout=window)
        except queue.Empty:
            return
        self.messages.put((kind, value))
        raise AssertionError(f"{self.kind}: unexpected {kind} from agentd: {value!r}")

    def sync(self, timeout=RECV_TIMEOUT):
        """Assert nothing else is on its way: the next message answers a fresh request.

        agentd answers one connection's synchronous requests in order, so any stray message
        (a second answer, an answer to a notification) would arrive before this one.
        """
        id_value = f"sync-{next(self._ids)}"
        self.send({"id": id_value, "method": "agentd/health"}, timeout=timeout)
        msg = self.recv(timeout=timeout)
        assert msg.get("id") == id_value, f"{self.kind}: unexpected message from agentd: {msg!r}"
        return msg

    def wait_response(self, id_value, timeout=RECV_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(timeout=max(0.0, deadline - time.monotonic()))
            if "id" not in msg and "method" in msg:
                self.notifications.append(msg)
                continue
            assert _id_key(msg.get("id")) == _id_key(id_value), (
                f"{self.kind}: expected the answer to id {id_value!r}, got {msg!r}"
            )
            return msg

    def request(self, method, params=None, *, id=None, timeout=RECV_TIMEOUT):
        """Send a request and return the whole answer (result or error message)."""
        if id is None:
            id = next(self._ids)
        msg = {"id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg, timeout=timeout)
        return self.wait_response(id, timeout=timeout)

    def call(self, method, params=None, **kw):
        """request() that returns the result or raises RpcError."""
        msg = self.request(method, params, **kw)
        if "error" in msg:
            raise RpcError(msg["error"])
        return msg["result"]

    def notify(self, method, params=None):
        msg = {"method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def initialize(self, name="agentd-integration-tests", version="1.0.0", timeout=RECV_TIMEOUT, **extra):
        params = {"clientInfo": {"name": name, "version": version}}
        params.update(extra)
        result = self.call("initialize", params, timeout=timeout)
        self.take_sandbox_warnings(extra.get("capabilities") or {})
        self.notify("initialized")
        return result

    def take_sandbox_warnings(self, capabilities=None):
        """The host's sandbox warnings follow every initialize response (configWarning, after
        any config warnings): check they all came, exactly as sandboxd's probe words them, and
        keep every other message for the test."""
        capabilities = capabilities or {}
        if self.owner is None or "configWarning" in (capabilities.get("optOutNotificationMethods") or []):
            return
        expected = list(self.owner.expected_sandbox_warnings())
        while expected:
            msg = self._recv_new()
            params = msg.get("params") or {}
            if msg.get("method") == "configWarning" and params.get("summary") in expected:
                expected.remove(params["summary"])
                assert params.get("details") is None and params.get("path") is None, msg
                self.sandbox_warnings.append(params["summary"])
            else:
                self._held.append(msg)

    def health(self, service=None, timeout=RECV_TIMEOUT):
        return self.call("agentd/health", {"service": service} if service else None, timeout=timeout)

    def wait_closed(self, timeout=RECV_TIMEOUT):
        """Wait for the server to close; messages before the close are returned."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(timeout=max(0.0, deadline - time.monotonic())))
            except ConnectionClosed:
                return got

    def close(self):  # pragma: no cover - per transport
        pass


class _LineReaderThread(threading.Thread):
    """Reads newline-delimited JSON from a binary file object until EOF."""

    def __init__(self, client, stream, name):
        super().__init__(name=name, daemon=True)
        self.client = client
        self.stream = stream

    def run(self):
        try:
            for line in iter(self.stream.readline, b""):
                if not line.endswith(b"\n"):
                    self.client.violations.append(f"server message not newline-terminated: {line[:200]!r}")
                text = line.rstrip(b"\n")
                try:
                    self.client._deliver_text(text.decode("utf-8"))
                except UnicodeDecodeError:
                    self.client.violations.append(f"server sent invalid UTF-8: {text[:200]!r}")
        except (OSError, ValueError) as e:
            self.client._deliver_closed(f"read error: {e}")
            return
        self.client._deliver_closed("EOF")


def _write_all_fd(fd, data, timeout):
    """Write @data to a non-blocking fd, never waiting longer than @timeout overall."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"agentd did not read {len(view)} pending bytes within {timeout:.1f} s")
        _, writable, _ = select.select([], [fd], [], left)
        if not writable:
            continue
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


class StdioClient(JsonRpcClient):
    """agentd's stdin/stdout: one newline-delimited JSON message per line."""

    kind = "stdio"

    def __init__(self, proc, validator, owner=None):
        super().__init__(validator, owner)
        self.proc = proc
        self.stdin_fd = proc.stdin.fileno()
        os.set_blocking(self.stdin_fd, False)
        self.reader = _LineReaderThread(self, proc.stdout, "agentd-stdout")
        self.reader.start()

    def send_bytes(self, data, timeout=RECV_TIMEOUT):
        _write_all_fd(self.stdin_fd, data, timeout)

    def send_text(self, text, timeout=RECV_TIMEOUT):
        data = text if isinstance(text, bytes) else text.encode()
        self.send_bytes(data + b"\n", timeout=timeout)

    def close_stdin(self):
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def close(self):
        self.close_stdin()
        self.reader.join(timeout=STOP_TIMEOUT)


class UnixClient(JsonRpcClient):
    """unix://PATH: newline-delimited JSON over a stream socket."""

    kind = "unix"

    def __init__(self, path, validator, owner=None, timeout=START_TIMEOUT):
        super().__init__(validator, owner)
        self.path = str(path)
        self.sock = connect_unix(self.path, timeout)
        sock = self.sock
        self.reader = _LineReaderThread(self, sock.makefile("rb"), "agentd-unix")
        self.reader.start()

    def send_bytes(self, data, timeout=RECV_TIMEOUT):
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.settimeout(None)

    def send_text(self, text, timeout=RECV_TIMEOUT):
        data = text if isinstance(text, bytes) else text.encode()
        self.send_bytes(data + b"\n", timeout=timeout)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.reader.join(timeout=STOP_TIMEOUT)
        self.sock.close()


class WsClient(JsonRpcClient):
    """A websocket client (python3-websockets' asyncio API, run on a private loop thread)."""

    kind = "ws"

    def __init__(self, url, validator, owner=None, timeout=RECV_TIMEOUT, **connect_kwargs):
        super().__init__(validator, owner)
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ws-client-loop", daemon=True)
        self.thread.start()
        options = dict(
            open_timeout=timeout,
            close_timeout=2,
            ping_interval=None,  # no pings of our own unless a test sends them
            compression=None,
            max_size=None,
        )
        options.update(connect_kwargs)
        async def _open():
            return await websockets.connect(url, **options)

        try:
            self.ws = self._run(_open(), timeout + 1)
        except BaseException:
            self._stop_loop()
            raise
        self.reader = asyncio.run_coroutine_threadsafe(self._read_loop(), self.loop)

    def _run(self, coro, timeout=RECV_TIMEOUT):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"ws: operation did not finish within {timeout:.1f} s") from None

    async def _read_loop(self):
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.violations.append(f"server sent a binary frame: {message[:100]!r}")
                    message = message.decode("utf-8", "replace")
                self._deliver_text(message)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self._deliver_closed((self.ws.close_code, self.ws.close_reason))

    def send_text(self, text, timeout=RECV_TIMEOUT):
        self._run(self.ws.send(text), timeout)

    def ping(self, data=b"", timeout=RECV_TIMEOUT):
        """Send a ping and wait for the pong echoing @data."""

        async def _ping():
            waiter = await self.ws.ping(data)
            await asyncio.wait_for(waiter, timeout)

        self._run(_ping(), timeout + 1)

    def close_handshake(self, code=1000, reason="", timeout=RECV_TIMEOUT):
        self._run(self.ws.close(code, reason), timeout)
        return self.ws.close_code, self.ws.close_reason

    def _stop_loop(self):
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=STOP_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()

    def close(self):
        # A second close (the test already closed it) must not create a coroutine it never runs.
        if not self.loop.is_closed() and self.loop.is_running():
            with contextlib.suppress(Exception):
                self._run(self.ws.close(), 3)
        with contextlib.suppress(Exception):
            self.reader.result(3)
        self._stop_loop()


# --------------------------------------------------------------------------------------
# raw websocket helpers (for frames a well-behaved library will not send)


def ws_frame(opcode, payload=b"", *, fin=True, mask=True, rsv=0, length=None):
    """One client frame; @length overrides the announced payload length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class RawWs:
    """A websocket spoken by hand over a TCP socket."""

    def __init__(self, port, checker, host="127.0.0.1", timeout=RECV_TIMEOUT, extra_head=b"", pipelined=b""):
        self.checker = checker  # a JsonRpcClient without transport: validates what arrives
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        ).encode()
        self.sock.sendall(request + extra_head + b"\r\n" + pipelined)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionClosed(f"closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n")[0].decode()
        assert self.status_line.startswith("HTTP/1.1 101"), head
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        assert f"Sec-WebSocket-Accept: {expected}".lower().encode() in head.lower(), head

    def send(self, data):
        self.sock.sendall(data)

    def note(self, obj):
        """Record a request sent by hand so that its response can be validated."""
        self.checker.note_outgoing(obj)

    def send_request(self, obj, **frame_kw):
        self.note(obj)
        self.send(ws_frame(0x1, json.dumps(obj), **frame_kw))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed("EOF")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """(opcode, payload) of the next server frame; servers never mask."""
        b0, b1 = self._read(2)
        assert not b1 & 0x80, "server frames must not be masked"
        assert b0 & 0x80, "agentd sends unfragmented frames"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        opcode, payload = b0 & 0x0F, self._read(n)
        if opcode == 0x1:
            self.checker._deliver_text(payload.decode("utf-8"))
            self.checker.messages.get_nowait()
            self.checker.assert_conforming()
        elif opcode == 0x2:
            raise AssertionError(f"agentd sent a binary frame: {payload[:100]!r}")
        return opcode, payload

    def read_until_eof(self):
        """Frames until the server closes the TCP connection."""
        frames = []
        while True:
            try:
                frames.append(self.read_frame())
            except ConnectionClosed:
                return frames
            except ConnectionResetError:
                return frames

    def close(self):
        self.sock.close()


def connect_unix(path, timeout=START_TIMEOUT):
    """A connected AF_UNIX stream socket, retrying while the listener is not there yet."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect(str(path))
            sock.settimeout(None)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def flood_without_reading(sock, chunk, duration):
    """Send @chunk over and over, never reading, for at most @duration seconds.

    Returns why it stopped: "dropped" when agentd closed the connection (EPIPE, reset),
    "blocked" when agentd stopped reading, "time" when the time ran out.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(0.2)
    deadline = time.monotonic() + duration
    blocked_since = None
    while time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
            blocked_since = None
        except (BrokenPipeError, ConnectionResetError):
            return "dropped"
        except (TimeoutError, socket.timeout):
            # Nothing is read any more: agentd gave up on us (or its input is full).
            blocked_since = blocked_since or time.monotonic()
            if time.monotonic() - blocked_since > 1.0:
                return "blocked"
    return "time"


def http_get(port, path, headers=None, timeout=RECV_TIMEOUT):
    """(status, body) of a plain HTTP GET to the ws listener."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# agentd processes


SANITIZER_REPORT_RE = re.compile(
    r"ERROR: (?:AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)[^\n]*|runtime error: [^\n]*"
    r"|Sanitizer has encountered a fatal error[^\n]*"
)


def host_sandbox_warnings(env, cwd, codex_home):
    """The warnings `sandboxd --probe` reports for @env and the config in @codex_home; none when
    the configured default runs commands unsandboxed (the reference does not warn then)."""
    try:
        config = tomllib.loads((Path(codex_home) / "config.toml").read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        config = {}
    profile = config.get("default_permissions")
    mode = config.get("sandbox_mode")
    if profile == ":danger-full-access" or (profile is None and mode == "danger-full-access"):
        return []
    probe = subprocess.run([str(BUILDDIR / "sandboxd" / "sandboxd"), "--probe"], env=env, cwd=cwd,
                           capture_output=True, text=True, timeout=20)
    try:
        return json.loads(probe.stdout)["warnings"]
    except (ValueError, KeyError):
        return []


class AgentdProcess:
    def __init__(self, tmp_path, validator, listen=(), config=None, args=(), env=None, stdin=True):
        self.validator = validator
        self.tmp_path = tmp_path
        # nng ipc and unix socket paths are limited to ~107 bytes: keep the runtime dir short.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="agentd-rt-", dir="/tmp"))
        self.codex_home = tmp_path / "codex-home"
        self.codex_home.mkdir(exist_ok=True)
        if config is not None:
            (self.codex_home / "config.toml").write_text(config)
        self.stderr_path = tmp_path / f"agentd-{id(self):x}.stderr"
        self.listen = list(listen)
        self.is_stdio = not self.listen or any(u.startswith("stdio") for u in self.listen)
        argv = [str(AGENTD_BIN)]
        for url in self.listen:
            argv += ["--listen", url]
        argv += list(args)
        self.args = list(args)
        self.env = dict(os.environ)
        for key in ("XDG_RUNTIME_DIR", "CODEX_INTERNAL_ORIGINATOR_OVERRIDE"):
            self.env.pop(key, None)
        self.env.update(AGENTD_RUNTIME_DIR=str(self.runtime_dir), CODEX_HOME=str(self.codex_home))
        self.env.update(env or {})
        self.clients = []
        self.raw_checkers = []
        self.helper_pids = {}  # pid -> starttime, every helper this agentd was seen to run
        self._helper_lock = threading.Lock()
        self.returncode = None
        self.stopped_by_test = False
        self._sandbox_warnings = None
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin and self.is_stdio else subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.is_stdio else subprocess.DEVNULL,
            stderr=self._stderr_file,
            env=self.env,
            cwd=tmp_path,
            start_new_session=True,  # an emergency killpg reaches the helpers too
        )
        self.pid = self.proc.pid
        self.stdio = None
        if self.is_stdio and stdin:
            self.stdio = StdioClient(self.proc, validator, owner=self)
            self.clients.append(self.stdio)
        self.ws_port = None

    # -- observation --------------------------------------------------------------------
    def expected_sandbox_warnings(self):
        """What sandboxd's host probe warns about with this process's environment and config."""
        if self._sandbox_warnings is None and "--no-spawn" in self.args:
            self._sandbox_warnings = []  # no sandboxd of its own: nothing known at initialize
        if self._sandbox_warnings is None:
            self._sandbox_warnings = host_sandbox_warnings(self.env, self.tmp_path, self.codex_home)
        return self._sandbox_warnings

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def note_helper_pids(self, pids):
        for pid in pids:
            if isinstance(pid, int) and pid > 0:
                st = proc_stat(pid)
                if st is not None:
                    with self._helper_lock:
                        self.helper_pids.setdefault(pid, st[2])

    def snapshot_children(self):
        with self._helper_lock:
            for pid, start in children_of(self.pid).items():
                self.helper_pids.setdefault(pid, start)

    def wait_unix_listeners(self, timeout=START_TIMEOUT):
        for url in self.listen:
            if not url.startswith("unix://"):
                continue
            path = Path(url[len("unix://") :]) if len(url) > len("unix://") else self.runtime_dir / "agentd.sock"

            def present():
                if self.proc.poll() is not None:
                    raise AssertionError(f"agentd exited ({self.proc.returncode}) before listening:\n{self.stderr()}")
                return path.exists() and stat.S_ISSOCK(path.lstat().st_mode)

            wait_until(present, timeout, what=f"the unix listener {path}")

    def wait_ws_port(self, timeout=START_TIMEOUT):
        def banner():
            m = WS_BANNER_RE.search(self.stderr())
            if m:
                return int(m.group(2))
            if self.proc.poll() is not None:
                raise AssertionError(f"agentd exited ({self.proc.returncode}) before listening:\n{self.stderr()}")
            return None

        self.ws_port = wait_until(banner, timeout, what="the websocket banner")
        return self.ws_port

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.ws_port}"

    # -- clients ------------------------------------------------------------------------
    def ws_client(self, url=None, **kw):
        client = WsClient(url or self.ws_url, self.validator, owner=self, **kw)
        self.clients.append(client)
        return client

    def raw_ws(self, **kw):
        checker = JsonRpcClient(self.validator, owner=self)
        checker.kind = "raw-ws"
        self.raw_checkers.append(checker)
        return RawWs(self.ws_port, checker, **kw)

    def unix_client(self, path):
        client = UnixClient(path, self.validator, owner=self)
        self.clients.append(client)
        return client

    def any_client(self):
        """A connection that can answer agentd/health, for the harness's own queries."""
        if self.stdio is not None and not self.stdio.closed.is_set():
            return self.stdio
        for client in self.clients:
            if not client.closed.is_set():
                return client
        return None

    # -- lifecycle ----------------------------------------------------------------------
    def signal(self, signum):
        if self.proc.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for agentd to exit (reaping it); returns the exit status."""
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and reap agentd; returns its exit status (SIGKILL if it does not stop)."""
        if self.proc.poll() is None:
            self.snapshot_children()
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
                self.returncode = "hung after SIGTERM: killed"
                return self.returncode
        self.returncode = self.proc.returncode
        return self.returncode

    def leftover_processes(self):
        """Helpers of this agentd still present (alive or unreaped zombies)."""
        left = []
        for pid, start in sorted(self.helper_pids.items()):
            st = proc_stat(pid)
            if st is not None and st[2] == start:
                left.append(f"pid {pid} ({_comm(pid)}) state {st[0]} ppid {st[1]}")
        for pid in processes_with_env("AGENTD_RUNTIME_DIR", str(self.runtime_dir)):
            if pid not in self.helper_pids:
                left.append(f"pid {pid} (found by its environment)")
        return left

    def leftover_sockets(self):
        if not self.runtime_dir.exists():
            return []
        left = []
        for entry in self.runtime_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(entry.lstat().st_mode) or entry.suffix == ".sock":
                    left.append(str(entry))
        for url in self.listen:
            if url.startswith("unix://") and len(url) > len("unix://"):
                path = Path(url[len("unix://") :])
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISSOCK(path.lstat().st_mode):
                        left.append(str(path))
        return left

    def finish(self, expect_status=0):
        """Teardown: stop, reap, and list everything that was not cleaned up."""
        problems = []
        # Ask agentd itself which helpers run, so their pids can be checked afterwards.
        if self.proc.poll() is None:
            client = self.any_client()
            if client is not None:
                with contextlib.suppress(Exception):
                    client.health(timeout=2)
        status = self.stop()
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        for client in self.clients + self.raw_checkers:
            try:
                client.assert_conforming()
            except AssertionError as e:
                problems.append(str(e))
        if expect_status is not None and status != expect_status:
            problems.append(f"agentd exit status {status!r}, expected {expect_status}")
        try:
            wait_until(lambda: not self.leftover_processes(), 2.0, what="helpers to be gone")
        except AssertionError:
            problems.append(f"helper processes remain after agentd exited: {self.leftover_processes()}")
        leftover = self.leftover_sockets()
        if leftover:
            problems.append(f"socket files remain after agentd exited: {leftover}")
        # agentd and its helpers share this stderr: under ASan/UBSan any report is a failure.
        reports = SANITIZER_REPORT_RE.findall(self.stderr())
        if reports:
            problems.append(f"sanitizer reports in agentd's or a helper's stderr: {sorted(set(reports))}")
        self._stderr_file.close()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return problems


# --------------------------------------------------------------------------------------
# pytest wiring


# Credentials the tests handed agentd (tokens, keys, secrets): test_zz_secrets.py greps every log
# of the whole run for them at the end.
SECRETS = set()


def register_secret(*values):
    """Remember credentials a test used, so that the end-of-run check finds them in no log."""
    for value in values:
        if isinstance(value, str) and len(value) >= 8:
            SECRETS.add(value)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A hard per-test deadline: every wait has its own timeout, this catches the rest."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def protocol():
    assert AGENTD_BIN.exists(), f"{AGENTD_BIN} is missing: build first (make -j2) or set AGENTD_BUILDDIR"
    assert PROTOCOL_DIR.is_dir(), f"{PROTOCOL_DIR} is missing: set AGENTD_PROTOCOL_DIR"
    return ProtocolValidator(PROTOCOL_DIR)


@pytest.fixture
def agentd_factory(tmp_path, protocol, request):
    """start(listen=[...], config=None, args=(), env=None, wait=True) -> AgentdProcess.

    wait=True waits until agentd serves: the ws banner for a ws listener, a successful
    initialize on stdio (the stdio client is then initialized). Teardown stops every
    agentd with SIGTERM and fails the test unless it exited 0 and left nothing behind.
    """
    started = []

    def start(listen=(), *, config=None, args=(), env=None, wait=True, initialize=True, expect_status=0):
        index = len(started)
        path = tmp_path / f"agentd{index}"
        path.mkdir()
        proc = AgentdProcess(path, protocol, listen=listen, config=config, args=args, env=env)
        proc.expect_status = expect_status
        started.append(proc)
        if wait:
            if any(u.startswith("ws://") for u in proc.listen):
                proc.wait_ws_port()
            proc.wait_unix_listeners()
            if proc.stdio is not None and initialize:
                proc.stdio.initialize(timeout=START_TIMEOUT)
        return proc

    yield start

    problems = []
    for proc in started:
        problems += proc.finish(expect_status=getattr(proc, "expect_status", 0))
    failed = any(getattr(request.node, f"rep_{w}", None) and getattr(request.node, f"rep_{w}").failed
                 for w in ("setup", "call"))
    if failed or problems:
        for proc in started:
            tail = proc.stderr()[-6000:]
            print(f"--- agentd pid {proc.pid} stderr (tail) ---\n{tail}")
    assert not problems, "agentd did not shut down cleanly:\n" + "\n".join(problems)


@pytest.fixture
def stdio_agentd(agentd_factory):
    """agentd on stdio with an initialized StdioClient at .stdio."""
    return agentd_factory()


@pytest.fixture
def ws_agentd(agentd_factory):
    """agentd listening on an ephemeral loopback websocket port (.ws_port, .ws_url)."""
    return agentd_factory(["ws://127.0.0.1:0"])


@pytest.fixture(params=["stdio", "ws"])
def transport(request):
    return request.param


@pytest.fixture
def connect(agentd_factory, transport):
    """connect(initialized=True, config=None) -> (agentd, client) over the parametrized transport."""

    def make(initialized=True, config=None):
        if transport == "stdio":
            proc = agentd_factory(config=config, initialize=initialized)
            return proc, proc.stdio
        proc = agentd_factory(["ws://127.0.0.1:0"], config=config)
        client = proc.ws_client()
        if initialized:
            client.initialize()
        return proc, client

    return make
