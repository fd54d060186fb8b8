# SPDX-License-Identifier: MIT
"""A mock of the OAuth issuer the Codex CLI signs in with (https://auth.openai.com in production).

A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) in a background thread:

    with MockIssuer(access_lifetime=3600) as issuer:
        make_auth_json(home, refresh_token="rt-0", expires_in=EXPIRED)
        env = {"CODEX_REFRESH_TOKEN_URL_OVERRIDE": issuer.token_url}   # or issuer.env()
        ...                                   # authd refreshes
        [call] = issuer.wait_calls(1, "/oauth/token")
        assert call["body"]["refresh_token"] == "rt-0"

Endpoints, in the wire formats codex 0.169 was seen to use:
  POST /oauth/token
      grant_type=refresh_token, JSON {"client_id","grant_type","refresh_reason","refresh_token"}
          (refresh_reason: proactive_expiry|scheduled|forced|unauthorized_recovery; recorded, not
          required) -> 200 {"id_token","access_token","refresh_token":"rt-N",...}. Refresh tokens
          are single-use: one already spent gets 400 {"error":{"code":"refresh_token_reused"}};
          expire_refresh_token()/revoke_refresh_token() (and /oauth/revoke) mark one expired (401
          refresh_token_expired) or revoked (401 refresh_token_invalidated).
      grant_type=authorization_code, form grant_type, client_id, code, redirect_uri, code_verifier
          -> the same token answer. A code registered with register_code() (or handed out by
          /oauth/authorize or the device flow) must match its redirect_uri and PKCE (S256 of
          code_verifier == code_challenge) and is single-use (400 {"error":"invalid_grant",
          "error_description":...}).
      grant_type=urn:ietf:params:oauth:grant-type:token-exchange, form client_id,
          requested_token=openai-api-key, subject_token (the id_token), subject_token_type (the
          browser login trades the id_token for an API key) -> 200 {"access_token":"sk-mock-N"}.
  GET  /oauth/authorize?response_type=code&client_id&redirect_uri=R&code_challenge=C
       &code_challenge_method=S256&state=S&... (what the browser opens)
      -> 302 to R?code=code-N&state=S, the code registered with C and R.
  POST /api/accounts/deviceauth/usercode  JSON {"client_id"}
      -> {"device_auth_id":"dev-N","user_code":"ABCD-1234","interval":"1"} (interval a string)
  POST /api/accounts/deviceauth/token     JSON {"device_auth_id","user_code"}
      -> 403 while pending (404 for an unknown id or code; the reference also polls on); after
         approve_device() 200 {"authorization_code","code_challenge","code_verifier"}, the code
         then exchanged at /oauth/token with redirect_uri "<issuer>/deviceauth/callback".
  GET  /codex/device (the verification URL) -> a small HTML page.
  POST /oauth/revoke  JSON {"token","token_type_hint":"refresh_token","client_id"} (or
       {"token":<access token>,"token_type_hint":"access_token"}) -> 200 {}; the token is revoked.
  GET  /api/codex/accounts/check (and /backend-api/wham/accounts/check), /api/codex/config/bundle:
       the ChatGPT backend's workspace routing, for a chatgpt_base_url pointed at the mock.
Bodies in another format than these (JSON vs form) get 400 unless strict_formats=False.

Each call can be scripted (script(), a queue per path; set_default() otherwise):
  success(**fields)       the endpoint's normal answer (fields override it; None removes one)
  status(code, body)      any status with a JSON body (or bytes/str sent as they are)
  hang(then=success())    hold the request until release(), the behaviour's own event, or close();
                          then answer with @then (None: close the connection without an answer)
  delay(seconds, then)    wait, then answer with @then (default: success)
  drop()                  close the connection without an answer (a transport error)
Canned answers: REFRESH_TOKEN_EXPIRED, REFRESH_TOKEN_REUSED, REFRESH_TOKEN_INVALIDATED,
UNAUTHORIZED (401 invalid_grant; permanent), BAD_REQUEST (400 without a known code; transient for
the reference), SERVER_ERROR (500; transient).

Every request is recorded (method, path, query, headers with lower-case names, raw bytes, the
parsed body and its format "json"/"form"/"empty"/"other", wall and monotonic time, and the status
answered): calls(path), count(path), wait_calls(n, path, timeout), wait_hanging(n).

Helpers: make_jwt(claims), decode_jwt(token), make_id_token(...), make_access_token(...),
make_auth_json(path, ...) (a chatgpt-mode auth.json in the reference format; the access token's
exp is now + expires_in: EXPIRED, NEAR_EXPIRY or FAR_FUTURE), make_apikey_auth_json(path, key).
"""
import base64
import copy
import datetime
import hashlib
import hmac
import http.server
import json
import os
import secrets
import threading
import time
import urllib.parse
from pathlib import Path

