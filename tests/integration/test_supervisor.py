# SPDX-License-Identifier: MIT
"""Helper supervision (crash, restart, backoff) and agentd's own orderly shutdown."""
import json
import os
import signal
import threading
import time

import pytest

from conftest import HELPERS, INTERNAL_ERROR, ConnectionClosed, connect_unix, flood_without_reading, proc_stat, wait_until, ws_frame

# A health call is answered by the broker within its 5 s deadline at worst; a dead
# helper must be reported at once, so anything close to that deadline counts as a hang.
PROMPT = 2.0


class Pinger(threading.Thread):
    """Keeps one already-open connection busy with requests; records failures and latency."""

    def __init__(self, client):
        super().__init__(daemon=True, name="pinger")
        self.client = client
        self.stop = threading.Event()
        self.count = 0
        self.failures = []
        self.worst = 0.0

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                result = self.client.health(timeout=PROMPT)
                assert result["status"] == "ok", result
            except Exception as e:  # noqa: BLE001 - everything is a failure here
                self.failures.append(f"{type(e).__name__}: {e}")
                return
            self.worst = max(self.worst, time.monotonic() - started)
            self.count += 1
            self.stop.wait(0.01)

    def finish(self):
        self.stop.set()
        self.join(timeout=PROMPT + 1)
        assert not self.is_alive(), "the pinger connection hung"
        assert not self.failures, f"the other connection was not served: {self.failures}"
        return self.count


def _services(client):
    return {s["name"]: s for s in client.health()["services"]}


def _kill_and_check(proc, killer, service):
    before = _services(killer)[service]
    assert before["registered"] and before["pid"] > 0, before
    old_pid = before["pid"]
    os.kill(old_pid, signal.SIGKILL)
    # Soon after: either "unavailable" or an answer from the new helper, never a hang.
    started = time.monotonic()
    msg = killer.request("agentd/health", {"service": service}, timeout=PROMPT)
    assert time.monotonic() - started < PROMPT
    if "error" in msg:
        assert msg["error"]["code"] == INTERNAL_ERROR, msg
        assert msg["error"]["message"] == f"service {service} is unavailable", msg
    else:
        assert msg["result"]["service"] == service
        assert msg["result"]["pid"] != old_pid, "answered by a helper that was SIGKILLed"

    def restarted():
        entry = _services(killer)[service]
        return entry if entry["registered"] and entry["pid"] not in (0, old_pid) else None

    after = wait_until(restarted, 5, interval=0.05, what=f"{service} to be restarted")
    assert after["restarts"] == before["restarts"] + 1, (before, after)
    # The old process was reaped by agentd (not left a zombie), the new one answers.
    wait_until(lambda: proc_stat(old_pid) is None or proc_stat(old_pid)[1] != proc.pid, 2,
               what=f"the killed {service} (pid {old_pid}) to be reaped")
    answer = killer.health(service)
    assert answer["pid"] == after["pid"] and answer["status"] == "ok", answer
    return old_pid, after["pid"]


