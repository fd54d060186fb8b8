# SPDX-License-Identifier: MIT
"""Threads as the client sees them across turns and restarts: rollouts on disk, thread/resume after
agentd restarts, thread/read, thread/list (cursor paging, filters), thread/turns/list,
thread/loaded/list, archive and unarchive, names, unsubscribe; which connections hear which
thread; apply_patch as fileChange items; reasoning; the bearer token from authd or env_key.

Shapes are validated against the 0.169 schema by the harness; errors are the reference's.
"""
import json
import os
import time
from pathlib import Path

import pytest

from conftest import INVALID_REQUEST, RpcError, wait_until
import mock_model as mm
from mock_model import MockModel
from mock_issuer import make_apikey_auth_json
from test_turns import exec_call, finish_turn, items, run_turn, start_thread, wait_for, wait_approval, answer

UNKNOWN = "019a0000-0000-7000-8000-000000000000"


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


def shared_home(tmp_path, model, **config):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(model.config_toml(**config))
    return home


def start_on(agentd_factory, home, listen=("stdio://",), env=None):
    proc = agentd_factory(list(listen), env={"CODEX_HOME": str(home), **(env or {})}, initialize=False)
    if proc.stdio is not None:
        proc.stdio.initialize()
    return proc


def rollouts(home):
    return sorted((home / "sessions").rglob("rollout-*.jsonl"))


# --- rollouts and resume -----------------------------------------------------------------------------