from loopback_server import LoopbackServer

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"
JWT_KEY = b"mock-issuer-not-a-secret"

# Access-token lifetimes for make_auth_json(expires_in=...), in seconds from now. The reference
# refreshes a token expiring within 5 minutes.
EXPIRED = -3600
NEAR_EXPIRY = 60
FAR_FUTURE = 30 * 24 * 3600

DEFAULT_EMAIL = "user@example.com"
DEFAULT_PLAN = "plus"
DEFAULT_USER_ID = "user-mock-1"
DEFAULT_ACCOUNT_ID = "acct-mock-1"

TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
REVOKE_PATH = "/oauth/revoke"
USERCODE_PATH = "/api/accounts/deviceauth/usercode"
DEVICE_TOKEN_PATH = "/api/accounts/deviceauth/token"
DEVICE_CALLBACK_PATH = "/deviceauth/callback"
VERIFICATION_PATH = "/codex/device"


# --------------------------------------------------------------------------------------
# tokens and auth.json


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims, key=JWT_KEY, alg="HS256"):
    """A compact JWT of @claims: HS256 with a dummy key, or alg="none" (empty signature)."""
    header = {"alg": alg, "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    if alg == "none":
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def decode_jwt(token):
    """(header, claims) of a compact JWT, unverified."""
    head, payload, _ = token.split(".")
    return json.loads(_b64url_decode(head)), json.loads(_b64url_decode(payload))


def pkce_challenge(verifier):
    """The S256 code_challenge of @verifier."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


def _auth_claims(plan_type, user_id, account_id):
    return {"chatgpt_plan_type": plan_type, "chatgpt_user_id": user_id, "user_id": user_id,
            "chatgpt_account_id": account_id}


def make_id_token(email=DEFAULT_EMAIL, plan_type=DEFAULT_PLAN, user_id=DEFAULT_USER_ID,
                  account_id=DEFAULT_ACCOUNT_ID, issuer="https://auth.openai.com", exp=None, extra=None):
    """An id_token with the claims the reference reads: email and https://api.openai.com/auth."""
    now = int(time.time())
    claims = {"iss": issuer, "aud": [CLIENT_ID], "sub": f"auth0|{user_id}", "iat": now,
              "exp": now + 3600 if exp is None else int(exp), "email": email, "email_verified": True,
              AUTH_CLAIM: _auth_claims(plan_type, user_id, account_id), PROFILE_CLAIM: {"email": email}}
    claims.update(extra or {})
    return make_jwt(claims)


def make_access_token(exp, email=DEFAULT_EMAIL, plan_type=DEFAULT_PLAN, user_id=DEFAULT_USER_ID,
                      account_id=DEFAULT_ACCOUNT_ID, issuer="https://auth.openai.com", extra=None):
    """An access token JWT expiring at @exp (seconds since the epoch)."""
    now = int(time.time())
    claims = {"iss": issuer, "aud": ["https://api.openai.com/v1"], "client_id": CLIENT_ID,
              "sub": f"auth0|{user_id}", "iat": now, "nbf": now, "exp": int(exp),
              "jti": secrets.token_hex(8), "scp": ["openid", "profile", "email", "offline_access"],
              AUTH_CLAIM: _auth_claims(plan_type, user_id, account_id), PROFILE_CLAIM: {"email": email}}
    claims.update(extra or {})
    return make_jwt(claims)


def rfc3339(when=None):
    """@when (a datetime, epoch seconds or None for now) as 0.169 writes last_refresh: RFC 3339 UTC
    with nanoseconds and "Z" ("2026-12-02T05:33:54.598117707Z")."""
    if when is None:
        ns = time.time_ns()
    elif isinstance(when, (int, float)):
        ns = int(when * 1_000_000_000)
    else:
        ns = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    whole = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def _auth_json_path(path):
    path = Path(path)
    return path / "auth.json" if path.is_dir() else path


def write_auth_json(path, doc):
    """Write @doc to @path (a CODEX_HOME directory or a file) with mode 0600, atomically."""
    target = _auth_json_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, target)
    return target


