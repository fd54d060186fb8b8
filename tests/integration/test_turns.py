# SPDX-License-Identifier: MIT
"""Threads and turns against a mock Responses API: text turns, streamed items, the request agentd
sends, tool calls run by execd under sandboxd's plan, approvals, interrupts, steering, retries and
failures, rollouts and resume across a restart.

Every message agentd sends is validated against the 0.169 schema by the harness (conftest). The
reference's behaviour these tests pin comes from codex-behaviour.md §12-13 and from transcripts of
codex app-server 0.169 against the same mock.
"""
import json
import os
import time
from pathlib import Path

import pytest

from conftest import INVALID_REQUEST, RpcError, wait_until
import mock_model as mm
from mock_model import MockModel

TURN_TIMEOUT = 30


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


def start_agentd(agentd_factory, model, *, env=None, name="agentd-integration-tests", **config):
    proc = agentd_factory(["stdio://"], config=model.config_toml(**config), env=env, initialize=False)
    proc.stdio.initialize(name=name)
    return proc, proc.stdio


def start_thread(client, cwd, **params):
    result = client.call("thread/start", {"cwd": str(cwd), **params})
    thread = result["thread"]
    started = wait_for(client, "thread/started")
    assert started["params"]["thread"]["id"] == thread["id"]
    return thread["id"]


def wait_for(client, method, predicate=None, timeout=TURN_TIMEOUT):
    """The next notification (or server request) @method matching @predicate, from what the client
    set aside or from the wire."""
    deadline = time.monotonic() + timeout
    while True:
        for i, msg in enumerate(client.notifications):
            if msg.get("method") == method and (predicate is None or predicate(msg)):
                del client.notifications[i]
                return msg
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {method} within {timeout}s; set aside: "
                                 f"{[m.get('method') for m in client.notifications]}")
        client.notifications.append(client.recv(timeout=remaining))


