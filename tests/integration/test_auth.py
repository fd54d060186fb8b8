# SPDX-License-Identifier: MIT
"""authd through the client protocol: account/read, getAuthStatus, API-key login and logout, and
token refresh against a mock issuer on loopback (serialised, poisoned, retried, proactive, shared
by two authd instances on one CODEX_HOME), the credential file's format and atomicity, and that
no credential ever reaches a log.

Reference: codex-behaviour.md §6; the reference's own tests are named where a case mirrors one.
"""
import json
import os
import random
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from conftest import INTERNAL_ERROR, INVALID_REQUEST, BUILDDIR, RpcError, register_secret, wait_until
import mock_issuer
from mock_issuer import (EXPIRED, FAR_FUTURE, NEAR_EXPIRY, MockIssuer, decode_jwt, make_apikey_auth_json,
                         make_auth_json)

AUTHD_BIN = BUILDDIR / "authd" / "authd"


@pytest.fixture
def issuer():
    with MockIssuer() as mock:
        yield mock
    # Everything the mock issued or was sent is checked against every log at the end of the run.
    for call in mock.calls():
        body = call.get("body")
        if isinstance(body, dict):
            register_secret(*[v for k, v in body.items() if k in ("refresh_token", "code", "code_verifier",
                                                                  "token", "subject_token")])
    register_secret(*mock.issued_refresh_tokens)


def auth_config(issuer, **keys):
    """config.toml pointing authd at the mock, background refresh off unless asked for."""
    keys.setdefault("background_refresh", False)
    lines = ["[authd]", f'issuer = "{issuer.url}"']
    for key, value in keys.items():
        lines.append(f"{key} = {json.dumps(value) if not isinstance(value, bool) else str(value).lower()}")
    return "\n".join(lines) + "\n"


def start(agentd_factory, issuer, home=None, listen=(), env=None, **keys):
    """agentd with the mock as issuer; @home: a CODEX_HOME to share (else the harness's own)."""
    env = dict(env or {})
    env.setdefault("CODEX_REFRESH_TOKEN_URL_OVERRIDE", issuer.token_url)
    if home is not None:
        env["CODEX_HOME"] = str(home)
        Path(home).mkdir(exist_ok=True)
        (Path(home) / "config.toml").write_text(auth_config(issuer, **keys))
        return agentd_factory(list(listen), env=env)
    return agentd_factory(list(listen), env=env, config=auth_config(issuer, **keys))


def home_of(proc):
    return Path(proc.env["CODEX_HOME"])


def read_auth(proc):
    return json.loads((home_of(proc) / "auth.json").read_text())


def assert_no_secret_in_logs(proc, *secrets):
    register_secret(*secrets)
    log = proc.stderr()
    for secret in secrets:
        # The mock's own short tokens ("rt-3") could occur in any text, random names included.
        if secret and len(secret) >= 8:
            assert secret not in log, f"a credential appears in agentd's log: {secret[:12]}..."


def settle(client):
    """A round trip through authd: every notification it sent before is in client.notifications."""
    client.request("getAuthStatus", {})


def auth_status(client, **params):
    return client.call("getAuthStatus", params)


# --------------------------------------------------------------------------------------
# reading


def test_no_auth(agentd_factory, issuer):
    """get_auth_status_no_auth: nothing stored, OpenAI auth required."""
    proc = start(agentd_factory, issuer)
    assert proc.stdio.call("account/read", {}) == {"account": None, "userId": None, "requiresOpenaiAuth": True}
    assert proc.stdio.call("account/read", {"refreshToken": True}) == {"account": None, "userId": None, "requiresOpenaiAuth": True}
    assert auth_status(proc.stdio, includeToken=True) == {"authMethod": None, "authToken": None,
                                                          "requiresOpenaiAuth": True}
    assert issuer.count() == 0


def test_api_key(agentd_factory, issuer, tmp_path):
    """get_auth_status_with_api_key (+ _no_include_token, _refresh_requested)."""
    home = tmp_path / "home"
    home.mkdir()
    make_apikey_auth_json(home, "sk-unit-test-key-1")
    proc = start(agentd_factory, issuer, home=home)
    client = proc.stdio
    assert client.call("account/read", {}) == {"account": {"type": "apiKey"}, "userId": None, "requiresOpenaiAuth": True}
    assert auth_status(client, includeToken=True) == {"authMethod": "apikey", "authToken": "sk-unit-test-key-1",
                                                      "requiresOpenaiAuth": True}
    assert auth_status(client) == {"authMethod": "apikey", "authToken": None, "requiresOpenaiAuth": True}
    assert auth_status(client, includeToken=True, refreshToken=True)["authToken"] == "sk-unit-test-key-1"
    assert issuer.count() == 0  # an API key is never refreshed
    proc.finish()
    assert_no_secret_in_logs(proc, "sk-unit-test-key-1")


