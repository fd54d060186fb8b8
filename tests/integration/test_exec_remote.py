# SPDX-License-Identifier: MIT
"""The remote environment: agentd with CODEX_EXEC_SERVER_URL=ws://… runs command/exec and fs/*
on a second execd started as an exec-server (execd --listen ws://127.0.0.1:0) on loopback.

Reference: ../shared/reference/codex-behaviour.md section 4 and issue 5. Unlike the reference,
whose app-server methods always use the local environment, agentd sends its clients' command/exec
and fs/* to the remote exec-server: that is the point of a remote deployment. Only a run that asks
for no sandbox can be enforced exactly there; any other policy is refused (fail closed).
"""
import base64
import os
import signal
import subprocess
import time

import pytest

from conftest import BUILDDIR, INTERNAL_ERROR, INVALID_REQUEST, RpcError, wait_until

FULL = {"type": "dangerFullAccess"}


class ExecServer:
    """execd --listen ws://127.0.0.1:0, reaped at the end."""

    def __init__(self, tmp_path):
        self.stderr = open(tmp_path / "exec-server.stderr", "w+b")
        self.proc = subprocess.Popen([str(BUILDDIR / "execd" / "execd"), "--listen", "ws://127.0.0.1:0"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=str(tmp_path))
        line = self.proc.stdout.readline().decode().strip()
        assert line.startswith("ws://127.0.0.1:"), line
        self.url = line

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def exec_server(tmp_path):
    server = ExecServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def client(agentd_factory, exec_server):
    proc = agentd_factory(env={"CODEX_EXEC_SERVER_URL": exec_server.url})
    return proc.stdio


def collect(client, request_id, timeout=30):
    out = {"stdout": b"", "stderr": b""}
    caps = []
    deadline = time.monotonic() + timeout
    early = [m for m in client.notifications if m.get("method") == "command/exec/outputDelta"]
    client.notifications[:] = [m for m in client.notifications if m not in early]
    while True:
        msg = early.pop(0) if early else client.recv(timeout=max(0.1, deadline - time.monotonic()))
        if msg.get("method") == "command/exec/outputDelta":
            out[msg["params"]["stream"]] += base64.b64decode(msg["params"]["deltaBase64"])
            caps.append(msg["params"]["capReached"])
            continue
        assert msg.get("id") == request_id, msg
        return msg, out, caps


def run(client, params, timeout=30):
    params = dict(params)
    params.setdefault("sandboxPolicy", FULL)
    return client.call("command/exec", params, timeout=timeout)


def children_pids(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().split(")")[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_buffered_run_happens_on_the_exec_server(client, exec_server):
    result = run(client, {"command": ["sh", "-c", 'echo "$PPID"; echo err >&2; exit 3']})
    assert result["exitCode"] == 3
    assert result["stderr"] == "err\n"
    # The command's parent is the exec-server's spawner, not the local execd.
    spawners = children_pids(exec_server.proc.pid)
    assert int(result["stdout"]) in spawners


def test_streamed_binary_output_byte_exact(client):
    script = "import sys; sys.stdout.buffer.write(bytes(range(256))*300); sys.stderr.buffer.write(b'\\xff\\x00')"
    client.send({"id": 1, "method": "command/exec", "params": {
        "command": ["/usr/bin/python3", "-c", script], "processId": "b", "streamStdoutStderr": True,
        "sandboxPolicy": FULL}})
    msg, out, caps = collect(client, 1)
    assert msg["result"] == {"exitCode": 0, "stdout": "", "stderr": ""}
    assert out["stdout"] == bytes(range(256)) * 300
    assert out["stderr"] == b"\xff\x00"
    assert not any(caps)


def test_cap_and_timeout_are_applied(client):
    assert run(client, {"command": ["printf", "abcdef"], "outputBytesCap": 3})["stdout"] == "abc"
    t0 = time.monotonic()
    assert run(client, {"command": ["sleep", "30"], "timeoutMs": 300})["exitCode"] == 124
    assert time.monotonic() - t0 < 5


def test_stdin_write_close_and_terminate(client):
    client.send({"id": 1, "method": "command/exec", "params": {
        "command": ["cat"], "processId": "c", "streamStdin": True, "streamStdoutStderr": True, "sandboxPolicy": FULL}})
    assert client.call("command/exec/write", {"processId": "c", "deltaBase64": base64.b64encode(b"remote\n").decode(),
                                              "closeStdin": True}) == {}
    msg, out, _ = collect(client, 1)
    assert out["stdout"] == b"remote\n"
    assert msg["result"]["exitCode"] == 0
    client.send({"id": 2, "method": "command/exec", "params": {
        "command": ["sleep", "30"], "processId": "t", "streamStdoutStderr": True, "sandboxPolicy": FULL}})
    assert client.call("command/exec/terminate", {"processId": "t"}) == {}
    msg, _, _ = collect(client, 2)
    assert msg["result"]["exitCode"] == 137


def test_sandboxed_policies_are_refused(client):
    for params in ({"sandboxPolicy": {"type": "readOnly"}}, {"permissionProfile": ":workspace"}, {}):
        msg = client.request("command/exec", {"command": ["true"], **params})
        assert msg["error"]["code"] == INVALID_REQUEST, msg
        assert "only dangerFullAccess can be enforced" in msg["error"]["message"], msg


def test_fs_methods_on_the_exec_server(client, tmp_path):
    d = tmp_path / "remote fs"
    d.mkdir()
    data = bytes(range(256))
    path = str(d / "f")
    assert client.call("fs/writeFile", {"path": path, "dataBase64": base64.b64encode(data).decode()}) == {}
    assert (d / "f").read_bytes() == data
    assert base64.b64decode(client.call("fs/readFile", {"path": path})["dataBase64"]) == data
    meta = client.call("fs/getMetadata", {"path": path})
    assert meta["isFile"] and not meta["isDirectory"] and not meta["isSymlink"]
    assert set(meta) == {"isDirectory", "isFile", "isSymlink", "createdAtMs", "modifiedAtMs"}
    assert client.call("fs/createDirectory", {"path": str(d / "a" / "b")}) == {}
    names = {e["fileName"] for e in client.call("fs/readDirectory", {"path": str(d)})["entries"]}
    assert names == {"f", "a"}
    assert client.call("fs/copy", {"sourcePath": path, "destinationPath": str(d / "g")}) == {}
    assert (d / "g").read_bytes() == data
    msg = client.request("fs/copy", {"sourcePath": str(d), "destinationPath": str(d / "a" / "inside"),
                                     "recursive": True})
    assert msg["error"] == {"code": INVALID_REQUEST,
                            "message": "fs/copy cannot copy a directory to itself or one of its descendants"}
    msg = client.request("fs/readFile", {"path": str(d / "missing")})
    assert msg["error"] == {"code": INTERNAL_ERROR, "message": "No such file or directory (os error 2)"}
    assert client.call("fs/remove", {"path": str(d / "a")}) == {}
    assert not (d / "a").exists()


def test_exec_server_killed_mid_stream(client, exec_server):
    client.send({"id": 1, "method": "command/exec", "params": {
        "command": ["sh", "-c", "while :; do echo tick; sleep 0.05; done"], "processId": "k",
        "streamStdoutStderr": True, "disableTimeout": True, "sandboxPolicy": FULL}})
    first = client.recv(timeout=10)
    assert first.get("method") == "command/exec/outputDelta", first
    exec_server.kill()
    while True:
        msg = client.recv(timeout=10)
        if msg.get("method") == "command/exec/outputDelta":
            continue
        break
    assert msg["id"] == 1
    assert msg["error"]["code"] == INTERNAL_ERROR, msg
    assert "exec-server" in msg["error"]["message"]
    # agentd is still up: it answers, and a new run fails cleanly instead of hanging.
    assert client.health()
    msg = client.request("command/exec", {"command": ["true"], "sandboxPolicy": FULL}, timeout=40)
    assert msg["error"]["code"] == INTERNAL_ERROR, msg


def test_disconnect_terminates_the_remote_run(agentd_factory, exec_server, tmp_path):
    proc = agentd_factory(["ws://127.0.0.1:0"], env={"CODEX_EXEC_SERVER_URL": exec_server.url})
    a = proc.ws_client()
    a.initialize()
    pidfile = tmp_path / "pid"
    a.send({"id": 1, "method": "command/exec", "params": {
        "command": ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], "processId": "d",
        "streamStdoutStderr": True, "sandboxPolicy": FULL}})
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="remote pid")
    pid = int(pidfile.read_text())
    a.close()
    wait_until(lambda: not alive(pid), 10, what="remote run terminated")


def alive(pid):
    """Running (not gone, not a zombie); the process may vanish while we look."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False
