# SPDX-License-Identifier: MIT
"""The mock OAuth issuer (mock_issuer.py) itself: a broken mock would make the authd tests lie.

Each endpoint in the wire format the Codex CLI uses, single-use refresh tokens, scripted failures,
hangs and delays, the device-code and PKCE flows, and the auth.json it writes.
"""
import hashlib
import hmac
import http.client
import json
import os
import re
import stat
import threading
import time
import urllib.parse

import pytest

from mock_issuer import (CLIENT_ID, DEVICE_CALLBACK_PATH, EXPIRED, FAR_FUTURE, JWT_KEY, NEAR_EXPIRY,
                         REFRESH_TOKEN_EXPIRED, REFRESH_TOKEN_REUSED, SERVER_ERROR, MockIssuer, decode_jwt,
                         delay, drop, hang, make_apikey_auth_json, make_auth_json, make_jwt, pkce_challenge,
                         status, success)


def request(issuer, method, path, body=None, form=False, headers=None, timeout=5):
    """(status, parsed JSON or raw bytes, response headers) of one request to @issuer."""
    host, port = urllib.parse.urlsplit(issuer.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
            else:
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return resp.status, parsed, dict(resp.getheaders())
    finally:
        conn.close()


def refresh(issuer, token, **kw):
    body = {"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": token}
    code, answer, _ = request(issuer, "POST", "/oauth/token", body, **kw)
    return code, answer


def exchange(issuer, code, verifier, redirect_uri, client_id=CLIENT_ID):
    # The field order 0.169 sends.
    body = {"grant_type": "authorization_code", "client_id": client_id, "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    status_code, answer, _ = request(issuer, "POST", "/oauth/token", body, form=True)
    return status_code, answer


@pytest.fixture
def issuer():
    with MockIssuer(access_lifetime=1800) as mock:
        yield mock


def test_listens_on_loopback_over_http11(issuer):
    assert issuer.url.startswith("http://127.0.0.1:")
    assert issuer.token_url == issuer.url + "/oauth/token"
    assert issuer.env() == {"CODEX_REFRESH_TOKEN_URL_OVERRIDE": issuer.token_url}
    conn = http.client.HTTPConnection("127.0.0.1", int(issuer.url.rsplit(":", 1)[1]), timeout=5)
    conn.request("GET", "/nowhere")
    resp = conn.getresponse()
    assert (resp.status, resp.version) == (404, 11)
    resp.read()
    # Keep-alive: a second request on the same connection.
    conn.request("POST", "/oauth/revoke", body=b"{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 200
    conn.close()


def test_refresh_success_issues_fresh_tokens(issuer):
    before = int(time.time())
    code, answer = refresh(issuer, "rt-0")
    assert code == 200
    assert answer["refresh_token"] == "rt-1"
    header, claims = decode_jwt(answer["access_token"])
    assert header["alg"] == "HS256"
    assert before + 1800 <= claims["exp"] <= int(time.time()) + 1800
    _, id_claims = decode_jwt(answer["id_token"])
    assert id_claims["email"] == "user@example.com"
    assert id_claims["https://api.openai.com/auth"] == {
        "chatgpt_plan_type": "plus", "chatgpt_user_id": "user-mock-1", "user_id": "user-mock-1",
        "chatgpt_account_id": "acct-mock-1"}
    # Each refresh gets a new refresh token.
    assert refresh(issuer, "rt-1")[1]["refresh_token"] == "rt-2"


def test_a_spent_refresh_token_is_reused(issuer):
    assert refresh(issuer, "rt-0")[0] == 200
    code, answer = refresh(issuer, "rt-0")
    assert code == 400
    assert answer["error"]["code"] == "refresh_token_reused"
    # The token it was exchanged for still works, once.
    assert refresh(issuer, "rt-1")[0] == 200
    assert refresh(issuer, "rt-1")[1]["error"]["code"] == "refresh_token_reused"
    assert issuer.spent_refresh_tokens == {"rt-0", "rt-1"}


def test_concurrent_refreshes_with_one_token_succeed_once(issuer):
    results = []
    lock = threading.Lock()

    def worker():
        r = refresh(issuer, "rt-shared")
        with lock:
            results.append(r[0])

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [200] + [400] * 9
    assert issuer.count("/oauth/token") == 10


def test_scripted_failures_then_the_default(issuer):
    issuer.script(REFRESH_TOKEN_EXPIRED, REFRESH_TOKEN_REUSED, SERVER_ERROR,
                  status(401, {"error": {"code": "refresh_token_invalidated"}}), status(503, "plain text"))
    assert refresh(issuer, "rt-0") == (401, REFRESH_TOKEN_EXPIRED["body"])
    code, answer = refresh(issuer, "rt-0")
    assert (code, answer["error"]["code"]) == (400, "refresh_token_reused")
    assert refresh(issuer, "rt-0")[0] == 500
    assert refresh(issuer, "rt-0") == (401, {"error": {"code": "refresh_token_invalidated"}})
    assert refresh(issuer, "rt-0") == (503, b"plain text")
    # A scripted answer does not spend the token: the default success still takes it.
    assert refresh(issuer, "rt-0")[0] == 200
    assert [c["status"] for c in issuer.calls("/oauth/token")] == [401, 400, 500, 401, 503, 200]


def test_set_default_applies_once_the_queue_is_empty(issuer):
    issuer.set_default(SERVER_ERROR)
    issuer.script(success())
    assert refresh(issuer, "rt-0")[0] == 200
    assert refresh(issuer, "rt-1")[0] == 500
    assert refresh(issuer, "rt-1")[0] == 500


def test_success_fields_can_be_overridden_or_removed(issuer):
    issuer.script(success(id_token=None, refresh_token=None, extra="x"))
    code, answer = refresh(issuer, "rt-0")
    assert code == 200
    assert "id_token" not in answer and "refresh_token" not in answer
    assert answer["extra"] == "x" and answer["access_token"]


def test_hang_until_released(issuer):
    issuer.script(hang())
    result = []
    t = threading.Thread(target=lambda: result.append(refresh(issuer, "rt-0", timeout=10)))
    t.start()
    issuer.wait_hanging(1)
    time.sleep(0.3)
    assert result == []
    assert issuer.calls("/oauth/token")[0]["hung"] is True
    issuer.release()
    t.join(5)
    assert result[0][0] == 200


def test_hang_on_its_own_event(issuer):
    released = threading.Event()
    issuer.script(hang(then=SERVER_ERROR, event=released))
    result = []
    t = threading.Thread(target=lambda: result.append(refresh(issuer, "rt-0", timeout=10)))
    t.start()
    issuer.wait_hanging(1)
    released.set()
    t.join(5)
    assert result[0][0] == 500


def test_a_hang_is_dropped_when_the_mock_closes():
    mock = MockIssuer().start()
    mock.script(hang())
    errors = []

    def worker():
        try:
            refresh(mock, "rt-0", timeout=10)
        except (http.client.HTTPException, OSError) as e:
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    mock.wait_hanging(1)
    started = time.monotonic()
    mock.close()
    t.join(5)
    assert not t.is_alive() and len(errors) == 1
    assert time.monotonic() - started < 3


def test_hang_then_drop_closes_without_an_answer(issuer):
    issuer.script(hang(then=None))
    errors = []

    def worker():
        try:
            refresh(issuer, "rt-0", timeout=10)
        except (http.client.HTTPException, OSError) as e:
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    issuer.wait_hanging(1)
    issuer.release()
    t.join(5)
    assert len(errors) == 1
    assert issuer.calls()[0]["status"] == "dropped"
    # The token was never spent.
    assert refresh(issuer, "rt-0")[0] == 200


def test_delay_then_success(issuer):
    issuer.script(delay(0.5))
    started = time.monotonic()
    assert refresh(issuer, "rt-0")[0] == 200
    assert time.monotonic() - started >= 0.5


def test_drop(issuer):
    issuer.script(drop())
    with pytest.raises((http.client.HTTPException, OSError)):
        refresh(issuer, "rt-0")


def test_calls_are_recorded(issuer):
    refresh(issuer, "rt-0", headers={"User-Agent": "authd-test/1", "Originator": "codex_cli_rs"})
    [call] = issuer.wait_calls(1, "/oauth/token")
    assert call["method"] == "POST" and call["path"] == "/oauth/token"
    assert call["format"] == "json"
    assert call["headers"]["content-type"] == "application/json"
    assert call["headers"]["user-agent"] == "authd-test/1"
    assert call["headers"]["originator"] == "codex_cli_rs"
    assert call["body"] == {"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": "rt-0"}
    assert json.loads(call["raw"]) == call["body"]
    assert abs(call["time"] - time.time()) < 5
    assert issuer.count() == 1 and issuer.count("/oauth/revoke") == 0
    with pytest.raises(TimeoutError):
        issuer.wait_calls(2, "/oauth/token", timeout=0.2)


def test_wait_calls_sees_calls_made_meanwhile(issuer):
    threading.Timer(0.2, lambda: refresh(issuer, "rt-0")).start()
    calls = issuer.wait_calls(1, "/oauth/token", timeout=5)
    assert calls[0]["body"]["refresh_token"] == "rt-0"


def test_the_refresh_must_be_json_with_the_codex_client_id(issuer):
    code, answer = refresh(issuer, "rt-0", form=True)
    assert code == 400 and "expected a json body" in answer["error"]["message"]
    body = {"client_id": "someone-else", "grant_type": "refresh_token", "refresh_token": "rt-0"}
    assert request(issuer, "POST", "/oauth/token", body)[0] == 401
    code, answer, _ = request(issuer, "POST", "/oauth/token", {"client_id": CLIENT_ID, "grant_type": "password"})
    assert (code, answer["error"]) == (400, "unsupported_grant_type")
    # None of that spent it.
    assert refresh(issuer, "rt-0")[0] == 200


def test_the_refresh_reason_is_taken_and_recorded(issuer):
    body = {"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_reason": "proactive_expiry",
            "refresh_token": "rt-0"}
    assert request(issuer, "POST", "/oauth/token", body)[0] == 200
    assert issuer.calls("/oauth/token")[0]["body"]["refresh_reason"] == "proactive_expiry"


def test_revoke_takes_json_only(issuer):
    body = {"token": "rt-0", "token_type_hint": "refresh_token", "client_id": CLIENT_ID}
    assert request(issuer, "POST", "/oauth/revoke", body, form=True)[0] == 400
    assert issuer.revoked_tokens == []
    assert request(issuer, "POST", "/oauth/revoke", {"token": "at.jwt.x", "token_type_hint": "access_token"})[0] == 200
    assert issuer.revoked_tokens == ["at.jwt.x"]


def test_workspace_routing_for_a_chatgpt_base_url_pointed_here(issuer):
    code, answer, _ = request(issuer, "GET", "/api/codex/accounts/check",
                              headers={"Authorization": "Bearer x", "chatgpt-account-id": "acct-mock-1"})
    assert code == 200
    assert answer["accounts"][0] == {"id": "acct-mock-1", "workspace_backend_origin": "https://chatgpt.com",
                                     "account_routing_override": "NO_CONSTRAINT"}
    assert request(issuer, "GET", "/api/codex/config/bundle")[:2] == (200, {})
    assert request(issuer, "GET", "/codex/device")[0] == 200


def test_expired_and_revoked_refresh_tokens(issuer):
    issuer.expire_refresh_token("rt-old")
    code, answer = refresh(issuer, "rt-old")
    assert (code, answer["error"]["code"]) == (401, "refresh_token_expired")
    code, _, _ = request(issuer, "POST", "/oauth/revoke", {"token": "rt-0", "token_type_hint": "refresh_token",
                                                           "client_id": CLIENT_ID})
    assert code == 200
    assert issuer.calls("/oauth/revoke")[0]["body"]["token"] == "rt-0"
    code, answer = refresh(issuer, "rt-0")
    assert (code, answer["error"]["code"]) == (401, "refresh_token_invalidated")


def test_unknown_refresh_tokens_can_be_refused():
    with MockIssuer(accept_unknown_refresh_tokens=False) as mock:
        assert refresh(mock, "rt-0")[0] == 401
        mock.issued_refresh_tokens.append("rt-0")
        assert refresh(mock, "rt-0")[0] == 200


def test_device_code_flow(issuer):
    code, answer, _ = request(issuer, "POST", "/api/accounts/deviceauth/usercode", {"client_id": CLIENT_ID})
    assert code == 200
    assert answer == {"device_auth_id": "dev-1", "user_code": "ABCD-1234", "interval": "1"}
    poll = {"device_auth_id": answer["device_auth_id"], "user_code": answer["user_code"]}
    assert request(issuer, "POST", "/api/accounts/deviceauth/token", poll)[0] == 403
    assert request(issuer, "POST", "/api/accounts/deviceauth/token", poll)[0] == 403
    assert request(issuer, "POST", "/api/accounts/deviceauth/token", dict(poll, user_code="WRONG-0000"))[0] == 404
    issuer.approve_device()
    code, grant, _ = request(issuer, "POST", "/api/accounts/deviceauth/token", poll)
    assert code == 200
    assert grant["code_challenge"] == pkce_challenge(grant["code_verifier"])
    redirect_uri = issuer.url + DEVICE_CALLBACK_PATH
    # The exchange checks the verifier and the redirect uri, and the code is single-use.
    assert exchange(issuer, grant["authorization_code"], "wrong-verifier", redirect_uri)[0] == 400
    assert exchange(issuer, grant["authorization_code"], grant["code_verifier"], "http://elsewhere/cb")[0] == 400
    code, tokens = exchange(issuer, grant["authorization_code"], grant["code_verifier"], redirect_uri)
    assert code == 200 and tokens["refresh_token"].startswith("rt-")
    assert decode_jwt(tokens["id_token"])[1]["email"] == "user@example.com"
    code, answer = exchange(issuer, grant["authorization_code"], grant["code_verifier"], redirect_uri)
    assert (code, answer["error"]) == (400, "invalid_grant")
    exchange_call = issuer.calls("/oauth/token")[-1]
    assert exchange_call["format"] == "form"
    assert set(exchange_call["body"]) == {"grant_type", "code", "redirect_uri", "client_id", "code_verifier"}


def test_authorize_redirects_with_a_code_bound_to_the_challenge(issuer):
    verifier = "v" * 64
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": "http://127.0.0.1:1455/auth/callback",
              "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256", "state": "st-1",
              "scope": "openid profile email offline_access api.connectors.read api.connectors.invoke",
              "id_token_add_organizations": "true", "codex_cli_simplified_flow": "true", "originator": "t"}
    # Without a challenge there is nothing to bind the code to.
    bad = dict(params, code_challenge_method="plain")
    assert request(issuer, "GET", "/oauth/authorize?" + urllib.parse.urlencode(bad))[0] == 400
    query = urllib.parse.urlencode(params)
    code, _, headers = request(issuer, "GET", "/oauth/authorize?" + query)
    assert code == 302
    location = urllib.parse.urlsplit(headers["Location"])
    params = dict(urllib.parse.parse_qsl(location.query))
    assert location.netloc == "127.0.0.1:1455" and params["state"] == "st-1"
    assert exchange(issuer, params["code"], "x" * 64, "http://127.0.0.1:1455/auth/callback")[0] == 400
    assert exchange(issuer, params["code"], verifier, "http://127.0.0.1:1455/auth/callback")[0] == 200


def test_registered_codes_and_the_form_rule(issuer):
    issuer.register_code("c1", code_verifier="secret-verifier", redirect_uri="http://localhost:1455/auth/callback")
    body = {"grant_type": "authorization_code", "code": "c1", "redirect_uri": "http://localhost:1455/auth/callback",
            "client_id": CLIENT_ID, "code_verifier": "secret-verifier"}
    code, answer, _ = request(issuer, "POST", "/oauth/token", body)  # JSON: not how the CLI sends it
    assert code == 400 and "expected a form body" in answer["error"]["message"]
    assert exchange(issuer, "c1", "secret-verifier", "http://localhost:1455/auth/callback")[0] == 200
    assert exchange(issuer, "never-issued", "v", "http://localhost:1455/auth/callback")[0] == 400


def test_token_exchange_for_an_api_key(issuer):
    body = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "client_id": CLIENT_ID,
            "requested_token": "openai-api-key", "subject_token": "id.token.x",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
    code, answer, _ = request(issuer, "POST", "/oauth/token", body, form=True)
    assert code == 200 and answer["access_token"].startswith("sk-mock-")


def test_scripting_other_endpoints(issuer):
    issuer.script(status(404, {"error": "not enabled"}), path="/api/accounts/deviceauth/usercode")
    assert request(issuer, "POST", "/api/accounts/deviceauth/usercode", {"client_id": CLIENT_ID})[0] == 404
    assert request(issuer, "POST", "/api/accounts/deviceauth/usercode", {"client_id": CLIENT_ID})[0] == 200


def test_make_jwt_signs_hs256_or_not_at_all():
    token = make_jwt({"a": 1})
    head, payload, signature = token.split(".")
    expected = hmac.new(JWT_KEY, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    import base64
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert decode_jwt(token) == ({"alg": "HS256", "typ": "JWT"}, {"a": 1})
    unsigned = make_jwt({"a": 1}, alg="none")
    assert unsigned.endswith(".") and decode_jwt(unsigned)[0]["alg"] == "none"


@pytest.mark.parametrize("expires_in", [EXPIRED, NEAR_EXPIRY, FAR_FUTURE])
def test_make_auth_json_writes_the_reference_format(tmp_path, expires_in):
    doc = make_auth_json(tmp_path, expires_in=expires_in, refresh_token="rt-0", account_id="acct-9",
                         last_refresh=1780000000)
    path = tmp_path / "auth.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    on_disk = json.loads(path.read_text())
    assert on_disk == doc
    assert list(on_disk) == ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
    assert on_disk["auth_mode"] == "chatgpt" and on_disk["OPENAI_API_KEY"] is None
    assert set(on_disk["tokens"]) == {"id_token", "access_token", "refresh_token", "account_id"}
    assert on_disk["tokens"]["account_id"] == "acct-9"
    assert on_disk["last_refresh"] == "2026-05-28T20:26:40.000000000Z"
    exp = decode_jwt(on_disk["tokens"]["access_token"])[1]["exp"]
    assert abs(exp - (time.time() + expires_in)) < 5
    claims = decode_jwt(on_disk["tokens"]["id_token"])[1]
    assert claims["https://api.openai.com/auth"]["chatgpt_account_id"] == "acct-9"


def test_make_auth_json_with_provenance_keeps_the_reference_key_order(tmp_path):
    doc = make_auth_json(tmp_path, oauth_provenance={"issuer": "http://127.0.0.1:1", "client_id": CLIENT_ID},
                         login_owner_id="o" * 43, api_key="sk-exchanged")
    on_disk = (tmp_path / "auth.json").read_text()
    assert not on_disk.endswith("\n") and on_disk.startswith('{\n  "auth_mode": "chatgpt",')
    assert list(json.loads(on_disk)["tokens"]) == ["id_token", "access_token", "refresh_token", "oauth_provenance",
                                                   "login_owner_id", "account_id"]
    assert doc["OPENAI_API_KEY"] == "sk-exchanged"


def test_make_auth_json_to_a_file_and_api_key_mode(tmp_path):
    make_auth_json(tmp_path / "other.json", exp=1234567890, include_account_id=False)
    doc = json.loads((tmp_path / "other.json").read_text())
    assert "account_id" not in doc["tokens"]
    assert decode_jwt(doc["tokens"]["access_token"])[1]["exp"] == 1234567890
    # RFC 3339 with nanoseconds, as 0.169 writes it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", doc["last_refresh"])
    make_apikey_auth_json(tmp_path, "sk-abc")
    assert json.loads((tmp_path / "auth.json").read_text()) == {"auth_mode": "apikey", "OPENAI_API_KEY": "sk-abc"}
