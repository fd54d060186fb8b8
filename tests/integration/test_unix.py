# SPDX-License-Identifier: MIT
"""The unix://PATH listener: newline-delimited JSON over a private stream socket."""
import json
import os
import socket
import stat

from conftest import INVALID_REQUEST, PARSE_ERROR, connect_unix, flood_without_reading, wait_until


def _unix_agentd(agentd_factory, tmp_path, name="agentd.sock", **kw):
    path = tmp_path / name
    proc = agentd_factory([f"unix://{path}"], **kw)
    return proc, path


def test_unix_newline_delimited_json(agentd_factory, tmp_path):
    proc, path = _unix_agentd(agentd_factory, tmp_path)
    c = proc.unix_client(path)
    result = c.initialize(name="unix-client")
    assert result["userAgent"].startswith("unix-client/")
    assert c.health()["status"] == "ok"
    # Several messages in one write, one split across writes, CRLF endings.
    for i in (1, 2, 3):
        c.note_outgoing({"id": i, "method": "agentd/health"})
    one = json.dumps({"id": 1, "method": "agentd/health"}).encode()
    two = json.dumps({"id": 2, "method": "agentd/health"}).encode()
    three = json.dumps({"id": 3, "method": "agentd/health"}).encode()
    c.send_bytes(one + b"\n" + two[:5])
    c.send_bytes(two[5:] + b"\r\n" + three + b"\n")
    for i in (1, 2, 3):
        assert c.wait_response(i)["result"]["status"] == "ok"


def test_unix_socket_mode_is_0600(agentd_factory, tmp_path):
    proc, path = _unix_agentd(agentd_factory, tmp_path)
    proc.unix_client(path).initialize()
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()


def test_unix_default_path_in_runtime_dir(agentd_factory):
    proc = agentd_factory(["unix://"])
    path = proc.runtime_dir / "agentd.sock"
    c = proc.unix_client(path)
    c.initialize()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unix_bad_input_keeps_connection(agentd_factory, tmp_path):
    proc, path = _unix_agentd(agentd_factory, tmp_path, config="[agentd]\nmax_message_bytes = 4096\n")
    c = proc.unix_client(path)
    c.send_raw("{oops")
    assert c.recv()["error"]["code"] == PARSE_ERROR
    c.send_raw(json.dumps({"id": 1, "method": "agentd/health", "params": {"p": "q" * 10000}}))
    msg = c.recv()
    # The id at the start of the oversized line is answered, so the client is not left waiting.
    assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] == 1
    c.send_raw(json.dumps({"method": "agentd/health", "id": 2, "params": {"p": "q" * 10000}}))
    msg = c.recv()
    assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] is None  # id not first: unknown
    c.initialize()
    assert c.health()["status"] == "ok"


def test_unix_clients_are_independent(agentd_factory, tmp_path):
    proc, path = _unix_agentd(agentd_factory, tmp_path)
    a, b = proc.unix_client(path), proc.unix_client(path)
    a.initialize()
    assert b.request("agentd/health")["error"]["message"] == "Not initialized"
    b.initialize()
    assert a.health()["connections"] == 2
    a.close()
    wait_until(lambda: b.health()["connections"] == 1, 5, what="the closed unix client to be dropped")


def test_unix_client_disconnect_with_pending_input(agentd_factory, tmp_path):
    proc, path = _unix_agentd(agentd_factory, tmp_path)
    keeper = proc.unix_client(path)
    keeper.initialize()
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(path))
        s.sendall(b'{"id":1,"method":"initialize","params":{"clientInfo"')  # no newline, then gone
        s.close()
    assert keeper.health()["status"] == "ok"
    wait_until(lambda: keeper.health()["connections"] == 1, 5, what="the dropped clients to be closed")


def test_unix_stale_socket_is_replaced(agentd_factory, tmp_path):
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # leaves the socket file behind, as a crashed server would
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    proc = agentd_factory([f"unix://{path}"])
    c = proc.unix_client(path)
    c.initialize()