def make_auth_json(path=None, *, expires_in=FAR_FUTURE, exp=None, refresh_token="rt-0", email=DEFAULT_EMAIL,
                   plan_type=DEFAULT_PLAN, user_id=DEFAULT_USER_ID, account_id=DEFAULT_ACCOUNT_ID,
                   last_refresh=None, id_token=None, access_token=None, include_account_id=True,
                   api_key=None, oauth_provenance=None, login_owner_id=None):
    """A chatgpt-mode auth.json in the reference's format; written to @path when given.

    The access token expires at @exp, else now + @expires_in (EXPIRED, NEAR_EXPIRY, FAR_FUTURE or
    any number of seconds). @api_key fills OPENAI_API_KEY (a login's token exchange does).
    @oauth_provenance ({"issuer","client_id"}; the reference then refreshes at that issuer) and
    @login_owner_id are written as 0.169's logins write them. Return the document.
    """
    if exp is None:
        exp = int(time.time()) + int(expires_in)
    tokens = {
        "id_token": id_token or make_id_token(email, plan_type, user_id, account_id),
        "access_token": access_token or make_access_token(exp, email, plan_type, user_id, account_id),
        "refresh_token": refresh_token,
    }
    # 0.169's key order: id_token, access_token, refresh_token, oauth_provenance, login_owner_id, account_id.
    if oauth_provenance is not None:
        tokens["oauth_provenance"] = oauth_provenance
    if login_owner_id is not None:
        tokens["login_owner_id"] = login_owner_id
    if include_account_id:
        tokens["account_id"] = account_id
    doc = {"auth_mode": "chatgpt", "OPENAI_API_KEY": api_key, "tokens": tokens, "last_refresh": rfc3339(last_refresh)}
    if path is not None:
        write_auth_json(path, doc)
    return doc


def make_apikey_auth_json(path=None, api_key="sk-test-key"):
    """An API-key auth.json ({"auth_mode":"apikey","OPENAI_API_KEY":...}); written when @path is given."""
    doc = {"auth_mode": "apikey", "OPENAI_API_KEY": api_key}
    if path is not None:
        write_auth_json(path, doc)
    return doc


# --------------------------------------------------------------------------------------
# scripted behaviours


def success(**fields):
    """The endpoint's normal answer; @fields override its JSON (None removes a field)."""
    return {"mode": "success", "fields": fields}


def status(code, body=None, headers=None):
    """Answer @code with @body: a dict (JSON), bytes or str (sent as they are), or None ({})."""
    return {"mode": "status", "status": int(code), "body": {} if body is None else body, "headers": headers or {}}


def hang(then="success", event=None):
    """Hold the request until released (release(), @event, or close()); then answer @then."""
    return {"mode": "hang", "then": success() if then == "success" else then, "event": event or threading.Event()}


def delay(seconds, then=None):
    """Wait @seconds, then answer with @then (default: success)."""
    return {"mode": "delay", "seconds": float(seconds), "then": then or success()}


def drop():
    """Close the connection without sending anything."""
    return {"mode": "drop"}


def _error(code, message):
    return {"error": {"code": code, "message": message, "type": "invalid_request_error", "param": None}}


