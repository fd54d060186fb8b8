# SPDX-License-Identifier: MIT
"""command/exec, command/exec/write|resize|terminate and command/exec/outputDelta, through real
clients: agentd asks sandboxd for a launch plan and execd runs it.

Reference: ../shared/reference/codex-behaviour.md section 3 and issue 5. Most tests run with
sandboxPolicy dangerFullAccess so they measure execd, not the sandbox; the sandbox tests run
the same calls under readOnly and workspaceWrite plans.
"""
import base64
import os
import signal
import time

import pytest

from conftest import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, RpcError, wait_until

FULL = {"type": "dangerFullAccess"}


def exec_call(client, params, timeout=30):
    params = dict(params)
    params.setdefault("sandboxPolicy", FULL)
    return client.call("command/exec", params, timeout=timeout)


def exec_error(client, params):
    msg = client.request("command/exec", params)
    assert "error" in msg, msg
    return msg["error"]


def collect(client, request_id, timeout=30):
    """Deltas (per stream, decoded) until the response of @request_id; returns (result, deltas, caps)."""
    out = {"stdout": b"", "stderr": b""}
    caps = {"stdout": [], "stderr": []}
    deadline = time.monotonic() + timeout
    # Deltas that came while the test waited for another answer (a write's) were set aside.
    early = [m for m in client.notifications if m.get("method") == "command/exec/outputDelta"]
    client.notifications[:] = [m for m in client.notifications if m not in early]
    while True:
        msg = early.pop(0) if early else client.recv(timeout=max(0.1, deadline - time.monotonic()))
        if msg.get("method") == "command/exec/outputDelta":
            p = msg["params"]
            out[p["stream"]] += base64.b64decode(p["deltaBase64"])
            caps[p["stream"]].append(p["capReached"])
            continue
        if msg.get("id") == request_id:
            return msg, out, caps
        raise AssertionError(f"unexpected message {msg}")


def start(client, params, id):
    params = dict(params)
    params.setdefault("sandboxPolicy", FULL)
    client.send({"id": id, "method": "command/exec", "params": params})


@pytest.fixture
def agentd(agentd_factory):
    return agentd_factory()


@pytest.fixture
def client(agentd):
    return agentd.stdio


# --------------------------------------------------------------------------------------
# buffered runs


def test_buffered_echo(client):
    result = exec_call(client, {"command": ["sh", "-c", "printf hello; printf oops >&2; exit 3"]})
    assert result == {"exitCode": 3, "stdout": "hello", "stderr": "oops"}


def test_default_policy_runs_in_the_sandbox(client, tmp_path):
    """Without sandboxPolicy the configured default applies: reading works, writing outside fails."""
    target = tmp_path / "outside"
    msg = client.request("command/exec", {"command": ["sh", "-c", f"echo hi; echo x > {target}"]})
    assert "result" in msg, msg
    assert msg["result"]["stdout"] == "hi\n"
    assert msg["result"]["exitCode"] != 0
    assert not target.exists()


def test_read_only_policy_blocks_writes(client, tmp_path):
    target = tmp_path / "f"
    result = client.call("command/exec", {"command": ["sh", "-c", f"echo x > {target}"],
                                          "sandboxPolicy": {"type": "readOnly"}, "cwd": str(tmp_path)})
    assert result["exitCode"] != 0
    assert not target.exists()


def test_workspace_write_allows_cwd(client, tmp_path):
    target = tmp_path / "f"
    result = client.call("command/exec", {"command": ["sh", "-c", f"printf x > {target}; cat {target}"],
                                          "sandboxPolicy": {"type": "workspaceWrite"}, "cwd": str(tmp_path)})
    assert result == {"exitCode": 0, "stdout": "x", "stderr": ""}
    assert target.read_text() == "x"


def test_bad_sandbox_policy(client):
    err = exec_error(client, {"command": ["true"], "sandboxPolicy": {"type": "noSuchPolicy"}})
    assert err["code"] == INVALID_REQUEST
    assert err["message"].startswith("invalid sandbox policy: "), err


