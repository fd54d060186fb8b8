# SPDX-License-Identifier: MIT
"""ws:// client credentials at the front door (--ws-auth), as codex app-server checks them
(section 7): the 401 answers and their reasons, Origin and health before auth, signed bearer
tokens (HS256 JWT) and their claims, the start-up errors, and the non-loopback rule."""
import base64
import hashlib
import hmac
import json
import os
import socket
import time

import pytest
import websockets.exceptions

from conftest import HELPERS, RECV_TIMEOUT, START_TIMEOUT, WS_BANNER_RE, http_get, register_secret

# Secrets used below; test_no_credential_reaches_the_log checks none of them is ever logged.
TOKEN = "capability-token-0123456789-abcdefghij"
SECRET = b"shared-secret-for-hs256-0123456789abcdef"  # 40 bytes
ISSUER = "agentd-tests"
AUDIENCE = "agentd-front-door"
# The end-of-run check (test_zz_secrets.py) looks for these in every log.
register_secret(TOKEN, SECRET.decode())

REFUSAL = ("refusing to start non-loopback websocket listener {} without auth; configure "
           "`--ws-auth capability-token` or `--ws-auth signed-bearer-token`")


# --------------------------------------------------------------------------------------
# helpers


def _secret_file(tmp_path, name, content):
    """An absolute path holding @content (str or bytes), readable by agentd."""
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(0o600)
    return str(path)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=SECRET, header=None, digest=hashlib.sha256):
    """A compact JWS: @header (default HS256) and @claims signed with HMAC-@digest."""
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return signing_input + "." + _b64url(signature)