def run_turn(client, thread_id, text, **params):
    """turn/start, then every message up to turn/completed; returns (turn id, messages, completed)."""
    turn = client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}], **params})
    turn_id = turn["turn"]["id"]
    assert turn["turn"]["status"] == "inProgress"
    seen = []
    deadline = time.monotonic() + TURN_TIMEOUT
    pending = list(client.notifications)
    client.notifications.clear()
    while True:
        msg = pending.pop(0) if pending else client.recv(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(msg)
        if msg.get("method") == "turn/completed" and msg["params"]["turn"]["id"] == turn_id:
            return turn_id, seen, msg["params"]["turn"]


def methods(messages):
    return [m.get("method") for m in messages if "method" in m]


def items(messages, kind, phase="item/completed"):
    return [m["params"]["item"] for m in messages if m.get("method") == phase and m["params"]["item"]["type"] == kind]


# --- a text turn -------------------------------------------------------------------------------------


def test_text_turn_streams_the_answer_and_sends_the_request(agentd_factory, model, tmp_path):
    model.script(mm.text_answer("Hello there!", deltas=["Hel", "lo the", "re!"]))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    turn_id, seen, completed = run_turn(client, thread_id, "hi")

    names = methods(seen)
    assert names.index("thread/status/changed") < names.index("turn/started")
    assert completed["status"] == "completed" and completed["error"] is None
    assert [i["text"] for i in completed["items"]] == ["Hello there!"]
    deltas = [m["params"]["delta"] for m in seen if m.get("method") == "item/agentMessage/delta"]
    assert deltas == ["Hel", "lo the", "re!"]
    user = items(seen, "userMessage")
    assert user[0]["content"] == [{"type": "text", "text": "hi", "text_elements": []}]
    agent = items(seen, "agentMessage")
    assert agent[0]["text"] == "Hello there!"
    usage = [m for m in seen if m.get("method") == "thread/tokenUsage/updated"]
    assert usage and usage[0]["params"]["tokenUsage"]["last"]["inputTokens"] == 12
    idle = [m for m in seen if m.get("method") == "thread/status/changed"][-1]
    assert idle["params"]["status"] == {"type": "idle"}

    (request,) = model.wait_requests(1)
    body = request.body
    assert body["model"] == mm.DEFAULT_MODEL and body["stream"] is True and body["store"] is False
    assert body["prompt_cache_key"] == thread_id
    assert request.user_texts()[-1] == "hi"
    assert any("<environment_context>" in t for t in request.user_texts())
    assert {"exec_command", "write_stdin", "apply_patch"} <= set(request.tool_names())
    assert request.header("session-id") == thread_id and request.header("thread-id") == thread_id
    assert request.header("originator") == "agentd-integration-tests"
    assert request.header("accept") == "text/event-stream"
    metadata = json.loads(request.header("x-codex-turn-metadata"))
    assert metadata["turn_id"] == turn_id and metadata["thread_id"] == thread_id


def test_second_turn_resends_the_history(agentd_factory, model, tmp_path):
    model.script(mm.text_answer("first answer"), mm.text_answer("second answer"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "one")
    run_turn(client, thread_id, "two")
    first, second = model.wait_requests(2)
    texts = second.user_texts()
    assert texts[-1] == "two" and texts.index("one") < len(texts) - 1
    assistant = [m for m in second.messages("assistant")]
    assert any(c.get("text") == "first answer" for m in assistant for c in m["content"])
    assert len(second.body["input"]) > len(first.body["input"])


@pytest.mark.parametrize("client_name,expected", [("codex-tui", "codex_cli_rs"), ("codex_vscode", "codex_vscode")])
def test_originator_header(agentd_factory, model, tmp_path, client_name, expected):
    model.script(mm.text_answer("ok"))
    _, client = start_agentd(agentd_factory, model, name=client_name)
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    (request,) = model.wait_requests(1)
    assert request.header("originator") == expected
    assert request.header("user-agent").startswith(expected + "/")


def test_originator_override_wins(agentd_factory, model, tmp_path):
    model.script(mm.text_answer("ok"))
    _, client = start_agentd(agentd_factory, model, name="codex-tui",
                             env={"CODEX_INTERNAL_ORIGINATOR_OVERRIDE": "codex_override_test"})
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    (request,) = model.wait_requests(1)
    assert request.header("originator") == "codex_override_test"


# --- tools -------------------------------------------------------------------------------------------


def exec_call(cmd, call_id, **extra):
    return mm.response(mm.out_exec_command(cmd, call_id=call_id, extra_args=extra or None))


def test_tool_call_runs_in_the_sandbox_and_returns_its_output(agentd_factory, model, tmp_path):
    model.script(exec_call("echo hello; echo err >&2", "call_1"), mm.text_answer("ran it"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "run it")
    assert completed["status"] == "completed"
    started = items(seen, "commandExecution", "item/started")
    done = items(seen, "commandExecution")
    assert started[0]["id"] == "call_1" and started[0]["status"] == "inProgress"
    assert done[0]["status"] == "completed" and done[0]["exitCode"] == 0
    assert "hello" in done[0]["aggregatedOutput"] and "err" in done[0]["aggregatedOutput"]
    assert done[0]["cwd"] == str(tmp_path)
    assert done[0]["commandActions"] == [{"type": "unknown", "command": "echo hello; echo err >&2"}]
    first, second = model.wait_requests(2)
    output = second.tool_output("call_1")
    assert output.startswith("Chunk ID: ") and "Process exited with code 0\n" in output
    assert output.endswith("hello\nerr\n") or ("hello" in output and "err" in output)
    calls = second.input_items("function_call")
    assert calls and calls[-1]["call_id"] == "call_1" and calls[-1]["name"] == "exec_command"
    assert [i["text"] for i in completed["items"]] == ["ran it"]


def test_write_outside_the_sandbox_is_denied_and_the_model_sees_it(agentd_factory, model, tmp_path):
    target = tmp_path / "made_by_model.txt"
    model.script(exec_call(f"touch {target}; echo rc=$?", "call_w"), mm.text_answer("could not"))
    _, client = start_agentd(agentd_factory, model, sandbox_mode="read-only")
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "write")
    assert not target.exists()
    _, second = model.wait_requests(2)
    output = second.tool_output("call_w")
    assert "rc=1" in output and ("Read-only file system" in output or "Permission denied" in output)


def test_workspace_write_lets_the_command_write_in_cwd(agentd_factory, model, tmp_path):
    target = tmp_path / "made.txt"
    model.script(exec_call(f"echo data > {target}; echo rc=$?", "call_ok"), mm.text_answer("done"))
    _, client = start_agentd(agentd_factory, model, sandbox_mode="workspace-write")
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "write")
    assert target.read_text() == "data\n"
    _, second = model.wait_requests(2)
    assert "rc=0" in second.tool_output("call_ok")


def test_long_command_becomes_a_session_polled_with_write_stdin(agentd_factory, model, tmp_path):
    model.script(
        exec_call("sleep 1; echo finished", "call_s", yield_time_ms=250),
        lambda req: mm.function_call("write_stdin", {"session_id": session_of(req, "call_s"), "chars": "",
                                                     "yield_time_ms": 3000}, call_id="call_p"),
        mm.text_answer("done"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "wait")
    assert completed["status"] == "completed"
    first, second, third = model.wait_requests(3)
    assert "Process running with session ID " in second.tool_output("call_s")
    polled = third.tool_output("call_p")
    assert "Process exited with code 0" in polled and "finished" in polled
    done = items(seen, "commandExecution")
    assert done and done[0]["exitCode"] == 0 and "finished" in done[0]["aggregatedOutput"]


def session_of(request, call_id):
    text = request.tool_output(call_id)
    marker = "Process running with session ID "
    assert marker in text, text
    return int(text.split(marker, 1)[1].split()[0])


def test_output_streams_as_output_deltas(agentd_factory, model, tmp_path):
    model.script(exec_call("for i in 1 2 3; do echo line$i; sleep 0.2; done", "call_d"), mm.text_answer("ok"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    _, seen, _ = run_turn(client, thread_id, "stream")
    deltas = [m["params"] for m in seen if m.get("method") == "item/commandExecution/outputDelta"]
    assert deltas and all(d["itemId"] == "call_d" for d in deltas)
    # As the reference: deltas stream once the early-exit grace is over, so the first line may
    # only be in the item's aggregated output.
    streamed = "".join(d["delta"] for d in deltas).replace("\r", "")
    assert streamed.endswith("line3\n") and "line1\nline2\nline3\n".endswith(streamed)
    done = items(seen, "commandExecution")
    assert done[0]["aggregatedOutput"].replace("\r", "").endswith("line1\nline2\nline3\n")


def test_unknown_tool_is_answered_unsupported(agentd_factory, model, tmp_path):
    model.script(mm.function_call("no_such_tool", {}, call_id="call_u"), mm.text_answer("ok"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "x")
    _, second = model.wait_requests(2)
    assert second.tool_output("call_u") == "unsupported call: no_such_tool"


# --- approvals ---------------------------------------------------------------------------------------


def wait_approval(client, method="item/commandExecution/requestApproval"):
    return wait_for(client, method)


def answer(client, request, decision):
    client.send({"id": request["id"], "result": {"decision": decision}})


def escalated_call(target, call_id):
    return exec_call(f"touch {target}; echo made", call_id, sandbox_permissions="require_escalated",
                     justification="Need to write a file")


def finish_turn(client, thread_id, timeout=TURN_TIMEOUT):
    done = wait_for(client, "turn/completed", lambda m: m["params"]["threadId"] == thread_id, timeout)
    return done["params"]["turn"]


@pytest.mark.parametrize("decision", ["accept", "acceptForSession"])
def test_approval_accepted_runs_the_command_outside_the_sandbox(agentd_factory, model, tmp_path, decision):
    target = tmp_path / "approved.txt"
    model.script(escalated_call(target, "call_a"), mm.text_answer("approved ran"))
    _, client = start_agentd(agentd_factory, model, approval_policy="on-request", sandbox_mode="read-only")
    thread_id = start_thread(client, tmp_path)
    turn = client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    request = wait_approval(client)
    params = request["params"]
    assert params["threadId"] == thread_id and params["turnId"] == turn["turn"]["id"]
    assert params["itemId"] == "call_a" and params["reason"] == "Need to write a file"
    assert str(target) in params["command"]
    status = wait_for(client, "thread/status/changed",
                      lambda m: m["params"]["status"].get("activeFlags") == ["waitingOnApproval"])
    assert status
    assert not target.exists()
    answer(client, request, decision)
    resolved = wait_for(client, "serverRequest/resolved")
    assert resolved["params"] == {"threadId": thread_id, "requestId": request["id"]}
    completed = finish_turn(client, thread_id)
    assert completed["status"] == "completed"
    assert target.exists()
    _, second = model.wait_requests(2)
    assert "made" in second.tool_output("call_a")


def test_approval_declined_is_a_refusal_for_the_model(agentd_factory, model, tmp_path):
    target = tmp_path / "declined.txt"
    model.script(escalated_call(target, "call_d"), mm.text_answer("declined"))
    _, client = start_agentd(agentd_factory, model, approval_policy="on-request")
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    answer(client, wait_approval(client), "decline")
    item = wait_for(client, "item/completed", lambda m: m["params"]["item"]["type"] == "commandExecution")
    assert item["params"]["item"]["status"] == "declined"
    assert finish_turn(client, thread_id)["status"] == "completed"
    assert not target.exists()
    _, second = model.wait_requests(2)
    assert "rejected by user" in second.tool_output("call_d")


def test_approval_cancel_interrupts_the_turn(agentd_factory, model, tmp_path):
    model.set_default(mm.text_answer("must not be asked"))
    model.script(escalated_call(tmp_path / "x", "call_c"))
    _, client = start_agentd(agentd_factory, model, approval_policy="on-request")
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    answer(client, wait_approval(client), "cancel")
    assert finish_turn(client, thread_id)["status"] == "interrupted"
    time.sleep(0.3)
    assert len(model.requests()) == 1


def test_untrusted_asks_before_anything_but_known_safe_reads(agentd_factory, model, tmp_path):
    model.script(exec_call("ls", "call_ls"), exec_call("touch made; echo ok", "call_t"), mm.text_answer("done"))
    _, client = start_agentd(agentd_factory, model, approval_policy="untrusted", sandbox_mode="workspace-write")
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    request = wait_approval(client)
    assert request["params"]["itemId"] == "call_t"  # ls ran without asking
    answer(client, request, "accept")
    assert finish_turn(client, thread_id)["status"] == "completed"
    assert (tmp_path / "made").exists()


def test_client_gone_mid_approval_declines(agentd_factory, model, tmp_path):
    target = tmp_path / "gone.txt"
    model.script(escalated_call(target, "call_g"), mm.text_answer("after decline"))
    proc = agentd_factory(["ws://127.0.0.1:0"], config=model.config_toml(approval_policy="on-request"))
    asker = proc.ws_client()
    asker.initialize()
    watcher = proc.ws_client()
    watcher.initialize()
    thread_id = start_thread(asker, tmp_path)
    watcher.call("thread/resume", {"threadId": thread_id})
    asker.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    wait_approval(asker)
    asker.close()
    completed = finish_turn(watcher, thread_id)
    assert completed["status"] == "completed"
    assert not target.exists()
    _, second = model.wait_requests(2)
    assert "rejected by user" in second.tool_output("call_g")


# --- interrupt, steer ----------------------------------------------------------------------------------


def test_interrupt_mid_stream_ends_the_turn_interrupted(agentd_factory, model, tmp_path):
    events = mm.text_answer("partial answer", deltas=["partial", " answer"])
    events.insert(3, mm.pause("hold"))
    model.script(events, mm.text_answer("after interrupt"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    turn = client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "long"}]})
    wait_for(client, "item/agentMessage/delta")
    assert client.call("turn/interrupt", {"threadId": thread_id, "turnId": turn["turn"]["id"]}) == {}
    completed = finish_turn(client, thread_id)
    assert completed["status"] == "interrupted" and completed["items"] == []
    model.release()
    _, _, again = run_turn(client, thread_id, "again")
    assert again["status"] == "completed"
    second = model.wait_requests(2)[1]
    assert any("<turn_aborted>" in t for t in second.user_texts())


def test_interrupt_kills_the_running_command(agentd_factory, model, tmp_path):
    marker = tmp_path / "pid"
    model.script(exec_call(f"echo $$ > {marker}; exec sleep 60", "call_k", yield_time_ms=30000))
    _, client = start_agentd(agentd_factory, model, sandbox_mode="danger-full-access")
    thread_id = start_thread(client, tmp_path)
    turn = client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "sleep"}]})
    wait_until(lambda: marker.exists() and marker.read_text().strip(), 10, what="the command to start")
    pid = int(marker.read_text())
    client.call("turn/interrupt", {"threadId": thread_id, "turnId": turn["turn"]["id"]})
    assert finish_turn(client, thread_id)["status"] == "interrupted"
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
               10, what="the command's process to die")


