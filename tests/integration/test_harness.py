# SPDX-License-Identifier: MIT
"""The harness's own checks: the protocol validator must reject what the reference would not send."""
import pytest

GOOD_INIT = {"userAgent": "a/1", "codexHome": "/h", "platformFamily": "unix", "platformOs": "linux"}


def methods(table):
    return lambda id_value: table.get(id_value)


@pytest.mark.parametrize(
    "msg,method",
    [
        ({"id": 1, "result": GOOD_INIT}, "initialize"),
        ({"id": "s", "error": {"code": -32600, "message": "m"}}, None),
        ({"id": None, "error": {"code": -32700, "message": "m"}}, None),
        ({"method": "error", "params": {"error": {"message": "x", "additionalDetails": None, "codexErrorInfo": None},
                                        "threadId": "t", "turnId": "u", "willRetry": False}}, None),
    ],
    ids=["init-result", "error", "null-id-error", "notification"],
)
def test_validator_accepts(protocol, msg, method):
    assert protocol.check(msg, methods({1: method})) == []


@pytest.mark.parametrize(
    "msg",
    [
        {"jsonrpc": "2.0", "id": 1, "result": GOOD_INIT},
        {"id": 1, "result": {k: v for k, v in GOOD_INIT.items() if k != "codexHome"}},
        {"id": 1, "result": dict(GOOD_INIT, platformOs=5)},
        {"id": 2, "result": {}},  # answers an id never used
        {"id": 1.5, "error": {"code": -32600, "message": "m"}},
        {"id": 1, "error": {"code": "-32600", "message": "m"}},
        {"id": 1, "error": {"code": -32600}},
        {"id": None, "error": {"code": True, "message": "m"}},
        {"id": None, "error": {"code": -32700, "message": "m"}, "extra": 1},
        {"error": {"code": -32700, "message": "m"}},
        {"method": "no/such/notification", "params": {}},
        {"method": "error", "params": {}},
        {"something": "else"},
        [1, 2],
    ],
)
def test_validator_rejects(protocol, msg):
    assert protocol.check(msg, methods({1: "initialize"})) != []
