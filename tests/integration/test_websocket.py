# SPDX-License-Identifier: MIT
"""The ws:// listener: health endpoints, Origin, the websocket protocol itself (section 7)."""
import json
import socket
import time

import pytest
import websockets.exceptions

from conftest import (
    INVALID_REQUEST,
    RECV_TIMEOUT,
    ConnectionClosed,
    flood_without_reading,
    http_get,
    wait_until,
    ws_frame,
)

WS_TEXT, WS_BINARY, WS_CONT, WS_CLOSE, WS_PING, WS_PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def _init(id_value=1, name="raw"):
    return {"id": id_value, "method": "initialize", "params": {"clientInfo": {"name": name, "version": "1"}}}


def _skip_sandbox_warnings(raw, proc):
    """The host's sandbox warnings follow every initialize response: read past them."""
    for summary in proc.expected_sandbox_warnings():
        op, payload = raw.read_frame()
        msg = json.loads(payload)
        assert op == WS_TEXT and msg["method"] == "configWarning" and msg["params"]["summary"] == summary, msg


def _text_frames(raw):
    """JSON messages among @raw's frames up to EOF, and the close frame's code (or None)."""
    messages, close_code = [], None
    for opcode, payload in raw.read_until_eof():
        if opcode == WS_TEXT:
            messages.append(json.loads(payload))
        elif opcode == WS_CLOSE:
            close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    return messages, close_code


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_health_endpoints(ws_agentd, path):
    status, body = http_get(ws_agentd.ws_port, path)
    assert status == 200
    assert body == "ok"


@pytest.mark.parametrize("path", ["/readyz", "/healthz", "/"])
def test_origin_header_is_forbidden_on_http(ws_agentd, path):
    status, _ = http_get(ws_agentd.ws_port, path, headers={"Origin": "http://localhost:3000"})
    assert status == 403


def test_origin_header_is_forbidden_on_upgrade(ws_agentd):
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
        ws_agentd.ws_client(origin="http://127.0.0.1")
    assert info.value.status_code == 403
    # The listener is unharmed.
    c = ws_agentd.ws_client()
    c.initialize()


def test_plain_http_request_is_not_an_upgrade(ws_agentd):
    status, _ = http_get(ws_agentd.ws_port, "/some/path")
    assert status == 400


def test_wrong_websocket_version(ws_agentd):
    sock = socket.create_connection(("127.0.0.1", ws_agentd.ws_port), timeout=RECV_TIMEOUT)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    )
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 426"), data


def test_ping_pong(ws_agentd):
    c = ws_agentd.ws_client()
    c.ping(b"")
    c.ping(b"payload-123")
    c.initialize()
    c.ping(b"x" * 125)
    assert c.health()["status"] == "ok"


def test_close_handshake(ws_agentd):
    watcher = ws_agentd.ws_client()
    watcher.initialize()
    c = ws_agentd.ws_client()
    c.initialize()
    assert watcher.health()["connections"] == 2
    code, _ = c.close_handshake(1000, "bye")
    assert code == 1000  # the server echoed our close code
    wait_until(lambda: watcher.health()["connections"] == 1, 5, what="agentd to drop the closed connection")


def test_close_with_application_code_is_echoed(ws_agentd):
    c = ws_agentd.ws_client()
    code, _ = c.close_handshake(4000, "app")
    assert code == 4000


def test_two_connections_are_independent(ws_agentd):
    a, b = ws_agentd.ws_client(), ws_agentd.ws_client()
    a.initialize(name="conn-a")
    # b is not initialized by a's handshake.
    msg = b.request("agentd/health", id=1)
    assert msg["error"]["code"] == INVALID_REQUEST and msg["error"]["message"] == "Not initialized"
    # The same ids on both connections each get their own answer.
    assert a.request("agentd/health", id=1)["result"]["status"] == "ok"
    b.initialize(name="conn-b")
    assert b.request("agentd/health", id=1)["result"]["status"] == "ok"
    # Garbage on one connection is answered there only.
    a.send_raw("{not json")
    assert a.recv()["error"]["code"] == -32700
    b.sync()
    # Closing one leaves the other working.
    a.close_handshake()
    assert b.health()["status"] == "ok"
    b.ping(b"still-here")


def test_interleaved_requests_on_many_connections(ws_agentd):
    clients = [ws_agentd.ws_client() for _ in range(5)]
    for i, c in enumerate(clients):
        c.initialize(name=f"c{i}")
    for round_ in range(3):
        for i, c in enumerate(clients):
            c.send({"id": round_ * 10 + i, "method": "agentd/health"})
        for i, c in enumerate(clients):
            assert c.wait_response(round_ * 10 + i)["result"]["status"] == "ok"


LIMIT = 65536
LIMIT_CONFIG = f"[agentd]\nmax_message_bytes = {LIMIT}\n"


