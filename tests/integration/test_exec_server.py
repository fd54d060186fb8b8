# SPDX-License-Identifier: MIT
"""execd's standalone exec-server (`execd --listen ws://IP:PORT | stdio`), driven over its real
transports: a websocket client of our own (raw frames, so that binary frames, Origin headers and
the HTTP side can be exercised) and stdin/stdout. Messages are compared with the words the
reference `codex exec-server` 0.169.0 answers with (codex-behaviour.md section 4, /tmp/notes)."""
import base64
import hashlib
import hmac
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILDDIR, wait_until

EXECD = BUILDDIR / "execd" / "execd"
TIMEOUT = 5.0
WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def b64(data):
    return base64.b64encode(data).decode()


def uri(path):
    return "file://" + str(path)


class HttpRefused(Exception):
    def __init__(self, status, headers, body):
        super().__init__(f"HTTP {status}: {body!r}")
        self.status, self.headers, self.body = status, headers, body


def _read_http_response(sock, buf=b""):
    """(status, headers (lower-case names), body, bytes after the head) of one HTTP answer."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def http_request(port, head):
    """Send a raw request head, read the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(head.encode())
        status, headers, rest = _read_http_response(s)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest.decode()


def upgrade_head(port, path="/", extra=()):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *[f"{k}: {v}" for k, v in extra]]
    return "\r\n".join(lines) + "\r\n\r\n"