def _claims(**extra):
    claims = {"sub": "tester", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def upgrade(port, headers=(), path="/", host="127.0.0.1", with_key=True):
    """Send a websocket upgrade request with @headers by hand: (status, body) of the answer.
    A 101 is not followed further (the connection is closed)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Version: 13"]
    if with_key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    lines += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=RECV_TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, f"agentd closed before answering: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            return status, ""
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
        assert len(body) == length, (head, body)
        return status, body.decode()


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


def _start(agentd_factory, *args, listen="ws://127.0.0.1:0"):
    return agentd_factory([listen], args=list(args))


def capability_agentd(agentd_factory, tmp_path, *extra, token_file_text=TOKEN + "\n", listen="ws://127.0.0.1:0"):
    path = _secret_file(tmp_path, "ws-token", token_file_text)
    return _start(agentd_factory, "--ws-auth", "capability-token", "--ws-token-file", path, *extra, listen=listen)


def signed_agentd(agentd_factory, tmp_path, *extra, secret=SECRET):
    path = _secret_file(tmp_path, "ws-secret", secret + b"\n")
    return _start(agentd_factory, "--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", path,
                  "--ws-issuer", ISSUER, "--ws-audience", AUDIENCE, *extra)


def assert_initializes(proc, token, name="ws-auth"):
    """A client presenting @token upgrades and is served."""
    client = proc.ws_client(extra_headers={"Authorization": f"Bearer {token}"})
    assert client.initialize(name=name)["userAgent"].startswith(f"{name}/")
    return client


def failed_start(agentd_factory, args, listen="ws://127.0.0.1:0"):
    """agentd started with @args must exit non-zero before serving: its stderr."""
    proc = agentd_factory([listen], args=list(args), wait=False, expect_status=None)
    status = proc.wait(timeout=START_TIMEOUT)
    err = proc.stderr()
    assert status != 0, f"agentd exited 0 with {args}:\n{err}"
    assert "listening on: ws://" not in err, err
    # Judged before anything started: no helper was spawned.
    assert not any(f"spawned {h}" in err for h in HELPERS), err
    return err


# --------------------------------------------------------------------------------------
# capability token


@pytest.mark.parametrize(
    "headers, reason",
    [
        ([], "missing websocket bearer token"),
        ([("Authorization", "Basic x")], "invalid authorization header"),
        ([("Authorization", "Basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode())],
         "invalid authorization header"),
        ([("Authorization", "Bearer")], "invalid authorization header"),
        ([("Authorization", "Bearer  ")], "invalid authorization header"),
        ([("Authorization", "")], "invalid authorization header"),
        ([("Authorization", TOKEN)], "invalid authorization header"),
        ([("Authorization", "Bearer wrong-token")], "invalid websocket bearer token"),
        ([("Authorization", f"Bearer {TOKEN}x")], "invalid websocket bearer token"),
        ([("Authorization", f"Bearer {TOKEN[:-1]}")], "invalid websocket bearer token"),
        # Only the digest is kept, but it is no credential itself.
        ([("Authorization", f"Bearer {hashlib.sha256(TOKEN.encode()).hexdigest()}")],
         "invalid websocket bearer token"),
    ],
    ids=["no-header", "basic-x", "basic-with-token", "bearer-no-token", "bearer-blank", "empty-header",
         "no-scheme", "wrong-token", "token-plus-one", "token-minus-one", "digest-as-token"],
)
def test_capability_token_refusals(agentd_factory, tmp_path, headers, reason):
    proc = capability_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port, headers) == (401, reason)
    # A refused client leaves the listener serving the next one.
    assert_initializes(proc, TOKEN)


def test_capability_token_right_token_upgrades(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port, bearer(TOKEN)) == (101, "")
    client = assert_initializes(proc, TOKEN)
    assert client.health()["status"] == "ok"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(agentd_factory, tmp_path, scheme):
    proc = capability_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port, [("Authorization", f"{scheme} {TOKEN}")]) == (101, "")


def test_token_around_whitespace_is_trimmed(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port, [("Authorization", f"Bearer   {TOKEN}  ")]) == (101, "")


@pytest.mark.parametrize("text", [TOKEN + "\n", TOKEN + "\r\n", "  \t" + TOKEN + "\n\n", TOKEN],
                         ids=["newline", "crlf", "surrounded", "bare"])
def test_token_file_is_trimmed(agentd_factory, tmp_path, text):
    proc = capability_agentd(agentd_factory, tmp_path, token_file_text=text)
    assert upgrade(proc.ws_port, bearer(TOKEN)) == (101, "")
    assert_initializes(proc, TOKEN)


@pytest.mark.parametrize("case", ["lower", "upper", "padded"])
def test_token_sha256(agentd_factory, case):
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    value = {"lower": digest, "upper": digest.upper(), "padded": f"  {digest}\n"}[case]
    proc = _start(agentd_factory, "--ws-auth", "capability-token", "--ws-token-sha256", value)
    assert upgrade(proc.ws_port, bearer("wrong")) == (401, "invalid websocket bearer token")
    assert upgrade(proc.ws_port) == (401, "missing websocket bearer token")
    assert_initializes(proc, TOKEN)


@pytest.mark.parametrize("path", ["/", "/readyz", "/healthz", "/anything"])
def test_origin_is_forbidden_before_auth(agentd_factory, tmp_path, path):
    """Browsers send Origin: refused (403) even with the right token, on every path."""
    proc = capability_agentd(agentd_factory, tmp_path)
    status, _ = upgrade(proc.ws_port, bearer(TOKEN) + [("Origin", "http://localhost:3000")], path=path)
    assert status == 403
    status, _ = upgrade(proc.ws_port, [("Origin", "null")], path=path)
    assert status == 403
    status, _ = http_get(proc.ws_port, path, headers={"Origin": "http://evil.example",
                                                       "Authorization": f"Bearer {TOKEN}"})
    assert status == 403
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
        proc.ws_client(origin="http://127.0.0.1", extra_headers={"Authorization": f"Bearer {TOKEN}"})
    assert info.value.status_code == 403


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_health_needs_no_credentials(agentd_factory, tmp_path, path):
    proc = capability_agentd(agentd_factory, tmp_path)
    assert http_get(proc.ws_port, path) == (200, "ok")
    assert http_get(proc.ws_port, path, headers={"Authorization": "Bearer wrong"}) == (200, "ok")


def test_upgrade_on_any_path_needs_credentials(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port, path="/some/where") == (401, "missing websocket bearer token")
    assert upgrade(proc.ws_port, bearer(TOKEN), path="/some/where") == (101, "")


def test_library_client_without_token_gets_401(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path)
    for headers in (None, {"Authorization": "Bearer wrong"}):
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
            proc.ws_client(**({"extra_headers": headers} if headers else {}))
        assert info.value.status_code == 401


def test_two_authorization_headers_are_refused(agentd_factory, tmp_path):
    """Two credentials are ambiguous (a proxy and agentd could read different ones)."""
    proc = capability_agentd(agentd_factory, tmp_path)
    status, _ = upgrade(proc.ws_port, bearer(TOKEN) + bearer(TOKEN))
    assert status == 400


def test_unix_socket_clients_are_not_asked_for_credentials(agentd_factory, tmp_path):
    """As in the reference, the unix socket's permissions decide who may connect there."""
    token = _secret_file(tmp_path, "ws-token", TOKEN)
    sock_path = f"/tmp/agentd-wsauth-{os.getpid()}-{time.monotonic_ns()}.sock"
    proc = agentd_factory(["ws://127.0.0.1:0", f"unix://{sock_path}"],
                          args=["--ws-auth", "capability-token", "--ws-token-file", token])
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(RECV_TIMEOUT)
        sock.connect(sock_path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 101"), "unix-socket upgrade refused"
    assert upgrade(proc.ws_port) == (401, "missing websocket bearer token")


# --------------------------------------------------------------------------------------
# signed bearer token (HS256 JWT)


def _tampered_payload():
    token = make_jwt(_claims())
    header, _, signature = token.split(".")
    return f"{header}.{_b64url(json.dumps(_claims(sub='admin')).encode())}.{signature}"


def _tampered_signature():
    token = make_jwt(_claims())
    last = token[-2]
    return token[:-2] + ("A" if last != "A" else "B") + token[-1]


def _alg_none():
    head = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64url(json.dumps(_claims()).encode())}."


def _rs256_signed_with_hmac():
    """Header RS256, signature a valid HMAC-SHA256: the algorithm-confusion attack."""
    return make_jwt(_claims(), header={"alg": "RS256", "typ": "JWT"})


@pytest.mark.parametrize(
    "token, reason",
    [
        (lambda: _tampered_payload(), "invalid websocket jwt"),
        (lambda: _tampered_signature(), "invalid websocket jwt"),
        (lambda: make_jwt(_claims(), secret=SECRET + b"x"), "invalid websocket jwt"),
        (lambda: _alg_none(), "invalid websocket jwt"),
        (lambda: _alg_none() + "c2ln", "invalid websocket jwt"),
        (lambda: make_jwt(_claims(), header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512),
         "invalid websocket jwt"),
        (lambda: _rs256_signed_with_hmac(), "invalid websocket jwt"),
        (lambda: make_jwt(_claims(), header={"typ": "JWT"}), "invalid websocket jwt"),
        (lambda: make_jwt(_claims(exp=None)), "invalid websocket jwt"),
        (lambda: make_jwt(_claims(exp="never")), "invalid websocket jwt"),
        (lambda: "not-a-jwt", "invalid websocket jwt"),
        (lambda: make_jwt(_claims()) + ".extra", "invalid websocket jwt"),
        (lambda: make_jwt(_claims(exp=int(time.time()) - 120)), "expired websocket jwt"),
        (lambda: make_jwt(_claims(nbf=int(time.time()) + 120)), "websocket jwt is not valid yet"),
        (lambda: make_jwt(_claims(iss="someone-else")), "websocket jwt issuer mismatch"),
        (lambda: make_jwt(_claims(iss=None)), "websocket jwt issuer mismatch"),
        (lambda: make_jwt(_claims(aud="other-door")), "websocket jwt audience mismatch"),
        (lambda: make_jwt(_claims(aud=None)), "websocket jwt audience mismatch"),
        (lambda: make_jwt(_claims(aud=["a", "b"])), "websocket jwt audience mismatch"),
    ],
    ids=["tampered-payload", "tampered-signature", "other-secret", "alg-none", "alg-none-with-signature",
         "hs512", "rs256", "no-alg", "missing-exp", "exp-not-a-number", "not-a-jwt", "four-segments",
         "expired", "not-yet-valid", "wrong-iss", "missing-iss", "wrong-aud", "missing-aud",
         "aud-array-without-us"],
)
def test_signed_bearer_refusals(agentd_factory, tmp_path, token, reason):
    proc = signed_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port, bearer(token())) == (401, reason)
    assert_initializes(proc, make_jwt(_claims()))