def test_oversized_message_gets_error_and_connection_lives(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"], config=LIMIT_CONFIG)
    c = proc.ws_client()
    c.initialize()
    c.send_raw(json.dumps({"id": 1, "method": "agentd/health", "params": {"pad": "z" * (LIMIT * 3)}}))
    msg = c.recv()
    # The id at the start of the discarded message is answered, so the client is not left waiting.
    assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] == 1, msg
    c.send_raw(json.dumps({"method": "agentd/health", "id": 5, "params": {"pad": "z" * (LIMIT * 3)}}))
    msg = c.recv()
    assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] is None, msg  # id not first
    c.sync()
    assert c.health()["status"] == "ok"
    c.ping(b"alive")


def test_oversized_fragmented_message(agentd_factory):
    """A message over the limit only in the sum of its fragments is refused too."""
    proc = agentd_factory(["ws://127.0.0.1:0"], config=LIMIT_CONFIG)
    raw = proc.raw_ws()
    raw.send_request(_init())
    op, payload = raw.read_frame()
    assert op == WS_TEXT and json.loads(payload)["id"] == 1
    _skip_sandbox_warnings(raw, proc)
    big = {"id": 2, "method": "agentd/health", "params": {"pad": "f" * LIMIT}}
    raw.note(big)
    body = json.dumps(big).encode()
    third = len(body) // 3
    raw.send(ws_frame(WS_TEXT, body[:third], fin=False))
    raw.send(ws_frame(WS_CONT, body[third : 2 * third], fin=False))
    raw.send(ws_frame(WS_CONT, body[2 * third :], fin=True))
    op, payload = raw.read_frame()
    msg = json.loads(payload)
    assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] == 2, msg
    raw.send_request({"id": 3, "method": "agentd/health"})
    op, payload = raw.read_frame()
    assert json.loads(payload)["id"] == 3
    raw.close()


def test_fragmented_message_with_interleaved_ping(ws_agentd):
    raw = ws_agentd.raw_ws()
    body = json.dumps(_init(1, "frag"))
    raw.note(_init(1, "frag"))
    raw.send(ws_frame(WS_TEXT, body[:10], fin=False))
    raw.send(ws_frame(WS_PING, b"mid"))
    raw.send(ws_frame(WS_CONT, body[10:20], fin=False))
    raw.send(ws_frame(WS_CONT, body[20:], fin=True))
    frames = [raw.read_frame(), raw.read_frame()]
    assert (WS_PONG, b"mid") in frames, frames
    texts = [json.loads(p) for op, p in frames if op == WS_TEXT]
    assert texts and texts[0]["id"] == 1 and "result" in texts[0], frames
    raw.close()


def test_frames_pipelined_behind_the_handshake(ws_agentd):
    raw = ws_agentd.raw_ws(pipelined=ws_frame(WS_TEXT, json.dumps(_init(7))))
    raw.note(_init(7))
    op, payload = raw.read_frame()
    assert op == WS_TEXT and json.loads(payload)["id"] == 7
    raw.close()


# (name, bytes to send after a successful handshake, close code the server must send)
MALFORMED = [
    ("unmasked-text", ws_frame(WS_TEXT, '{"id":1,"method":"agentd/health"}', mask=False), 1002),
    ("rsv-bit", ws_frame(WS_TEXT, "{}", rsv=0b100), 1002),
    ("reserved-opcode", ws_frame(0x3, "x"), 1002),
    ("reserved-control-opcode", ws_frame(0xB, "x"), 1002),
    ("fragmented-ping", ws_frame(WS_PING, "x", fin=False), 1002),
    ("oversized-ping", ws_frame(WS_PING, b"p" * 126), 1002),
    ("orphan-continuation", ws_frame(WS_CONT, "x"), 1002),
    ("text-during-fragmented", ws_frame(WS_TEXT, "{", fin=False) + ws_frame(WS_TEXT, "}"), 1002),
    ("invalid-utf8-text", ws_frame(WS_TEXT, b'{"id":1,"method":"\xff"}'), 1007),
    ("close-one-byte-payload", ws_frame(WS_CLOSE, b"\x03"), 1002),
    ("close-reserved-code", ws_frame(WS_CLOSE, (1005).to_bytes(2, "big")), 1002),
    ("length-msb-set", ws_frame(WS_TEXT, b"", length=1 << 63), 1002),
]


@pytest.mark.parametrize("data,close_code", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_frame_closes_only_that_connection(ws_agentd, data, close_code):
    other = ws_agentd.ws_client()
    other.initialize()
    raw = ws_agentd.raw_ws()
    raw.send_request(_init())
    op, payload = raw.read_frame()
    assert op == WS_TEXT and json.loads(payload)["id"] == 1
    _skip_sandbox_warnings(raw, ws_agentd)
    raw.send(data)
    messages, code = _text_frames(raw)
    raw.close()
    assert messages == [], messages  # the bad frame was not executed
    assert code == close_code
    # The other connection is untouched and new connections are accepted.
    assert other.health()["status"] == "ok"
    fresh = ws_agentd.ws_client()
    fresh.initialize()
    wait_until(lambda: other.health()["connections"] == 2, 5, what="the closed raw connection to be dropped")


def test_abrupt_disconnect_mid_frame(ws_agentd):
    other = ws_agentd.ws_client()
    other.initialize()
    for _ in range(3):
        raw = ws_agentd.raw_ws()
        raw.send(ws_frame(WS_TEXT, b"x" * 1000)[:500])  # half a frame, then RST/EOF
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
    assert other.health()["status"] == "ok"
    wait_until(lambda: other.health()["connections"] == 1, 5, what="the aborted connections to be dropped")


def test_garbage_instead_of_http(ws_agentd):
    sock = socket.create_connection(("127.0.0.1", ws_agentd.ws_port), timeout=RECV_TIMEOUT)
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64 + b"\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 400"), data
    c = ws_agentd.ws_client()
    c.initialize()