def test_unknown_permission_profile(client):
    err = exec_error(client, {"command": ["true"], "permissionProfile": "no-such-profile"})
    assert err["code"] == INVALID_REQUEST
    assert err["message"].startswith("invalid permission profile: "), err


def test_permission_profile_builtin(client, tmp_path):
    result = client.call("command/exec", {"command": ["sh", "-c", "echo ok"], "permissionProfile": ":read-only",
                                          "cwd": str(tmp_path)})
    assert result["stdout"] == "ok\n"


def test_buffered_output_utf8_or_windows_1252(client):
    """Valid UTF-8 as it is; anything else decoded as windows-1252. For the second and third the
    reference's encoding guess gives the same (recorded from codex app-server 0.169.0)."""
    assert exec_call(client, {"command": ["printf", "caf\\303\\251 \\342\\202\\254"]})["stdout"] == "café €"
    assert exec_call(client, {"command": ["printf", "a\\377b\\303\\251"]})["stdout"] == "a\u00ffb\u00c3\u00a9"
    assert exec_call(client, {"command": ["printf", "caf\\351 na\\357ve"]})["stdout"] == "caf\u00e9 na\u00efve"
    assert exec_call(client, {"command": ["printf", "\\200\\235\\237"]})["stdout"] == "\u20ac\u009d\u0178"
    assert exec_call(client, {"command": ["printf", "nul\\000byte"]})["stdout"] == "nul\u0000byte"


def test_cwd_absolute_and_relative(client, agentd, tmp_path):
    (tmp_path / "sub").mkdir()
    assert exec_call(client, {"command": ["pwd"], "cwd": str(tmp_path)})["stdout"] == f"{tmp_path}\n"
    # Relative paths join onto the server's cwd (the agentd process's).
    server_cwd = os.readlink(f"/proc/{agentd.pid}/cwd")
    rel = os.path.relpath(tmp_path / "sub", server_cwd)
    assert exec_call(client, {"command": ["pwd"], "cwd": rel})["stdout"] == f"{tmp_path}/sub\n"
    assert exec_call(client, {"command": ["pwd"]})["stdout"] == f"{server_cwd}\n"


def test_env_overrides_merge_and_unset(client, agentd):
    server_home = open(f"/proc/{agentd.pid}/environ", "rb").read().split(b"\0")
    server_env = dict(kv.split(b"=", 1) for kv in server_home if b"=" in kv)
    assert b"CODEX_HOME" in server_env
    result = exec_call(client, {"command": ["sh", "-c", 'printf "%s|%s|%s" "$NEW" "${CODEX_HOME-unset}" "$PATH"'],
                                "env": {"NEW": "value", "CODEX_HOME": None}})
    new, home, path = result["stdout"].split("|")
    assert new == "value"
    assert home == "unset"
    assert path.encode() == server_env[b"PATH"]


def test_missing_program(client):
    err = exec_error(client, {"command": ["/no/such/program"], "sandboxPolicy": FULL})
    assert err["code"] == INTERNAL_ERROR
    assert err["message"].startswith("failed to spawn command: "), err
    assert "No such file" in err["message"]


def test_program_found_on_the_commands_path(client, tmp_path):
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho from-path\n")
    tool.chmod(0o755)
    result = exec_call(client, {"command": ["mytool"], "env": {"PATH": f"{tmp_path}:/usr/bin:/bin"}})
    assert result["stdout"] == "from-path\n"


def test_timeout_exit_code_124(client):
    t0 = time.monotonic()
    result = exec_call(client, {"command": ["sleep", "30"], "timeoutMs": 300})
    assert result["exitCode"] == 124
    assert time.monotonic() - t0 < 5


def test_disable_timeout_outlives_default(client):
    result = exec_call(client, {"command": ["sh", "-c", "sleep 0.3; echo done"], "disableTimeout": True})
    assert result == {"exitCode": 0, "stdout": "done\n", "stderr": ""}