@pytest.mark.parametrize(
    "claims",
    [
        lambda: _claims(),
        lambda: _claims(aud=["someone", AUDIENCE]),
        lambda: _claims(exp=int(time.time()) - 10),  # expired, within the default 30 s skew
        lambda: _claims(nbf=int(time.time()) + 10),  # not yet valid, within the skew
        lambda: _claims(nbf=int(time.time()) - 10),
    ],
    ids=["plain", "aud-array", "expired-within-skew", "nbf-within-skew", "nbf-past"],
)
def test_signed_bearer_accepted(agentd_factory, tmp_path, claims):
    proc = signed_agentd(agentd_factory, tmp_path)
    assert_initializes(proc, make_jwt(claims()))


def test_signed_bearer_header_refusals(agentd_factory, tmp_path):
    proc = signed_agentd(agentd_factory, tmp_path)
    assert upgrade(proc.ws_port) == (401, "missing websocket bearer token")
    assert upgrade(proc.ws_port, [("Authorization", "Basic " + make_jwt(_claims()))]) == (
        401, "invalid authorization header")


def test_signed_bearer_without_issuer_or_audience_checks_neither(agentd_factory, tmp_path):
    path = _secret_file(tmp_path, "ws-secret", SECRET)
    # Empty expectations (after trimming) mean "not checked", as in the reference.
    proc = _start(agentd_factory, "--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", path,
                  "--ws-audience", "  ")
    assert_initializes(proc, make_jwt({"exp": int(time.time()) + 60}))
    assert_initializes(proc, make_jwt(_claims(iss="anyone", aud="anything")))
    assert upgrade(proc.ws_port, bearer(make_jwt({"iss": "x"}))) == (401, "invalid websocket jwt")


