# SPDX-License-Identifier: MIT
"""The agent's own shell tools (agentd/tool_exec.c, agentd/unified_exec.c) driven through real turns:
the mock model calls exec_command / write_stdin, agentd runs them through sandboxd and execd under
the thread's pseudo connection, and the next model request carries the reference's text."""
import re
import time

from mock_model import MockModel, exec_command_call, function_call, text_answer

TURN_TIMEOUT = 30.0
CHUNK_RE = r"Chunk ID: [0-9a-f]{6}\n"


def _start(agentd_factory, model):
    config = model.config_toml(sandbox_mode="danger-full-access", approval_policy="never")
    proc = agentd_factory(config=config)
    return proc, proc.stdio


def _wait_notification(client, method, timeout=TURN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        for i, msg in enumerate(client.notifications):
            if msg.get("method") == method:
                del client.notifications[i]
                return msg
        msg = client.recv(timeout=max(0.0, deadline - time.monotonic()))
        if "id" not in msg and "method" in msg:
            client.notifications.append(msg)


def _run_turn(client, cwd, text="run it"):
    thread = client.call("thread/start", {"cwd": str(cwd)})["thread"]
    client.call("turn/start", {"threadId": thread["id"], "input": [{"type": "text", "text": text}]})
    _wait_notification(client, "turn/completed")
    return thread


def test_exec_command_exits_within_the_first_yield(agentd_factory, tmp_path):
    with MockModel() as model:
        model.script(exec_command_call("echo hello; echo err >&2", call_id="call_exec1"), text_answer("Done"))
        _, client = _start(agentd_factory, model)
        _run_turn(client, tmp_path)
        _, second = model.wait_requests(2, timeout=TURN_TIMEOUT)
        out = second.tool_output("call_exec1")
        # Exactly the reference's shape (notes/ref s02_exec); the two pipes may interleave either way.
        assert re.fullmatch(CHUNK_RE + r"Wall time: 0\.0000 seconds\nProcess exited with code 0\n"
                            r"Original token count: 3\nOutput:\n(hello\nerr\n|err\nhello\n)", out), out


def test_exec_command_session_then_poll(agentd_factory, tmp_path):
    def poll(request):
        out = request.tool_output("call_exec2")
        session = re.search(r"Process running with session ID (\d+)\n", out)
        assert session, out
        return function_call("write_stdin", {"session_id": int(session.group(1)), "chars": "",
                                             "yield_time_ms": 5000}, call_id="call_poll1")

    with MockModel() as model:
        model.script(exec_command_call("sleep 1; echo done", yield_time_ms=500, call_id="call_exec2"), poll,
                     text_answer("Done"))
        _, client = _start(agentd_factory, model)
        _run_turn(client, tmp_path)
        _, second, third = model.wait_requests(3, timeout=TURN_TIMEOUT)
        running = second.tool_output("call_exec2")
        assert re.fullmatch(CHUNK_RE + r"Wall time: 0\.5\d{3} seconds\nProcess running with session ID "
                            r"[1-9]\d{3,4}\nOriginal token count: 0\nOutput:\n", running), running
        polled = third.tool_output("call_poll1")
        assert re.fullmatch(CHUNK_RE + r"Wall time: 0\.\d{4} seconds\nProcess exited with code 0\n"
                            r"Original token count: 2\nOutput:\ndone\n", polled), polled


def test_write_stdin_unknown_session(agentd_factory, tmp_path):
    with MockModel() as model:
        model.script(function_call("write_stdin", {"session_id": 424242, "chars": ""}, call_id="call_w"),
                     text_answer("Done"))
        _, client = _start(agentd_factory, model)
        _run_turn(client, tmp_path)
        _, second = model.wait_requests(2, timeout=TURN_TIMEOUT)
        assert second.tool_output("call_w") == "write_stdin failed: Unknown process id 424242"


def test_write_stdin_to_a_pipe_session_is_refused(agentd_factory, tmp_path):
    def write(request):
        session = re.search(r"session ID (\d+)", request.tool_output("call_e"))
        assert session
        return function_call("write_stdin", {"session_id": int(session.group(1)), "chars": "x\n"},
                             call_id="call_w")

    with MockModel() as model:
        model.script(exec_command_call("sleep 5", yield_time_ms=250, call_id="call_e"), write, text_answer("Done"))
        _, client = _start(agentd_factory, model)
        _run_turn(client, tmp_path)
        third = model.wait_requests(3, timeout=TURN_TIMEOUT)[2]
        assert third.tool_output("call_w") == ("write_stdin failed: stdin is closed for this session; rerun "
                                               "exec_command with tty=true to keep stdin open")


def test_exec_command_tty_session_takes_input(agentd_factory, tmp_path):
    def write(request):
        session = re.search(r"session ID (\d+)", request.tool_output("call_e"))
        assert session, request.tool_output("call_e")
        return function_call("write_stdin", {"session_id": int(session.group(1)), "chars": "hi there\n",
                                             "yield_time_ms": 2000}, call_id="call_w")

    with MockModel() as model:
        model.script(function_call("exec_command", {"cmd": "read line; echo got:$line", "tty": True,
                                                    "yield_time_ms": 300}, call_id="call_e"),
                     write, text_answer("Done"))
        _, client = _start(agentd_factory, model)
        _run_turn(client, tmp_path)
        third = model.wait_requests(3, timeout=TURN_TIMEOUT)[2]
        out = third.tool_output("call_w")
        assert "Process exited with code 0\n" in out, out
        assert "got:hi there" in out, out