def test_streamed_cap_reached_exactly(client):
    start(client, {"command": ["printf", "abc"], "processId": "x3", "streamStdoutStderr": True, "outputBytesCap": 3}, 1)
    msg, out, caps = collect(client, 1)
    assert out["stdout"] == b"abc"
    assert caps["stdout"] == [True]


def test_cap_zero(client):
    assert exec_call(client, {"command": ["printf", "abc"], "outputBytesCap": 0})["stdout"] == ""


def test_timeout_keeps_partial_output(client):
    result = exec_call(client, {"command": ["sh", "-c", "echo before; sleep 5"], "timeoutMs": 300})
    assert result == {"exitCode": 124, "stdout": "before\n", "stderr": ""}


def test_terminate_after_exit_is_unknown(client):
    start(client, {"command": ["true"], "processId": "gone", "streamStdoutStderr": True}, 1)
    collect(client, 1)
    msg = client.request("command/exec/terminate", {"processId": "gone"})
    assert msg["error"] == {"code": INVALID_REQUEST, "message": 'no active command/exec for process id "gone"'}


def test_process_id_reusable_after_finish(client):
    for _ in range(2):
        start(client, {"command": ["echo", "again"], "processId": "re", "streamStdoutStderr": True}, 1)
        msg, out, _ = collect(client, 1)
        assert out["stdout"] == b"again\n"


def test_buffered_output_cap(client):
    result = exec_call(client, {"command": ["sh", "-c", "printf abcdef; printf 123456 >&2"], "outputBytesCap": 3})
    assert result == {"exitCode": 0, "stdout": "abc", "stderr": "123"}