def test_secret_of_exactly_32_bytes_is_enough(agentd_factory, tmp_path):
    secret = b"s" * 32
    proc = signed_agentd(agentd_factory, tmp_path, secret=secret)
    assert_initializes(proc, make_jwt(_claims(), secret=secret))


@pytest.mark.parametrize(
    "skew, claims, reason",
    [
        ("0", lambda: _claims(exp=int(time.time()) - 5), "expired websocket jwt"),
        ("0", lambda: _claims(nbf=int(time.time()) + 60), "websocket jwt is not valid yet"),
        ("300", lambda: _claims(exp=int(time.time()) - 120), None),
        ("300", lambda: _claims(nbf=int(time.time()) + 120), None),
        ("300", lambda: _claims(exp=int(time.time()) - 600), "expired websocket jwt"),
        ("300", lambda: _claims(nbf=int(time.time()) + 600), "websocket jwt is not valid yet"),
    ],
    ids=["0-expired", "0-not-yet", "300-expired-within", "300-not-yet-within", "300-expired-beyond",
         "300-not-yet-beyond"],
)
def test_max_clock_skew_is_honoured(agentd_factory, tmp_path, skew, claims, reason):
    proc = signed_agentd(agentd_factory, tmp_path, "--ws-max-clock-skew-seconds", skew)
    token = make_jwt(claims())
    if reason is None:
        assert_initializes(proc, token)
    else:
        assert upgrade(proc.ws_port, bearer(token)) == (401, reason)


def test_credentials_are_checked_only_at_the_upgrade(agentd_factory, tmp_path):
    """A token that expires while its connection is open does not end it (the reference never
    re-checks after the upgrade)."""
    proc = signed_agentd(agentd_factory, tmp_path, "--ws-max-clock-skew-seconds", "0")
    client = assert_initializes(proc, make_jwt(_claims(exp=int(time.time()) + 2)))
    time.sleep(3.1)
    assert client.health()["status"] == "ok"
    assert upgrade(proc.ws_port, bearer(make_jwt(_claims(exp=int(time.time()) - 2)))) == (
        401, "expired websocket jwt")


# --------------------------------------------------------------------------------------
# start-up errors


