# SPDX-License-Identifier: MIT
"""Malformed and unexpected client input, over stdio and websocket alike.

Every case is followed by a request on the same connection proving it still works.
"""
import json

import pytest

from conftest import INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR

INIT = {"clientInfo": {"name": "bad-input-tests", "version": "1"}}
BIG = 16 * 1024 * 1024


def _huge_line():
    # Valid JSON that would be a real request if it were not over the 16 MiB limit.
    pad = "x" * BIG
    return json.dumps({"id": 4242, "method": "agentd/health", "params": {"pad": pad}})


class Case:
    def __init__(self, name, send, code=None, id=None, initialized=True, message=None, ok=False):
        self.name = name
        self.send = send  # text sent as one message (the transport adds its framing)
        self.code = code  # expected error code; None with ok=True: a result is expected
        self.id = id
        self.initialized = initialized
        self.message = message  # substring of the error message, when it is specified
        self.ok = ok


CASES = [
    # malformed JSON
    Case("truncated-json", '{"id":1,"method":', PARSE_ERROR),
    Case("garbage", "this is not json", PARSE_ERROR),
    Case("trailing-garbage", '{"id":1,"method":"agentd/health"} x', PARSE_ERROR),
    Case("invalid-utf8", b'{"id":1,"method":"agentd/health","params":{"s":"\xff\xfe"}}', PARSE_ERROR),
    Case("duplicate-keys", '{"id":1,"id":2,"method":"agentd/health"}', PARSE_ERROR),
    # over the 16 MiB default limit
    Case("16MiB-message", None, INVALID_REQUEST),
    # unknown method, before and after initialize
    Case("unknown-method", '{"id":3,"method":"no/such/method"}', METHOD_NOT_FOUND, id=3, message="no/such/method"),
    Case("unknown-method-uninit", '{"id":3,"method":"nope"}', METHOD_NOT_FOUND, id=3, initialized=False),
    # wrong params: the reference's deserializer answers every one -32600 "Invalid request: …"
    Case("initialize-no-params", '{"id":4,"method":"initialize"}', INVALID_REQUEST, id=4, initialized=False),
    Case("initialize-params-array", '{"id":4,"method":"initialize","params":[1]}', INVALID_REQUEST, id=4,
         initialized=False),
    Case("initialize-no-clientinfo", '{"id":4,"method":"initialize","params":{}}', INVALID_REQUEST, id=4,
         initialized=False, message="clientInfo"),
    Case("initialize-clientinfo-string", '{"id":4,"method":"initialize","params":{"clientInfo":"x"}}',
         INVALID_REQUEST, id=4, initialized=False),
    Case("initialize-name-int", '{"id":4,"method":"initialize","params":{"clientInfo":{"name":1,"version":"1"}}}',
         INVALID_REQUEST, id=4, initialized=False),
    Case("initialize-no-version", '{"id":4,"method":"initialize","params":{"clientInfo":{"name":"n"}}}',
         INVALID_REQUEST, id=4, initialized=False, message="version"),
    Case("initialize-title-int",
         '{"id":4,"method":"initialize","params":{"clientInfo":{"name":"n","version":"1","title":7}}}',
         INVALID_REQUEST, id=4, initialized=False),
    Case("health-params-string", '{"id":5,"method":"agentd/health","params":"execd"}', INVALID_REQUEST, id=5),
    # request before initialize
    Case("before-initialize", '{"id":6,"method":"agentd/health"}', INVALID_REQUEST, id=6, initialized=False,
         message="Not initialized"),
    # duplicate initialize
    Case("duplicate-initialize", json.dumps({"id": 7, "method": "initialize", "params": INIT}), INVALID_REQUEST,
         id=7, message="Already initialized"),
    # non-object JSON
    Case("array", "[1,2,3]", INVALID_REQUEST),
    Case("batch", '[{"id":1,"method":"agentd/health"}]', INVALID_REQUEST),
    Case("number", "42", INVALID_REQUEST),
    Case("string", '"hello"', INVALID_REQUEST),
    Case("null", "null", INVALID_REQUEST),
    Case("true", "true", INVALID_REQUEST),
    # bad id types
    Case("id-float", '{"id":1.5,"method":"agentd/health"}', INVALID_REQUEST),
    Case("id-bool", '{"id":true,"method":"agentd/health"}', INVALID_REQUEST),
    Case("id-object", '{"id":{"a":1},"method":"agentd/health"}', INVALID_REQUEST),
    Case("id-array", '{"id":[1],"method":"agentd/health"}', INVALID_REQUEST),
    Case("id-null", '{"id":null,"method":"agentd/health"}', INVALID_REQUEST),
    # other invalid requests
    Case("empty-object", "{}", INVALID_REQUEST),
    Case("id-without-method", '{"id":8}', INVALID_REQUEST, id=8),
    Case("method-not-string", '{"id":9,"method":5}', INVALID_REQUEST, id=9),
    Case("jsonrpc-wrong-version", '{"jsonrpc":"1.0","id":10,"method":"agentd/health"}', INVALID_REQUEST, id=10),
    # the jsonrpc field is accepted (the server itself never sends it)
    Case("jsonrpc-field-accepted", '{"jsonrpc":"2.0","id":11,"method":"agentd/health"}', id=11, ok=True),
    Case("jsonrpc-initialize", json.dumps({"jsonrpc": "2.0", "id": 12, "method": "initialize", "params": INIT}),
         id=12, initialized=False, ok=True),
    Case("params-null-accepted", '{"id":13,"method":"agentd/health","params":null}', id=13, ok=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(connect, transport, case):
    proc, client = connect(initialized=case.initialized)
    payload = _huge_line() if case.send is None else case.send
    expected_id = case.id
    if case.send is None:
        expected_id = 4242  # the discarded message's head is kept: the id at its start is answered
    client.send_raw(payload, timeout=20)
    msg = client.recv(timeout=10)
    if case.ok:
        assert msg.get("id") == expected_id and "result" in msg, msg
    else:
        assert "error" in msg, msg
        assert msg["error"]["code"] == case.code, msg
        assert msg["id"] == expected_id and type(msg["id"]) is type(expected_id), msg
        if case.message:
            assert case.message in msg["error"]["message"], msg
    # The connection keeps working, and the bad message got one answer, never more:
    # wait_response() insists the next message answers the next request.
    if not case.initialized and case.name != "jsonrpc-initialize":
        assert client.initialize()["platformOs"] == "linux"
    assert client.health()["status"] == "ok"


@pytest.mark.parametrize("framing", ["crlf", "split", "batched", "blank-lines"])
def test_stdio_line_framing(stdio_agentd, framing):
    c = stdio_agentd.stdio
    req = lambda i: json.dumps({"id": i, "method": "agentd/health"}).encode()  # noqa: E731
    for i in (101, 102):
        c.note_outgoing({"id": i, "method": "agentd/health"})
    if framing == "crlf":
        c.send_bytes(req(101) + b"\r\n" + req(102) + b"\r\n")
    elif framing == "split":
        data = req(101) + b"\n" + req(102) + b"\n"
        for i in range(0, len(data), 7):
            c.send_bytes(data[i : i + 7])
    elif framing == "batched":
        c.send_bytes(req(101) + b"\n" + req(102) + b"\n")
    else:
        c.send_bytes(b"\n\n" + req(101) + b"\n\n\n" + req(102) + b"\n\n")
    assert c.wait_response(101)["result"]["status"] == "ok"
    assert c.wait_response(102)["result"]["status"] == "ok"
    c.sync()


LIMIT = 65536
LIMIT_CONFIG = f"[agentd]\nmax_message_bytes = {LIMIT}\n"


def _request_of_size(size, id_value):
    skeleton = json.dumps({"id": id_value, "method": "agentd/health", "params": {"pad": ""}})
    text = json.dumps({"id": id_value, "method": "agentd/health", "params": {"pad": "p" * (size - len(skeleton))}})
    assert len(text) == size
    return text


def test_configured_message_limit_boundary(connect, transport):
    proc, client = connect(initialized=True, config=LIMIT_CONFIG)
    # The discarded message's head is kept, so the id at its start is answered.
    over_id = lambda i: i  # noqa: E731
    # Exactly at the limit: served.
    client.send_raw(_request_of_size(LIMIT, 1))
    assert client.wait_response(1)["result"]["status"] == "ok"
    # One byte over: -32600, and the request is not run.
    client.send_raw(_request_of_size(LIMIT + 1, 2))
    msg = client.recv()
    assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] == over_id(2), msg
    assert str(LIMIT) in msg["error"]["message"], msg
    client.sync()
    # Far over, several times in a row: each gets its error and the connection lives.
    for _ in range(3):
        client.send_raw(_request_of_size(LIMIT * 5, 3))
        msg = client.recv()
        assert msg["error"]["code"] == INVALID_REQUEST and msg["id"] == over_id(3), msg
    assert client.health()["status"] == "ok"


@pytest.mark.parametrize("value", ["12", "0", "2000000000", '"big"'])
def test_bad_limit_config_refuses_to_start(agentd_factory, value):
    proc = agentd_factory(config=f"[agentd]\nmax_message_bytes = {value}\n", wait=False, expect_status=None)
    status = proc.wait(timeout=10)
    assert status != 0
    assert "max_message_bytes" in proc.stderr()