def test_steer_adds_input_to_the_running_turn(agentd_factory, model, tmp_path):
    events = mm.text_answer("first")
    events.insert(1, mm.pause("steer"))
    model.script(events, mm.text_answer("after steer"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    turn = client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "start"}]})
    turn_id = turn["turn"]["id"]
    wait_until(lambda: len(model.requests()) == 1, 10, what="the first request")
    with pytest.raises(RpcError) as wrong:
        client.call("turn/steer", {"threadId": thread_id, "expectedTurnId": "nope",
                                   "input": [{"type": "text", "text": "x"}]})
    assert wrong.value.code == INVALID_REQUEST
    assert wrong.value.message == f"expected active turn id `nope` but found `{turn_id}`"
    steered = client.call("turn/steer", {"threadId": thread_id, "expectedTurnId": turn_id,
                                         "input": [{"type": "text", "text": "also do X"}]})
    assert steered == {"turnId": turn_id}
    model.release()
    completed = finish_turn(client, thread_id)
    assert completed["status"] == "completed"
    _, second = model.wait_requests(2)
    assert second.user_texts()[-1] == "also do X"
    with pytest.raises(RpcError) as late:
        client.call("turn/steer", {"threadId": thread_id, "expectedTurnId": turn_id,
                                   "input": [{"type": "text", "text": "late"}]})
    assert late.value.message == "no active turn to steer"