def test_unix_and_stdio_together(agentd_factory, tmp_path):
    path = tmp_path / "both.sock"
    proc = agentd_factory(["stdio://", f"unix://{path}"])
    c = proc.unix_client(path)
    c.initialize(name="second")
    assert proc.stdio.health()["connections"] == 2
    # stdio EOF does not stop a server that has another transport.
    proc.stdio.close_stdin()
    wait_until(lambda: c.health()["connections"] == 1, 5, what="the stdio connection to close")
    assert proc.proc.poll() is None


def test_unix_client_that_never_reads_is_disconnected(agentd_factory, tmp_path):
    """Past max_write_queue_bytes of unread answers, agentd drops that client, and only it."""
    path = tmp_path / "flood.sock"
    proc = agentd_factory([f"unix://{path}", "ws://127.0.0.1:0"],
                          config="[agentd]\nmax_write_queue_bytes = 1048576\n")
    bystander = proc.ws_client()
    bystander.initialize()
    flooder = connect_unix(path)
    # Each request is answered with a ~4 KiB error naming the unknown method.
    request = (json.dumps({"id": 1, "method": "no/" + "m" * 4000}) + "\n").encode()
    try:
        flood_without_reading(flooder, request * 16, duration=3)
        assert bystander.health()["status"] == "ok"
        wait_until(lambda: bystander.health()["connections"] == 1, 4,
                   what="agentd to drop the client that does not read")
    finally:
        flooder.close()
    assert "client is not reading" in proc.stderr()


def test_unix_half_close_gets_every_answer(agentd_factory, tmp_path):
    """A client that shuts down its sending side still receives every answer, then EOF."""
    proc, path = _unix_agentd(agentd_factory, tmp_path)
    c = proc.unix_client(path)
    c.initialize()
    for i in range(20):
        c.note_outgoing({"id": i, "method": "agentd/health"})
    lines = [{"id": i, "method": "agentd/health", "params": {"service": "execd"} if i % 2 else None}
             for i in range(20)]
    c.send_bytes(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
    c.sock.shutdown(socket.SHUT_WR)
    got = c.wait_closed(timeout=5)
    assert sorted(m["id"] for m in got) == list(range(20)), got
    assert all("result" in m for m in got), got


def test_unix_websocket_client_as_the_reference_speaks(agentd_factory, tmp_path, protocol):
    """The reference serves websocket on its unix listener: a client that opens with an HTTP
    upgrade gets websocket, with the message bound announced as the reference does."""
    import asyncio

    import websockets

    proc, path = _unix_agentd(agentd_factory, tmp_path)

    async def session():
        async with websockets.unix_connect(str(path), uri="ws://localhost/") as ws:
            bound = ws.response_headers.get("x-codex-websocket-max-unfragmented-message-bytes")
            await ws.send(json.dumps({"id": 1, "method": "initialize",
                                      "params": {"clientInfo": {"name": "unix-ws", "version": "1"}}}))
            init = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"id": 2, "method": "nope"}))
            err = json.loads(await asyncio.wait_for(ws.recv(), 10))
            while "id" not in err:  # the host's sandbox warnings follow the initialize response
                assert err["method"] == "configWarning", err
                err = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return bound, init, err

    bound, init, err = asyncio.run(asyncio.wait_for(session(), 20))
    assert int(bound) == 16 * 1024 * 1024
    assert not protocol.check(init, lambda _id: "initialize")
    assert init["id"] == 1 and init["result"]["userAgent"].startswith("unix-ws/")
    assert not protocol.check(err, lambda _id: None)
    assert err["id"] == 2 and err["error"]["code"] == -32601


def test_unix_line_client_still_served_after_a_websocket_one(agentd_factory, tmp_path):
    proc, path = _unix_agentd(agentd_factory, tmp_path)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(path))
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nOrigin: http://evil\r\n\r\n")
    head = raw.recv(4096)
    raw.close()
    assert head.startswith(b"HTTP/1.1 403"), head
    c = proc.unix_client(path)
    assert c.initialize(name="after-ws")["userAgent"].startswith("after-ws/")