def test_default_cap_is_one_mebibyte_per_stream(client):
    result = exec_call(client, {"command": ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"]})
    assert result["stdout"] == "a" * (1024 * 1024)
    assert result["exitCode"] == 0  # the rest is read and dropped: the writer is not blocked


def test_disable_output_cap(client):
    result = exec_call(client, {"command": ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' b"],
                                "disableOutputCap": True})
    assert len(result["stdout"]) == 3000000


def test_signal_exit_code(client):
    result = exec_call(client, {"command": ["sh", "-c", "kill -TERM $$"]})
    assert result["exitCode"] == 128 + signal.SIGTERM


def test_sigpipe_is_default_in_children(client):
    result = exec_call(client, {"command": ["sh", "-c", "grep SigIgn /proc/self/status"]})
    mask = int(result["stdout"].split()[1], 16)
    assert mask & (1 << (signal.SIGPIPE - 1)) == 0
    result = exec_call(client, {"command": ["sh", "-c", "grep SigBlk /proc/self/status"]})
    assert int(result["stdout"].split()[1], 16) == 0


def test_stdin_is_null_without_streaming(client):
    result = exec_call(client, {"command": ["sh", "-c", "cat; echo end"]})
    assert result["stdout"] == "end\n"


# --------------------------------------------------------------------------------------
# validation (codex-behaviour.md 3.2)


@pytest.mark.parametrize("params,code,message", [
    ({"command": []}, INVALID_REQUEST, "command must not be empty"),
    ({"command": ["true"], "sandboxPolicy": FULL, "permissionProfile": ":read-only"}, INVALID_REQUEST,
     "`permissionProfile` cannot be combined with `sandboxPolicy`"),
    ({"command": ["true"], "size": {"rows": 10, "cols": 10}}, INVALID_PARAMS, "command/exec size requires tty: true"),
    ({"command": ["true"], "processId": "p", "tty": True, "size": {"rows": 0, "cols": 10}}, INVALID_PARAMS,
     "command/exec size rows and cols must be greater than 0"),
    ({"command": ["true"], "outputBytesCap": 5, "disableOutputCap": True}, INVALID_PARAMS,
     "command/exec cannot set both outputBytesCap and disableOutputCap"),
    ({"command": ["true"], "timeoutMs": 5, "disableTimeout": True}, INVALID_PARAMS,
     "command/exec cannot set both timeoutMs and disableTimeout"),
    ({"command": ["true"], "timeoutMs": -1}, INVALID_PARAMS, "command/exec timeoutMs must be non-negative, got -1"),
    ({"command": ["true"], "streamStdoutStderr": True}, INVALID_REQUEST,
     "command/exec tty or streaming requires a client-supplied processId"),
    ({"command": ["true"], "streamStdin": True}, INVALID_REQUEST,
     "command/exec tty or streaming requires a client-supplied processId"),
    ({"command": ["true"], "tty": True}, INVALID_REQUEST,
     "command/exec tty or streaming requires a client-supplied processId"),
])
def test_validation(client, params, code, message):
    err = exec_error(client, params)
    assert err == {"code": code, "message": message}


@pytest.mark.parametrize("params", [
    {},
    {"command": "true"},
    {"command": ["true", 1]},
    {"command": ["true"], "tty": "yes"},
    {"command": ["true"], "env": {"A": 1}},
    {"command": ["true"], "timeoutMs": "5"},
    {"command": ["true"], "outputBytesCap": -1},
    {"command": ["true"], "processId": 7},
])
def test_wrong_types_are_invalid_requests(client, params):
    """The reference's deserializer errors are -32600 "Invalid request: …"."""
    err = exec_error(client, params)
    assert err["code"] == INVALID_REQUEST, err
    assert err["message"].startswith("Invalid request: "), err


def test_duplicate_process_id(client):
    start(client, {"command": ["sleep", "30"], "processId": "p", "streamStdoutStderr": True}, "a")
    wait_until(lambda: running(client, "p"), 5, what="p running")
    err = exec_error(client, {"command": ["true"], "processId": "p", "sandboxPolicy": FULL})
    assert err == {"code": INVALID_REQUEST, "message": 'duplicate active command/exec process id: "p"'}
    assert client.call("command/exec/terminate", {"processId": "p"}) == {}
    msg, _, _ = collect(client, "a")
    assert msg["result"]["exitCode"] == 137


def running(client, process_id):
    """Whether @process_id is active: a resize of a non-tty answers 'failed to resize' only then."""
    msg = client.request("command/exec/resize", {"processId": process_id, "size": {"rows": 5, "cols": 5}})
    return "result" in msg or "failed to resize" in msg["error"]["message"]


def test_write_requires_a_field(client):
    msg = client.request("command/exec/write", {"processId": "x"})
    assert msg["error"] == {"code": INVALID_PARAMS, "message": "command/exec/write requires deltaBase64 or closeStdin"}


def test_write_bad_base64(client):
    msg = client.request("command/exec/write", {"processId": "x", "deltaBase64": "!!!notbase64"})
    assert msg["error"] == {"code": INVALID_PARAMS, "message": "invalid deltaBase64: Invalid symbol 33, offset 0."}


def test_unknown_process_id(client):
    for method, extra in [("command/exec/write", {"closeStdin": True}), ("command/exec/terminate", {}),
                          ("command/exec/resize", {"size": {"rows": 5, "cols": 5}})]:
        msg = client.request(method, {"processId": "ghost", **extra})
        assert msg["error"] == {"code": INVALID_REQUEST, "message": 'no active command/exec for process id "ghost"'}, method


def test_write_without_stdin_streaming(client):
    start(client, {"command": ["sleep", "30"], "processId": "s", "streamStdoutStderr": True}, "a")
    wait_until(lambda: running(client, "s"), 5, what="s running")
    msg = client.request("command/exec/write", {"processId": "s", "deltaBase64": "aGk="})
    assert msg["error"] == {"code": INVALID_REQUEST, "message": "stdin streaming is not enabled for this command/exec"}
    msg = client.request("command/exec/resize", {"processId": "s", "size": {"rows": 5, "cols": 5}})
    assert msg["error"] == {"code": INVALID_REQUEST, "message": "failed to resize PTY: process is not attached to a PTY"}
    client.call("command/exec/terminate", {"processId": "s"})
    collect(client, "a")


# --------------------------------------------------------------------------------------
# streaming


def test_streamed_output_is_byte_exact(client):
    payload = bytes(range(256)) * 1000
    script = "import sys; sys.stdout.buffer.write(bytes(range(256))*1000); sys.stderr.buffer.write(b'\\x00\\xffe')"
    start(client, {"command": ["/usr/bin/python3", "-c", script], "processId": "b", "streamStdoutStderr": True}, 1)
    msg, out, caps = collect(client, 1)
    assert msg["result"] == {"exitCode": 0, "stdout": "", "stderr": ""}
    assert out["stdout"] == payload
    assert out["stderr"] == b"\x00\xffe"
    assert not any(caps["stdout"]) and not any(caps["stderr"])


def test_streamed_chunks_are_at_most_64k(client):
    start(client, {"command": ["head", "-c", "1000000", "/dev/zero"], "processId": "z", "streamStdoutStderr": True}, 1)
    sizes = []
    while True:
        msg = client.recv(timeout=30)
        if msg.get("method") == "command/exec/outputDelta":
            sizes.append(len(base64.b64decode(msg["params"]["deltaBase64"])))
            continue
        assert msg["id"] == 1
        break
    assert sum(sizes) == 1000000
    assert max(sizes) <= 65536
    assert len(sizes) >= 1000000 // 65536


def test_streamed_cap_marks_last_chunk(client):
    start(client, {"command": ["sh", "-c", "printf abcdef; sleep 0.1; printf more"], "processId": "c",
                   "streamStdoutStderr": True, "outputBytesCap": 3}, 1)
    msg, out, caps = collect(client, 1)
    assert out["stdout"] == b"abc"
    assert caps["stdout"][-1] is True
    assert caps["stdout"].count(True) == 1
    assert msg["result"]["exitCode"] == 0


def test_stdin_write_then_close(client):
    start(client, {"command": ["sh", "-c", "cat; echo eof"], "processId": "w", "streamStdin": True,
                   "streamStdoutStderr": True}, 1)
    data = bytes(range(256)) * 4
    assert client.call("command/exec/write", {"processId": "w", "deltaBase64": base64.b64encode(data).decode()}) == {}
    assert client.call("command/exec/write", {"processId": "w", "closeStdin": True}) == {}
    msg, out, _ = collect(client, 1)
    assert out["stdout"] == data + b"eof\n"
    assert msg["result"]["exitCode"] == 0


def test_stdin_streamed_output_buffered(client):
    start(client, {"command": ["cat"], "processId": "wb", "streamStdin": True}, 1)
    client.call("command/exec/write", {"processId": "wb", "deltaBase64": base64.b64encode(b"buffered").decode(),
                                       "closeStdin": True})
    msg = client.wait_response(1, timeout=10)
    assert msg["result"] == {"exitCode": 0, "stdout": "buffered", "stderr": ""}


def test_write_after_close(client):
    start(client, {"command": ["sleep", "30"], "processId": "wc", "streamStdin": True}, 1)
    client.call("command/exec/write", {"processId": "wc", "closeStdin": True})
    msg = client.request("command/exec/write", {"processId": "wc", "deltaBase64": "aGk="})
    assert msg["error"] == {"code": INVALID_REQUEST, "message": "stdin is already closed"}
    client.call("command/exec/terminate", {"processId": "wc"})
    client.wait_response(1, timeout=10)


def test_large_stdin_write_is_split_and_ordered(client):
    data = os.urandom(3 * 1024 * 1024 + 17)
    start(client, {"command": ["sha256sum"], "processId": "big", "streamStdin": True}, 1)
    client.call("command/exec/write", {"processId": "big", "deltaBase64": base64.b64encode(data).decode(),
                                       "closeStdin": True}, timeout=30)
    import hashlib
    msg = client.wait_response(1, timeout=30)
    assert msg["result"]["stdout"].split()[0] == hashlib.sha256(data).hexdigest()


def test_terminate_kills_the_process_group(client, tmp_path):
    pidfile = tmp_path / "grandchild"
    start(client, {"command": ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], "processId": "t",
                   "streamStdoutStderr": True}, 1)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, what="grandchild pid")
    grandchild = int(pidfile.read_text())
    assert client.call("command/exec/terminate", {"processId": "t"}) == {}
    msg, _, _ = collect(client, 1)
    assert msg["result"]["exitCode"] == 137
    wait_until(lambda: not alive(grandchild), 5, what="grandchild killed")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:  # gone, or going while we read (ESRCH)
        return False