REFRESH_TOKEN_EXPIRED = status(401, _error("refresh_token_expired", "Your refresh token has expired."))
REFRESH_TOKEN_REUSED = status(400, _error("refresh_token_reused", "Your refresh token has already been used to "
                                                                  "generate a new access token."))
REFRESH_TOKEN_INVALIDATED = status(401, _error("refresh_token_invalidated", "Your refresh token was revoked."))
# Any other 401 is permanent too ("could not be refreshed. Please log out and sign in again.").
UNAUTHORIZED = status(401, _error("invalid_grant", "Unauthorized."))
# A 400 without one of the three codes is transient for the reference (retried on every call).
BAD_REQUEST = status(400, {"error": "invalid_request", "error_description": "nope"})
SERVER_ERROR = status(500, {"error": {"message": "Internal server error", "type": "server_error"}})


class _Closing(Exception):
    """The mock is closing: drop the connection."""


# --------------------------------------------------------------------------------------


class MockIssuer(LoopbackServer):
    """The mock issuer; see the module's docstring. Use as a context manager, or start()/close()."""

    HANDLER_ATTR = "issuer"
    THREAD_NAME = "mock-issuer"

    def __init__(self, *, access_lifetime=3600, email=DEFAULT_EMAIL, plan_type=DEFAULT_PLAN,
                 user_id=DEFAULT_USER_ID, account_id=DEFAULT_ACCOUNT_ID, client_id=CLIENT_ID,
                 accept_unknown_refresh_tokens=True, accept_unknown_codes=False, strict_formats=True,
                 user_code="ABCD-1234", device_interval="1"):
        self.access_lifetime = access_lifetime
        self.email = email
        self.plan_type = plan_type
        self.user_id = user_id
        self.account_id = account_id
        self.client_id = client_id
        # A refresh token the mock never issued (say, written by make_auth_json) is honoured once.
        self.accept_unknown_refresh_tokens = accept_unknown_refresh_tokens
        self.accept_unknown_codes = accept_unknown_codes
        # Refresh as JSON and the code exchange as a form, as the CLI sends them; else 400.
        self.strict_formats = strict_formats
        self.user_code = user_code
        self.device_interval = device_interval
        LoopbackServer.__init__(self)
        self._calls = []
        self._queues = {}
        self._defaults = {}
        self._hanging = []
        self._counter = 0
        self._device_counter = 0
        self.issued_refresh_tokens = []
        self.spent_refresh_tokens = set()
        self.expired_refresh_tokens = set()
        self.revoked_tokens = []
        self._codes = {}
        self._devices = {}

    # ---- life ---------------------------------------------------------------------------

    def _progress(self):
        return f"calls so far: {[(c['method'], c['path']) for c in self._calls]}"

    def close(self):
        """Stop serving; requests still hanging are dropped (their clients see the connection close)."""
        LoopbackServer.close(self)

    @property
    def token_url(self):
        return self.url + TOKEN_PATH

    def env(self):
        """Environment pointing the reference's refresh at this mock."""
        return {"CODEX_REFRESH_TOKEN_URL_OVERRIDE": self.token_url}

    def config_toml(self):
        """An [authd] section sending every issuer request (refresh, logins, revoke) here."""
        return f'[authd]\nissuer = "{self.url}"\n'

    # ---- scripting ----------------------------------------------------------------------

    def script(self, *behaviours, path=TOKEN_PATH):
        """Queue @behaviours for the next calls to @path, one each, in order."""
        with self._cond:
            self._queues.setdefault(path, []).extend(behaviours)

    def set_default(self, behaviour, path=TOKEN_PATH):
        """What calls to @path get once their queue is empty (initially success())."""
        with self._cond:
            self._defaults[path] = behaviour

    def release(self):
        """Let every request hanging now go on (with its hang's @then)."""
        with self._cond:
            for event in self._hanging:
                event.set()

    def wait_hanging(self, n=1, timeout=5.0):
        """Wait until @n requests are hanging."""
        self._wait(lambda: len([e for e in self._hanging if not e.is_set()]) >= n, timeout, f"{n} hanging request(s)")

    def register_code(self, code, code_verifier=None, code_challenge=None, redirect_uri=None):
        """Make @code redeemable at /oauth/token, checked against PKCE and @redirect_uri when given."""
        if code_verifier and not code_challenge:
            code_challenge = pkce_challenge(code_verifier)
        with self._cond:
            self._codes[code] = {"challenge": code_challenge, "redirect_uri": redirect_uri, "used": False}

    def approve_device(self, device_auth_id=None):
        """The user entered the code: the next poll for @device_auth_id (default: the latest) succeeds."""
        with self._cond:
            if device_auth_id is None:
                if not self._devices:
                    raise AssertionError("no device code was requested")
                device_auth_id = list(self._devices)[-1]
            self._devices[device_auth_id]["approved"] = True

    def expire_refresh_token(self, token):
        with self._cond:
            self.expired_refresh_tokens.add(token)

    def revoke_refresh_token(self, token):
        with self._cond:
            self.revoked_tokens.append(token)

    # ---- what happened ------------------------------------------------------------------

    def calls(self, path=None):
        """Copies of the recorded requests (to @path), oldest first."""
        with self._cond:
            return [copy.deepcopy(c) for c in self._calls if path is None or c["path"] == path]

    def count(self, path=None):
        with self._cond:
            return sum(1 for c in self._calls if path is None or c["path"] == path)

    def wait_calls(self, n, path=None, timeout=5.0):
        """Wait until at least @n requests (to @path) arrived; return them all."""
        self._wait(lambda: self.count(path) >= n, timeout, f"{n} request(s) to {path or 'the issuer'}")
        return self.calls(path)


    # ---- serving (handler threads) -----------------------------------------------------

    def _record(self, call):
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _update(self, call, **fields):
        with self._cond:
            call.update(fields)
            self._cond.notify_all()

    def _next_behaviour(self, path):
        with self._cond:
            queue = self._queues.get(path)
            if queue:
                return queue.pop(0)
            return self._defaults.get(path, success())

    def _next_number(self):
        with self._cond:
            self._counter += 1
            return self._counter

    def _resolve(self, behaviour, call):
        """Follow hang/delay to the final behaviour; raise _Closing when the mock closes meanwhile."""
        while behaviour and behaviour["mode"] in ("hang", "delay"):
            if behaviour["mode"] == "hang":
                event = behaviour["event"]
                with self._cond:
                    self._hanging.append(event)
                    self._cond.notify_all()
                self._update(call, hung=True)
                try:
                    while not event.wait(0.05):
                        if self._closing.is_set():
                            raise _Closing()
                finally:
                    with self._cond:
                        self._hanging.remove(event)
            elif self._closing.wait(behaviour["seconds"]):
                raise _Closing()
            behaviour = behaviour["then"]
        if self._closing.is_set():
            raise _Closing()
        return behaviour

    def _tokens(self, grant):
        n = self._next_number()
        now = int(time.time())
        refresh_token = f"rt-{n}"
        with self._cond:
            self.issued_refresh_tokens.append(refresh_token)
        return {
            "id_token": make_id_token(self.email, self.plan_type, self.user_id, self.account_id, self.url),
            "access_token": make_access_token(now + self.access_lifetime, self.email, self.plan_type,
                                              self.user_id, self.account_id, self.url, {"grant": grant}),
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "scope": "openid profile email offline_access",
        }

    def _check_client(self, body):
        if body.get("client_id") != self.client_id:
            return 401, {"error": {"code": "invalid_client", "message": f"unknown client_id {body.get('client_id')!r}"}}
        return None

    def _wrong_format(self, call, expected):
        if self.strict_formats and call["format"] != expected:
            return 400, {"error": {"code": "invalid_request",
                                   "message": f"expected a {expected} body, got {call['format']} "
                                              f"({call['headers'].get('content-type')})"}}
        return None

    def _refresh(self, call):
        body = call["body"] or {}
        failure = self._wrong_format(call, "json") or self._check_client(body)
        if failure:
            return failure
        token = body.get("refresh_token")
        with self._cond:
            if not isinstance(token, str) or not token:
                return 400, _error("invalid_request", "refresh_token is required")
            if token in self.revoked_tokens:
                return REFRESH_TOKEN_INVALIDATED["status"], REFRESH_TOKEN_INVALIDATED["body"]
            if token in self.expired_refresh_tokens:
                return REFRESH_TOKEN_EXPIRED["status"], REFRESH_TOKEN_EXPIRED["body"]
            if token in self.spent_refresh_tokens:
                return REFRESH_TOKEN_REUSED["status"], REFRESH_TOKEN_REUSED["body"]
            if token not in self.issued_refresh_tokens and not self.accept_unknown_refresh_tokens:
                return REFRESH_TOKEN_INVALIDATED["status"], REFRESH_TOKEN_INVALIDATED["body"]
            self.spent_refresh_tokens.add(token)
        return 200, self._tokens("refresh_token")

    def _code_exchange(self, call):
        body = call["body"] or {}
        failure = self._wrong_format(call, "form") or self._check_client(body)
        if failure:
            return failure
        code = body.get("code")
        with self._cond:
            record = self._codes.get(code)
            if record is None and not self.accept_unknown_codes:
                return 400, {"error": "invalid_grant", "error_description": f"unknown authorization code {code!r}"}
            if record is not None:
                if record["used"]:
                    return 400, {"error": "invalid_grant", "error_description": "authorization code already used"}
                if record["redirect_uri"] and body.get("redirect_uri") != record["redirect_uri"]:
                    return 400, {"error": "invalid_grant", "error_description":
                                 f"redirect_uri {body.get('redirect_uri')!r} is not {record['redirect_uri']!r}"}
                if record["challenge"] and pkce_challenge(body.get("code_verifier") or "") != record["challenge"]:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
                record["used"] = True
        return 200, self._tokens("authorization_code")

    def _token_exchange(self, call):
        body = call["body"] or {}
        failure = self._wrong_format(call, "form") or self._check_client(body)
        if failure:
            return failure
        if not body.get("subject_token") or body.get("requested_token") != "openai-api-key":
            return 400, {"error": "invalid_request",
                         "error_description": "subject_token and requested_token=openai-api-key are required"}
        return 200, {"access_token": f"sk-mock-{self._next_number()}", "token_type": "Bearer"}

    def _token(self, call):
        grant = (call["body"] or {}).get("grant_type")
        if grant == "refresh_token":
            return self._refresh(call)
        if grant == "authorization_code":
            return self._code_exchange(call)
        if grant == TOKEN_EXCHANGE_GRANT:
            return self._token_exchange(call)
        return 400, {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"}

    def _authorize(self, call):
        query = call["query"]
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri or query.get("client_id") != self.client_id or query.get("response_type") != "code" or \
                query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, {"error": "invalid_request", "error_description":
                         "response_type=code, client_id, redirect_uri and an S256 code_challenge are required"}
        code = f"code-{self._next_number()}"
        self.register_code(code, code_challenge=query.get("code_challenge"), redirect_uri=redirect_uri)
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urllib.parse.urlencode(params)
        return 302, b"", {"Location": location}

    def _usercode(self, call):
        body = call["body"] or {}
        failure = self._wrong_format(call, "json") or self._check_client(body)
        if failure:
            return failure
        verifier = b64url(secrets.token_bytes(32))
        with self._cond:
            self._device_counter += 1
            device_auth_id = f"dev-{self._device_counter}"
            self._devices[device_auth_id] = {"approved": False, "verifier": verifier,
                                             "code": f"code-{device_auth_id}"}
        return 200, {"device_auth_id": device_auth_id, "user_code": self.user_code, "interval": self.device_interval}

    def _device_token(self, call):
        body = call["body"] or {}
        failure = self._wrong_format(call, "json")
        if failure:
            return failure
        with self._cond:
            device = self._devices.get(body.get("device_auth_id"))
            if device is None or body.get("user_code") != self.user_code:
                return 404, {"error": {"code": "deviceauth_not_found", "message": "unknown device_auth_id or user_code"}}
            if not device["approved"]:
                return 403, {"error": {"code": "deviceauth_authorization_pending",
                                       "message": "the user has not approved this device yet"}}
            verifier, code = device["verifier"], device["code"]
        challenge = pkce_challenge(verifier)
        self.register_code(code, code_challenge=challenge, redirect_uri=self.url + DEVICE_CALLBACK_PATH)
        return 200, {"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}

    def _revoke(self, call):
        failure = self._wrong_format(call, "json")
        if failure:
            return failure
        token = (call["body"] or {}).get("token")
        if token:
            self.revoke_refresh_token(token)
        return 200, {}

    def _device_page(self, call):
        return 200, b"<html><body>Enter your code</body></html>", {"Content-Type": "text/html; charset=utf-8"}

    def _accounts_check(self, call):
        return 200, {"accounts": [{"id": self.account_id, "workspace_backend_origin": "https://chatgpt.com",
                                   "account_routing_override": "NO_CONSTRAINT"}]}

    def _config_bundle(self, call):
        return 200, {}

    ROUTES = {("POST", TOKEN_PATH): "_token", ("GET", AUTHORIZE_PATH): "_authorize",
              ("POST", USERCODE_PATH): "_usercode", ("POST", DEVICE_TOKEN_PATH): "_device_token",
              ("POST", REVOKE_PATH): "_revoke", ("GET", VERIFICATION_PATH): "_device_page",
              # The ChatGPT backend's workspace routing, for a chatgpt_base_url pointed here.
              ("GET", "/api/codex/accounts/check"): "_accounts_check",
              ("GET", "/backend-api/wham/accounts/check"): "_accounts_check",
              ("GET", "/api/codex/config/bundle"): "_config_bundle"}

    def _answer(self, call):
        """(status, body[, headers]) for @call, or None to drop the connection."""
        behaviour = self._resolve(self._next_behaviour(call["path"]), call)
        if behaviour is None or behaviour["mode"] == "drop":
            return None
        if behaviour["mode"] == "status":
            return behaviour["status"], behaviour["body"], behaviour["headers"]
        route = self.ROUTES.get((call["method"], call["path"]))
        if route is None:
            return 404, {"error": {"code": "not_found", "message": f"no {call['method']} {call['path']} here"}}
        answer = getattr(self, route)(call)
        if answer[0] == 200 and isinstance(answer[1], dict) and behaviour.get("fields"):
            merged = dict(answer[1])
            for key, value in behaviour["fields"].items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            answer = (200, merged, *answer[2:])
        return answer


def _parse_body(raw, content_type):
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not raw:
        return None, "empty"
    if ctype == "application/json":
        try:
            return json.loads(raw), "json"
        except ValueError:
            return None, "other"
    if ctype == "application/x-www-form-urlencoded":
        try:
            return dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)), "form"
        except (UnicodeDecodeError, ValueError):
            return None, "other"
    return None, "other"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    issuer = None  # set by MockIssuer.start()

    def log_message(self, fmt, *args):  # quiet: the calls are recorded instead
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        mock = self.issuer
        split = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        body, fmt = _parse_body(raw, self.headers.get("Content-Type"))
        call = {"method": self.command, "path": split.path, "query": dict(urllib.parse.parse_qsl(split.query)),
                "headers": {k.lower(): v for k, v in self.headers.items()}, "raw": raw, "body": body, "format": fmt,
                "time": time.time(), "monotonic": time.monotonic(), "status": None, "hung": False}
        mock._record(call)
        try:
            answer = mock._answer(call)
        except _Closing:
            answer = None
        if answer is None:
            mock._update(call, status="dropped")
            self.close_connection = True
            return
        code, payload, headers = (answer + ({},))[:3]
        mock._update(call, status=code)
        data = payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str) else \
            json.dumps(payload).encode()
        self.send_response(code)
        if not isinstance(payload, (bytes, str)):
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle


MockIssuer.HANDLER = _Handler
