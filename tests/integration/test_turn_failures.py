# SPDX-License-Identifier: MIT
"""Turns when things go wrong: the model API unreachable or silent, execd killed under a running
tool call, a client that leaves mid-turn, and malformed thread/turn requests. Each ends in a clear
error notification or JSON-RPC error, and the thread (and every other connection) stays usable.
"""
import os
import signal
import time

import pytest

from conftest import INVALID_REQUEST, RpcError, wait_until
import mock_model as mm
from mock_model import MockModel
from test_turns import exec_call, finish_turn, items, run_turn, start_agentd, start_thread, wait_for


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


def test_unreachable_model_fails_the_turn_after_its_retries(agentd_factory, model, tmp_path):
    config = model.config_toml(stream_max_retries=1).replace(model.base_url, "http://127.0.0.1:9/v1")
    proc = agentd_factory(["stdio://"], config=config)
    client = proc.stdio
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "failed"
    notes = [m["params"] for m in seen if m.get("method") == "error"]
    assert [n["willRetry"] for n in notes] == [True, False]
    assert "responseStreamDisconnected" in completed["error"]["codexErrorInfo"]
    _, _, again = run_turn(client, thread_id, "again")  # the thread is still usable
    assert again["status"] == "failed"


def test_silent_stream_hits_the_idle_timeout(agentd_factory, model, tmp_path):
    events = mm.text_answer("never")
    events.insert(1, mm.pause("silent"))
    model.script(events, mm.text_answer("after the timeout"))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=1, stream_idle_timeout_ms=300)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    model.release()
    assert completed["status"] == "completed"
    (note,) = [m["params"] for m in seen if m.get("method") == "error"]
    assert note["willRetry"] is True and "idle timeout" in note["error"]["additionalDetails"]


def test_execd_killed_under_a_tool_call_is_an_error_not_a_hang(agentd_factory, model, tmp_path):
    marker = tmp_path / "started"
    model.script(exec_call(f"touch {marker}; sleep 30", "call_k", yield_time_ms=30000),
                 mm.text_answer("execd went away"))
    proc, client = start_agentd(agentd_factory, model, sandbox_mode="danger-full-access")
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    wait_until(marker.exists, 10, what="the command to start")
    services = client.call("agentd/health", {})["services"]
    (execd,) = [s["pid"] for s in services if s["name"] == "execd"]
    os.kill(execd, signal.SIGKILL)
    completed = finish_turn(client, thread_id, timeout=20)
    assert completed["status"] == "completed"
    (killed,) = [m["params"]["item"] for m in client.notifications
                 if m.get("method") == "item/completed" and m["params"]["item"]["id"] == "call_k"]
    assert killed["status"] == "failed" and "execd" in killed["aggregatedOutput"]
    client.notifications.clear()
    _, second = model.wait_requests(2)
    assert "execd" in second.tool_output("call_k")
    # Once the supervisor restarted execd, the next tool call runs.
    def execd_back():
        entries = client.call("agentd/health", {})["services"]
        return any(s["name"] == "execd" and s["registered"] and s["pid"] not in (0, execd) for s in entries)
    wait_until(execd_back, 10, what="execd to be restarted")
    model.script(exec_call("echo back", "call_b"), mm.text_answer("ok"))
    _, seen, _ = run_turn(client, thread_id, "again")
    (again,) = [i for i in items(seen, "commandExecution") if i["id"] == "call_b"]
    assert "back" in again["aggregatedOutput"]


def test_turn_goes_on_when_its_client_leaves(agentd_factory, model, tmp_path):
    events = mm.text_answer("finished without you")
    events.insert(1, mm.pause("hold"))
    model.script(events)
    proc = agentd_factory(["ws://127.0.0.1:0"], config=model.config_toml())
    starter = proc.ws_client()
    starter.initialize()
    thread_id = start_thread(starter, tmp_path)
    starter.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    wait_until(lambda: len(model.requests()) == 1, 10, what="the request")
    starter.close()
    later = proc.ws_client()
    later.initialize()
    resumed = later.call("thread/resume", {"threadId": thread_id})
    assert resumed["thread"]["status"]["type"] == "active"
    model.release()
    completed = finish_turn(later, thread_id)
    assert completed["items"][0]["text"] == "finished without you"


@pytest.mark.parametrize("method,params,message", [
    ("turn/start", {"threadId": "THREAD", "input": "text"}, "Invalid request: `input` must be an array"),
    ("turn/start", {"threadId": "THREAD", "input": [{"text": "no type"}]},
     "Invalid request: input[0] must be an object with a string `type`"),
    ("turn/start", {"threadId": "THREAD", "input": [{"type": "text"}]}, "Invalid request: input[0] missing field `text`"),
    ("turn/start", {"threadId": "THREAD", "input": [], "approvalPolicy": "sometimes"}, None),
    ("turn/start", {"threadId": "THREAD", "input": [], "sandboxPolicy": {"type": "wide-open"}},
     "Invalid request: invalid `sandboxPolicy`"),
    ("turn/start", {"threadId": 7, "input": []}, "Invalid request: `threadId` must be a string"),
    ("turn/interrupt", {"threadId": "THREAD", "turnId": "nope"}, "no active turn to interrupt"),
    ("turn/steer", {"threadId": "THREAD", "input": []}, "Invalid request: missing field `expectedTurnId`"),
    ("thread/start", {"sandbox": "everything"}, None),
    ("thread/start", {"ephemeral": "yes"}, "Invalid request: `ephemeral` must be a boolean"),
    ("thread/list", {"limit": -1}, "Invalid request: `limit` must be a non-negative integer"),
    ("thread/list", {"sourceKinds": ["martian"]}, "Invalid request: unknown variant `martian`"),
    ("thread/turns/list", {"threadId": "THREAD", "cursor": "zzz"}, "invalid cursor: zzz"),
    ("thread/name/set", {"threadId": "THREAD"}, "Invalid request: missing field `name`"),
])
def test_bad_requests_are_refused_and_the_connection_lives(agentd_factory, model, tmp_path, method, params, message):
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    params = {k: (thread_id if v == "THREAD" else v) for k, v in params.items()}
    with pytest.raises(RpcError) as err:
        client.call(method, params)
    assert err.value.code == INVALID_REQUEST
    if message:
        assert err.value.message == message
    assert client.call("thread/loaded/list", {})["data"] == [thread_id]


def test_a_second_turn_start_while_one_runs_is_refused(agentd_factory, model, tmp_path):
    events = mm.text_answer("slow")
    events.insert(1, mm.pause("slow"))
    model.script(events)
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "one"}]})
    with pytest.raises(RpcError) as err:
        client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "two"}]})
    assert err.value.code == INVALID_REQUEST and "already running" in err.value.message
    # release() lets go of pauses already reached: wait for the stream to stand at it
    model.wait_hanging(1, timeout=10)
    model.release()
    assert finish_turn(client, thread_id)["status"] == "completed"