def test_grandchild_holding_pipes_cannot_hold_the_response(client):
    t0 = time.monotonic()
    result = exec_call(client, {"command": ["sh", "-c", "sleep 30 & echo started"]})
    elapsed = time.monotonic() - t0
    assert result["stdout"] == "started\n"
    assert result["exitCode"] == 0
    assert 1.5 < elapsed < 6, elapsed


def test_timeout_kills_the_group(client, tmp_path):
    pidfile = tmp_path / "gc"
    result = exec_call(client, {"command": ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], "timeoutMs": 500})
    assert result["exitCode"] == 124
    wait_until(lambda: not alive(int(pidfile.read_text())), 5, what="grandchild killed on timeout")


# --------------------------------------------------------------------------------------
# PTY


def test_tty_reports_a_terminal(client):
    start(client, {"command": ["sh", "-c", "test -t 0 && test -t 1 && echo tty; stty size"], "processId": "tty",
                   "tty": True, "size": {"rows": 10, "cols": 20}}, 1)
    msg, out, _ = collect(client, 1)
    assert msg["result"] == {"exitCode": 0, "stdout": "", "stderr": ""}
    text = out["stdout"].replace(b"\r\n", b"\n")
    assert text == b"tty\n10 20\n"
    assert out["stderr"] == b""