def _startup_cases(tmp_path):
    short = _secret_file(tmp_path, "short-secret", b"x" * 31 + b"\n")
    empty = _secret_file(tmp_path, "empty-secret", b"")
    blank = _secret_file(tmp_path, "blank-secret", b" \n\t\n")
    token = _secret_file(tmp_path, "token", TOKEN)
    missing = str(tmp_path / "no-such-file")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cap = ["--ws-auth", "capability-token"]
    signed = ["--ws-auth", "signed-bearer-token"]
    return {
        "short-secret": (signed + ["--ws-shared-secret-file", short],
                         f"signed websocket bearer secret {short} must be at least 32 bytes"),
        "empty-secret": (signed + ["--ws-shared-secret-file", empty],
                         f"websocket auth secret {empty} must not be empty"),
        "blank-secret": (signed + ["--ws-shared-secret-file", blank],
                         f"websocket auth secret {blank} must not be empty"),
        "empty-token-file": (cap + ["--ws-token-file", empty], f"websocket auth secret {empty} must not be empty"),
        "missing-token-file": (cap + ["--ws-token-file", missing],
                               f"failed to read websocket auth secret {missing}: No such file or directory "
                               "(os error 2)"),
        "relative-token-file": (cap + ["--ws-token-file", "token"], "--ws-token-file must be an absolute path"),
        "relative-secret-file": (signed + ["--ws-shared-secret-file", "secret"],
                                 "--ws-shared-secret-file must be an absolute path"),
        "token-file-and-sha256": (cap + ["--ws-token-file", token, "--ws-token-sha256", digest],
                                  "`--ws-token-file` and `--ws-token-sha256` are mutually exclusive"),
        "neither": (cap, "`--ws-token-file` or `--ws-token-sha256` is required when `--ws-auth "
                         "capability-token` is set"),
        "sha256-short": (cap + ["--ws-token-sha256", digest[:-1]],
                         "--ws-token-sha256 must be a 64-character hex SHA-256 digest"),
        "sha256-long": (cap + ["--ws-token-sha256", digest + "0"],
                        "--ws-token-sha256 must be a 64-character hex SHA-256 digest"),
        "sha256-not-hex": (cap + ["--ws-token-sha256", "g" + digest[1:]],
                           "--ws-token-sha256 must be a 64-character hex SHA-256 digest"),
        "no-secret-file": (signed, "`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` "
                                   "is set"),
        "token-file-without-ws-auth": (["--ws-token-file", token],
                                       "websocket auth flags require `--ws-auth capability-token` or "
                                       "`--ws-auth signed-bearer-token`"),
        "sha256-without-ws-auth": (["--ws-token-sha256", digest],
                                   "websocket auth flags require `--ws-auth capability-token` or "
                                   "`--ws-auth signed-bearer-token`"),
        "issuer-without-ws-auth": (["--ws-issuer", ISSUER],
                                   "websocket auth flags require `--ws-auth capability-token` or "
                                   "`--ws-auth signed-bearer-token`"),
        "skew-without-ws-auth": (["--ws-max-clock-skew-seconds", "5"],
                                 "websocket auth flags require `--ws-auth capability-token` or "
                                 "`--ws-auth signed-bearer-token`"),
        "signed-flags-with-capability": (cap + ["--ws-token-file", token, "--ws-issuer", ISSUER],
                                         "`--ws-shared-secret-file`, `--ws-issuer`, `--ws-audience`, and "
                                         "`--ws-max-clock-skew-seconds` require `--ws-auth signed-bearer-token`"),
        "token-flags-with-signed": (signed + ["--ws-shared-secret-file", short, "--ws-token-file", token],
                                    "`--ws-token-file` and `--ws-token-sha256` require `--ws-auth "
                                    "capability-token`, not `signed-bearer-token`"),
        "unknown-mode": (["--ws-auth", "password"],
                         "invalid value 'password' for '--ws-auth <MODE>' [possible values: capability-token, "
                         "signed-bearer-token]"),
        "skew-not-a-number": (signed + ["--ws-shared-secret-file", short, "--ws-max-clock-skew-seconds", "-1"],
                              "invalid value '-1' for '--ws-max-clock-skew-seconds <SECONDS>': invalid digit "
                              "found in string"),
    }


@pytest.mark.parametrize("case", [
    "short-secret", "empty-secret", "blank-secret", "empty-token-file", "missing-token-file",
    "relative-token-file", "relative-secret-file", "token-file-and-sha256", "neither", "sha256-short",
    "sha256-long", "sha256-not-hex", "no-secret-file", "token-file-without-ws-auth", "sha256-without-ws-auth",
    "issuer-without-ws-auth", "skew-without-ws-auth", "signed-flags-with-capability", "token-flags-with-signed",
    "unknown-mode", "skew-not-a-number",
])
def test_startup_errors(agentd_factory, tmp_path, case):
    args, message = _startup_cases(tmp_path)[case]
    err = failed_start(agentd_factory, args)
    assert f" error: {message}\n" in err, f"want {message!r} in:\n{err}"


def test_check_mode_judges_the_ws_flags(agentd_factory, tmp_path):
    err = failed_start(agentd_factory, ["-n", "--ws-auth", "capability-token"])
    assert "`--ws-token-file` or `--ws-token-sha256` is required" in err


