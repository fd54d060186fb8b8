# SPDX-License-Identifier: MIT
"""broker-call (tests/broker_call.c) and its wrapper BrokerCall, tried on the real watchd.

These check the tool the authd tests stand on: requests and their answers, pipelining, events
both ways, credit, the broker's -113 when the daemon is gone, a restart, and a clean stop.
"""
import json
import os
import signal
import subprocess

import pytest

from broker_call import BROKER_CALL_BIN, BUILDDIR, EBADMSG, EHOSTUNREACH, ENOSYS, BrokerCall, mp_pack, mp_unpack

WATCHD = BUILDDIR / "watchd" / "watchd"

pytestmark = pytest.mark.skipif(not BROKER_CALL_BIN.exists(), reason=f"{BROKER_CALL_BIN} not built (make check)")


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def watchd(home, tmp_path):
    # --supervised: the daemon dies with broker-call (PR_SET_PDEATHSIG), as it does with agentd.
    with BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home}, runtime_dir=tmp_path / "run") as bc:
        yield bc


def test_ready_names_the_daemon(watchd, tmp_path):
    assert watchd.pid > 0
    assert os.path.exists(f"/proc/{watchd.pid}")
    assert watchd.runtime_dir == str((tmp_path / "run").resolve())
    assert (tmp_path / "run" / "watchd.sock").exists()


def test_health(watchd):
    status, body = watchd.call("health")
    assert status == 0
    assert body["service"] == "watchd"
    assert body["status"] == "ok"
    assert body["pid"] == watchd.pid
    assert body["watches"] == 0


def test_unknown_method_is_refused(watchd):
    status, body = watchd.call("auth.read", {})
    assert status == ENOSYS
    assert body is None
    # The daemon answers on: the refusal did not cost the link.
    assert watchd.call("health")[0] == 0


def test_a_body_that_is_not_a_map_is_refused(watchd):
    status, _ = watchd.call("health", raw_body=mp_pack([1, 2]))
    assert status == EBADMSG


def test_watch_add_then_a_change_is_an_event(watchd, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    status, body = watchd.call("watch.add", {"watchId": "w1", "path": str(watched)}, connection=7)
    assert (status, body) == (0, {})
    (watched / "new-file").write_text("x")
    event = watchd.wait_event("fs.changed", timeout=5)
    assert event["connection"] == 7
    assert event["body"]["watchId"] == "w1"
    assert str(watched / "new-file") in event["body"]["paths"]
    # The answer carries the request's connection id back.
    line = watchd.request("watch.remove", {"watchId": "w1"}, connection=7)
    assert (line["status"], line["connection"]) == (0, 7)


def test_credit_lets_the_next_batch_out(watchd, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    assert watchd.call("watch.add", {"watchId": "w", "path": str(watched)}, connection=1)[0] == 0
    (watched / "a").write_text("1")
    watchd.wait_event("fs.changed")
    # Window of 1: without credit the second change is held back.
    (watched / "b").write_text("2")
    watchd.expect_no_event("fs.changed", window=0.8)
    watchd.send_credit({"watchId": "w"}, connection=1)
    event = watchd.wait_event("fs.changed")
    assert str(watched / "b") in event["body"]["paths"]


def test_conn_closed_event_drops_the_watches(watchd, tmp_path):
    assert watchd.call("watch.add", {"watchId": "w", "path": str(tmp_path)}, connection=4)[0] == 0
    assert watchd.call("health")[1]["watches"] == 1
    watchd.send_event("conn.closed", {}, connection=4)
    # Events are not answered; the next request's answer comes after the event was handled.
    assert watchd.call("health")[1]["watches"] == 0


def test_fifty_pipelined_health_calls_are_all_answered(watchd):
    answers = watchd.call_many([("health", {})] * 50)
    assert len(answers) == 50
    assert all(status == 0 and body["service"] == "watchd" for status, body in answers)


def test_pipelined_answers_are_matched_to_their_requests(watchd, tmp_path):
    calls = []
    for i in range(20):
        calls.append(("watch.add", {"watchId": f"w{i}", "path": str(tmp_path / f"d{i}")}, 2))
        calls.append(("nope", {}))
    answers = watchd.call_many(calls)
    assert [s for s, _ in answers] == [0, ENOSYS] * 20
    assert watchd.call("health")[1]["watches"] == 20


def test_a_bad_input_line_is_an_error_not_a_crash(watchd):
    watchd._send_lines([{"nothing": 1}])
    watchd.wait_line(lambda line: "error" in line and "id" not in line, what="the error line")
    assert watchd.call("health")[0] == 0


def test_daemon_exit_is_reported_and_ends_broker_call(home):
    bc = BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home})
    runtime = bc.runtime_dir
    os.kill(bc.pid, signal.SIGKILL)
    assert bc.wait_exited() == -signal.SIGKILL
    assert bc.proc.wait(10) == 0
    assert bc.close() == -signal.SIGKILL
    # The runtime directory broker-call made is gone with it.
    assert not os.path.exists(runtime)


