# SPDX-License-Identifier: MIT
"""thread/shellCommand (the TUI's `!`): the user's command as a userShell commandExecution item,
run inside the thread's sandbox (the reference runs it unsandboxed; agentd does not), its output
streamed, and command and output shown to the model with the next request.
"""
import time

import pytest

from conftest import INVALID_REQUEST, INTERNAL_ERROR, RpcError, wait_until
import mock_model as mm
from mock_model import MockModel
from test_turns import exec_call, finish_turn, items, run_turn, start_agentd, start_thread, wait_for

UNKNOWN = "019a0000-0000-7000-8000-000000000000"


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


def shell(client, thread_id, command, **extra):
    assert client.call("thread/shellCommand", {"threadId": thread_id, "command": command, **extra}) == {}
    return finish_turn(client, thread_id)


def collected(client):
    seen = list(client.notifications)
    client.notifications.clear()
    return seen


def test_standalone_shell_command_is_a_turn_and_the_model_sees_it(agentd_factory, model, tmp_path):
    model.script(mm.text_answer("seen it"))
    _, client = start_agentd(agentd_factory, model, sandbox_mode="workspace-write")
    thread_id = start_thread(client, tmp_path)
    completed = shell(client, thread_id, "  echo from-the-user; echo oops >&2  ")
    seen = collected(client)
    assert completed["status"] == "completed"
    assert "turn/started" in [m.get("method") for m in seen]
    (started,) = items(seen, "commandExecution", "item/started")
    (done,) = items(seen, "commandExecution")
    assert started["source"] == "userShell" and done["source"] == "userShell"
    assert done["command"] == "/bin/bash -lc 'echo from-the-user; echo oops >&2'"
    assert done["status"] == "completed" and done["exitCode"] == 0
    assert "from-the-user" in done["aggregatedOutput"]
    assert model.requests() == []  # no model request for the shell command itself
    run_turn(client, thread_id, "what did I run?")
    (request,) = model.wait_requests(1)
    context = [t for t in request.user_texts() if t.startswith("<user_shell_command>")]
    assert len(context) == 1
    assert "<command>\necho from-the-user; echo oops >&2\n</command>" in context[0]
    assert "Exit code: 0" in context[0] and "from-the-user" in context[0] and "oops" in context[0]


def test_shell_command_runs_inside_the_threads_sandbox(agentd_factory, model, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside.txt"
    _, client = start_agentd(agentd_factory, model, sandbox_mode="read-only")
    thread_id = start_thread(client, work)
    shell(client, thread_id, f"touch {outside}; echo rc=$?")
    (done,) = items(collected(client), "commandExecution")
    assert not outside.exists()
    assert "rc=1" in done["aggregatedOutput"]
    assert "Read-only file system" in done["aggregatedOutput"] or "Permission denied" in done["aggregatedOutput"]


def test_shell_command_output_streams(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    shell(client, thread_id, "for i in 1 2 3; do echo tick$i; sleep 0.2; done")
    seen = collected(client)
    deltas = "".join(m["params"]["delta"] for m in seen if m.get("method") == "item/commandExecution/outputDelta")
    assert "tick3" in deltas


def test_shell_command_in_a_running_turn_joins_its_next_request(agentd_factory, model, tmp_path):
    model.script(exec_call("sleep 1; echo model-done", "call_1"), mm.text_answer("done"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    turn = client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    wait_until(lambda: len(model.requests()) == 1, 10, what="the first request")
    assert client.call("thread/shellCommand", {"threadId": thread_id, "command": "echo aux-output"}) == {}
    completed = finish_turn(client, thread_id)
    assert completed["id"] == turn["turn"]["id"] and completed["status"] == "completed"
    _, second = model.wait_requests(2)
    assert any("aux-output" in t for t in second.user_texts())


def test_shell_command_errors(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    with pytest.raises(RpcError) as empty:
        client.call("thread/shellCommand", {"threadId": thread_id, "command": "   "})
    assert empty.value.code == INVALID_REQUEST and empty.value.message == "command must not be empty"
    with pytest.raises(RpcError) as unknown:
        client.call("thread/shellCommand", {"threadId": UNKNOWN, "command": "ls"})
    assert unknown.value.message == f"thread not found: {UNKNOWN}"
    with pytest.raises(RpcError) as negative:
        client.call("thread/shellCommand", {"threadId": thread_id, "command": "ls", "timeoutMs": -1})
    assert negative.value.code == INVALID_REQUEST


def test_shell_command_timeout_kills_it(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    started = time.monotonic()
    shell(client, thread_id, "sleep 30", timeoutMs=300)
    assert time.monotonic() - started < 10
    (done,) = items(collected(client), "commandExecution")
    assert done["status"] == "failed" and done["exitCode"] != 0


def test_no_local_environment(agentd_factory, model, tmp_path):
    proc = agentd_factory(["stdio://"], config=model.config_toml(), env={"CODEX_EXEC_SERVER_URL": "none"})
    client = proc.stdio
    thread_id = start_thread(client, tmp_path)
    with pytest.raises(RpcError) as err:
        client.call("thread/shellCommand", {"threadId": thread_id, "command": "ls"})
    assert err.value.code == INTERNAL_ERROR and err.value.message == "local environment is not configured"