def test_tty_echo_and_resize(client):
    start(client, {"command": ["sh", "-c", "read line; echo got:$line; stty size; read again; stty size"],
                   "processId": "pty", "tty": True}, 1)
    client.call("command/exec/write", {"processId": "pty", "deltaBase64": base64.b64encode(b"hello\n").decode()})
    seen = b"".join(base64.b64decode(m["params"]["deltaBase64"]) for m in client.notifications
                    if m.get("method") == "command/exec/outputDelta")
    client.notifications.clear()
    while b"got:hello" not in seen or seen.count(b"\n") < 3:
        msg = client.recv(timeout=10)
        assert msg.get("method") == "command/exec/outputDelta", msg
        seen += base64.b64decode(msg["params"]["deltaBase64"])
    assert b"hello\r\n" in seen  # the terminal echoed the input
    assert b"24 80" in seen  # the default size
    assert client.call("command/exec/resize", {"processId": "pty", "size": {"rows": 33, "cols": 99}}) == {}
    client.call("command/exec/write", {"processId": "pty", "deltaBase64": base64.b64encode(b"x\n").decode()})
    msg, out, _ = collect(client, 1)
    assert b"33 99" in out["stdout"]
    assert msg["result"]["exitCode"] == 0


def test_tty_resize_validation(client):
    start(client, {"command": ["sleep", "30"], "processId": "rz", "tty": True}, 1)
    wait_until(lambda: running(client, "rz"), 5, what="rz running")
    msg = client.request("command/exec/resize", {"processId": "rz", "size": {"rows": 0, "cols": 5}})
    assert msg["error"] == {"code": INVALID_PARAMS, "message": "command/exec size rows and cols must be greater than 0"}
    client.call("command/exec/terminate", {"processId": "rz"})
    collect(client, 1)


# --------------------------------------------------------------------------------------
# connections