def test_close_stops_the_daemon_cleanly(home):
    bc = BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home})
    pid = bc.pid
    assert bc.close() == 0
    assert bc.proc.returncode == 0
    assert not os.path.exists(f"/proc/{pid}")


def test_restart_registers_again_and_requests_meanwhile_are_unavailable(home, tmp_path):
    with BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home}, keep=True) as bc:
        first = bc.pid
        os.kill(first, signal.SIGTERM)
        assert bc.wait_exited() == 0
        bc.wait_line(lambda line: line.get("disconnected"), what="the link to drop")
        # Nobody registered: the broker's answer, at once.
        assert bc.call("health") == (EHOSTUNREACH, None)
        second = bc.spawn()
        assert second != first
        assert bc.ready_count == 2
        assert bc.call("health")[1]["pid"] == second


def test_a_daemon_started_by_the_test_registers(home, tmp_path):
    """keep=True: a daemon someone else starts on the same runtime directory is served too."""
    with BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home}, keep=True) as bc:
        os.kill(bc.pid, signal.SIGKILL)
        bc.wait_exited()
        bc.wait_line(lambda line: line.get("disconnected"), what="the link to drop")
        env = dict(os.environ, CODEX_HOME=str(home), AGENTD_RUNTIME_DIR=bc.runtime_dir)
        outside = subprocess.Popen([str(WATCHD)], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert bc.wait_ready(2) == outside.pid
            assert bc.call("health")[1]["pid"] == outside.pid
        finally:
            outside.terminate()
            assert outside.wait(10) == 0
        bc.wait_for(lambda: sum(1 for x in bc.lines if x.get("disconnected")) == 2, what="the second drop")


def test_a_request_in_flight_when_the_daemon_dies_is_answered_113(home, tmp_path):
    """The broker answers what was waiting on a helper that went down; broker-call does the same."""
    with BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home}, keep=True) as bc:
        os.kill(bc.pid, signal.SIGSTOP)  # stopped: the request waits
        req_id = bc.send_request("health")
        os.kill(bc.pid, signal.SIGKILL)
        line = bc.wait_answer(req_id)
        assert line["status"] == EHOSTUNREACH and line["broker"] is True


def test_stdin_eof_waits_for_answers_in_flight(home):
    """printf '...' | broker-call: the answers still come before the daemon is stopped."""
    lines = "".join(json.dumps({"id": i, "method": "health"}) + "\n" for i in range(1, 11))
    out = subprocess.run([str(BROKER_CALL_BIN), "watchd", "--", str(WATCHD), "--supervised"], input=lines.encode(),
                         capture_output=True, timeout=30, env=dict(os.environ, CODEX_HOME=str(home)))
    assert out.returncode == 0, out.stderr.decode()
    printed = [json.loads(x) for x in out.stdout.decode().splitlines()]
    assert printed[0]["ready"] is True
    assert sorted(x["id"] for x in printed if "id" in x) == list(range(1, 11))
    assert all(x["status"] == 0 for x in printed if "id" in x)
    assert printed[-1] == {"exited": True, "status": 0, "pid": printed[0]["pid"]}


def test_a_daemon_that_never_starts_fails_broker_call(home):
    with pytest.raises(Exception, match="ended while waiting"):
        BrokerCall("watchd", ["/bin/false"], env={"CODEX_HOME": home})


def test_usage_errors():
    assert subprocess.run([str(BROKER_CALL_BIN)], capture_output=True).returncode == 2
    assert subprocess.run([str(BROKER_CALL_BIN), "watchd", "true"], capture_output=True).returncode == 2
    assert subprocess.run([str(BROKER_CALL_BIN), "Bad-Name", "--", "true"], capture_output=True).returncode == 2


def test_msgpack_helpers_round_trip():
    value = {"a": [1, -1, 300, -300, 2**40, -(2**40), 1.5, None, True, False], "b": b"\x00\xff" * 200,
             "s": "x" * 300, "m": {str(i): i for i in range(20)}}
    assert mp_unpack(mp_pack(value)) == value