# --- retries and failures -------------------------------------------------------------------------------


def error_notes(messages):
    return [m["params"] for m in messages if m.get("method") == "error"]


HIGH_DEMAND = "We\u2019re currently experiencing high demand, which may cause temporary errors."


def test_429_fails_at_once_as_the_reference(agentd_factory, model, tmp_path):
    """codex app-server 0.169 makes one request on a (non usage-limit) 429 and fails the turn, even
    with request and stream retries configured and a Retry-After (captured against this mock)."""
    model.script(mm.status(429, {"error": {"type": "rate_limit_exceeded", "message": "slow down"}},
                           headers={"retry-after": "0.05"}),
                 mm.text_answer("never asked for"))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=2, request_max_retries=2)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "failed"
    assert completed["error"]["message"] == "exceeded retry limit, last status: 429 Too Many Requests"
    assert completed["error"]["codexErrorInfo"] == {"responseTooManyFailedAttempts": {"httpStatusCode": 429}}
    assert [n["willRetry"] for n in error_notes(seen)] == [False]
    assert model.count() == 1


def test_a_5xx_is_retried_silently_first(agentd_factory, model, tmp_path):
    """request_max_retries: the request is sent again without a word (the reference's HTTP layer)."""
    model.script(mm.server_error(), mm.text_answer("recovered"))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=2, request_max_retries=2)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "completed"
    assert error_notes(seen) == []
    assert model.count() == 2