def test_provider_without_openai_auth(agentd_factory, issuer, tmp_path):
    """get_auth_status_with_api_key_when_auth_not_required."""
    home = tmp_path / "home"
    home.mkdir()
    make_apikey_auth_json(home, "sk-unit-test-key-2")
    (home / "config.toml").write_text(
        'model_provider = "local"\n[model_providers.local]\nname = "local"\nbase_url = "http://127.0.0.1:1/v1"\n'
        + auth_config(issuer))
    proc = agentd_factory(env={"CODEX_HOME": str(home)})
    assert auth_status(proc.stdio, includeToken=True) == {"authMethod": None, "authToken": None,
                                                          "requiresOpenaiAuth": False}
    assert proc.stdio.call("account/read", {})["requiresOpenaiAuth"] is False


def test_chatgpt_account(agentd_factory, issuer, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    doc = make_auth_json(home, expires_in=FAR_FUTURE, email="dev@example.com", plan_type="pro",
                         user_id="user-42")
    proc = start(agentd_factory, issuer, home=home)
    result = proc.stdio.call("account/read", {})
    assert result == {"account": {"type": "chatgpt", "email": "dev@example.com", "planType": "pro",
                                  "workspaceName": None},
                      "userId": "user-42", "requiresOpenaiAuth": True}
    status = auth_status(proc.stdio, includeToken=True)
    assert status == {"authMethod": "chatgpt", "authToken": doc["tokens"]["access_token"],
                      "requiresOpenaiAuth": True}
    assert issuer.count() == 0  # far from expiry: no refresh


@pytest.mark.parametrize("claim,plan", [("galactic", "unknown"), ("PLUS", "unknown"), ("hc", "enterprise"),
                                        ("education", "edu"), ("team", "team"), ("edu_plus", "edu_plus")])
def test_plan_type_mapping(agentd_factory, issuer, tmp_path, claim, plan):
    """The reference's claim → PlanType mapping, case-sensitive, with its aliases."""
    home = tmp_path / "home"
    home.mkdir()
    make_auth_json(home, plan_type=claim)
    proc = start(agentd_factory, issuer, home=home)
    assert proc.stdio.call("account/read", {})["account"]["planType"] == plan


def test_bad_params(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/read", {"refreshToken": "yes"})
    assert e.value.code == INVALID_REQUEST
    with pytest.raises(RpcError) as e:
        proc.stdio.call("getAuthStatus", {"includeToken": 1})
    assert e.value.code == INVALID_REQUEST
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/start", {"type": "password"})
    assert e.value.code == INVALID_REQUEST
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/start", {"type": "apiKey"})
    assert e.value.code == INVALID_REQUEST
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/cancel", {"loginId": "not-a-uuid"})
    assert (e.value.code, e.value.message) == (INVALID_REQUEST, "invalid login id: not-a-uuid")
    msg = proc.stdio.request("account/read")
    assert msg["error"] == {"code": INVALID_REQUEST, "message": "Invalid request: missing field `params`"}
    # The connection is unharmed.
    assert proc.stdio.call("account/read", {}) == {"account": None, "userId": None, "requiresOpenaiAuth": True}


# --------------------------------------------------------------------------------------
# the credential file


def test_corrupt_file_is_an_error_never_overwritten(agentd_factory, issuer, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    bad = '{"auth_mode": "chatgpt", "tokens": '
    (home / "auth.json").write_text(bad)
    os.chmod(home / "auth.json", 0o600)
    proc = start(agentd_factory, issuer, home=home)
    for method, params in (("account/read", {"refreshToken": True}), ("getAuthStatus", {"includeToken": True}),
                           ("account/login/start", {"type": "apiKey", "apiKey": "sk-over-corrupt"})):
        with pytest.raises(RpcError) as e:
            proc.stdio.call(method, params)
        assert e.value.code == INTERNAL_ERROR
        assert str(home / "auth.json") in e.value.message, e.value.message
    assert (home / "auth.json").read_text() == bad
    assert issuer.count() == 0
    # Fixed on disk: picked up without a restart.
    make_apikey_auth_json(home, "sk-after-fix")
    assert auth_status(proc.stdio, includeToken=True)["authToken"] == "sk-after-fix"


def test_changed_on_disk_is_reread(agentd_factory, issuer, tmp_path):
    """auth_reloads_disk_auth_when_cached_auth_is_stale."""
    home = tmp_path / "home"
    home.mkdir()
    make_apikey_auth_json(home, "sk-first")
    proc = start(agentd_factory, issuer, home=home)
    assert auth_status(proc.stdio, includeToken=True)["authToken"] == "sk-first"
    make_apikey_auth_json(home, "sk-second")
    assert auth_status(proc.stdio, includeToken=True)["authToken"] == "sk-second"
    (home / "auth.json").unlink()
    assert proc.stdio.call("account/read", {}) == {"account": None, "userId": None, "requiresOpenaiAuth": True}


def test_api_key_login_and_logout(agentd_factory, issuer, tmp_path):
    home = tmp_path / "home"
    proc = start(agentd_factory, issuer, home=home, listen=["stdio://"])
    other = proc.stdio
    result = other.call("account/login/start", {"type": "apiKey", "apiKey": "sk-login-key"})
    assert result == {"type": "apiKey"}
    settle(other)
    methods = [(n["method"], n["params"]) for n in other.notifications]
    assert methods == [("account/login/completed", {"loginId": None, "success": True, "error": None,
                                                   "onboardingEntrypoint": None}),
                       ("account/updated", {"authMode": "apikey", "planType": None})]
    path = home / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Byte for byte what 0.169 writes: pretty JSON, two-space indent, no trailing newline.
    assert path.read_bytes() == b'{\n  "auth_mode": "apikey",\n  "OPENAI_API_KEY": "sk-login-key"\n}'
    assert auth_status(other, includeToken=True)["authToken"] == "sk-login-key"
    other.notifications.clear()
    assert other.call("account/logout") == {}
    settle(other)
    assert [(n["method"], n["params"]) for n in other.notifications] == [
        ("account/updated", {"authMode": None, "planType": None})]
    assert not path.exists()
    assert other.call("account/read", {}) == {"account": None, "userId": None, "requiresOpenaiAuth": True}
    proc.finish()
    assert_no_secret_in_logs(proc, "sk-login-key")


def test_notifications_reach_every_connection(agentd_factory, issuer, tmp_path):
    proc = start(agentd_factory, issuer, listen=["ws://127.0.0.1:0"])
    a, b = proc.ws_client(), proc.ws_client()
    a.initialize()
    b.initialize()
    a.call("account/login/start", {"type": "apiKey", "apiKey": "sk-broadcast"})
    settle(a)
    settle(b)
    assert [n["method"] for n in a.notifications] == ["account/login/completed", "account/updated"]
    assert [n["method"] for n in b.notifications] == ["account/login/completed", "account/updated"]
    assert b.notifications[1]["params"] == {"authMode": "apikey", "planType": None}


def test_pipelined_login_then_read_sees_the_login(agentd_factory, issuer):
    """A client that logs in and reads at once gets the new credential, not the old one."""
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    client.send({"id": "login", "method": "account/login/start", "params": {"type": "apiKey", "apiKey": "sk-p1"}})
    client.send({"id": "read", "method": "getAuthStatus", "params": {"includeToken": True}})
    client.send({"id": "logout", "method": "account/logout"})
    client.send({"id": "read2", "method": "getAuthStatus", "params": {"includeToken": True}})
    answers = {}
    for _ in range(4):
        msg = client.recv()
        while "id" not in msg:
            msg = client.recv()
        answers[msg["id"]] = msg
    assert answers["login"]["result"] == {"type": "apiKey"}
    assert answers["read"]["result"]["authToken"] == "sk-p1"
    assert answers["logout"]["result"] == {}
    assert answers["read2"]["result"]["authToken"] is None


# --------------------------------------------------------------------------------------
# refresh


def test_refresh_updates_storage(agentd_factory, issuer, tmp_path):
    """refresh_token_succeeds_updates_storage: the request the reference sends, the file after."""
    home = tmp_path / "home"
    home.mkdir()
    old = make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-original",
                         last_refresh=time.time() - 10 * 86400)
    proc = start(agentd_factory, issuer, home=home)
    status = auth_status(proc.stdio, includeToken=True, refreshToken=True)
    [call] = issuer.calls("/oauth/token")
    assert call["method"] == "POST"
    assert call["headers"]["content-type"] == "application/json"
    assert call["body"] == {"client_id": mock_issuer.CLIENT_ID, "grant_type": "refresh_token",
                            "refresh_reason": "forced", "refresh_token": "rt-original"}
    assert list(call["body"]) == ["client_id", "grant_type", "refresh_reason", "refresh_token"]
    doc = read_auth(proc)
    assert doc["auth_mode"] == "chatgpt" and doc["OPENAI_API_KEY"] is None
    assert doc["tokens"]["refresh_token"] == issuer.issued_refresh_tokens[-1] != "rt-original"
    assert doc["tokens"]["access_token"] == status["authToken"] != old["tokens"]["access_token"]
    assert doc["tokens"]["account_id"] == old["tokens"]["account_id"]
    assert decode_jwt(status["authToken"])[1]["exp"] > time.time() + 600
    refreshed_at = time.mktime(time.strptime(doc["last_refresh"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(refreshed_at - time.time()) < 60
    assert stat.S_IMODE((home / "auth.json").stat().st_mode) == 0o600
    assert not [p.name for p in home.iterdir() if p.name.startswith(".auth.json.tmp")]
    proc.finish()
    assert_no_secret_in_logs(proc, "rt-original", doc["tokens"]["refresh_token"], status["authToken"],
                             old["tokens"]["access_token"])


def test_getter_refreshes_a_due_token(agentd_factory, issuer, tmp_path):
    """auth_refreshes_when_access_token_is_near_expiry / auth_skips_access_token_outside_refresh_window."""
    home = tmp_path / "home"
    home.mkdir()
    make_auth_json(home, expires_in=NEAR_EXPIRY)
    proc = start(agentd_factory, issuer, home=home)
    token = auth_status(proc.stdio, includeToken=True)["authToken"]
    assert issuer.count("/oauth/token") == 1
    assert decode_jwt(token)[1]["exp"] > time.time() + 600
    # Now outside the window: reading again does not refresh.
    assert auth_status(proc.stdio, includeToken=True)["authToken"] == token
    assert proc.stdio.call("account/read", {})["account"]["type"] == "chatgpt"
    assert issuer.count("/oauth/token") == 1


def test_old_last_refresh_without_exp_is_due(agentd_factory, issuer, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    opaque = "opaque-access-token-without-claims"
    make_auth_json(home, access_token=opaque, last_refresh=time.time() - 9 * 86400)
    proc = start(agentd_factory, issuer, home=home)
    assert auth_status(proc.stdio, includeToken=True)["authToken"] != opaque
    assert issuer.count("/oauth/token") == 1


def test_background_refresh(agentd_factory, issuer, tmp_path):
    """authd's own timer refreshes a token nearing expiry with no client asking."""
    home = tmp_path / "home"
    home.mkdir()
    make_auth_json(home, expires_in=NEAR_EXPIRY, refresh_token="rt-bg")
    proc = start(agentd_factory, issuer, home=home, background_refresh=True)
    issuer.wait_calls(1, "/oauth/token", timeout=10)
    wait_until(lambda: read_auth(proc)["tokens"]["refresh_token"] != "rt-bg", 5, what="the refreshed file")
    health = proc.stdio.health("authd")
    assert health["refreshRequests"] == 1 and health["poisoned"] is False
    auth_status(proc.stdio, includeToken=True)
    assert issuer.count("/oauth/token") == 1


def _storm(proc, issuer, connections):
    """100 requests over @connections while the token endpoint holds its answer."""
    issuer.script(mock_issuer.hang())
    per = 100 // len(connections)
    sent = []
    for c_index, client in enumerate(connections):
        for i in range(per):
            rid = f"s{c_index}-{i}"
            if i % 2:
                client.send({"id": rid, "method": "account/read", "params": {"refreshToken": True}})
            else:
                client.send({"id": rid, "method": "getAuthStatus",
                             "params": {"includeToken": True, "refreshToken": True}})
            sent.append((client, rid))
    issuer.wait_hanging(1)
    time.sleep(0.3)  # every request has reached authd and waits on the one refresh
    assert issuer.count("/oauth/token") == 1
    issuer.release()
    return [(rid, client.wait_response(rid, timeout=10)) for client, rid in sent]


def test_refresh_storm_makes_one_request(agentd_factory, issuer, tmp_path):
    """100 concurrent refreshing reads across 10 connections with an expired token: one request."""
    home = tmp_path / "home"
    home.mkdir()
    make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-storm")
    proc = start(agentd_factory, issuer, home=home, listen=["ws://127.0.0.1:0"])
    clients = [proc.ws_client() for _ in range(10)]
    for client in clients:
        client.initialize()
    answers = _storm(proc, issuer, clients)
    assert len(answers) == 100
    assert issuer.count("/oauth/token") == 1
    new_token = read_auth(proc)["tokens"]["access_token"]
    for rid, msg in answers:
        result = msg["result"]
        if "authMethod" in result:
            assert result == {"authMethod": "chatgpt", "authToken": new_token, "requiresOpenaiAuth": True}
        else:
            assert result["account"]["type"] == "chatgpt" and result["userId"] == mock_issuer.DEFAULT_USER_ID
    # Calls after the storm find a fresh token: still one request.
    assert auth_status(clients[0], includeToken=True, refreshToken=True)["authToken"] == new_token
    assert issuer.count("/oauth/token") == 1
    assert proc.stdio is None or True
    print(f"refresh storm: 100 concurrent callers, {issuer.count('/oauth/token')} token request(s)")


def test_two_authd_on_one_home_spend_the_refresh_token_once(agentd_factory, issuer, tmp_path):
    """Two suites sharing a CODEX_HOME, both refreshing the same expired token at once."""
    home = tmp_path / "shared-home"
    home.mkdir()
    make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-shared")
    first = start(agentd_factory, issuer, home=home)
    second = start(agentd_factory, issuer, home=home)
    issuer.script(mock_issuer.hang())
    first.stdio.send({"id": "a", "method": "getAuthStatus", "params": {"includeToken": True, "refreshToken": True}})
    issuer.wait_hanging(1)
    second.stdio.send({"id": "b", "method": "getAuthStatus", "params": {"includeToken": True, "refreshToken": True}})
    time.sleep(0.5)  # the second waits on the lock, not on the endpoint
    assert issuer.count("/oauth/token") == 1
    issuer.release()
    a = first.stdio.wait_response("a", timeout=10)["result"]
    b = second.stdio.wait_response("b", timeout=10)["result"]
    assert issuer.count("/oauth/token") == 1
    assert a["authToken"] == b["authToken"] == read_auth(first)["tokens"]["access_token"]
    assert issuer.spent_refresh_tokens == {"rt-shared"}
    assert second.stdio.health("authd")["refreshRequests"] == 0


def test_permanent_failure_poisons_until_a_new_login(agentd_factory, issuer, tmp_path):
    """refresh_token_does_not_retry_after_permanent_failure,
    get_auth_status_omits_token_after_permanent_refresh_failure,
    refresh_token_reloads_changed_auth_after_permanent_failure."""
    home = tmp_path / "home"
    home.mkdir()
    make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-poison")
    proc = start(agentd_factory, issuer, home=home)
    issuer.set_default(mock_issuer.REFRESH_TOKEN_EXPIRED)
    client = proc.stdio
    status = auth_status(client, includeToken=True, refreshToken=True)
    assert status == {"authMethod": "chatgpt", "authToken": None, "requiresOpenaiAuth": True}
    assert issuer.count("/oauth/token") == 1
    for _ in range(5):
        assert auth_status(client, includeToken=True, refreshToken=True)["authToken"] is None
        # A poisoned credential is no account (as the reference answers).
        assert client.call("account/read", {"refreshToken": True}) == {"account": None, "userId": None,
                                                                         "requiresOpenaiAuth": True}
    assert issuer.count("/oauth/token") == 1
    assert client.health("authd")["poisoned"] is True
    # The same content written again is the same snapshot: still poisoned.
    doc = read_auth(proc)
    mock_issuer.write_auth_json(home, doc)
    assert auth_status(client, includeToken=True, refreshToken=True)["authToken"] is None
    assert issuer.count("/oauth/token") == 1
    # A new login on disk clears it; the next call refreshes.
    issuer.set_default(mock_issuer.success())
    make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-after-login")
    token = auth_status(client, includeToken=True, refreshToken=True)["authToken"]
    assert token and issuer.count("/oauth/token") == 2
    assert issuer.calls("/oauth/token")[-1]["body"]["refresh_token"] == "rt-after-login"
    assert client.health("authd")["poisoned"] is False


@pytest.mark.parametrize("answer,words", [
    (mock_issuer.REFRESH_TOKEN_REUSED, "was already used"),
    (mock_issuer.REFRESH_TOKEN_INVALIDATED, "was revoked"),
    (mock_issuer.UNAUTHORIZED, "could not be refreshed. Please log out"),
])
def test_permanent_classes(agentd_factory, issuer, tmp_path, answer, words):
    """refresh_token_does_not_retry_after_bad_request_reused_failure and the other classes."""
    home = tmp_path / "home"
    home.mkdir()
    make_auth_json(home, expires_in=EXPIRED)
    proc = start(agentd_factory, issuer, home=home)
    issuer.set_default(answer)
    for _ in range(3):
        assert auth_status(proc.stdio, includeToken=True, refreshToken=True)["authToken"] is None
    assert issuer.count("/oauth/token") == 1
    assert words in proc.stderr()


def test_transient_failure_retries_with_backoff(agentd_factory, issuer, tmp_path):
    """refresh_token_returns_transient_error_on_server_failure, then recovery; never poisoned."""
    home = tmp_path / "home"
    home.mkdir()
    old = make_auth_json(home, expires_in=EXPIRED)
    proc = start(agentd_factory, issuer, home=home, retry_base_ms=200, refresh_attempts=3)
    issuer.script(mock_issuer.SERVER_ERROR, mock_issuer.SERVER_ERROR)
    token = auth_status(proc.stdio, includeToken=True, refreshToken=True)["authToken"]
    calls = issuer.calls("/oauth/token")
    assert len(calls) == 3 and [c["status"] for c in calls] == [500, 500, 200]
    gaps = [calls[i + 1]["monotonic"] - calls[i]["monotonic"] for i in range(2)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.36 and gaps[1] > gaps[0], gaps
    assert token == read_auth(proc)["tokens"]["access_token"] != old["tokens"]["access_token"]
    # Always failing: every try fails, the stale token is still served, nothing is poisoned.
    make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-transient")
    issuer.set_default(mock_issuer.SERVER_ERROR)
    stale = read_auth(proc)["tokens"]["access_token"]
    assert auth_status(proc.stdio, includeToken=True, refreshToken=True)["authToken"] == stale
    assert issuer.count("/oauth/token") == 6
    assert proc.stdio.health("authd")["poisoned"] is False
    assert auth_status(proc.stdio, includeToken=True, refreshToken=True)["authToken"] == stale
    assert issuer.count("/oauth/token") == 9
    assert "Failed to refresh token: 500" in proc.stderr()


def test_hanging_endpoint_times_out(agentd_factory, issuer, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    old = make_auth_json(home, expires_in=EXPIRED)
    proc = start(agentd_factory, issuer, home=home, request_timeout_ms=500, refresh_attempts=1)
    issuer.set_default(mock_issuer.hang())
    began = time.monotonic()
    status = auth_status(proc.stdio, includeToken=True, refreshToken=True)
    took = time.monotonic() - began
    assert 0.4 <= took < 3, took
    assert status["authToken"] == old["tokens"]["access_token"]
    assert proc.stdio.health("authd")["poisoned"] is False
    issuer.set_default(mock_issuer.success())
    issuer.release()


def test_shutdown_during_hanging_refresh(agentd_factory, issuer, tmp_path):
    """SIGTERM while a refresh waits on the network: authd stops promptly, the file is intact."""
    home = tmp_path / "home"
    home.mkdir()
    old = make_auth_json(home, expires_in=EXPIRED)
    proc = start(agentd_factory, issuer, home=home)
    issuer.set_default(mock_issuer.hang())
    proc.stdio.send({"id": 9, "method": "getAuthStatus", "params": {"includeToken": True, "refreshToken": True}})
    issuer.wait_hanging(1)
    began = time.monotonic()
    proc.stop()
    assert time.monotonic() - began < 3
    assert json.loads((home / "auth.json").read_text()) == old
    # The refresh cancelled by the shutdown finishes after the link is gone: no crash.
    assert "authd (pid" in proc.stderr() and "killed by signal" not in proc.stderr()
    assert "authd (pid" in proc.stderr() and "exited with status 0" in proc.stderr()
    issuer.release()


def test_kill_during_refresh_never_leaves_a_partial_file(agentd_factory, issuer, tmp_path):
    """kill -9 authd under agentd mid-refresh: the client gets an answer (an error), not a hang, the
    supervisor brings authd back, and the file is whole."""
    home = tmp_path / "home"
    home.mkdir()
    proc = start(agentd_factory, issuer, home=home)

    def authd_pid():
        try:
            return proc.stdio.health("authd").get("pid")
        except RpcError:
            return None  # down: the supervisor brings it back

    for i in range(3):
        old = make_auth_json(home, expires_in=EXPIRED, refresh_token=f"rt-kill-{i}")
        pid = wait_until(authd_pid, 10, what="authd")
        issuer.script(mock_issuer.hang())
        proc.stdio.send({"id": f"k{i}", "method": "getAuthStatus",
                         "params": {"includeToken": True, "refreshToken": True}})
        issuer.wait_hanging(1)
        os.kill(pid, signal.SIGKILL)
        msg = proc.stdio.wait_response(f"k{i}", timeout=10)
        assert msg["error"]["code"] == INTERNAL_ERROR, msg
        assert json.loads((home / "auth.json").read_text()) == old
        issuer.release()
        wait_until(lambda: authd_pid() not in (None, pid), 15, what="authd restarted")


def test_kill_9_around_the_write(issuer, tmp_path):
    """kill -9 authd at random moments around writing refreshed tokens (driven directly, so no
    restart back-off slows it): after each kill the file parses and holds either the old tokens or
    the new ones, and the next authd removes what the killed writer left."""
    from broker_call import BrokerCall
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(auth_config(issuer))
    env = {"CODEX_HOME": str(home), "CODEX_REFRESH_TOKEN_URL_OVERRIDE": issuer.token_url}
    rng = random.Random(6)
    kept_old = kept_new = 0
    with BrokerCall("authd", [str(AUTHD_BIN), "--supervised"], env=env, keep=True) as bc:
        for i in range(25):
            old = make_auth_json(home, expires_in=EXPIRED, refresh_token=f"rt-kill-{i}")
            bc.send_request("auth.status", {"refresh": True, "includeToken": True})
            issuer.wait_calls(i + 1, "/oauth/token", timeout=10)
            time.sleep(rng.uniform(0, 0.003))
            os.kill(bc.pid, signal.SIGKILL)
            bc.wait_exited()
            doc = json.loads((home / "auth.json").read_text())
            assert doc["tokens"]["refresh_token"] in (old["tokens"]["refresh_token"],
                                                      issuer.issued_refresh_tokens[-1])
            if doc["tokens"]["refresh_token"] == old["tokens"]["refresh_token"]:
                kept_old += 1
            else:
                kept_new += 1
                assert doc["tokens"]["access_token"] != old["tokens"]["access_token"]
            bc.spawn()
        status, body = bc.call("auth.status", {})
        assert status == 0 and body["authMode"] == "chatgpt"
    assert not [p.name for p in home.iterdir() if p.name.startswith(".auth.json.tmp")]
    print(f"kill -9 around the write: {kept_old} kept the old tokens, {kept_new} the new ones, none partial")


# --------------------------------------------------------------------------------------
# the model client's internal methods (driven directly: agentd's model client comes later)


@pytest.fixture
def authd_direct(issuer, tmp_path):
    """authd under broker-call with the mock as issuer: (BrokerCall, CODEX_HOME)."""
    from broker_call import BrokerCall
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(auth_config(issuer))
    env = {"CODEX_HOME": str(home), "CODEX_REFRESH_TOKEN_URL_OVERRIDE": issuer.token_url,
           "OPENAI_API_KEY": None, "CODEX_API_KEY": None}
    with BrokerCall("authd", [str(AUTHD_BIN), "--supervised"], env=env) as bc:
        yield bc, home
    log = bc.log()
    for token in issuer.issued_refresh_tokens + list(issuer.spent_refresh_tokens):
        assert token not in log


def test_auth_token_for_model_requests(authd_direct, issuer):
    bc, home = authd_direct
    assert bc.call("auth.token", {})[0] == -2  # -ENOENT: not logged in
    make_apikey_auth_json(home, "sk-model-key")
    assert bc.call("auth.token", {}) == (0, {"authMode": "apikey", "token": "sk-model-key", "accountId": None})
    doc = make_auth_json(home, expires_in=NEAR_EXPIRY)
    status, body = bc.call("auth.token", {})
    assert status == 0 and body["authMode"] == "chatgpt" and body["accountId"] == doc["tokens"]["account_id"]
    assert body["token"] != doc["tokens"]["access_token"]  # due: refreshed first
    [call] = issuer.calls("/oauth/token")
    assert call["body"]["refresh_reason"] == "proactive_expiry"
    assert "refresh_token" not in json.dumps(body)  # the refresh token never leaves authd


def test_unauthorized_recovery_refreshes_once(authd_direct, issuer):
    """unauthorized_recovery_reloads_then_refreshes_tokens: a 401 for the current token refreshes it
    once; a 401 for a token already replaced makes no request."""
    bc, home = authd_direct
    doc = make_auth_json(home, expires_in=FAR_FUTURE)
    status, body = bc.call("auth.token", {})
    assert status == 0 and body["token"] == doc["tokens"]["access_token"] and issuer.count() == 0
    status, fresh = bc.call("auth.recover", {"token": body["token"]})
    assert status == 0 and fresh["token"] != body["token"]
    [call] = issuer.calls("/oauth/token")
    assert call["body"]["refresh_reason"] == "unauthorized_recovery"
    # A second model request still holding the old token: answered with the new one, no request.
    assert bc.call("auth.recover", {"token": body["token"]}) == (0, fresh)
    assert issuer.count("/oauth/token") == 1
    # Concurrent recoveries of the current token share one refresh.
    issuer.script(mock_issuer.hang())
    ids = [bc.send_request("auth.recover", {"token": fresh["token"]}) for _ in range(5)]
    issuer.wait_hanging(1)
    issuer.release()
    answers = [bc.wait_answer(i) for i in ids]
    assert issuer.count("/oauth/token") == 2
    assert len({a["body"]["token"] for a in answers}) == 1
    # A permanent failure: the model client is told to sign in again.
    issuer.set_default(mock_issuer.REFRESH_TOKEN_INVALIDATED)
    current = answers[0]["body"]["token"]
    status, body = bc.call("auth.recover", {"token": current})
    assert status == -128 and "was revoked" in body["message"]  # -EKEYREVOKED
    assert bc.call("auth.token", {})[0] == -128
    assert bc.call("auth.recover", {})[0] == -22  # the token is required


def test_internal_methods_refuse_bad_bodies(authd_direct):
    bc, _ = authd_direct
    assert bc.call("auth.status", {"refresh": "yes"})[0] == -22
    assert bc.call("auth.login.start", {"type": "password"})[0] == -22
    assert bc.call("auth.login.cancel", {})[0] == -22
    assert bc.call("auth.nope", {})[0] == -38
    assert bc.call("auth.status", {})[0] == 0  # still serving


def test_debug_logs_carry_no_credential(agentd_factory, issuer, tmp_path):
    """At debug level too: a login, refreshes (success and failure) and reads log no token."""
    home = tmp_path / "home"
    home.mkdir()
    doc = make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-debug-secret")
    env = {"CODEX_HOME": str(home), "CODEX_REFRESH_TOKEN_URL_OVERRIDE": issuer.token_url}
    (home / "config.toml").write_text(auth_config(issuer))
    proc = agentd_factory(env=env, args=["-d"])
    client = proc.stdio
    first = auth_status(client, includeToken=True, refreshToken=True)["authToken"]
    client.call("account/read", {"refreshToken": True})
    issuer.set_default(mock_issuer.REFRESH_TOKEN_REUSED)
    make_auth_json(home, expires_in=EXPIRED, refresh_token="rt-debug-second")
    auth_status(client, includeToken=True, refreshToken=True)
    client.call("account/login/start", {"type": "apiKey", "apiKey": "sk-debug-secret-key"})
    client.call("account/logout")
    proc.finish()
    assert "debug" in proc.stderr()
    assert_no_secret_in_logs(proc, "rt-debug-secret", "rt-debug-second", "sk-debug-secret-key", first,
                             doc["tokens"]["access_token"], doc["tokens"]["id_token"],
                             *issuer.issued_refresh_tokens)


def test_refresh_follows_the_logins_provenance(agentd_factory, issuer, tmp_path):
    """A login records its issuer (tokens.oauth_provenance); without an override the refresh goes
    there, with the recorded client id, as 0.169 does."""
    home = tmp_path / "home"
    home.mkdir()
    doc = make_auth_json(expires_in=EXPIRED, refresh_token="rt-provenance")
    doc["tokens"]["oauth_provenance"] = {"issuer": issuer.url, "client_id": mock_issuer.CLIENT_ID}
    mock_issuer.write_auth_json(home, doc)
    (home / "config.toml").write_text("[authd]\nbackground_refresh = false\n")
    proc = agentd_factory(env={"CODEX_HOME": str(home)})  # no refresh override
    token = auth_status(proc.stdio, includeToken=True, refreshToken=True)["authToken"]
    [call] = issuer.calls("/oauth/token")
    assert call["body"]["refresh_token"] == "rt-provenance" and call["body"]["client_id"] == mock_issuer.CLIENT_ID
    assert token == read_auth(proc)["tokens"]["access_token"]
    assert read_auth(proc)["tokens"]["oauth_provenance"] == {"issuer": issuer.url, "client_id": mock_issuer.CLIENT_ID}


def test_background_timer_rearmed_after_a_clients_refresh(agentd_factory, tmp_path):
    """A refresh a client asked for leaves authd's timer set for the new token's expiry."""
    with MockIssuer(access_lifetime=302) as short_lived:  # due 2 s after it is issued
        home = tmp_path / "home"
        home.mkdir()
        make_auth_json(home, expires_in=FAR_FUTURE, last_refresh=time.time() - 86400)
        proc = start(agentd_factory, short_lived, home=home, background_refresh=True)
        auth_status(proc.stdio, includeToken=True, refreshToken=True)
        assert short_lived.count("/oauth/token") == 1
        [first, second] = short_lived.wait_calls(2, "/oauth/token", timeout=8)
        assert first["body"]["refresh_reason"] == "forced"
        assert second["body"]["refresh_reason"] == "proactive_expiry"
        # The timer's own refreshes are 30 s apart at least: no loop on a short-lived token.
        time.sleep(2.5)
        assert short_lived.count("/oauth/token") == 2
        proc.finish()


def test_personal_access_token(authd_direct, issuer):
    """get_auth_status_with_personal_access_token_omits_token; the model client still gets it."""
    bc, home = authd_direct
    mock_issuer.write_auth_json(home, {"personal_access_token": "pat-unit-test-0123456789"})
    register_secret("pat-unit-test-0123456789")
    status, body = bc.call("auth.status", {"includeToken": True})
    assert status == 0 and body["authMode"] == "personalAccessToken" and body["token"] is None
    assert bc.call("auth.token", {}) == (0, {"authMode": "personalAccessToken",
                                             "token": "pat-unit-test-0123456789", "accountId": None})
    assert issuer.count() == 0
