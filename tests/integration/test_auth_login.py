# SPDX-License-Identifier: MIT
"""The ChatGPT sign-in flows through the client protocol, against the mock issuer: device code
(poll, approve, exchange, store), the browser flow (authorize URL, the loopback callback server,
its state check, the exchange), account/login/cancel, one active login at a time, and that the
callback port is given up at once by logout and by shutdown.

Reference: codex-behaviour.md §6.4 and the wire notes of 0.169 (account/login/start chatgpt and
chatgptDeviceCode, the callback server's routes, the device-code endpoints, logout's revoke).
"""
import json
import re
import signal
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import INTERNAL_ERROR, INVALID_REQUEST, RpcError, wait_until
import mock_issuer
from mock_issuer import CLIENT_ID, DEVICE_TOKEN_PATH, REVOKE_PATH, TOKEN_PATH, USERCODE_PATH, MockIssuer

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_NS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
ORIGINATOR = "agentd-integration-tests"  # the harness's clientInfo.name
AUTHORIZE_ORDER = ["response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method",
                   "state", "scope", "id_token_add_organizations", "codex_cli_simplified_flow", "originator"]
DEVICE_NOT_ENABLED = ("device code login is not enabled for this Codex server. Use the browser login or verify "
                      "the server URL.")
# Nothing may go through a proxy from the environment: every URL here is on loopback.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def issuer():
    with MockIssuer() as mock:
        yield mock


def login_config(issuer, **keys):
    keys.setdefault("background_refresh", False)
    keys.setdefault("login_port", 0)
    lines = ["[authd]", f'issuer = "{issuer.url}"']
    for key, value in keys.items():
        lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else json.dumps(value)}")
    return "\n".join(lines) + "\n"


def start(agentd_factory, issuer, **keys):
    return agentd_factory(env={"CODEX_REFRESH_TOKEN_URL_OVERRIDE": issuer.token_url},
                          config=login_config(issuer, **keys))


def auth_path(proc):
    return Path(proc.env["CODEX_HOME"]) / "auth.json"


def next_notification(client, method, timeout=10.0):
    """The oldest notification @method not yet taken; waits for it."""
    deadline = time.monotonic() + timeout
    while True:
        for i, note in enumerate(client.notifications):
            if note.get("method") == method:
                return client.notifications.pop(i)
        msg = client.recv(timeout=max(0.0, deadline - time.monotonic()))
        assert "id" not in msg, f"unexpected answer {msg!r}"
        client.notifications.append(msg)


def completed(client, timeout=10.0):
    return next_notification(client, "account/login/completed", timeout)["params"]


def settle(client):
    """A round trip through authd: what it sent before is in client.notifications."""
    client.request("getAuthStatus", {})


def get(url, timeout=5.0):
    """(status, headers, body) of a GET, redirects followed; error statuses are answers too."""
    try:
        with HTTP.open(url, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def port_is_closed(port):
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, socket.timeout):
            return True
    return False


def port_is_bindable(port):
    """What a new login server does: SO_REUSEADDR, bind, listen."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def assert_port_freed_within(port, seconds):
    began = time.monotonic()
    wait_until(lambda: port_is_closed(port) and port_is_bindable(port), seconds, what=f"port {port} to be free")
    return time.monotonic() - began


def assert_no_secret_in_logs(proc, *secrets):
    """None of @secrets in the log as a token of its own (the mock's "rt-1" is inside "agentd-rt-1x...")."""
    log = proc.stderr()
    for secret in secrets:
        assert secret
        assert not re.search(r"(?<![\w-])" + re.escape(secret) + r"(?![\w-])", log), \
            f"a secret appears in agentd's log: {secret[:12]}..."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def callback_port(auth_url):
    redirect = urllib.parse.parse_qs(urllib.parse.urlsplit(auth_url).query)["redirect_uri"][0]
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/auth/callback", redirect)
    assert m, redirect
    return int(m.group(1))


def url_params(auth_url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query))


def start_browser_login(client):
    result = client.call("account/login/start", {"type": "chatgpt"})
    assert set(result) == {"type", "loginId", "authUrl"} and result["type"] == "chatgpt", result
    assert UUID_RE.match(result["loginId"]), result
    return result["loginId"], result["authUrl"], callback_port(result["authUrl"])