def test_server_sends_close_on_shutdown(ws_agentd):
    c = ws_agentd.ws_client()
    c.initialize()
    ws_agentd.signal(15)
    c.wait_closed(timeout=10)
    with pytest.raises(ConnectionClosed):
        c.recv(timeout=0.1)
    assert c.close_info[0] == 1001, c.close_info  # going away
    assert ws_agentd.wait(timeout=10) == 0


def test_ws_client_that_never_reads_is_disconnected(agentd_factory):
    """Past max_write_queue_bytes of unread answers, agentd drops that client, and only it."""
    proc = agentd_factory(["ws://127.0.0.1:0"], config="[agentd]\nmax_write_queue_bytes = 1048576\n")
    bystander = proc.ws_client()
    bystander.initialize()
    flooder = proc.raw_ws()
    # Each request is answered with a ~4 KiB error naming the unknown method.
    frame = ws_frame(WS_TEXT, json.dumps({"id": 1, "method": "no/" + "m" * 4000}))
    try:
        flood_without_reading(flooder.sock, frame * 16, duration=3)
        assert bystander.health()["status"] == "ok"
        wait_until(lambda: bystander.health()["connections"] == 1, 4,
                   what="agentd to drop the client that does not read")
    finally:
        flooder.close()
    assert "client is not reading" in proc.stderr()


_STD_HEAD = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
)
HANDSHAKES = [
    ("standard", "GET / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD, 101),
    ("lowercase-names", "GET / HTTP/1.1\r\nhost: x\r\n" + _STD_HEAD.replace("Upgrade: websocket", "upgrade: websocket")
     .replace("Connection: Upgrade", "connection: upgrade").replace("Sec-WebSocket-Version", "sec-websocket-version"),
     101),
    ("connection-list", "GET / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD.replace("Connection: Upgrade",
                                                                             "Connection: keep-alive, Upgrade"), 101),
    ("upgrade-mixed-case", "GET /any/path HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD.replace("websocket", "WebSocket"), 101),
    ("no-version", "GET / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD.replace("Sec-WebSocket-Version: 13\r\n", ""), 426),
    ("no-key", "GET / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                                                                    ""), 400),
    ("lowercase-origin", "GET / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD + "origin: http://x\r\n", 403),
    ("post", "POST / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD, 400),
    ("head-too-large", "GET / HTTP/1.1\r\nHost: x\r\n" + _STD_HEAD + "X-Pad: " + "a" * 20000 + "\r\n", 431),
]


@pytest.mark.parametrize("head,status", [h[1:] for h in HANDSHAKES], ids=[h[0] for h in HANDSHAKES])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "byte-by-byte"])
def test_handshake_variants(ws_agentd, head, status, split):
    request = (head + "\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", ws_agentd.ws_port), timeout=RECV_TIMEOUT)
    try:
        if split and len(request) < 4096:
            for i in range(len(request)):
                sock.sendall(request[i : i + 1])
        else:
            sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:200]
    if status == 101:
        assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in data, data


def test_ws_ping_flood_without_reading_is_cut_off(ws_agentd):
    """Pongs are owed, but a client that never reads them cannot make agentd hold them all."""
    raw = ws_agentd.raw_ws()
    ping = ws_frame(0x9, b"p" * 125)
    sent = 0
    raw.sock.settimeout(5)
    try:
        for _ in range(200):  # up to 26 MB of pings in 128 KiB writes
            raw.send(ping * 1000)
            sent += 1000
    except (BrokenPipeError, ConnectionResetError, TimeoutError, socket.timeout):
        pass  # agentd closed the connection, or stopped reading it: both bound the pongs
    frames = raw.read_until_eof()  # drains what was queued, then must see EOF, not block
    pongs = sum(1 for opcode, _ in frames if opcode == 0xA)
    assert pongs < sent, f"every one of {sent} pings was answered: nothing bounded the pong queue"
    # agentd itself is fine and serves others.
    other = ws_agentd.ws_client()
    other.initialize()
    assert other.health()["status"] == "ok"


def test_ws_client_that_never_finishes_its_handshake_is_cut_off(ws_agentd):
    """A half-sent request head cannot hold a connection slot for ever (10 s deadline)."""
    s = socket.create_connection(("127.0.0.1", ws_agentd.ws_port), timeout=20)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert s.recv(4096) == b"", "agentd answered a request head that never ended"
    waited = time.monotonic() - started
    s.close()
    assert 8 <= waited <= 15, f"closed after {waited:.1f} s"
    client = ws_agentd.ws_client()
    client.initialize()
    assert client.health()["status"] == "ok"