def test_process_ids_are_connection_scoped(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"])
    a, b = proc.ws_client(), proc.ws_client()
    a.initialize()
    b.initialize()
    for c in (a, b):
        start(c, {"command": ["sh", "-c", "sleep 0.3; echo same"], "processId": "same", "streamStdoutStderr": True}, 1)
    for c in (a, b):
        msg, out, _ = collect(c, 1)
        assert out["stdout"] == b"same\n"
        assert msg["result"]["exitCode"] == 0


def test_disconnect_kills_the_process_group(agentd_factory, tmp_path):
    proc = agentd_factory(["ws://127.0.0.1:0"])
    a = proc.ws_client()
    a.initialize()
    pidfile = tmp_path / "pids"
    start(a, {"command": ["sh", "-c", f"sleep 60 & echo $$ $! > {pidfile}; wait"], "processId": "d",
              "streamStdoutStderr": True}, 1)
    wait_until(lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2, 5, what="pids written")
    pids = [int(x) for x in pidfile.read_text().split()]
    a.close()
    wait_until(lambda: not any(alive(p) for p in pids), 5, what="process group killed on disconnect")
    b = proc.ws_client()
    b.initialize()
    assert exec_call(b, {"command": ["echo", "still here"]})["stdout"] == "still here\n"


def test_no_environment(agentd_factory):
    proc = agentd_factory(env={"CODEX_EXEC_SERVER_URL": "none"})
    client = proc.stdio
    err = exec_error(client, {"command": ["true"]})
    assert err == {"code": INTERNAL_ERROR, "message": "local environment is not configured"}
    msg = client.request("fs/readFile", {"path": "/etc/hostname"})
    assert msg["error"] == {"code": INTERNAL_ERROR, "message": "local filesystem is not configured"}
    msg = client.request("fs/getMetadata", {"path": "/"})
    assert msg["error"] == {"code": INTERNAL_ERROR, "message": "local filesystem is not configured"}
    msg = client.request("fs/watch", {"watchId": "w", "path": "/tmp"})
    assert msg["error"] == {"code": INTERNAL_ERROR, "message": "local filesystem is not configured"}
    # Validation still comes first, as in the reference.
    assert exec_error(client, {"command": []}) == {"code": INVALID_REQUEST, "message": "command must not be empty"}


def test_execd_restart_fails_running_commands(agentd, client):
    start(client, {"command": ["sleep", "30"], "processId": "k", "streamStdoutStderr": True}, 1)
    wait_until(lambda: running(client, "k"), 5, what="k running")
    health = client.health("execd")
    os.kill(health["pid"], signal.SIGKILL)
    msg = client.wait_response(1, timeout=10)
    assert msg["error"]["code"] == INTERNAL_ERROR, msg
    def restarted():
        try:
            return client.health("execd").get("pid") not in (None, health["pid"])
        except RpcError:
            return False
    wait_until(restarted, 10, what="execd restarted")
    assert exec_call(client, {"command": ["echo", "back"]})["stdout"] == "back\n"


def spawner_of(execd_pid):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().split(")")[1].split()
                with open(f"/proc/{entry}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if int(fields[1]) == execd_pid and comm == "execd-spawner":
                return int(entry)
    return None


def test_spawner_death_fails_running_commands_and_execd_comes_back(agentd, client, tmp_path):
    """Without its spawner execd cannot run anything: it exits (killing what runs), the supervisor
    starts a fresh execd and spawner, and the client's running command gets an error, not a hang."""
    pidfile = tmp_path / "pid"
    start(client, {"command": ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], "processId": "s",
                   "streamStdoutStderr": True}, 1)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, what="command running")
    command = int(pidfile.read_text())
    execd_pid = client.health("execd")["pid"]
    spawner = spawner_of(execd_pid)
    assert spawner is not None
    os.kill(spawner, signal.SIGKILL)
    msg = client.wait_response(1, timeout=10)
    assert msg["error"]["code"] == INTERNAL_ERROR, msg
    wait_until(lambda: not alive(command), 5, what="the command killed with its execd")

    def restarted():
        try:
            return client.health("execd").get("pid") not in (None, execd_pid)
        except RpcError:
            return False
    wait_until(restarted, 10, what="execd restarted")
    assert exec_call(client, {"command": ["echo", "again"]})["stdout"] == "again\n"