def assert_chatgpt_auth_json(path, issuer, api_key):
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert list(doc) == ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
    assert doc["auth_mode"] == "chatgpt" and doc["OPENAI_API_KEY"] == api_key
    tokens = doc["tokens"]
    assert list(tokens) == ["id_token", "access_token", "refresh_token", "oauth_provenance", "login_owner_id",
                            "account_id"]
    assert tokens["refresh_token"] == issuer.issued_refresh_tokens[-1]
    assert tokens["account_id"] == mock_issuer.DEFAULT_ACCOUNT_ID
    assert tokens["oauth_provenance"] == {"issuer": issuer.url, "client_id": CLIENT_ID}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", tokens["login_owner_id"])
    assert mock_issuer.decode_jwt(tokens["id_token"])[1]["email"] == mock_issuer.DEFAULT_EMAIL
    assert RFC3339_NS_RE.match(doc["last_refresh"]), doc["last_refresh"]
    return doc


# --------------------------------------------------------------------------------------
# device code


def start_device_login(client, issuer):
    result = client.call("account/login/start", {"type": "chatgptDeviceCode"})
    assert list(result) == ["type", "loginId", "verificationUrl", "userCode"], result
    assert result["type"] == "chatgptDeviceCode"
    assert UUID_RE.match(result["loginId"])
    assert result["verificationUrl"] == issuer.url + "/codex/device"
    assert result["userCode"] == issuer.user_code
    return result["loginId"]