# --------------------------------------------------------------------------------------
# non-loopback listeners


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "10.1.2.3:0"])
def test_non_loopback_without_auth_is_refused(agentd_factory, address):
    err = failed_start(agentd_factory, [], listen=f"ws://{address}")
    assert f" error: {REFUSAL.format(address)}\n" in err, err


def test_non_loopback_allowed_unauthenticated_warns(agentd_factory):
    proc = _start(agentd_factory, "--ws-allow-unauthenticated-remote", listen="ws://0.0.0.0:0")
    err = proc.stderr()
    assert " warn: websocket listener 0.0.0.0:0 has NO client authentication" in err, err
    assert ("  note: websocket auth is NOT configured: configure `--ws-auth capability-token` or "
            "`--ws-auth signed-bearer-token` before real remote use\n") in err, err
    assert "binds localhost only" not in err
    assert WS_BANNER_RE.search(err).group(1) == "0.0.0.0"
    # It is what the operator asked for: clients need nothing.
    client = proc.ws_client()
    assert client.initialize()["platformOs"] == "linux"


def test_non_loopback_with_auth_starts_and_requires_the_token(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path, listen="ws://0.0.0.0:0")
    err = proc.stderr()
    assert "  note: websocket auth is required for non-localhost listeners\n" in err, err
    assert "NO client authentication" not in err and "refusing" not in err
    assert upgrade(proc.ws_port) == (401, "missing websocket bearer token")
    assert upgrade(proc.ws_port, bearer("wrong")) == (401, "invalid websocket bearer token")
    assert http_get(proc.ws_port, "/readyz") == (200, "ok")
    assert_initializes(proc, TOKEN)


def test_allow_unauthenticated_remote_does_not_weaken_configured_auth(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path, "--ws-allow-unauthenticated-remote",
                             listen="ws://0.0.0.0:0")
    assert "  note: websocket auth is required for non-localhost listeners\n" in proc.stderr()
    assert upgrade(proc.ws_port) == (401, "missing websocket bearer token")
    assert_initializes(proc, TOKEN)


def test_loopback_banner_unchanged_with_auth(agentd_factory, tmp_path):
    proc = capability_agentd(agentd_factory, tmp_path)
    port = proc.ws_port
    assert (f"agentd (WebSockets)\n  listening on: ws://127.0.0.1:{port}\n"
            f"  readyz: http://127.0.0.1:{port}/readyz\n  healthz: http://127.0.0.1:{port}/healthz\n"
            "  note: binds localhost only (use SSH port-forwarding for remote access)\n") in proc.stderr()


# --------------------------------------------------------------------------------------
# secrets stay secret


def test_no_credential_reaches_the_log(agentd_factory, tmp_path):
    """With debug logging, neither the token, its digest, the shared secret nor any JWT part
    (right or wrong) appears in agentd's (or a helper's) stderr."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cap = capability_agentd(agentd_factory, tmp_path, "-d")
    sha = _start(agentd_factory, "-d", "--ws-auth", "capability-token", "--ws-token-sha256", digest)
    signed = signed_agentd(agentd_factory, tmp_path, "-d")
    good_jwt = make_jwt(_claims())
    bad_jwt = make_jwt(_claims(sub="intruder"), secret=b"guessed-secret-guessed-secret-guessed!")
    wrong_token = "wrong-token-that-must-not-be-logged"
    for proc, good in ((cap, TOKEN), (sha, TOKEN), (signed, good_jwt)):
        assert upgrade(proc.ws_port, bearer(wrong_token))[0] == 401
        assert upgrade(proc.ws_port, [("Authorization", f"Basic {wrong_token}")])[0] == 401
        assert upgrade(proc.ws_port, bearer(bad_jwt))[0] == 401
        assert upgrade(proc.ws_port, bearer(good + "x"))[0] == 401
        assert_initializes(proc, good)
    assert "refused at the upgrade" in cap.stderr()  # refusals are logged, without what was sent
    needles = [TOKEN, digest, digest.upper(), SECRET.decode(), wrong_token, good_jwt, bad_jwt,
               base64.b64encode(SECRET).decode(), base64.b64encode(TOKEN.encode()).decode()]
    needles += good_jwt.split(".")[1:] + bad_jwt.split(".")[1:]
    for proc in (cap, sha, signed):
        err = proc.stderr()
        for needle in needles:
            assert needle not in err, f"{needle[:12]}... appears in agentd's stderr"