def test_spent_request_retries_are_announced_as_a_reconnect(agentd_factory, model, tmp_path):
    """Three 502s with request_max_retries 2 spend the first attempt (3 requests); the next one is
    announced and succeeds: 4 requests, one Reconnecting, as the reference."""
    model.script(mm.status(502, "bad gateway"), mm.status(502, "bad gateway"), mm.status(502, "bad gateway"),
                 mm.text_answer("recovered"))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=2, request_max_retries=2)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "completed"
    (note,) = error_notes(seen)
    assert note["willRetry"] is True and note["error"]["message"] == "Reconnecting... 1/2"
    assert note["error"]["codexErrorInfo"] == {"responseStreamDisconnected": {"httpStatusCode": 502}}
    assert note["error"]["additionalDetails"] == ("unexpected status 502 Bad Gateway: bad gateway, url: "
                                                  f"{model.base_url}/responses")
    assert model.count() == 4


def test_cut_stream_is_retried(agentd_factory, model, tmp_path):
    model.script(mm.cut(mm.text_answer("never whole", deltas=["never", " whole"]), after=3, mid_frame=True),
                 mm.text_answer("recovered after cut"))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=2)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "completed"
    assert [i["text"] for i in completed["items"]] == ["recovered after cut"]
    (note,) = error_notes(seen)
    assert note["willRetry"] is True
    assert list(note["error"]["codexErrorInfo"]) == ["responseStreamDisconnected"]
    assert "stream" in note["error"]["additionalDetails"]