def test_device_code_login(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    login_id = start_device_login(client, issuer)
    [usercode] = issuer.calls(USERCODE_PATH)
    assert usercode["format"] == "json" and usercode["body"] == {"client_id": CLIENT_ID}
    # Polled at once, then every interval ("1"): 403 means pending.
    polls = issuer.wait_calls(2, DEVICE_TOKEN_PATH, timeout=5)
    assert [p["status"] for p in polls[:2]] == [403, 403]
    assert 0.8 <= polls[1]["monotonic"] - polls[0]["monotonic"] < 2.0
    assert polls[0]["body"] == {"device_auth_id": "dev-1", "user_code": issuer.user_code}
    assert not client.notifications
    issuer.approve_device()
    assert completed(client) == {"loginId": login_id, "success": True, "error": None, "onboardingEntrypoint": None}
    assert next_notification(client, "account/updated")["params"] == {"authMode": "chatgpt", "planType": "plus"}
    # The exchange: a form in 0.169's field order, the device redirect and the issuer's verifier.
    [exchange] = issuer.calls(TOKEN_PATH)
    assert exchange["status"] == 200 and exchange["format"] == "form"
    assert list(exchange["body"]) == ["grant_type", "client_id", "code", "redirect_uri", "code_verifier"]
    assert exchange["body"]["grant_type"] == "authorization_code"
    assert exchange["body"]["redirect_uri"] == issuer.url + "/deviceauth/callback"
    # No API-key exchange in this flow: OPENAI_API_KEY stays null.
    doc = assert_chatgpt_auth_json(auth_path(proc), issuer, None)
    assert client.call("account/read", {})["account"] == {"type": "chatgpt", "email": mock_issuer.DEFAULT_EMAIL,
                                                         "planType": "plus", "workspaceName": None}
    # Logout revokes the new refresh token (with the client id), then deletes the file.
    assert client.call("account/logout") == {}
    [revoke] = issuer.wait_calls(1, REVOKE_PATH)
    assert revoke["format"] == "json"
    assert revoke["body"] == {"token": doc["tokens"]["refresh_token"], "token_type_hint": "refresh_token",
                              "client_id": CLIENT_ID}
    assert not auth_path(proc).exists()
    proc.finish()
    assert_no_secret_in_logs(proc, doc["tokens"]["refresh_token"], doc["tokens"]["access_token"],
                             doc["tokens"]["id_token"], exchange["body"]["code"], exchange["body"]["code_verifier"])


def test_device_code_usercode_as_usercode_and_numeric_interval(agentd_factory, issuer):
    """The answer may spell it usercode and give the interval as a number."""
    issuer.script(mock_issuer.status(200, {"device_auth_id": "dev-1", "usercode": "WXYZ-0000", "interval": 0}),
                  path=USERCODE_PATH)
    proc = start(agentd_factory, issuer)
    result = proc.stdio.call("account/login/start", {"type": "chatgptDeviceCode"})
    assert result["userCode"] == "WXYZ-0000"
    # An interval of 0 polls back to back, but not in a hot loop.
    began = time.monotonic()
    issuer.wait_calls(3, DEVICE_TOKEN_PATH, timeout=5)
    assert time.monotonic() - began >= 0.3
    assert proc.stdio.call("account/login/cancel", {"loginId": result["loginId"]}) == {"status": "canceled"}
    assert completed(proc.stdio)["error"] == "Login was not completed"


def test_device_code_not_enabled_is_an_invalid_request(agentd_factory, issuer):
    issuer.script(mock_issuer.status(404, {}), path=USERCODE_PATH)
    proc = start(agentd_factory, issuer)
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/start", {"type": "chatgptDeviceCode"})
    assert (e.value.code, e.value.message) == (INVALID_REQUEST, DEVICE_NOT_ENABLED)


def test_device_code_start_failures(agentd_factory, issuer):
    issuer.script(mock_issuer.status(404, {}), mock_issuer.status(500, {}), mock_issuer.drop(), path=USERCODE_PATH)
    proc = start(agentd_factory, issuer)
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/start", {"type": "chatgptDeviceCode"})
    assert e.value.message == DEVICE_NOT_ENABLED
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/start", {"type": "chatgptDeviceCode"})
    assert (e.value.code, e.value.message) == (
        INTERNAL_ERROR, "failed to request device code: device code request failed with status 500 Internal Server Error")
    with pytest.raises(RpcError) as e:
        proc.stdio.call("account/login/start", {"type": "chatgptDeviceCode"})
    assert e.value.code == INTERNAL_ERROR and e.value.message.startswith("failed to request device code: ")
    settle(proc.stdio)
    assert not proc.stdio.notifications  # no login id was handed out: nothing completes


def test_device_code_poll_failure(agentd_factory, issuer):
    issuer.script(mock_issuer.status(500, {}), path=DEVICE_TOKEN_PATH)
    proc = start(agentd_factory, issuer)
    login_id = start_device_login(proc.stdio, issuer)
    assert completed(proc.stdio) == {"loginId": login_id, "success": False,
                                     "error": "device auth failed with status 500 Internal Server Error",
                                     "onboardingEntrypoint": None}
    assert not auth_path(proc).exists()


def test_device_code_exchange_failure(agentd_factory, issuer):
    issuer.script(mock_issuer.status(400, {"error": "invalid_grant", "error_description": "bad code"}))
    proc = start(agentd_factory, issuer)
    start_device_login(proc.stdio, issuer)
    issuer.approve_device()
    assert completed(proc.stdio)["error"] == ("device code exchange failed: token endpoint returned status "
                                              "400 Bad Request: bad code")
    assert not auth_path(proc).exists()


def test_device_code_timeout(agentd_factory, issuer):
    proc = start(agentd_factory, issuer, device_code_timeout_s=2)
    login_id = start_device_login(proc.stdio, issuer)
    began = time.monotonic()
    params = completed(proc.stdio, timeout=6)
    assert 1.5 <= time.monotonic() - began < 4
    assert params == {"loginId": login_id, "success": False, "error": "device auth timed out after 2 seconds",
                      "onboardingEntrypoint": None}
    count = issuer.count(DEVICE_TOKEN_PATH)
    time.sleep(1.5)
    assert issuer.count(DEVICE_TOKEN_PATH) == count  # the poll stopped with it
    assert proc.stdio.call("account/login/cancel", {"loginId": login_id}) == {"status": "notFound"}


def test_device_code_cancel_during_a_hanging_poll(agentd_factory, issuer):
    issuer.set_default(mock_issuer.hang(), path=DEVICE_TOKEN_PATH)
    proc = start(agentd_factory, issuer)
    login_id = start_device_login(proc.stdio, issuer)
    issuer.wait_hanging(1)
    assert proc.stdio.call("account/login/cancel", {"loginId": login_id}) == {"status": "canceled"}
    assert completed(proc.stdio) == {"loginId": login_id, "success": False, "error": "Login was not completed",
                                     "onboardingEntrypoint": None}
    assert proc.stdio.call("account/login/cancel", {"loginId": login_id}) == {"status": "notFound"}
    issuer.set_default(mock_issuer.success(), path=DEVICE_TOKEN_PATH)
    issuer.release()


def test_a_new_login_revokes_the_credential_it_replaces(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    start_device_login(proc.stdio, issuer)
    issuer.approve_device()
    assert completed(proc.stdio)["success"] is True
    first = json.loads(auth_path(proc).read_text())["tokens"]["refresh_token"]
    start_device_login(proc.stdio, issuer)
    issuer.approve_device()
    assert completed(proc.stdio)["success"] is True
    [revoke] = issuer.wait_calls(1, REVOKE_PATH)
    assert revoke["body"] == {"token": first, "token_type_hint": "refresh_token", "client_id": CLIENT_ID}
    assert json.loads(auth_path(proc).read_text())["tokens"]["refresh_token"] != first


# --------------------------------------------------------------------------------------
# browser


def test_browser_login(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    login_id, auth_url, port = start_browser_login(client)
    assert auth_url.startswith(issuer.url + "/oauth/authorize?")
    query = urllib.parse.urlsplit(auth_url).query
    assert [pair.split("=")[0] for pair in query.split("&")] == AUTHORIZE_ORDER
    assert "scope=openid+profile+email+offline_access+api.connectors.read+api.connectors.invoke" in query
    params = url_params(auth_url)
    assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"http://127.0.0.1:{port}/auth/callback"
    assert params["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["state"])
    assert params["id_token_add_organizations"] == "true" and params["codex_cli_simplified_flow"] == "true"
    assert params["originator"] == ORIGINATOR
    assert port != 1455  # login_port = 0: any free port
    # The browser opens the URL; the issuer redirects it to the callback with a code and the state.
    status, headers, body = get(auth_url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Signed in" in body
    assert completed(client) == {"loginId": login_id, "success": True, "error": None, "onboardingEntrypoint": None}
    assert next_notification(client, "account/updated")["params"] == {"authMode": "chatgpt", "planType": "plus"}
    exchange, api_key = issuer.calls(TOKEN_PATH)
    assert exchange["status"] == 200  # the mock checked the redirect_uri and the PKCE verifier
    assert list(exchange["body"]) == ["grant_type", "client_id", "code", "redirect_uri", "code_verifier"]
    assert exchange["body"]["redirect_uri"] == params["redirect_uri"]
    assert mock_issuer.pkce_challenge(exchange["body"]["code_verifier"]) == params["code_challenge"]
    assert len(exchange["body"]["code_verifier"]) == 86
    # Then the id token is traded for an API key, stored beside the tokens as the reference does.
    assert api_key["body"]["grant_type"] == mock_issuer.TOKEN_EXCHANGE_GRANT
    assert api_key["body"]["requested_token"] == "openai-api-key"
    doc = assert_chatgpt_auth_json(auth_path(proc), issuer, issuer.calls(TOKEN_PATH)[1]["status"] == 200 and
                                   json.loads(auth_path(proc).read_text())["OPENAI_API_KEY"])
    assert doc["OPENAI_API_KEY"].startswith("sk-mock-")
    assert port_is_closed(port)
    proc.finish()
    assert_no_secret_in_logs(proc, doc["tokens"]["refresh_token"], doc["tokens"]["access_token"],
                             doc["OPENAI_API_KEY"], exchange["body"]["code"], exchange["body"]["code_verifier"],
                             params["state"])


def test_browser_login_without_an_api_key(agentd_factory, issuer):
    """A failed API-key exchange still logs in, with OPENAI_API_KEY null."""
    issuer.script(mock_issuer.success(), mock_issuer.status(400, {"error": "invalid_request"}))
    proc = start(agentd_factory, issuer)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    assert get(auth_url)[0] == 200
    assert completed(proc.stdio)["success"] is True
    assert_chatgpt_auth_json(auth_path(proc), issuer, None)


def test_browser_callback_state_is_checked(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    login_id, auth_url, port = start_browser_login(client)
    base = f"http://127.0.0.1:{port}"
    for query in ("code=stolen&state=wrong", "code=stolen", "code=stolen&state="):
        status, headers, body = get(f"{base}/auth/callback?{query}")
        assert (status, body) == (400, "State mismatch"), query
    assert get(f"{base}/elsewhere")[:1] == (404,)
    assert get(f"{base}/auth/callback/")[0] == 404
    settle(client)
    assert not client.notifications  # refused, and the login waits on
    assert issuer.count(TOKEN_PATH) == 0
    # The real redirect still works.
    assert get(auth_url)[0] == 200
    assert completed(client) == {"loginId": login_id, "success": True, "error": None, "onboardingEntrypoint": None}


def test_browser_callback_error(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    state = url_params(auth_url)["state"]
    status, headers, body = get(f"http://127.0.0.1:{port}/auth/callback?state={state}&error=access_denied"
                                f"&error_description=User+denied")
    assert status == 200 and "Sign-in failed: User denied" in body
    assert completed(proc.stdio) == {"loginId": login_id, "success": False,
                                     "error": "Login server error: Sign-in failed: User denied",
                                     "onboardingEntrypoint": None}
    assert port_is_closed(port)
    assert not auth_path(proc).exists()


def test_browser_exchange_failure(agentd_factory, issuer):
    issuer.script(mock_issuer.status(400, {"error": "invalid_grant", "error_description": "code expired"}))
    proc = start(agentd_factory, issuer)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    status, headers, body = get(auth_url)
    assert status == 200 and "Token exchange failed" in body
    assert completed(proc.stdio)["error"] == ("Login server error: Token exchange failed: token endpoint returned "
                                              "status 400 Bad Request: code expired")
    assert not auth_path(proc).exists()


def test_browser_timeout(agentd_factory, issuer):
    proc = start(agentd_factory, issuer, login_timeout_s=1)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    assert completed(proc.stdio, timeout=5) == {"loginId": login_id, "success": False, "error": "Login timed out",
                                                "onboardingEntrypoint": None}
    assert port_is_closed(port)


def test_browser_cancel_path(agentd_factory, issuer):
    """GET /cancel (what a newer login server sends) ends the login."""
    proc = start(agentd_factory, issuer)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    assert get(f"http://127.0.0.1:{port}/cancel")[::2] == (200, "Login cancelled")
    assert completed(proc.stdio)["error"] == "Login server error: Login cancelled"
    assert port_is_closed(port)


# --------------------------------------------------------------------------------------
# the port


class OldLoginServer:
    """Something on the login port. @obeys: it exits on GET /cancel (an older login server does)."""

    def __init__(self, obeys):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.obeys = obeys
        self.requests = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\nLogin cancelled")
            if self.obeys:
                self.sock.close()
                return

    def close(self):
        self.sock.close()


def test_busy_port_asks_the_old_login_server_to_exit(agentd_factory, issuer):
    old = OldLoginServer(obeys=True)
    proc = start(agentd_factory, issuer, login_port=old.port)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    assert port == old.port
    assert old.requests == [f"GET /cancel HTTP/1.1\r\nHost: 127.0.0.1:{old.port}\r\nConnection: close\r\n\r\n".encode()]
    assert get(auth_url)[0] == 200
    assert completed(proc.stdio)["success"] is True


def test_busy_port_fails_clearly(agentd_factory, issuer):
    old = OldLoginServer(obeys=False)
    try:
        proc = start(agentd_factory, issuer, login_port=old.port)
        began = time.monotonic()
        with pytest.raises(RpcError) as e:
            proc.stdio.call("account/login/start", {"type": "chatgpt"})
        assert time.monotonic() - began < 3
        assert (e.value.code, e.value.message) == (
            INTERNAL_ERROR, f"failed to start login server: Port 127.0.0.1:{old.port} is already in use")
        assert len(old.requests) == 1  # one GET /cancel, then retries
    finally:
        old.close()


# --------------------------------------------------------------------------------------
# one active login


def test_cancel(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    login_id, auth_url, port = start_browser_login(client)
    assert client.call("account/login/cancel", {"loginId": "00000000-0000-4000-8000-000000000000"}) == {
        "status": "notFound"}
    assert client.call("account/login/cancel", {"loginId": login_id}) == {"status": "canceled"}
    assert completed(client) == {"loginId": login_id, "success": False,
                                 "error": "Login server error: Login was not completed", "onboardingEntrypoint": None}
    assert port_is_closed(port)
    assert client.call("account/login/cancel", {"loginId": login_id}) == {"status": "notFound"}
    # The state of a cancelled login opens nothing: the port is closed, and a new login has its own.
    login_id2, auth_url2, port2 = start_browser_login(client)
    assert url_params(auth_url2)["state"] != url_params(auth_url)["state"]
    assert client.call("account/login/cancel", {"loginId": login_id2.upper()}) == {"status": "canceled"}
    assert completed(client)["loginId"] == login_id2


def test_a_second_login_cancels_the_first(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    first, auth_url, port = start_browser_login(client)
    second, auth_url2, port2 = start_browser_login(client)
    assert completed(client) == {"loginId": first, "success": False,
                                 "error": "Login server error: Login was not completed", "onboardingEntrypoint": None}
    assert port_is_closed(port) or port == port2
    assert client.call("account/login/cancel", {"loginId": first}) == {"status": "notFound"}
    # A device-code login replaces the browser one the same way; the first's redirect is dead.
    third = start_device_login(client, issuer)
    assert completed(client)["loginId"] == second
    issuer.approve_device()
    assert completed(client) == {"loginId": third, "success": True, "error": None, "onboardingEntrypoint": None}


def test_api_key_login_cancels_an_active_login(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    login_id = start_device_login(client, issuer)
    assert client.call("account/login/start", {"type": "apiKey", "apiKey": "sk-instead"}) == {"type": "apiKey"}
    settle(client)
    assert [(n["method"], n["params"]) for n in client.notifications] == [
        ("account/login/completed", {"loginId": login_id, "success": False, "error": "Login was not completed",
                                     "onboardingEntrypoint": None}),
        ("account/login/completed", {"loginId": None, "success": True, "error": None, "onboardingEntrypoint": None}),
        ("account/updated", {"authMode": "apikey", "planType": None})]


def test_logout_during_a_login_frees_the_port(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    client = proc.stdio
    login_id, auth_url, port = start_browser_login(client)
    assert client.call("account/logout") == {}
    assert assert_port_freed_within(port, 1.0) < 1.0
    settle(client)
    assert [(n["method"], n["params"]) for n in client.notifications] == [
        ("account/login/completed", {"loginId": login_id, "success": False,
                                     "error": "Login server error: Login was not completed",
                                     "onboardingEntrypoint": None}),
        ("account/updated", {"authMode": None, "planType": None})]


def test_shutdown_during_a_login_frees_the_port(agentd_factory, issuer):
    proc = start(agentd_factory, issuer)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    proc.signal(signal.SIGTERM)
    assert assert_port_freed_within(port, 1.0) < 1.0
    assert proc.wait() == 0


def test_shutdown_during_the_exchange(agentd_factory, issuer):
    """SIGTERM while the code exchange hangs: authd stops at once, nothing is stored."""
    issuer.set_default(mock_issuer.hang())
    proc = start(agentd_factory, issuer)
    login_id, auth_url, port = start_browser_login(proc.stdio)
    state = url_params(auth_url)["state"]
    def browser():
        try:
            get(f"http://127.0.0.1:{port}/auth/callback?code=c&state={state}")
        except OSError:
            pass  # the connection closes as authd stops

    fetch = threading.Thread(target=browser, daemon=True)
    fetch.start()
    issuer.wait_hanging(1)
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert time.monotonic() - began < 3
    assert port_is_closed(port)
    assert not auth_path(proc).exists()
    issuer.set_default(mock_issuer.success())
    issuer.release()