class Ws:
    """A websocket client over a plain socket: one JSON message per frame, notifications kept."""

    def __init__(self, port, headers=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n")
        self.sock.sendall(head.encode())
        status, hdrs, rest = _read_http_response(self.sock)
        if status != 101:
            length = int(hdrs.get("content-length", "0"))
            while len(rest) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            self.sock.close()
            raise HttpRefused(status, hdrs, rest.decode())
        expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert hdrs["sec-websocket-accept"] == expected.decode()
        self.buf = rest
        self.notes = []
        self.next_id = 0
        self.is_closed = False

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, obj, binary=False):
        data = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        data = data.encode() if isinstance(data, str) else data
        self.send_frame(WS_BINARY if binary else WS_TEXT, data)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("no frame from the server") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.is_closed = True
                raise EOFError("the server closed the connection")
            self.buf += chunk

    def recv_frame(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames are not masked"
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, at = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(at + n, deadline)
        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
        return b0 & 0x0F, payload

    def recv(self, timeout=TIMEOUT):
        while True:
            opcode, payload = self.recv_frame(timeout)
            if opcode == WS_TEXT:
                return json.loads(payload)
            if opcode == WS_CLOSE:
                self.is_closed = True
                raise EOFError("close frame")

    def request(self, method, params=None, id=None, timeout=TIMEOUT):
        if id is None:
            self.next_id += 1
            id = self.next_id
        msg = {"id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.response(id, timeout)

    def response(self, id, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if "id" in msg and "method" not in msg and msg["id"] == id:
                return msg
            self.notes.append(msg)

    def call(self, method, params=None, timeout=TIMEOUT):
        msg = self.request(method, params, timeout=timeout)
        assert "result" in msg, msg
        return msg["result"]

    def notify(self, method, params=None):
        msg = {"method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def initialize(self, resume=None):
        params = {"clientName": "test"}
        if resume:
            params["resumeSessionId"] = resume
        result = self.call("initialize", params)
        self.notify("initialized", {})
        return result

    def events(self, process_id, until="process/closed", timeout=TIMEOUT):
        """Notifications of @process_id, up to and including the first @until."""
        deadline = time.monotonic() + timeout
        got = [n for n in self.notes if n.get("params", {}).get("processId") == process_id]
        self.notes = [n for n in self.notes if n.get("params", {}).get("processId") != process_id]
        while not any(n["method"] == until for n in got):
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("params", {}).get("processId") == process_id:
                got.append(msg)
            else:
                self.notes.append(msg)
        return got

    def expect_eof(self, timeout=TIMEOUT):
        with pytest.raises(EOFError):
            while True:
                self.recv_frame(timeout)

    def close(self):
        self.sock.close()


def output_of(events, stream=None):
    return b"".join(base64.b64decode(e["params"]["chunk"]) for e in events
                    if e["method"] == "process/output" and (stream is None or e["params"]["stream"] == stream))


def start_params(process_id, argv, cwd="/tmp", env=None, **extra):
    params = {"processId": process_id, "argv": argv, "cwd": uri(cwd), "env": env or {}, "tty": False}
    params.update(extra)
    return params


class ExecServer:
    """`execd --listen URL ...` from the build tree; stopped with SIGTERM, must exit 0."""

    def __init__(self, tmp_path, *args, listen="ws://127.0.0.1:0", env=None, expect_start=True):
        self.stderr_path = tmp_path / f"execd-{time.monotonic_ns()}.stderr"
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([str(EXECD), "--listen", listen, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"), env=full_env,
                                     cwd=str(tmp_path))
        self.url = None
        if expect_start and listen.startswith("ws://"):
            ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
            assert ready, f"no URL on stdout: {self.stderr()}"
            self.url = self.proc.stdout.readline().decode().strip()
            assert self.url.startswith("ws://"), (self.url, self.stderr())
            self.port = int(self.url.rsplit(":", 1)[1])

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def ws(self, **kw):
        return Ws(self.port, **kw)

    def client(self):
        c = self.ws()
        c.initialize()
        return c

    def wait(self, timeout=TIMEOUT):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(TIMEOUT)
        assert rc == 0, self.stderr()


@pytest.fixture
def server(tmp_path):
    s = ExecServer(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def client(server):
    c = server.client()
    yield c
    c.close()


def first_line_pid(events):
    """The pid a command printed first (`echo $$; exec ...`), from its first output chunk."""
    return int(output_of(events).split(b"\n", 1)[0])


def wait_blocked_on_pipe(pid, timeout=10):
    """Until @pid sits in pipe_write and has written nothing more for half a second."""
    def written():
        return int([l for l in open(f"/proc/{pid}/io") if l.startswith("wchar")][0].split()[1])

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = written()
        time.sleep(0.5)
        if written() == before and "pipe_write" in open(f"/proc/{pid}/wchan").read():
            return
    raise AssertionError(f"{pid} kept writing")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except OSError:  # gone, or going while we read (ESRCH)
        return False


# --- the HTTP side ------------------------------------------------------------------------------


def test_prints_the_bound_url_and_serves_readyz_and_healthz(server):
    assert server.url == f"ws://127.0.0.1:{server.port}"
    for path in ("/readyz", "/healthz", "/readyz?probe=1"):
        status, _, body = http_request(server.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (status, body) == (200, "")
    status, headers, _ = http_request(server.port, "POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status == 405 and headers["allow"] == "GET,HEAD"
    assert http_request(server.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 404
    assert http_request(server.port, upgrade_head(server.port, path="/some/path"))[0] == 404


def test_origin_header_is_refused_with_403(server):
    status, _, body = http_request(server.port, upgrade_head(server.port, extra=[("Origin", "http://localhost")]))
    assert (status, body) == (403, "")
    assert http_request(server.port, "GET /readyz HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\n\r\n")[0] == 403
    with pytest.raises(HttpRefused) as refused:
        server.ws(headers=[("Origin", "https://evil.example")])
    assert refused.value.status == 403


def test_http_errors_in_the_reference_words(server):
    cases = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Connection header did not include 'upgrade'"),
        ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "Request method must be `GET`"),
        ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n", 400,
         "`Upgrade` header did not include 'websocket'"),
        ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n", 400,
         "`Sec-WebSocket-Version` header did not include '13'"),
        ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400, "`Sec-WebSocket-Key` header missing"),
        ("garbage\r\n\r\n", 400, ""),
    ]
    for head, status, body in cases:
        got = http_request(server.port, head)
        assert (got[0], got[2]) == (status, body), head


# --- lifecycle ------------------------------------------------------------------------------------


def test_initialize_answers_a_session_and_the_environment(server):
    c = server.ws()
    result = c.call("initialize", {"clientName": "test"})
    assert len(result["sessionId"]) == 36 and result["sessionId"][14] == "4"
    info = result["environmentInfo"]
    assert info["shell"]["name"] in ("bash", "zsh", "sh") and info["shell"]["path"].startswith("/")
    assert info["platformOs"] == "linux" and info["executorVersion"] == "0.169.0"
    assert info["cwd"].startswith("file:///") and info["providerId"].startswith("sha256:")
    assert not any(info["capabilities"].values()), "no optional capability is claimed"
    c.notify("initialized", {})
    assert c.call("environment/info") == info
    assert c.call("environment/info", {}) == info
    assert c.request("environment/info", {"x": 1})["error"] == {
        "code": -32602, "message": "invalid type: map, expected unit"}


def test_initialize_rules_in_the_reference_words(server):
    c = server.ws()
    families = [("environment/info", None, "environment info"),
                ("process/terminate", {"processId": "p"}, "exec"),
                ("fs/readFile", {"path": "file:///tmp/x"}, "filesystem")]
    for method, params, family in families:
        assert c.request(method, params)["error"] == {
            "code": -32600, "message": f"client must call initialize before using {family} methods"}
    # Params are checked before the initialize rules, as the reference does.
    assert c.request("process/start", {"processId": "p", "argv": ["true"], "cwd": "/tmp", "env": {},
                                       "tty": False})["error"] == {
        "code": -32602, "message": "invalid URI: relative URL without a base"}
    assert c.request("initialize", {})["error"] == {"code": -32602, "message": "missing field `clientName`"}
    assert c.request("initialize")["error"] == {
        "code": -32602, "message": "invalid type: null, expected struct InitializeParams"}
    c.call("initialize", {"clientName": "test"})
    assert c.request("initialize", {"clientName": "test"})["error"] == {
        "code": -32600, "message": "initialize may only be sent once per connection"}
    for method, params, family in families:
        assert c.request(method, params)["error"] == {
            "code": -32600, "message": f"client must send initialized before using {family} methods"}
    c.notify("initialized", {})
    assert "shell" in c.call("environment/info")
    assert c.request("bogus/method", {})["error"] == {
        "code": -32601, "message": "exec-server stub does not implement `bogus/method` yet"}


def test_initialized_before_initialize_drops_the_connection(server):
    c = server.ws()
    c.notify("initialized")
    c.expect_eof()
    other = server.client()  # the server itself goes on
    assert "shell" in other.call("environment/info")


def test_an_unknown_notification_drops_the_connection(client):
    client.notify("bogus/notify", {})
    client.expect_eof()


def test_a_response_from_the_client_drops_the_connection(client):
    client.send({"id": 99, "result": {}})
    client.expect_eof()


def test_malformed_json_is_answered_and_the_connection_goes_on(server):
    c = server.client()
    local_port = c.sock.getsockname()[1]
    prefix = f"failed to parse websocket JSON-RPC message from exec-server websocket 127.0.0.1:{local_port}: "
    for text, reason in [("{not json", None), ('{"foo":1}', "missing field `error`"),
                         ("[1,2]", "expected a JSON-RPC object"), ('"str"', "expected a JSON-RPC object"),
                         ('{"id":null,"method":"environment/info"}',
                          "data did not match any variant of untagged enum RequestId"),
                         ('{"id":1.5,"method":"environment/info"}',
                          "data did not match any variant of untagged enum RequestId"),
                         ('{"id":3,"method":5}', "invalid type: number, expected a string")]:
        c.send(text)
        msg = c.recv()
        assert msg["id"] == -1 and msg["error"]["code"] == -32600, msg
        assert msg["error"]["message"].startswith(prefix), msg
        if reason:
            assert msg["error"]["message"] == prefix + reason
    assert "shell" in c.call("environment/info")


def test_binary_frames_string_ids_and_a_jsonrpc_member_are_accepted(client):
    client.send({"id": 77, "method": "environment/info", "params": {}}, binary=True)
    opcode, payload = client.recv_frame()
    assert opcode == WS_TEXT and json.loads(payload)["id"] == 77
    msg = client.request("environment/info", id="abc")
    assert msg["id"] == "abc" and "result" in msg
    client.send({"jsonrpc": "2.0", "id": 5, "method": "environment/info"})
    assert "result" in client.response(5)


def test_wire_shapes_carry_no_jsonrpc_member_and_put_error_first(client):
    client.send({"id": 9, "method": "nope"})
    opcode, raw = client.recv_frame()
    assert raw.decode() == '{"error":{"code":-32601,"message":"exec-server stub does not implement `nope` yet"},"id":9}'
    client.send({"id": 10, "method": "process/terminate", "params": {"processId": "x"}})
    opcode, raw = client.recv_frame()
    assert raw.decode() == '{"id":10,"result":{"running":false}}'


# --- processes -------------------------------------------------------------------------------------


def test_process_events_share_one_seq_in_order(client):
    result = client.call("process/start", start_params("p1", ["sh", "-c", "echo hi; echo err >&2"]))
    assert result == {"processId": "p1", "sandboxType": "none"}
    events = client.events("p1")
    assert [e["params"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["method"] for e in events][-2:] == ["process/exited", "process/closed"]
    assert output_of(events, "stdout") == b"hi\n" and output_of(events, "stderr") == b"err\n"
    exited = events[-2]["params"]
    assert exited == {"processId": "p1", "seq": len(events) - 1, "exitCode": 0, "sandboxDenied": False}
    assert events[-1]["params"] == {"processId": "p1", "seq": len(events)}


def test_exit_codes_and_signals(client):
    client.call("process/start", start_params("x7", ["sh", "-c", "exit 7"]))
    assert client.events("x7")[-2]["params"]["exitCode"] == 7
    client.call("process/start", start_params("xt", ["sh", "-c", "kill -TERM $$"]))
    assert client.events("xt")[-2]["params"]["exitCode"] == 143


def test_binary_output_is_byte_exact_live_and_in_replay(client, tmp_path):
    data = os.urandom(300_000) + bytes(range(256)) * 8
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    client.call("process/start", start_params("cat", ["cat", str(blob)]))
    events = client.events("cat", timeout=15)
    assert output_of(events) == data
    replay = client.call("process/read", {"processId": "cat", "afterSeq": 0})
    assert b"".join(base64.b64decode(c["chunk"]) for c in replay["chunks"]) == data
    assert replay["exited"] and replay["closed"] and replay["exitCode"] == 0
    assert replay["nextSeq"] == events[-1]["params"]["seq"] + 1
    assert replay["failure"] is None and replay["sandboxDenied"] is False


def test_output_before_exit_for_a_burst(client):
    client.call("process/start", start_params("burst", ["sh", "-c", "head -c 200000 /dev/zero; printf end"]))
    events = client.events("burst")
    methods = [e["method"] for e in events]
    assert methods.index("process/exited") == len(methods) - 2, "all output precedes the exit"
    assert output_of(events) == b"\0" * 200000 + b"end"


def test_environment_is_exactly_env_or_the_env_policy(client):
    client.call("process/start", start_params("env", ["/usr/bin/env"], env={"A": "1"}))
    assert output_of(client.events("env")) == b"A=1\n"
    policy = {"inherit": "none", "ignoreDefaultExcludes": False, "exclude": [], "set": {"C": "3"}, "includeOnly": []}
    client.call("process/start", start_params("none", ["/usr/bin/env"], env={"B": "2"}, envPolicy=policy))
    assert output_of(client.events("none")) == b"B=2\nC=3\n"
    policy = dict(policy, inherit="all", ignoreDefaultExcludes=True, includeOnly=["HOME", "B"])
    client.call("process/start", start_params("only", ["/usr/bin/env"], env={"B": "2"}, envPolicy=policy))
    assert output_of(client.events("only")) == f"B=2\nHOME={os.environ['HOME']}\n".encode()
    assert client.request("process/start", start_params("bad", ["true"], envPolicy={"inherit": "all"}))["error"] == {
        "code": -32602, "message": "missing field `ignoreDefaultExcludes`"}
    policy = dict(policy, inherit="bogus")
    assert client.request("process/start", start_params("bad", ["true"], envPolicy=policy))["error"] == {
        "code": -32602, "message": "unknown variant `bogus`, expected one of `core`, `all`, `none`"}


def test_start_errors_in_the_reference_words(client, tmp_path):
    def error(params):
        return client.request("process/start", params)["error"]

    assert error(start_params("e", [])) == {"code": -32602, "message": "argv must not be empty"}
    assert error({"processId": "e", "argv": ["true"], "cwd": "file:///tmp", "tty": False}) == {
        "code": -32602, "message": "missing field `env`"}
    assert error({"processId": "e", "argv": ["true"], "cwd": "file:///tmp", "env": {}}) == {
        "code": -32602, "message": "missing field `tty`"}
    assert error({"argv": ["true"], "env": {}, "tty": False}) == {"code": -32602, "message": "missing field `processId`"}
    assert error(dict(start_params("e", ["ls"]), argv="ls")) == {
        "code": -32602, "message": 'invalid type: string "ls", expected a sequence'}
    assert error(dict(start_params("e", ["ls"]), cwd="rel")) == {
        "code": -32602, "message": "invalid URI: relative URL without a base"}
    assert error(dict(start_params("e", ["ls"]), cwd="http://x/tmp")) == {
        "code": -32602, "message": "unsupported path URI scheme `http`"}
    assert error(dict(start_params("e", ["ls"]), pipeStdin=None)) == {
        "code": -32602, "message": "invalid type: null, expected a boolean"}
    assert error(start_params("e", ["/nonexistent/x"])) == {
        "code": -32603, "message": "No such file or directory (os error 2)"}
    assert error(start_params("e", ["pwd"], cwd=tmp_path / "missing")) == {
        "code": -32603, "message": "No such file or directory (os error 2)"}
    client.call("process/start", start_params("dup", ["sleep", "5"]))
    assert error(start_params("dup", ["true"])) == {"code": -32600, "message": "process dup already exists"}
    client.call("process/terminate", {"processId": "dup"})


def test_cwd_uris_are_resolved_like_the_reference(client):
    for cwd in ["file:///tmp/../etc", "FILE:///tmp/%2e%2e/etc", "file://localhost/etc", "file:/etc"]:
        client.call("process/start", {"processId": cwd, "argv": ["pwd"], "cwd": cwd, "env": {}, "tty": False})
        assert output_of(client.events(cwd)) == b"/etc\n", cwd
    assert client.request("process/start", {"processId": "q", "argv": ["pwd"], "cwd": "file:///tmp?x=1", "env": {},
                                            "tty": False})["error"]["message"] == \
        "query parameters are not allowed in path URIs"
    msg = client.request("process/start", {"processId": "h", "argv": ["pwd"], "cwd": "file://otherhost/tmp",
                                           "env": {}, "tty": False})["error"]
    assert msg == {"code": -32602, "message": "cwd URI `file://otherhost/tmp` is not valid on this exec-server host: "
                                              "'file://otherhost/tmp' is invalid on 'linux'"}


def test_write_then_read_with_pipe_stdin(client):
    client.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    result = client.call("process/write", {"processId": "cat", "chunk": b64(b"hello\n"), "writeId": "w1"})
    assert result == {"status": "accepted"}
    assert client.call("process/write", {"processId": "cat", "chunk": "", "writeId": "w2"}) == {"status": "accepted"}
    read = client.call("process/read", {"processId": "cat", "afterSeq": 0, "waitMs": 3000})
    assert base64.b64decode(read["chunks"][0]["chunk"]) == b"hello\n"
    assert read["exited"] is False and read["exitCode"] is None and read["closed"] is False
    assert client.call("process/terminate", {"processId": "cat"}) == {"running": True}
    assert client.events("cat")[-2]["params"]["exitCode"] == 137


def test_write_is_refused_without_pipe_stdin(client):
    client.call("process/start", start_params("s", ["sleep", "5"]))
    assert client.call("process/write", {"processId": "s", "chunk": b64(b"x"), "writeId": "1"}) == {
        "status": "stdinClosed"}
    assert client.call("process/write", {"processId": "nope", "chunk": b64(b"x"), "writeId": "1"}) == {
        "status": "unknownProcess"}
    assert client.request("process/write", {"processId": "s", "chunk": "aGkK"})["error"] == {
        "code": -32602, "message": "missing field `writeId`"}
    for chunk, message in [("!!!", "Invalid symbol 33, offset 0."), ("aGk", "Invalid padding"),
                           ("a", "Invalid input length: 1"), ("aR==", "Invalid last symbol 82, offset 1.")]:
        assert client.request("process/write", {"processId": "s", "chunk": chunk, "writeId": "1"})["error"] == {
            "code": -32602, "message": message}
    client.call("process/terminate", {"processId": "s"})


def test_signal_interrupt(client):
    client.call("process/start", start_params("i", ["sh", "-c", "sleep 5; echo after"]))
    assert client.call("process/signal", {"processId": "i", "signal": "interrupt"}) == {}
    events = client.events("i")
    assert events[-2]["params"]["exitCode"] == 130 and output_of(events) == b""
    client.call("process/start", start_params("t", ["sh", "-c", "trap 'echo caught' INT; echo ready; sleep 2; echo after"]))
    assert output_of(client.events("t", until="process/output")) == b"ready\n"
    client.call("process/signal", {"processId": "t", "signal": "interrupt"})
    assert output_of(client.events("t")) == b"caught\nafter\n"
    assert client.call("process/signal", {"processId": "nope", "signal": "interrupt"}) == {}
    assert client.request("process/signal", {"processId": "t", "signal": "kill"})["error"] == {
        "code": -32602, "message": "unknown variant `kill`, expected `interrupt`"}


def test_terminate(client):
    client.call("process/start", start_params("t", ["sleep", "30"]))
    assert client.call("process/terminate", {"processId": "t"}) == {"running": True}
    events = client.events("t")
    assert [e["method"] for e in events] == ["process/exited", "process/closed"]
    assert events[0]["params"]["exitCode"] == 137
    assert client.call("process/terminate", {"processId": "t"}) == {"running": False}
    assert client.call("process/terminate", {"processId": "nope"}) == {"running": False}
    read = client.call("process/read", {"processId": "t", "afterSeq": 0})
    assert read == {"chunks": [], "nextSeq": 3, "exited": True, "exitCode": 137, "closed": True, "failure": None,
                    "sandboxDenied": False}


def test_read_long_polls(client):
    client.call("process/start", start_params("w", ["sh", "-c", "sleep 0.4; echo late; sleep 5"]))
    t0 = time.monotonic()
    read = client.call("process/read", {"processId": "w", "afterSeq": 0, "waitMs": 4000})
    assert 0.3 < time.monotonic() - t0 < 3
    assert base64.b64decode(read["chunks"][0]["chunk"]) == b"late\n" and read["nextSeq"] == 2
    t0 = time.monotonic()
    read = client.call("process/read", {"processId": "w", "afterSeq": 1, "waitMs": 300})
    assert 0.25 < time.monotonic() - t0 < 2
    assert read["chunks"] == [] and read["nextSeq"] == 2 and read["exited"] is False
    # Requests run one at a time: one behind a long poll waits for it.
    client.send({"id": 50, "method": "process/read", "params": {"processId": "w", "afterSeq": 1, "waitMs": 500}})
    client.send({"id": 51, "method": "environment/info"})
    t0 = time.monotonic()
    assert "result" in client.response(50) and "result" in client.response(51)
    assert time.monotonic() - t0 > 0.4
    client.call("process/terminate", {"processId": "w"})
    read = client.call("process/read", {"processId": "w", "afterSeq": 1, "waitMs": 4000})
    assert read["exited"] is True
    assert client.request("process/read", {"processId": "zzz"})["error"] == {
        "code": -32600, "message": "unknown process id zzz"}
    assert client.request("process/read", {"processId": "w", "afterSeq": -1})["error"] == {
        "code": -32602, "message": "invalid number"}


def test_read_replays_after_seq_with_max_bytes(client):
    client.call("process/start", start_params("m", ["sh", "-c", "printf abcdef; sleep 0.3; printf ghi"]))
    events = client.events("m")
    assert [e["method"] for e in events] == ["process/output", "process/output", "process/exited", "process/closed"]
    first = client.call("process/read", {"processId": "m", "afterSeq": 0, "maxBytes": 2})
    assert [(c["seq"], base64.b64decode(c["chunk"])) for c in first["chunks"]] == [(1, b"abcdef")]
    assert first["nextSeq"] == 2
    rest = client.call("process/read", {"processId": "m", "afterSeq": 1})
    assert [(c["seq"], base64.b64decode(c["chunk"])) for c in rest["chunks"]] == [(2, b"ghi")]
    assert rest["nextSeq"] == 5 and rest["closed"] is True
    assert client.call("process/read", {"processId": "m", "afterSeq": None})["chunks"] == first["chunks"] + rest["chunks"]


def test_tty_processes_stream_pty_output(client):
    client.call("process/start", start_params("t", ["sh", "-c", "tty; stty size; echo err >&2"],
                                              env={"PATH": "/usr/bin:/bin"}, tty=True))
    events = client.events("t")
    assert {e["params"]["stream"] for e in events if e["method"] == "process/output"} == {"pty"}
    out = output_of(events)
    assert out.startswith(b"/dev/pts/") and b"\r\n24 80\r\nerr\r\n" in out
    client.call("process/start", start_params("r", ["sh", "-c", "read x; echo got:$x"],
                                              env={"PATH": "/usr/bin:/bin"}, tty=True))
    assert client.call("process/write", {"processId": "r", "chunk": b64(b"yo\n"), "writeId": "1"}) == {
        "status": "accepted"}
    assert b"got:yo\r\n" in output_of(client.events("r"))
    assert client.request("process/start", start_params("np", ["sh"], tty=True))["error"] == {
        "code": -32603, "message": "Unable to spawn sh because:\nUnable to resolve the PATH"}


def test_a_restricted_sandbox_is_refused_not_ignored(client, tmp_path):
    sandbox = {"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]}, "network": "restricted"},
        "windowsSandboxLevel": "disabled"}
    msg = client.request("process/start", start_params("sb", ["touch", str(tmp_path / "x")], sandbox=sandbox))
    assert msg["error"]["code"] == -32603 and "does not enforce sandboxes" in msg["error"]["message"]
    assert not (tmp_path / "x").exists()
    unconfined = {"permissions": {"type": "disabled"}, "windowsSandboxLevel": "disabled"}
    client.call("process/start", start_params("ok", ["true"], sandbox=unconfined))
    assert client.events("ok")[-2]["params"]["exitCode"] == 0
    assert client.request("process/start", start_params("x", ["true"], sandbox={}))["error"] == {
        "code": -32602, "message": "missing field `permissions`"}
    write = {"path": uri(tmp_path / "y"), "dataBase64": b64(b"y"), "sandbox": sandbox}
    msg = client.request("fs/writeFile", write)
    assert msg["error"]["code"] == -32600 and "does not enforce sandboxes" in msg["error"]["message"]
    assert not (tmp_path / "y").exists()


# --- sessions -------------------------------------------------------------------------------------------


def test_a_detached_session_resumes_with_its_processes(server):
    c = server.ws()
    sid = c.initialize()["sessionId"]
    c.call("process/start", start_params("d1", ["sh", "-c", "echo one; sleep 0.5; echo two; sleep 30"]))
    c.events("d1", until="process/output")
    c.close()
    time.sleep(1.0)  # "two" arrives while nobody is attached
    r = server.ws()
    assert r.initialize(resume=sid)["sessionId"] == sid
    read = r.call("process/read", {"processId": "d1", "afterSeq": 0})
    assert b"".join(base64.b64decode(x["chunk"]) for x in read["chunks"]) == b"one\ntwo\n"
    assert read["exited"] is False
    other = server.ws()
    assert other.request("initialize", {"clientName": "x", "resumeSessionId": sid})["error"] == {
        "code": -32010, "message": f"session {sid} is already attached to another connection"}
    assert other.request("initialize", {"clientName": "x", "resumeSessionId": "00000000-0000-0000-0000-000000000000"}
                         )["error"] == {"code": -32600,
                                        "message": "unknown session id 00000000-0000-0000-0000-000000000000"}
    # A fresh session does not see another session's processes.
    fresh = server.client()
    assert fresh.request("process/read", {"processId": "d1"})["error"]["message"] == "unknown process id d1"
    assert r.call("process/terminate", {"processId": "d1"}) == {"running": True}
    assert r.events("d1")[-2]["params"]["exitCode"] == 137


def test_a_session_not_resumed_in_time_loses_its_processes(tmp_path):
    s = ExecServer(tmp_path, env={"EXECD_DETACHED_SESSION_TTL_MS": "500"})
    try:
        c = s.ws()
        sid = c.initialize()["sessionId"]
        c.call("process/start", start_params("s", ["sh", "-c", "echo $$; exec sleep 60"]))
        pid = int(output_of(c.events("s", until="process/output")))
        c.close()
        time.sleep(0.2)
        assert pid_alive(pid), "the process survives the disconnect"
        wait_until(lambda: not pid_alive(pid), 5, what="the detached session's process to be killed")
        r = s.ws()
        assert r.request("initialize", {"clientName": "x", "resumeSessionId": sid})["error"]["message"] == \
            f"unknown session id {sid}"
    finally:
        s.stop()


def test_back_pressure_blocks_a_child_whose_client_does_not_read(server):
    c = server.ws()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.initialize()
    c.call("process/start", start_params("y", ["sh", "-c", "echo $$; exec yes"]))
    pid = first_line_pid(c.events("y", until="process/output"))
    wait_blocked_on_pipe(pid)

    def rss_kb():
        return int([l for l in open(f"/proc/{server.proc.pid}/status") if l.startswith("VmRSS")][0].split()[1])

    before = rss_kb()
    time.sleep(1)
    wait_blocked_on_pipe(pid)
    assert rss_kb() < 256 * 1024 and rss_kb() - before < 8 * 1024, (before, rss_kb())  # ASan builds run larger
    c.close()


def test_a_detached_session_stops_its_output_at_the_log_bound(tmp_path):
    s = ExecServer(tmp_path)
    try:
        c = s.ws()
        sid = c.initialize()["sessionId"]
        c.call("process/start", start_params("z", ["sh", "-c", "echo $$; exec yes"]))
        pid = first_line_pid(c.events("z", until="process/output"))
        c.close()
        wait_blocked_on_pipe(pid)
        r = s.ws()
        r.initialize(resume=sid)
        # The log kept what the child wrote until the bound: about 1 MiB, all of it unseen.
        read = r.call("process/read", {"processId": "z", "afterSeq": 0})
        kept = b"".join(base64.b64decode(x["chunk"]) for x in read["chunks"])
        assert 1 << 20 <= len(kept) <= (1 << 20) + 3 * 65536, len(kept)
        assert set(kept[-1000:]) <= set(b"y\n")
        # Having read, the client lets the child go on: live output follows.
        assert any(e["method"] == "process/output" for e in r.events("z", until="process/output"))
        r.call("process/terminate", {"processId": "z"})
    finally:
        s.stop()


# --- file system ----------------------------------------------------------------------------------------------


def test_fs_methods_cover_the_surface(client, tmp_path):
    d = tmp_path / "dir"
    assert client.call("fs/createDirectory", {"path": uri(d / "sub")}) == {}
    assert client.call("fs/writeFile", {"path": uri(d / "f.txt"), "dataBase64": b64(b"hello")}) == {}
    assert (d / "f.txt").read_bytes() == b"hello"
    assert client.call("fs/readFile", {"path": uri(d / "f.txt")}) == {"dataBase64": b64(b"hello")}
    meta = client.call("fs/getMetadata", {"path": uri(d / "f.txt")})
    assert (meta["isFile"], meta["isDirectory"], meta["isSymlink"], meta["size"]) == (True, False, False, 5)
    assert abs(meta["modifiedAtMs"] - (d / "f.txt").stat().st_mtime * 1000) < 2000
    entries = client.call("fs/readDirectory", {"path": uri(d)})["entries"]
    assert sorted(entries, key=lambda e: e["fileName"]) == [
        {"fileName": "f.txt", "isDirectory": False, "isFile": True},
        {"fileName": "sub", "isDirectory": True, "isFile": False}]
    assert client.call("fs/copy", {"sourcePath": uri(d), "destinationPath": uri(tmp_path / "copy"),
                                   "recursive": True}) == {}
    assert (tmp_path / "copy" / "f.txt").read_bytes() == b"hello"
    assert client.call("fs/canonicalize", {"path": uri(d / ".." / "dir" / "f.txt")}) == {"path": uri(d / "f.txt")}
    assert client.call("fs/remove", {"path": uri(tmp_path / "copy")}) == {}
    assert not (tmp_path / "copy").exists()
    assert client.call("fs/remove", {"path": uri(tmp_path / "copy")}) == {}  # force defaults to true
    assert client.call("fs/join", {"basePath": uri(d), "path": "a/../b"}) == {"path": uri(d / "b")}
    assert client.call("fs/parent", {"path": uri(d / "f.txt")}) == {"path": uri(d)}
    assert client.call("fs/parent", {"path": "file:///"}) == {"path": None}
    weird = tmp_path / "a b#c%"
    weird.write_bytes(b"x")
    assert client.call("fs/canonicalize", {"path": uri(tmp_path) + "/a%20b%23c%25"}) == {
        "path": uri(tmp_path) + "/a%20b%23c%25"}


def test_fs_errors_in_the_reference_words(client, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "f").write_text("x")

    def error(method, params=None):
        return client.request(method, params)["error"]

    enoent = {"code": -32004, "message": "No such file or directory (os error 2)"}
    assert error("fs/readFile", {"path": uri(tmp_path / "missing")}) == enoent
    assert error("fs/getMetadata", {"path": uri(tmp_path / "missing")}) == enoent
    assert error("fs/remove", {"path": uri(tmp_path / "missing"), "force": False}) == enoent
    assert error("fs/writeFile", {"path": uri(tmp_path / "no" / "x"), "dataBase64": "aGk="}) == enoent
    assert error("fs/readFile", {"path": uri(tmp_path / "dir")}) == {
        "code": -32600, "message": f"path `{tmp_path / 'dir'}` is not a file"}
    assert error("fs/writeFile", {"path": uri(tmp_path / "w"), "dataBase64": "!!"}) == {
        "code": -32600, "message": "fs/writeFile requires valid base64 dataBase64: Invalid symbol 33, offset 0."}
    assert error("fs/createDirectory", {"path": uri(tmp_path / "dir"), "recursive": False}) == {
        "code": -32603, "message": "File exists (os error 17)"}
    assert error("fs/readDirectory", {"path": uri(tmp_path / "f")}) == {
        "code": -32603, "message": "Not a directory (os error 20)"}
    assert error("fs/copy", {"sourcePath": uri(tmp_path / "dir"), "destinationPath": uri(tmp_path / "d2")}) == {
        "code": -32602, "message": "missing field `recursive`"}
    assert error("fs/copy", {"sourcePath": uri(tmp_path / "dir"), "destinationPath": uri(tmp_path / "d2"),
                             "recursive": False}) == {
        "code": -32600, "message": "fs/copy requires recursive: true when sourcePath is a directory"}
    assert error("fs/copy", {"sourcePath": uri(tmp_path / "dir"), "destinationPath": uri(tmp_path / "dir" / "x"),
                             "recursive": True}) == {
        "code": -32600, "message": "fs/copy cannot copy a directory to itself or one of its descendants"}
    assert error("fs/readFile", {}) == {"code": -32602, "message": "missing field `path`"}
    assert error("fs/readFile", {"path": str(tmp_path / "f")}) == {
        "code": -32602, "message": "invalid URI: relative URL without a base"}
    assert error("fs/readFile", {"path": "file://otherhost/tmp/x"}) == {
        "code": -32600, "message": "'file://otherhost/tmp/x' is invalid on 'linux'"}
    assert error("fs/readFile", {"path": uri(tmp_path / "f") + "#frag"}) == {
        "code": -32602, "message": "fragments are not allowed in path URIs"}
    assert error("fs/readFile") == {"code": -32602, "message": "invalid type: null, expected struct WireFsReadFileParams"}


# --- stdio ------------------------------------------------------------------------------------------------------


class StdioServer:
    def __init__(self, tmp_path, listen="stdio"):
        self.proc = subprocess.Popen([str(EXECD), "--listen", listen], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(tmp_path / "stdio.stderr", "wb"), cwd=str(tmp_path))
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()

    def send(self, text):
        self.proc.stdin.write((text if isinstance(text, str) else json.dumps(text)).encode() + b"\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout=TIMEOUT):
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(m) for m in self.lines), timeout), self.lines
            return next(m for m in self.lines if predicate(m))


@pytest.mark.parametrize("listen", ["stdio", "stdio://"])
def test_stdio_transport(tmp_path, listen):
    s = StdioServer(tmp_path, listen)
    s.send("{not json")
    s.send("")
    s.send({"id": 1, "method": "initialize", "params": {"clientName": "x"}})
    s.send({"method": "initialized"})
    s.send({"id": 2, "method": "process/start", "params": start_params("a", ["sh", "-c", "echo $$; exec sleep 60"])})
    err = s.wait_for(lambda m: m.get("id") == -1)
    assert err["error"]["message"].startswith("failed to parse JSON-RPC message from exec-server stdio: ")
    assert "sessionId" in s.wait_for(lambda m: m.get("id") == 1)["result"]
    out = s.wait_for(lambda m: m.get("method") == "process/output")
    pid = int(base64.b64decode(out["params"]["chunk"]))
    s.proc.stdin.close()  # end of input ends the server and its processes
    assert s.proc.wait(TIMEOUT) == 0
    wait_until(lambda: not pid_alive(pid), 5, what="the process to be killed with the server")


# --- authentication ---------------------------------------------------------------------------------------------


def jwt(secret, claims, header=None):
    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signing = seg(header or {"alg": "HS256", "typ": "JWT"}) + "." + seg(claims)
    sig = base64.urlsafe_b64encode(hmac.new(secret, signing.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return signing + "." + sig.decode()


def refusal(server, authorization=None):
    extra = [("Authorization", authorization)] if authorization is not None else []
    status, _, body = http_request(server.port, upgrade_head(server.port, extra=extra))
    return status, body


def test_capability_token(tmp_path):
    (tmp_path / "token").write_text("sekrit-token\n")
    for args in (["--ws-token-file", str(tmp_path / "token")],
                 ["--ws-token-sha256", hashlib.sha256(b"sekrit-token").hexdigest().upper()]):
        s = ExecServer(tmp_path, "--ws-auth", "capability-token", *args)
        try:
            assert refusal(s) == (401, "missing websocket bearer token")
            assert refusal(s, "Bearer wrong") == (401, "invalid websocket bearer token")
            assert refusal(s, "Basic sekrit-token") == (401, "invalid authorization header")
            assert refusal(s, "Bearer") == (401, "invalid authorization header")
            assert http_request(s.port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200  # health needs no token
            c = s.ws(headers=[("Authorization", "bearer sekrit-token")])
            assert "sessionId" in c.initialize()
            c.close()
            # Origin is refused before the credentials are even looked at.
            status, _, _ = http_request(s.port, upgrade_head(s.port, extra=[("Authorization", "Bearer sekrit-token"),
                                                                          ("Origin", "http://x")]))
            assert status == 403
        finally:
            s.stop()


def test_signed_bearer_tokens(tmp_path):
    secret = b"0123456789abcdef0123456789abcdef-test"
    (tmp_path / "secret").write_bytes(secret + b"\n")
    s = ExecServer(tmp_path, "--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", str(tmp_path / "secret"),
                   "--ws-issuer", "me", "--ws-audience", "you")
    now = int(time.time())
    good = {"exp": now + 60, "iss": "me", "aud": "you"}
    try:
        c = s.ws(headers=[("Authorization", "Bearer " + jwt(secret, good))])
        c.initialize()
        c.close()
        c = s.ws(headers=[("Authorization", "Bearer " + jwt(secret, dict(good, aud=["x", "you"])))])
        c.close()
        cases = [
            (jwt(secret, dict(good, exp=now - 10)), None),  # inside the 30 s skew
            (jwt(secret, dict(good, exp=now - 100)), "expired websocket jwt"),
            (jwt(secret, dict(good, nbf=now + 100)), "websocket jwt is not valid yet"),
            (jwt(secret, dict(good, iss="other")), "websocket jwt issuer mismatch"),
            (jwt(secret, {"exp": now + 60, "aud": "you"}), "websocket jwt issuer mismatch"),
            (jwt(secret, dict(good, aud="other")), "websocket jwt audience mismatch"),
            (jwt(secret, {"iss": "me", "aud": "you"}), "invalid websocket jwt"),
            (jwt(secret, dict(good, exp=str(now + 60))), "invalid websocket jwt"),
            (jwt(b"x" * 40, good), "invalid websocket jwt"),
            (jwt(secret, good, header={"alg": "HS384"}), "invalid websocket jwt"),
            (jwt(secret, good).rsplit(".", 1)[0] + ".", "invalid websocket jwt"),
            (jwt(secret, good, header={"alg": "none"}).rsplit(".", 1)[0] + ".", "invalid websocket jwt"),
            ("abc.def.ghi", "invalid websocket jwt"),
        ]
        for token, reason in cases:
            if reason is None:
                s.ws(headers=[("Authorization", "Bearer " + token)]).close()
            else:
                assert refusal(s, "Bearer " + token) == (401, reason), token
        assert refusal(s) == (401, "missing websocket bearer token")
    finally:
        s.stop()


def start_error(tmp_path, *args):
    s = ExecServer(tmp_path, *args, expect_start=False)
    rc = s.wait()
    assert rc != 0
    return s.stderr()


def test_auth_configuration_errors(tmp_path):
    (tmp_path / "short").write_text("only-31-bytes-long-after-trim!!\n")
    (tmp_path / "empty").write_text(" \n")
    z = "0" * 64
    cases = [
        (["--ws-auth", "capability-token"],
         "`--ws-token-file` or `--ws-token-sha256` is required when `--ws-auth capability-token` is set"),
        (["--ws-token-file", "/tmp/x"],
         "websocket auth flags require `--ws-auth capability-token` or `--ws-auth signed-bearer-token`"),
        (["--ws-auth", "capability-token", "--ws-token-sha256", "abc"],
         "--ws-token-sha256 must be a 64-character hex SHA-256 digest"),
        (["--ws-auth", "capability-token", "--ws-token-file", "/tmp/x", "--ws-token-sha256", z],
         "`--ws-token-file` and `--ws-token-sha256` are mutually exclusive"),
        (["--ws-auth", "capability-token", "--ws-token-file", str(tmp_path / "empty")],
         f"websocket auth secret {tmp_path / 'empty'} must not be empty"),
        (["--ws-auth", "signed-bearer-token"],
         "`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` is set"),
        (["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", str(tmp_path / "short")],
         f"signed websocket bearer secret {tmp_path / 'short'} must be at least 32 bytes"),
        (["--ws-auth", "bogus"], "invalid value 'bogus' for '--ws-auth <MODE>'"),
    ]
    for args, message in cases:
        assert message in start_error(tmp_path, *args), args
    s = ExecServer(tmp_path, "--ws-auth", "capability-token", "--ws-token-sha256", z, listen="stdio",
                   expect_start=False)
    assert s.wait() != 0 and "WebSocket auth requires a WebSocket listener, not stdio" in s.stderr()


def test_a_non_loopback_listener_needs_auth(tmp_path):
    message = ("refusing to start non-loopback websocket listener 0.0.0.0:0 without auth; configure "
               "`--ws-auth capability-token` or `--ws-auth signed-bearer-token`")
    s = ExecServer(tmp_path, listen="ws://0.0.0.0:0", expect_start=False)
    assert s.wait() == 1 and message in s.stderr()
    s = ExecServer(tmp_path, "--ws-auth", "capability-token", "--ws-token-sha256", "0" * 64, listen="ws://0.0.0.0:0")
    try:
        assert s.url.startswith("ws://0.0.0.0:")
        assert refusal(s) == (401, "missing websocket bearer token")
    finally:
        s.stop()


def test_listen_url_errors(tmp_path):
    assert "unsupported --listen URL `unix:///tmp/x`; expected `ws://IP:PORT` or `stdio`" in start_error(
        tmp_path, "--listen", "unix:///tmp/x")
    for url in ("ws://localhost:0", "ws://127.0.0.1", "ws://127.0.0.1:99999"):
        assert f"invalid websocket --listen URL `{url}`; expected `ws://IP:PORT`" in start_error(
            tmp_path, "--listen", url)


def test_ipv6_loopback_listener(tmp_path):
    s = ExecServer(tmp_path, listen="ws://[::1]:0")
    try:
        assert s.url.startswith("ws://[::1]:")
        with socket.create_connection(("::1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200 OK")
    finally:
        s.stop()


def test_sigterm_stops_the_server_and_its_processes(tmp_path):
    s = ExecServer(tmp_path)
    c = s.client()
    c.call("process/start", start_params("s", ["sh", "-c", "echo $$; exec sleep 60"]))
    pid = int(output_of(c.events("s", until="process/output")))
    s.stop()
    wait_until(lambda: not pid_alive(pid), 5, what="the process to be killed with the server")


# --- a stock codex app-server driving execd ------------------------------------------------------------------

CODEX_REF = Path(os.environ.get(
    "CODEX_REF_BIN", "/opt/codex-ref/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"))


def _sse(events):
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)


def _mock_model(bodies):
    """A Responses API stand-in: each POST .../responses gets the next SSE body; requests are kept."""
    import http.server

    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            requests.append(json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))))
            data = (bodies.pop(0) if bodies else _sse([{"type": "response.completed", "response": {"id": "r"}}]))
            data = data.encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, requests


@pytest.mark.skipif(not CODEX_REF.exists(), reason="the reference codex binary is not installed")
def test_a_stock_codex_app_server_runs_its_shell_tool_through_execd(server, tmp_path):
    usage = {"input_tokens": 0, "input_tokens_details": None, "output_tokens": 0, "output_tokens_details": None,
             "total_tokens": 0}
    call = {"type": "response.output_item.done", "item": {
        "type": "function_call", "call_id": "call1", "name": "exec_command",
        "arguments": json.dumps({"cmd": "echo from-execd; pwd; echo err >&2"})}}
    answer = {"type": "response.output_item.done", "item": {
        "type": "message", "role": "assistant", "id": "m2", "content": [{"type": "output_text", "text": "Done"}]}}
    httpd, requests = _mock_model([
        _sse([{"type": "response.created", "response": {"id": "r1"}}, call,
              {"type": "response.completed", "response": {"id": "r1", "usage": usage}}]),
        _sse([{"type": "response.created", "response": {"id": "r2"}}, answer,
              {"type": "response.completed", "response": {"id": "r2", "usage": usage}}])])
    home, project = tmp_path / "codex-home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (home / "config.toml").write_text(f'''model = "mock-model"
approval_policy = "never"
sandbox_mode = "danger-full-access"
model_provider = "mock"
[model_providers.mock]
name = "mock"
base_url = "http://127.0.0.1:{httpd.server_address[1]}/v1"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
supports_websockets = false
''')
    env = dict(os.environ, CODEX_HOME=str(home), CODEX_EXEC_SERVER_URL=server.url)
    app = subprocess.Popen([str(CODEX_REF), "app-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=open(tmp_path / "app-server.stderr", "wb"), env=env, cwd=str(project))
    try:
        def send(obj):
            app.stdin.write((json.dumps(obj) + "\n").encode())
            app.stdin.flush()

        import queue

        lines, seen = queue.Queue(), []
        threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in app.stdout], daemon=True).start()

        def until(predicate, timeout=20):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    msg = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                seen.append(msg)
                if predicate(msg):
                    return msg
            methods = [m.get("method", m.get("id")) for m in seen]
            raise AssertionError(f"the app-server did not answer: {methods}, {len(requests)} model requests")

        send({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "execd-test", "version": "1"}}})
        until(lambda m: m.get("id") == 1)
        send({"method": "initialized"})
        send({"id": 2, "method": "thread/start", "params": {"cwd": str(project)}})
        thread = until(lambda m: m.get("id") == 2)["result"]["thread"]
        assert [e["environmentId"] for e in thread["environments"]] == ["remote"]
        send({"id": 3, "method": "turn/start", "params": {"threadId": thread["id"], "input": [
            {"type": "text", "text": "run it", "text_elements": []}]}})
        until(lambda m: m.get("method") == "turn/completed")
        outputs = [item["output"] for item in requests[1]["input"] if item.get("type") == "function_call_output"]
        assert len(outputs) == 1 and "Process exited with code 0" in outputs[0], outputs
        assert f"from-execd\n{project}\n" in outputs[0] and "err\n" in outputs[0], outputs
    finally:
        app.terminate()
        app.wait(TIMEOUT)
        httpd.shutdown()