def test_rollout_is_written_and_resume_after_restart_restores_history(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.script(mm.text_answer("first answer"), mm.text_answer("after restart"))
    proc = start_on(agentd_factory, home)
    client = proc.stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "remember this")
    (path,) = rollouts(home)
    assert thread_id in path.name and oct(path.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["type"] == "session_meta" and lines[0]["payload"]["id"] == thread_id
    kinds = {(line["type"], line["payload"].get("type")) for line in lines}
    assert ("response_item", "message") in kinds and ("event_msg", "task_complete") in kinds
    proc.stop()

    proc2 = start_on(agentd_factory, home)
    client2 = proc2.stdio
    resumed = client2.call("thread/resume", {"threadId": thread_id})
    thread = resumed["thread"]
    assert thread["id"] == thread_id and thread["preview"] == "remember this"
    assert thread["cwd"] == str(tmp_path)
    (turn,) = thread["turns"]
    assert turn["status"] == "completed"
    assert [i["type"] for i in turn["items"]] == ["userMessage", "agentMessage"]
    assert turn["items"][1]["text"] == "first answer"
    run_turn(client2, thread_id, "and now?")
    _, second = model.wait_requests(2)
    texts = second.user_texts()
    assert "remember this" in texts and texts[-1] == "and now?"
    assert any(c.get("text") == "first answer" for m in second.messages("assistant") for c in m["content"])
    # One environment context only: the resumed thread did not add a second.
    assert sum("<environment_context>" in t for t in texts) == 1


def test_truncated_last_line_is_ignored_with_a_warning(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.script(mm.text_answer("kept"), mm.text_answer("still works"))
    proc = start_on(agentd_factory, home)
    thread_id = start_thread(proc.stdio, tmp_path)
    run_turn(proc.stdio, thread_id, "hello")
    proc.stop()
    (path,) = rollouts(home)
    with open(path, "a") as f:
        f.write('{"timestamp":"2026-12-02T00:00:00.000Z","type":"response_item","payload":{"type":"mess')
    proc2 = start_on(agentd_factory, home)
    client = proc2.stdio
    resumed = client.call("thread/resume", {"threadId": thread_id})
    assert resumed["thread"]["turns"][0]["items"][1]["text"] == "kept"
    warning = wait_for(client, "warning")
    assert "truncated" in warning["params"]["message"]
    _, _, completed = run_turn(client, thread_id, "again")
    assert completed["status"] == "completed"
    for line in path.read_text().splitlines():
        json.loads(line)  # the file stayed parseable


def test_resume_errors(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    client = start_on(agentd_factory, home).stdio
    with pytest.raises(RpcError) as unknown:
        client.call("thread/resume", {"threadId": UNKNOWN})
    assert unknown.value.code == INVALID_REQUEST
    assert unknown.value.message == f"no rollout found for thread id {UNKNOWN}"
    with pytest.raises(RpcError) as garbage:
        client.call("thread/resume", {"threadId": "garbage"})
    assert garbage.value.message.startswith("invalid session id: ")
    with pytest.raises(RpcError) as turn:
        client.call("turn/start", {"threadId": UNKNOWN, "input": [{"type": "text", "text": "x"}]})
    assert turn.value.message == f"thread not found: {UNKNOWN}"
    with pytest.raises(RpcError) as missing:
        client.call("turn/start", {"threadId": UNKNOWN})
    assert missing.value.message == "Invalid request: missing field `input`"
    with pytest.raises(RpcError) as read:
        client.call("thread/read", {"threadId": UNKNOWN})
    assert read.value.message == f"thread not loaded: {UNKNOWN}"
    with pytest.raises(RpcError) as interrupt:
        client.call("turn/interrupt", {"threadId": UNKNOWN, "turnId": "x"})
    assert interrupt.value.message == f"thread not found: {UNKNOWN}"


def test_relative_cwd_is_made_absolute(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    client = start_on(agentd_factory, home).stdio
    result = client.call("thread/start", {"cwd": "relative/dir"})
    assert os.path.isabs(result["cwd"]) and result["cwd"].endswith("/relative/dir")
    assert result["thread"]["cwd"] == result["cwd"]


# --- reading and listing -----------------------------------------------------------------------------


def test_read_list_turns_loaded_name_archive(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.set_default(mm.text_answer("default answer"))
    client = start_on(agentd_factory, home).stdio
    first = start_thread(client, tmp_path)
    run_turn(client, first, "first turn")
    run_turn(client, first, "second turn")
    time.sleep(1.1)  # created_at has second precision: the second thread sorts after
    second = start_thread(client, tmp_path)
    run_turn(client, second, "other thread")

    listed = client.call("thread/list", {})
    assert [t["id"] for t in listed["data"]] == [second, first]
    assert [t["preview"] for t in listed["data"]] == ["other thread", "first turn"]
    page1 = client.call("thread/list", {"limit": 1})
    assert [t["id"] for t in page1["data"]] == [second] and page1["nextCursor"]
    page2 = client.call("thread/list", {"limit": 1, "cursor": page1["nextCursor"]})
    assert [t["id"] for t in page2["data"]] == [first]
    with pytest.raises(RpcError) as bad:
        client.call("thread/list", {"cursor": "not a cursor"})
    assert bad.value.code == INVALID_REQUEST

    read = client.call("thread/read", {"threadId": first, "includeTurns": True})["thread"]
    assert [t["status"] for t in read["turns"]] == ["completed", "completed"]
    assert read["turns"][0]["items"][0]["content"][0]["text"] == "first turn"
    assert client.call("thread/read", {"threadId": first})["thread"]["turns"] == []

    turns = client.call("thread/turns/list", {"threadId": first})
    assert [t["items"][0]["content"][0]["text"] for t in turns["data"]] == ["second turn", "first turn"]
    one = client.call("thread/turns/list", {"threadId": first, "limit": 1})
    assert len(one["data"]) == 1 and one["nextCursor"]
    rest = client.call("thread/turns/list", {"threadId": first, "limit": 1, "cursor": one["nextCursor"]})
    assert rest["data"][0]["items"][0]["content"][0]["text"] == "first turn" and rest["nextCursor"] is None

    loaded = client.call("thread/loaded/list", {})
    assert set(loaded["data"]) == {first, second}

    assert client.call("thread/name/set", {"threadId": first, "name": "My named thread"}) == {}
    named = wait_for(client, "thread/name/updated")
    assert named["params"] == {"threadId": first, "threadName": "My named thread"}
    assert client.call("thread/read", {"threadId": first})["thread"]["name"] == "My named thread"

    assert client.call("thread/archive", {"threadId": second}) == {}
    assert wait_for(client, "thread/archived")["params"] == {"threadId": second}
    assert [t["id"] for t in client.call("thread/list", {})["data"]] == [first]
    assert [t["id"] for t in client.call("thread/list", {"archived": True})["data"]] == [second]
    assert not any(second in p.name for p in rollouts(home))
    unarchived = client.call("thread/unarchive", {"threadId": second})
    assert unarchived["thread"]["id"] == second
    assert {t["id"] for t in client.call("thread/list", {})["data"]} == {first, second}

    with pytest.raises(RpcError) as archive_unknown:
        client.call("thread/archive", {"threadId": UNKNOWN})
    assert archive_unknown.value.message == f"no rollout found for thread id {UNKNOWN}"


def test_list_filters(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.set_default(mm.text_answer("ok"))
    client = start_on(agentd_factory, home).stdio
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    in_a = start_thread(client, a)
    run_turn(client, in_a, "in a")
    in_b = start_thread(client, b)
    run_turn(client, in_b, "in b")
    assert [t["id"] for t in client.call("thread/list", {"cwd": str(a)})["data"]] == [in_a]
    assert client.call("thread/list", {"modelProviders": ["other"]})["data"] == []
    assert {t["id"] for t in client.call("thread/list", {"modelProviders": ["mock_provider"]})["data"]} == {in_a, in_b}
    assert [t["id"] for t in client.call("thread/list", {"excludedThreadIds": [in_a]})["data"]] == [in_b]


def test_unsubscribe_and_event_routing(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.set_default(mm.text_answer("answer"))
    proc = start_on(agentd_factory, home, listen=("ws://127.0.0.1:0",))
    alice, bob = proc.ws_client(), proc.ws_client()
    alice.initialize()
    bob.initialize()
    mine = start_thread(alice, tmp_path)
    theirs = start_thread(bob, tmp_path)
    run_turn(alice, mine, "alice's turn")
    run_turn(bob, theirs, "bob's turn")
    assert all(m.get("params", {}).get("threadId", mine) == mine for m in alice.notifications)
    bob.expect_silence(0.3)
    # Bob subscribes to Alice's thread: he hears her next turn; after unsubscribing, no more.
    bob.call("thread/resume", {"threadId": mine})
    run_turn(alice, mine, "second")
    assert finish_turn(bob, mine)["status"] == "completed"
    assert bob.call("thread/unsubscribe", {"threadId": mine}) == {"status": "unsubscribed"}
    assert bob.call("thread/unsubscribe", {"threadId": mine}) == {"status": "notSubscribed"}
    assert bob.call("thread/unsubscribe", {"threadId": UNKNOWN}) == {"status": "notLoaded"}
    bob.notifications.clear()
    run_turn(alice, mine, "third")
    bob.expect_silence(0.3)
    assert not any(m.get("params", {}).get("threadId") == mine for m in bob.notifications)


def test_two_threads_run_turns_at_once(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    slow = mm.text_answer("slow answer")
    slow.insert(1, mm.pause("slow"))
    model.script(slow, mm.text_answer("fast answer"))
    client = start_on(agentd_factory, home).stdio
    one = start_thread(client, tmp_path)
    two = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": one, "input": [{"type": "text", "text": "slow"}]})
    wait_until(lambda: len(model.requests()) == 1, 10, what="the first request")
    client.call("turn/start", {"threadId": two, "input": [{"type": "text", "text": "fast"}]})
    assert finish_turn(client, two)["items"][0]["text"] == "fast answer"
    model.wait_hanging(1, timeout=10)  # release() lets go only of pauses already reached
    model.release()
    assert finish_turn(client, one)["items"][0]["text"] == "slow answer"


# --- apply_patch -------------------------------------------------------------------------------------


def test_apply_patch_adds_and_updates_files_as_a_file_change(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, sandbox_mode="workspace-write")
    (tmp_path / "existing.txt").write_text("old line\nkeep\n")
    patch = ("*** Begin Patch\n*** Add File: new.txt\n+hello\n*** Update File: existing.txt\n@@\n-old line\n"
             "+new line\n keep\n*** End Patch")
    model.script(mm.apply_patch_call(patch, call_id="call_p"), mm.text_answer("patched"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    _, seen, completed = run_turn(client, thread_id, "patch")
    assert completed["status"] == "completed"
    _, second = model.wait_requests(2)
    output = second.tool_output("call_p")
    assert output.startswith("Exit code: 0\n"), output
    assert (tmp_path / "new.txt").read_text() == "hello\n"
    assert (tmp_path / "existing.txt").read_text() == "new line\nkeep\n"
    (started,) = items(seen, "fileChange", "item/started")
    (done,) = items(seen, "fileChange")
    assert started["status"] == "inProgress" and done["status"] == "completed" and done["id"] == "call_p"
    changes = {c["path"]: c for c in done["changes"]}
    assert changes[str(tmp_path / "new.txt")]["kind"] == {"type": "add"}
    assert changes[str(tmp_path / "new.txt")]["diff"] == "hello\n"
    update = changes[str(tmp_path / "existing.txt")]
    assert update["kind"] == {"type": "update", "move_path": None}
    assert "-old line" in update["diff"] and "+new line" in update["diff"]
    assert "Success. Updated the following files:\nA new.txt\nM existing.txt\n" in output


def test_apply_patch_outside_the_writable_roots_is_refused_by_the_sandbox(agentd_factory, model, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside.txt"
    home = shared_home(tmp_path, model, sandbox_mode="workspace-write", approval_policy="never")
    model.script(mm.apply_patch_call(mm.add_file_patch(str(outside), ["x"]), call_id="call_o"), mm.text_answer("no"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, work)
    # /tmp is writable under workspace-write unless excluded, and the test runs under /tmp.
    policy = {"type": "workspaceWrite", "writableRoots": [], "networkAccess": False,
              "excludeTmpdirEnvVar": True, "excludeSlashTmp": True}
    _, seen, _ = run_turn(client, thread_id, "patch outside", sandboxPolicy=policy)
    assert not outside.exists()
    (done,) = items(seen, "fileChange")
    assert done["status"] == "failed"
    _, second = model.wait_requests(2)
    output = second.tool_output("call_o")
    assert output.startswith("Exit code: 1\n") and f"Failed to write file {outside}" in output


def test_apply_patch_approval_and_decline(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, sandbox_mode="workspace-write", approval_policy="untrusted")
    model.script(mm.apply_patch_call(mm.add_file_patch("a.txt", ["a"]), call_id="call_1"),
                 mm.apply_patch_call(mm.add_file_patch("b.txt", ["b"]), call_id="call_2"), mm.text_answer("done"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "patch"}]})
    first = wait_approval(client, "item/fileChange/requestApproval")
    assert first["params"]["itemId"] == "call_1" and first["params"]["threadId"] == thread_id
    answer(client, first, "accept")
    second = wait_approval(client, "item/fileChange/requestApproval")
    answer(client, second, "decline")
    assert finish_turn(client, thread_id)["status"] == "completed"
    assert (tmp_path / "a.txt").read_text() == "a\n" and not (tmp_path / "b.txt").exists()
    requests = model.wait_requests(3)
    assert requests[2].tool_output("call_2") == "patch rejected by user"


def test_apply_patch_through_the_shell_heredoc(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, sandbox_mode="workspace-write")
    patch = mm.add_file_patch("via_heredoc.txt", ["ok"])
    model.script(exec_call(f"apply_patch <<'EOF'\n{patch}\nEOF\n", "call_h"), mm.text_answer("done"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "patch")
    assert (tmp_path / "via_heredoc.txt").read_text() == "ok\n"


def test_bad_patch_is_reported_to_the_model(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, sandbox_mode="workspace-write")
    model.script(mm.apply_patch_call("*** Begin Patch\n*** Update File: missing.txt\n@@\n-x\n+y\n*** End Patch",
                                     call_id="call_m"), mm.text_answer("failed"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "patch")
    _, second = model.wait_requests(2)
    assert second.tool_output("call_m") == (f"apply_patch verification failed: Failed to read file to update "
                                            f"{tmp_path}/missing.txt: No such file or directory (os error 2)")


# --- reasoning ---------------------------------------------------------------------------------------


def test_reasoning_items_and_deltas(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.script(mm.reasoning(summary=["Thinking about it"], deltas=["Thinking ", "about it"], text="answer"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    _, seen, _ = run_turn(client, thread_id, "think")
    summary = [m["params"] for m in seen if m.get("method") == "item/reasoning/summaryTextDelta"]
    assert "".join(s["delta"] for s in summary) == "Thinking about it"
    assert all(s["summaryIndex"] == 0 for s in summary)
    (done,) = items(seen, "reasoning")
    assert done["summary"] == ["Thinking about it"]
    assert [i["type"] for i in items(seen, "agentMessage")] == ["agentMessage"]


# --- credentials -------------------------------------------------------------------------------------


def test_env_key_provider_sends_the_key_and_fails_without_it(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, provider_extra='env_key = "AGENTD_TEST_MODEL_KEY"')
    model.set_default(mm.text_answer("ok"))
    client = start_on(agentd_factory, home, env={"AGENTD_TEST_MODEL_KEY": "sk-env-123"}).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    (request,) = model.wait_requests(1)
    assert request.header("authorization") == "Bearer sk-env-123"


def test_missing_env_key_fails_the_turn(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, provider_extra='env_key = "AGENTD_TEST_UNSET_KEY"')
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    _, _, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "failed"
    assert "AGENTD_TEST_UNSET_KEY" in completed["error"]["message"]
    assert model.requests() == []


def test_openai_auth_uses_authds_api_key(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, requires_openai_auth=True)
    make_apikey_auth_json(home / "auth.json", api_key="sk-from-authd")
    model.set_default(mm.text_answer("ok"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    (request,) = model.wait_requests(1)
    assert request.header("authorization") == "Bearer sk-from-authd"


def test_openai_auth_without_login_fails_the_turn(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, requires_openai_auth=True)
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    _, _, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "failed" and completed["error"]["codexErrorInfo"] == "unauthorized"
    assert model.requests() == []


def test_chatgpt_login_sends_the_access_token_and_account_id(agentd_factory, model, tmp_path):
    from mock_issuer import DEFAULT_ACCOUNT_ID, make_auth_json
    home = shared_home(tmp_path, model, requires_openai_auth=True)
    doc = make_auth_json(home / "auth.json")
    model.set_default(mm.text_answer("ok"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    (request,) = model.wait_requests(1)
    assert request.header("authorization") == f"Bearer {doc['tokens']['access_token']}"
    assert request.header("chatgpt-account-id") == DEFAULT_ACCOUNT_ID


def test_401_recovers_through_authd_once(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model, requires_openai_auth=True, stream_max_retries=0)
    make_apikey_auth_json(home / "auth.json", api_key="sk-stale")
    model.script(mm.status(401, {"error": {"message": "bad key"}}), mm.text_answer("recovered"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    _, _, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "completed"
    first, second = model.wait_requests(2)
    assert first.header("authorization") == second.header("authorization") == "Bearer sk-stale"


def test_provider_headers_and_query_params_reach_the_model(agentd_factory, model, tmp_path):
    extra = 'http_headers = { "X-Test-Header" = "from-config" }\nquery_params = { "api-version" = "2025-01-01" }'
    home = shared_home(tmp_path, model, provider_extra=extra)
    model.set_default(mm.text_answer("ok"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    (request,) = model.wait_requests(1)
    assert request.header("x-test-header") == "from-config"
    assert request["query"] in ({"api-version": "2025-01-01"}, {"api-version": ["2025-01-01"]})


def test_tool_call_arguments_split_across_deltas(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.script(mm.response(mm.out_exec_command("echo split-args", call_id="call_x", chunks=5)), mm.text_answer("ok"))
    client = start_on(agentd_factory, home).stdio
    thread_id = start_thread(client, tmp_path)
    run_turn(client, thread_id, "hi")
    _, second = model.wait_requests(2)
    assert "split-args" in second.tool_output("call_x")


def test_a_rollout_that_cannot_be_created_fails_thread_start(agentd_factory, model, tmp_path):
    from conftest import INTERNAL_ERROR
    home = shared_home(tmp_path, model)
    (home / "sessions").write_text("not a directory")
    client = start_on(agentd_factory, home).stdio
    with pytest.raises(RpcError) as err:
        client.call("thread/start", {"cwd": str(tmp_path)})
    assert err.value.code == INTERNAL_ERROR
    assert err.value.message.startswith("failed to create the thread's rollout: ")
    assert client.call("thread/loaded/list", {})["data"] == []  # nothing half-made stays loaded
    ephemeral = client.call("thread/start", {"cwd": str(tmp_path), "ephemeral": True})["thread"]
    assert ephemeral["ephemeral"] is True and ephemeral["path"] is None


def test_ephemeral_thread_writes_no_rollout(agentd_factory, model, tmp_path):
    home = shared_home(tmp_path, model)
    model.set_default(mm.text_answer("ok"))
    client = start_on(agentd_factory, home).stdio
    thread_id = client.call("thread/start", {"cwd": str(tmp_path), "ephemeral": True})["thread"]["id"]
    wait_for(client, "thread/started")
    _, _, completed = run_turn(client, thread_id, "hi")
    assert completed["status"] == "completed"
    assert rollouts(home) == []
    assert client.call("thread/list", {})["data"] == []
