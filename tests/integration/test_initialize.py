# SPDX-License-Identifier: MIT
"""initialize / initialized and agentd/health: the handshake as the reference does it (section 12.2)."""
import os
import platform

import pytest

from conftest import HELPERS, INVALID_REQUEST, wait_until


def test_initialize_result(agentd_factory):
    proc = agentd_factory(initialize=False)
    result = proc.stdio.initialize(name="my-client", version="4.5.6", timeout=10)
    # The schema check (v1/InitializeResponse.json) ran on receipt; these are the values.
    assert result["codexHome"] == str(proc.codex_home)
    assert os.path.isabs(result["codexHome"])
    assert result["platformFamily"] == "unix"
    assert result["platformOs"] == "linux"
    ua = result["userAgent"]
    # <originator>/<version> (<os> <os_version>; <arch>) <terminal> (<clientInfo.name>; <clientInfo.version>)
    # the protocol's version, so that a 0.169 TUI does not take agentd for an older server
    assert ua.startswith("my-client/0.169.0 ("), ua
    assert ua.endswith("(my-client; 4.5.6)"), ua
    assert f"; {platform.machine()})" in ua, ua


def test_initialize_with_title_and_capabilities(agentd_factory):
    proc = agentd_factory(initialize=False)
    result = proc.stdio.call(
        "initialize",
        {
            "clientInfo": {"name": "codex_vscode", "title": "Codex VS Code", "version": "0.1"},
            "capabilities": {"experimentalApi": True, "optOutNotificationMethods": ["thread/started"]},
        },
        timeout=10,
    )
    assert result["userAgent"].startswith("codex_vscode/")
    proc.stdio.notify("initialized")
    assert proc.stdio.health()["status"] == "ok"


def test_first_client_sets_originator(ws_agentd):
    first, second = ws_agentd.ws_client(), ws_agentd.ws_client()
    ua1 = first.initialize(name="client-a", version="1")["userAgent"]
    ua2 = second.initialize(name="client-b", version="2")["userAgent"]
    assert ua1.startswith("client-a/") and ua1.endswith("(client-a; 1)"), ua1
    # Later clients cannot change the process-wide originator; the suffix is theirs.
    assert ua2.startswith("client-a/") and ua2.endswith("(client-b; 2)"), ua2


def test_exempt_client_names_do_not_set_originator(ws_agentd):
    daemon, later = ws_agentd.ws_client(), ws_agentd.ws_client()
    ua = daemon.initialize(name="codex_app_server_daemon", version="1")["userAgent"]
    assert ua.startswith("codex_cli_rs/"), ua
    ua = later.initialize(name="codex-tui", version="2")["userAgent"]
    assert ua.startswith("codex-tui/"), ua


def test_originator_override_env(agentd_factory):
    proc = agentd_factory(initialize=False, env={"CODEX_INTERNAL_ORIGINATOR_OVERRIDE": "override_me"})
    ua = proc.stdio.initialize(name="codex-tui", version="1", timeout=10)["userAgent"]
    assert ua.startswith("override_me/"), ua


def test_invalid_client_name_is_rejected_and_connection_can_retry(agentd_factory):
    proc = agentd_factory(initialize=False)
    c = proc.stdio
    msg = c.request("initialize", {"clientInfo": {"name": "bad\nname", "version": "1"}}, timeout=10)
    assert msg["error"]["code"] == INVALID_REQUEST
    assert msg["error"]["message"] == "Invalid clientInfo.name: 'bad\nname'. Must be a valid HTTP header value."
    # The failed initialize did not initialize the connection, nor did it burn the handshake.
    assert c.request("agentd/health")["error"]["message"] == "Not initialized"
    assert c.initialize(name="good-name")["platformOs"] == "linux"


@pytest.mark.parametrize(
    "capabilities",
    [
        "yes",
        {"experimentalApi": "true"},
        {"optOutNotificationMethods": "thread/started"},
        {"optOutNotificationMethods": [1, 2]},
    ],
    ids=["not-object", "bool-field-string", "optout-not-array", "optout-not-strings"],
)
def test_bad_capabilities(agentd_factory, capabilities):
    proc = agentd_factory(initialize=False)
    c = proc.stdio
    msg = c.request("initialize", {"clientInfo": {"name": "x", "version": "1"}, "capabilities": capabilities})
    assert msg["error"]["code"] == INVALID_REQUEST, msg
    assert msg["error"]["message"].startswith("Invalid request: "), msg
    assert c.initialize()["platformFamily"] == "unix"


def test_initialized_notification_gets_no_answer(agentd_factory):
    proc = agentd_factory(initialize=False)
    c = proc.stdio
    c.call("initialize", {"clientInfo": {"name": "x", "version": "1"}}, timeout=10)
    c.take_sandbox_warnings()
    c.notify("initialized")
    c.notify("some/unknownNotification", {"a": 1})
    # A response from the client to a server request that was never made is ignored too.
    c.send({"id": 77, "result": {}})
    c.send({"id": "x", "error": {"code": 1, "message": "no"}})
    c.sync()
    assert c.health()["status"] == "ok"


def test_request_ids_are_echoed_exactly(stdio_agentd):
    c = stdio_agentd.stdio
    for id_value in ["a-string-id", "", 0, -1, 2**63 - 1, -(2**63)]:
        msg = c.request("agentd/health", id=id_value)
        assert msg["id"] == id_value and type(msg["id"]) is type(id_value)
        assert "result" in msg


def test_health_suite_status(stdio_agentd):
    result = stdio_agentd.stdio.health()
    assert result["status"] == "ok"
    assert result["connections"] == 1
    services = {s["name"]: s for s in result["services"]}
    assert sorted(services) == sorted(HELPERS)
    pids = set()
    for name, entry in services.items():
        assert entry["registered"] is True, entry
        assert entry["pid"] > 0 and entry["restarts"] == 0, entry
        pids.add(entry["pid"])
    assert len(pids) == len(HELPERS)


@pytest.mark.parametrize("service", HELPERS)
def test_health_of_one_helper(stdio_agentd, service):
    suite = {s["name"]: s for s in stdio_agentd.stdio.health()["services"]}
    answer = stdio_agentd.stdio.health(service)
    assert answer["service"] == service
    assert answer["status"] == "ok"
    assert answer["pid"] == suite[service]["pid"]
    assert answer["uptimeMs"] >= 0


@pytest.mark.parametrize("service", ["nosuchd", "", 5, "agentd"])
def test_health_unknown_service(stdio_agentd, service):
    msg = stdio_agentd.stdio.request("agentd/health", {"service": service})
    assert msg["error"]["code"] == INVALID_REQUEST, msg
    assert stdio_agentd.stdio.health()["status"] == "ok"


def test_health_connection_count(ws_agentd):
    a = ws_agentd.ws_client()
    a.initialize()
    b = ws_agentd.ws_client()
    b.initialize()
    assert a.health()["connections"] == 2
    b.close_handshake()
    wait_until(lambda: a.health()["connections"] == 1, 5, what="the closed connection to be dropped")


def test_binary_frame_with_json_is_accepted(ws_agentd):
    c = ws_agentd.ws_client()
    c.note_outgoing({"id": 1, "method": "initialize"})
    c._run(c.ws.send(b'{"id":1,"method":"initialize","params":{"clientInfo":{"name":"b","version":"1"}}}'))
    msg = c.wait_response(1)
    assert msg["result"]["platformOs"] == "linux"