def test_retries_exhausted_fail_the_turn(agentd_factory, model, tmp_path):
    model.set_default(mm.status(500, {"error": {"message": "We are overloaded."}}))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=2)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "failed"
    notes = error_notes(seen)
    assert [n["willRetry"] for n in notes] == [True, True, False]
    # the reference's words for an API error body, and no status in the retries' info (s10c)
    assert [n["error"]["additionalDetails"] for n in notes[:2]] == [HIGH_DEMAND, HIGH_DEMAND]
    assert notes[0]["error"]["codexErrorInfo"] == {"responseStreamDisconnected": {"httpStatusCode": None}}
    assert completed["error"]["message"] == HIGH_DEMAND
    assert completed["error"]["codexErrorInfo"] == "internalServerError"
    statuses = [m["params"]["status"] for m in seen if m.get("method") == "thread/status/changed"]
    assert statuses[-1] == {"type": "systemError"}
    assert len(model.requests()) == 3


def test_malformed_event_data_fails_without_crashing(agentd_factory, model, tmp_path):
    model.script(mm.malformed(mm.text_answer("x")), mm.text_answer("fine"))
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    _, _, first = run_turn(client, thread_id, "one")
    # agentd, unlike the reference, does not skip data that is not JSON: the stream failed.
    assert first["status"] == "failed"
    assert "responseStreamDisconnected" in first["error"]["codexErrorInfo"]
    _, _, second = run_turn(client, thread_id, "two")
    assert second["status"] == "completed"


@pytest.mark.parametrize("plan,expected", [
    ("plus", "Upgrade to Pro (https://chatgpt.com/explore/pro)"),
    ("self_serve_business_usage_based", "To get more access now, send a request to your admin"),
    ("team", "To get more access now, send a request to your admin"),
])
def test_usage_limit_message(agentd_factory, model, tmp_path, plan, expected):
    model.script(mm.usage_limit_reached(plan_type=plan))
    _, client = start_agentd(agentd_factory, model, stream_max_retries=3)
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "failed"
    message = completed["error"]["message"]
    assert message.startswith("You\u2019ve hit your usage limit.") and expected in message
    assert completed["error"]["codexErrorInfo"] == "usageLimitExceeded"
    if plan != "plus":
        assert "Switch" not in message and "model" not in message and "purchase" not in message
    assert len(model.requests()) == 1  # never retried
    assert [n["willRetry"] for n in error_notes(seen)] == [False]


def test_workdir_outside_the_writable_roots_does_not_become_writable(agentd_factory, model, tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    model.script(mm.response(mm.out_exec_command(f"touch made_here; echo rc=$?; touch {work}/made_in_work",
                                                 workdir=str(elsewhere), call_id="call_e")), mm.text_answer("ok"))
    _, client = start_agentd(agentd_factory, model, sandbox_mode="workspace-write")
    thread_id = start_thread(client, work)
    policy = {"type": "workspaceWrite", "writableRoots": [], "networkAccess": False,
              "excludeTmpdirEnvVar": True, "excludeSlashTmp": True}
    run_turn(client, thread_id, "write elsewhere", sandboxPolicy=policy)
    assert not (elsewhere / "made_here").exists()
    assert (work / "made_in_work").exists()  # the thread's workspace stays writable from there
    _, second = model.wait_requests(2)
    assert "rc=1" in second.tool_output("call_e")


def test_accept_for_session_grants_the_escalation_for_the_rest_of_the_thread(agentd_factory, model, tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    command = f"touch {first}; touch {second}; echo made"
    model.script(exec_call(command, "call_1", sandbox_permissions="require_escalated"),
                 exec_call(command, "call_2", sandbox_permissions="require_escalated"), mm.text_answer("both"))
    _, client = start_agentd(agentd_factory, model, approval_policy="on-request", sandbox_mode="read-only")
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "go"}]})
    answer(client, wait_approval(client), "acceptForSession")
    assert finish_turn(client, thread_id)["status"] == "completed"
    assert not [m for m in client.notifications if m.get("method") == "item/commandExecution/requestApproval"]
    requests = model.wait_requests(3)
    # The second run was not asked about and still ran outside the read-only sandbox.
    assert "made" in requests[2].tool_output("call_2") and "Read-only" not in requests[2].tool_output("call_2")