def test_kill_each_helper_in_turn(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"])
    killer, bystander = proc.ws_client(), proc.ws_client()
    killer.initialize(name="killer")
    bystander.initialize(name="bystander")
    pinger = Pinger(bystander)
    pinger.start()
    try:
        seen = set()
        for service in HELPERS:
            old_pid, new_pid = _kill_and_check(proc, killer, service)
            seen.update((old_pid, new_pid))
        # Every other helper is still the one that was running before.
        final = _services(killer)
        assert all(s["registered"] and s["restarts"] == 1 for s in final.values()), final
    finally:
        served = pinger.finish()
    assert served > 0
    assert len(seen) == 2 * len(HELPERS)


def test_kill_same_helper_twice(stdio_agentd):
    c = stdio_agentd.stdio
    _kill_and_check(stdio_agentd, c, "execd")
    _kill_and_check(stdio_agentd, c, "execd")
    assert _services(c)["execd"]["restarts"] == 2


@pytest.mark.parametrize("service", HELPERS)
def test_health_call_in_flight_when_helper_dies(stdio_agentd, service):
    c = stdio_agentd.stdio
    pid = _services(c)[service]["pid"]
    # Stop the helper so the call cannot be answered, send the call, then kill it.
    os.kill(pid, signal.SIGSTOP)
    try:
        c.send({"id": "in-flight", "method": "agentd/health", "params": {"service": service}})
        c.sync()  # the stopped helper cannot answer; local requests are answered at once
    finally:
        os.kill(pid, signal.SIGKILL)
    msg = c.wait_response("in-flight", timeout=PROMPT)
    assert msg["error"]["code"] == INTERNAL_ERROR and "unavailable" in msg["error"]["message"], msg
    wait_until(lambda: _services(c)[service]["registered"] and _services(c)[service]["pid"] != pid, 5,
               what=f"{service} to come back")


def test_sigterm_shuts_down_cleanly(agentd_factory, tmp_path):
    unix_path = tmp_path / "term.sock"
    proc = agentd_factory(["ws://127.0.0.1:0", f"unix://{unix_path}"])
    ws = proc.ws_client()
    ws.initialize()
    ux = proc.unix_client(unix_path)
    ux.initialize()
    helpers = [s["pid"] for s in ws.health()["services"]]
    sockets = sorted(p.name for p in proc.runtime_dir.iterdir() if p.name != "sandbox")  # sandboxd's masks
    assert sockets == sorted(f"{h}.sock" for h in HELPERS), sockets
    assert unix_path.exists()
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    ws.wait_closed(timeout=5)
    assert ws.close_info[0] == 1001
    ux.wait_closed(timeout=5)
    assert list(proc.runtime_dir.iterdir()) == []
    assert not unix_path.exists()
    for pid in helpers:
        assert proc_stat(pid) is None, f"helper {pid} remains: {proc_stat(pid)}"


def test_sigint_shuts_down_cleanly(stdio_agentd):
    helpers = [s["pid"] for s in stdio_agentd.stdio.health()["services"]]
    stdio_agentd.signal(signal.SIGINT)
    assert stdio_agentd.wait(timeout=10) == 0
    assert list(stdio_agentd.runtime_dir.iterdir()) == []
    assert all(proc_stat(pid) is None for pid in helpers)


def test_stdin_eof_shuts_down_stdio_only_server(stdio_agentd):
    helpers = [s["pid"] for s in stdio_agentd.stdio.health()["services"]]
    stdio_agentd.stdio.close_stdin()
    assert stdio_agentd.wait(timeout=10) == 0
    with pytest.raises(ConnectionClosed):
        stdio_agentd.stdio.recv(timeout=5)
    assert list(stdio_agentd.runtime_dir.iterdir()) == []
    assert all(proc_stat(pid) is None for pid in helpers)


def test_sigterm_while_a_helper_restarts(stdio_agentd):
    c = stdio_agentd.stdio
    pid = _services(c)["watchd"]["pid"]
    os.kill(pid, signal.SIGKILL)
    stdio_agentd.signal(signal.SIGTERM)
    assert stdio_agentd.wait(timeout=10) == 0
    assert list(stdio_agentd.runtime_dir.iterdir()) == []


def test_sigterm_with_a_stuck_helper(stdio_agentd):
    """A helper that ignores SIGTERM is SIGKILLed after the grace period; agentd still exits 0."""
    c = stdio_agentd.stdio
    pid = _services(c)["authd"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    stdio_agentd.signal(signal.SIGTERM)
    assert stdio_agentd.wait(timeout=10) == 0
    assert time.monotonic() - started < 8
    assert proc_stat(pid) is None
    assert list(stdio_agentd.runtime_dir.iterdir()) == []


def test_sighup_reloads_config_for_new_connections(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"])
    old = proc.ws_client()
    old.initialize()
    (proc.codex_home / "config.toml").write_text("[agentd]\nmax_message_bytes = 4096\n")
    proc.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in proc.stderr(), 5, what="the SIGHUP reload log")
    big = json.dumps({"id": "big", "method": "agentd/health", "params": {"p": "x" * 5000}})
    new = proc.ws_client()
    new.initialize()
    new.send_raw(big)
    msg = new.recv()
    assert msg["id"] == "big" and msg["error"]["code"] == -32600, msg
    # A broken file on the next SIGHUP keeps the old configuration and the server.
    (proc.codex_home / "config.toml").write_text("[agentd\n")
    proc.signal(signal.SIGHUP)
    wait_until(lambda: "keeping the old configuration" in proc.stderr(), 5, what="the SIGHUP error log")
    assert old.health()["status"] == "ok"
    newer = proc.ws_client()
    newer.initialize()
    newer.send_raw(big)
    assert newer.recv()["error"]["code"] == -32600


@pytest.mark.parametrize("limit", ["default", "1MiB"])
def test_sigterm_with_a_unix_client_that_does_not_read(agentd_factory, tmp_path, limit):
    """Shutdown must not wait for, nor trip over, output a client never reads."""
    path = tmp_path / "lazy.sock"
    config = "[agentd]\nmax_write_queue_bytes = 1048576\n" if limit == "1MiB" else None
    proc = agentd_factory([f"unix://{path}"], config=config)
    lazy = connect_unix(path)
    request = (json.dumps({"id": 1, "method": "no/" + "m" * 4000}) + "\n").encode()
    try:
        flood_without_reading(lazy, request * 16, duration=1.5)
        proc.expect_status = None  # checked here
        proc.signal(signal.SIGTERM)
        status = proc.wait(timeout=10)
    finally:
        lazy.close()
    assert status == 0, f"agentd exited with {status} on SIGTERM:\n{proc.stderr()[-1500:]}"


def test_sigterm_with_a_ws_client_that_does_not_read(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"], config="[agentd]\nmax_write_queue_bytes = 1048576\n")
    lazy = proc.raw_ws()
    frame = ws_frame(0x1, json.dumps({"id": 1, "method": "no/" + "m" * 4000}))
    try:
        flood_without_reading(lazy.sock, frame * 16, duration=1.5)
        proc.expect_status = None  # checked here
        proc.signal(signal.SIGTERM)
        status = proc.wait(timeout=10)
    finally:
        lazy.close()
    assert status == 0, f"agentd exited with {status} on SIGTERM:\n{proc.stderr()[-1500:]}"


def test_stdin_eof_answers_pending_requests_first(stdio_agentd):
    """Requests still waiting on a helper are answered before an EOF-triggered shutdown."""
    c = stdio_agentd.stdio
    pid = _services(c)["execd"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # hold the answer back
    try:
        c.send({"id": "pending", "method": "agentd/health", "params": {"service": "execd"}})
        c.send({"id": "local", "method": "agentd/health"})
        assert c.wait_response("local")["result"]["status"] == "ok"
        c.close_stdin()
        c.expect_silence(0.3)
    finally:
        os.kill(pid, signal.SIGCONT)
    msg = c.wait_response("pending", timeout=PROMPT)
    assert msg["result"]["service"] == "execd", msg
    assert stdio_agentd.wait(timeout=10) == 0


def test_health_of_a_hung_helper_times_out(agentd_factory):
    """A helper that never answers costs the caller the 5 s health deadline, not a hang."""
    proc = agentd_factory(["ws://127.0.0.1:0"])
    c, other = proc.ws_client(), proc.ws_client()
    c.initialize()
    other.initialize()
    pid = _services(c)["sandboxd"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        c.send({"id": "hung", "method": "agentd/health", "params": {"service": "sandboxd"}})
        # Meanwhile every other request, here and elsewhere, is served at once.
        assert other.health()["status"] == "ok"
        assert c.health("execd")["status"] == "ok"
        msg = c.wait_response("hung", timeout=8)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert msg["error"]["code"] == INTERNAL_ERROR, msg
    assert "sandboxd" in msg["error"]["message"], msg
    assert 4.0 <= elapsed < 7.0, elapsed
    assert c.health("sandboxd")["status"] == "ok"
