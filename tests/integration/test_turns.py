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
    assert second.user_texts()[-2:] == ["one", "two"] or second.user_texts()[-1] == "two"
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
