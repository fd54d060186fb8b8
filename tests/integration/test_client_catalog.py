# SPDX-License-Identifier: MIT
"""What a client asks before its first turn (the stock TUI's start-up, tui-session.md): model/list,
config/read, configRequirements/read, collaborationMode/list, skills/list, hooks/list,
plugin/installed, account/bedrock/checkGovCloudRequirements; thread/list as the TUI calls it; and
thread/readState/update with thread/readState/changed. Every result is validated against the
schema (or, for the methods it routes but does not describe, against the reference's shapes) by
the harness.
"""
import hashlib
import json

import pytest

from conftest import INVALID_REQUEST, RpcError
import mock_model as mm
from mock_model import MockModel
from test_turns import run_turn, start_thread, wait_for


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


def start_agentd(agentd_factory, mock, args=(), env=None, **config):
    proc = agentd_factory(["stdio://"], config=mock.config_toml(**config), args=args, env=env)
    return proc, proc.stdio


def catalog_entry(slug, visibility="list", **extra):
    entry = {"slug": slug, "display_name": slug.upper(), "description": f"{slug} for tests",
             "default_reasoning_level": "high", "visibility": visibility,
             "supported_reasoning_levels": [{"effort": "low", "description": "quick"},
                                            {"effort": "high", "description": "deep"}],
             "input_modalities": ["text"]}
    entry.update(extra)
    return entry


def write_catalog(tmp_path, entries):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": entries}))
    return path


# --- model/list -------------------------------------------------------------------------------

def test_model_list_without_catalog_is_the_configured_model(agentd_factory, model):
    _, client = start_agentd(agentd_factory, model, model="gpt-configured")
    result = client.call("model/list", {"modelProvider": None, "cursor": None, "limit": None, "includeHidden": True})
    assert [m["id"] for m in result["data"]] == ["gpt-configured"]
    only = result["data"][0]
    assert only["model"] == "gpt-configured" and only["isDefault"] is True and only["hidden"] is False
    assert {e["reasoningEffort"] for e in only["supportedReasoningEfforts"]} >= {"low", "medium", "high"}
    assert result["nextCursor"] is None


def test_model_list_reads_the_catalog_and_marks_the_configured_default(agentd_factory, model, tmp_path):
    catalog = write_catalog(tmp_path, [catalog_entry("gpt-a"), catalog_entry("gpt-b"),
                                       catalog_entry("gpt-hidden", visibility="hide")])
    _, client = start_agentd(agentd_factory, model, model="gpt-b", top_level=f'model_catalog_json = "{catalog}"')
    listed = client.call("model/list", {})["data"]
    assert [m["id"] for m in listed] == ["gpt-a", "gpt-b"]
    assert [m["isDefault"] for m in listed] == [False, True]
    b = listed[1]
    assert b["displayName"] == "GPT-B" and b["description"] == "gpt-b for tests"
    assert b["defaultReasoningEffort"] == "high"
    assert b["supportedReasoningEfforts"] == [{"reasoningEffort": "low", "description": "quick"},
                                              {"reasoningEffort": "high", "description": "deep"}]
    assert b["inputModalities"] == ["text"]
    with_hidden = client.call("model/list", {"includeHidden": True})["data"]
    assert [m["id"] for m in with_hidden] == ["gpt-a", "gpt-b", "gpt-hidden"]
    assert with_hidden[2]["hidden"] is True


def test_model_list_lists_a_configured_model_the_catalog_lacks_first(agentd_factory, model, tmp_path):
    catalog = write_catalog(tmp_path, [catalog_entry("gpt-a")])
    _, client = start_agentd(agentd_factory, model, model="gpt-elsewhere",
                             top_level=f'model_catalog_json = "{catalog}"')
    listed = client.call("model/list", {})["data"]
    assert [(m["id"], m["isDefault"]) for m in listed] == [("gpt-elsewhere", True), ("gpt-a", False)]


def test_model_list_pages_with_cursors(agentd_factory, model, tmp_path):
    catalog = write_catalog(tmp_path, [catalog_entry(f"gpt-{i}") for i in range(5)])
    _, client = start_agentd(agentd_factory, model, model="gpt-0", top_level=f'model_catalog_json = "{catalog}"')
    seen, cursor = [], None
    while True:
        page = client.call("model/list", {"limit": 2, "cursor": cursor})
        assert len(page["data"]) <= 2
        seen += [m["id"] for m in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"gpt-{i}" for i in range(5)]
    with pytest.raises(RpcError) as bad:
        client.call("model/list", {"cursor": "not-a-cursor"})
    assert bad.value.code == INVALID_REQUEST
    with pytest.raises(RpcError) as negative:
        client.call("model/list", {"limit": -1})
    assert negative.value.code == INVALID_REQUEST
    # the connection still serves
    assert client.call("model/list", {"limit": 1})["nextCursor"] == "1"


@pytest.mark.parametrize("shape", ["codex", "openai"])
def test_model_list_asks_the_providers_models_endpoint(agentd_factory, model, shape):
    model.set_models(["gpt-remote-a", "gpt-remote-b"], shape=shape)
    _, client = start_agentd(agentd_factory, model, env={"MOCK_MODELS_KEY": "sk-models-123"}, model="gpt-remote-b",
                             provider_extra=f'model_catalog_url = "{model.base_url}/models"\n'
                                            'env_key = "MOCK_MODELS_KEY"\nhttp_headers = { "X-Team" = "blue" }')
    listed = client.call("model/list", {"includeHidden": True})["data"]
    assert [(m["id"], m["isDefault"]) for m in listed] == [("gpt-remote-a", False), ("gpt-remote-b", True)]
    requests = model.requests(endpoint="models")
    assert len(requests) == 1
    headers = {k.lower(): v for k, v in requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-models-123"
    assert headers["x-team"] == "blue"
    # each call asks again: the list is the provider's, not a copy taken once
    model.set_models(["gpt-remote-c"], shape=shape)
    again = client.call("model/list", {})["data"]
    assert [m["id"] for m in again] == ["gpt-remote-b", "gpt-remote-c"]


def test_model_list_falls_back_when_the_endpoint_fails(agentd_factory, model, tmp_path):
    catalog = write_catalog(tmp_path, [catalog_entry("gpt-local")])
    model.script(mm.status(500, {"error": {"message": "down"}}), endpoint="models")
    _, client = start_agentd(agentd_factory, model, model="gpt-local", top_level=f'model_catalog_json = "{catalog}"',
                             provider_extra=f'model_catalog_url = "{model.base_url}/models"')
    listed = client.call("model/list", {})["data"]
    assert [m["id"] for m in listed] == ["gpt-local"]
    assert model.count(endpoint="models") == 1
    # a bad cursor is refused before anything is fetched
    with pytest.raises(RpcError):
        client.call("model/list", {"cursor": "x"})
    assert model.count(endpoint="models") == 1


def test_model_list_waiting_on_the_provider_blocks_nothing(agentd_factory, model):
    """A slow /models holds that one answer only; agentd stops cleanly with the fetch in flight
    (the teardown checks its exit status and, under the sanitizers, leaks)."""
    model.set_models(["gpt-fast"], shape="codex")
    model.script(mm.hang(), endpoint="models")
    proc, client = start_agentd(agentd_factory, model, model="gpt-fast",
                                provider_extra=f'model_catalog_url = "{model.base_url}/models"')
    client.send({"id": "slow-models", "method": "model/list", "params": {}})
    model.wait_hanging(1, timeout=10)
    assert client.call("configRequirements/read")["requirements"] is None
    # a second model/list is fetched on its own and answered while the first still waits
    assert [m["id"] for m in client.call("model/list", {})["data"]] == ["gpt-fast"]
    assert model.count(endpoint="models") == 2
    # stopped with the first still waiting: a clean exit (a leak fails it under LeakSanitizer)
    assert proc.stop() == 0
    assert "ERROR: LeakSanitizer" not in proc.stderr()


# --- config/read, configRequirements/read --------------------------------------------------------

def test_config_read_is_the_file_with_its_origins(agentd_factory, model):
    proc, client = start_agentd(agentd_factory, model, model="gpt-file")
    config_path = proc.codex_home / "config.toml"
    version = "sha256:" + hashlib.sha256(config_path.read_bytes()).hexdigest()
    result = client.call("config/read", {"includeLayers": True, "cwd": "."})
    config = result["config"]
    assert config["model"] == "gpt-file"
    assert config["model_provider"] == "mock_provider"
    assert config["approval_policy"] == "never" and config["sandbox_mode"] == "read-only"
    assert config["model_providers"]["mock_provider"]["base_url"] == model.base_url
    # keys the schema names and nothing sets are present as null
    assert config["review_model"] is None and config["model_reasoning_effort"] is None
    user = {"type": "user", "file": str(config_path), "profile": None}
    assert result["origins"]["model"] == {"name": user, "version": version}
    assert result["origins"]["model_providers.mock_provider.base_url"]["name"] == user
    assert [layer["name"] for layer in result["layers"]] == [user]
    assert result["layers"][0]["version"] == version
    assert result["layers"][0]["config"]["model"] == "gpt-file"
    assert "layers" not in client.call("config/read", {})


def test_config_read_shows_flags_over_the_file(agentd_factory, model):
    _, client = start_agentd(agentd_factory, model, args=("-c", 'model="gpt-flag"', "--enable", "shiny"),
                             model="gpt-file")
    result = client.call("config/read", {"includeLayers": True})
    assert result["config"]["model"] == "gpt-flag"
    assert result["config"]["features"] == {"shiny": True}
    flags = {"type": "sessionFlags"}
    assert result["origins"]["model"]["name"] == flags
    assert result["origins"]["features.shiny"]["name"] == flags
    assert result["origins"]["model_provider"]["name"]["type"] == "user"
    layers = result["layers"]
    assert [layer["name"]["type"] for layer in layers] == ["sessionFlags", "user"]
    assert layers[0]["config"] == {"model": "gpt-flag", "features": {"shiny": True}}
    assert layers[1]["config"]["model"] == "gpt-file"


def test_config_read_follows_the_file_and_rejects_bad_params(agentd_factory, model):
    proc, client = start_agentd(agentd_factory, model, model="gpt-before")
    first = client.call("config/read", {"includeLayers": True})["layers"][0]["version"]
    path = proc.codex_home / "config.toml"
    path.write_text(path.read_text() + "\n# edited\n")
    second = client.call("config/read", {"includeLayers": True})["layers"][0]["version"]
    assert first != second and second == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(RpcError) as bad:
        client.call("config/read", {"includeLayers": "yes"})
    assert bad.value.code == INVALID_REQUEST


def test_config_requirements_read_has_none(agentd_factory, model):
    _, client = start_agentd(agentd_factory, model)
    assert client.call("configRequirements/read") == {"supportsIndependentSpeedModes": True, "requirements": None}


# --- per-directory lists, modes ---------------------------------------------------------------

def test_skills_hooks_and_plugins_answer_per_directory(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    cwds = [str(tmp_path / "one"), str(tmp_path / "two")]
    skills = client.call("skills/list", {"cwds": cwds, "forceReload": True})
    assert skills == {"data": [{"cwd": c, "skills": [], "errors": []} for c in cwds]}
    hooks = client.call("hooks/list", {"cwds": cwds, "threadId": None})
    assert hooks == {"data": [{"cwd": c, "hooks": [], "warnings": [], "errors": []} for c in cwds]}
    # no cwds: agentd's own directory, one entry
    assert len(client.call("skills/list", {})["data"]) == 1
    assert len(client.call("hooks/list", {"cwds": []})["data"]) == 1
    plugins = client.call("plugin/installed", {"cwds": cwds, "installSuggestionPluginNames": None})
    assert plugins == {"marketplaces": [], "marketplaceLoadErrors": []}
    for method in ("skills/list", "hooks/list", "plugin/installed"):
        with pytest.raises(RpcError) as bad:
            client.call(method, {"cwds": [1]})
        assert bad.value.code == INVALID_REQUEST, method


def test_collaboration_modes_and_govcloud(agentd_factory, model):
    _, client = start_agentd(agentd_factory, model)
    modes = client.call("collaborationMode/list", {})["data"]
    assert [(m["name"], m["mode"]) for m in modes] == [("Plan", "plan"), ("Default", "default")]
    assert client.call("account/bedrock/checkGovCloudRequirements", {}) == {"isGovCloud": False,
                                                                            "shouldWarn": False}


# --- thread/list as the TUI asks ----------------------------------------------------------------

def test_thread_list_section_and_recency_keys(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    first = start_thread(client, tmp_path)
    second = start_thread(client, tmp_path)
    run_turn(client, second, "one")
    run_turn(client, first, "two")  # first is now the most recently active
    with pytest.raises(RpcError) as bad:
        client.call("thread/list", {"sortKey": "section_position", "limit": 100})
    assert bad.value.code == INVALID_REQUEST
    assert bad.value.message == "section-position sorting requires a section filter"
    in_section = client.call("thread/list", {"sortKey": "section_position", "sectionId": "0198-x", "limit": 100,
                                             "useStateDbOnly": True, "currentAccountOnly": True})
    assert in_section == {"data": [], "readStates": {}, "nextCursor": None, "backwardsCursor": None}
    recent = client.call("thread/list", {"sortKey": "recency_at", "limit": 10, "useStateDbOnly": True,
                                         "sourceKinds": [], "modelProviders": []})
    assert [t["id"] for t in recent["data"]] == [first, second]
    assert set(recent["readStates"]) == {first, second}


# --- read state -----------------------------------------------------------------------------------

def test_read_state_follows_turns_and_marks(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path)
    with pytest.raises(RpcError) as none_yet:
        client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "read"},
                                                "expectedRevision": "x"})
    assert none_yet.value.message == "thread read state unavailable"
    turn_id, seen, _ = run_turn(client, thread_id, "hello")
    changed = [m for m in seen if m.get("method") == "thread/readState/changed"]
    assert len(changed) == 1
    state = changed[0]["params"]["readState"]
    assert changed[0]["params"]["threadId"] == thread_id
    assert state["firstUnread"] == {"type": "turn", "turnId": turn_id}
    order = [m.get("method") for m in seen]
    assert order.index("thread/readState/changed") < order.index("turn/completed")

    with pytest.raises(RpcError) as stale:
        client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "read"},
                                                "expectedRevision": "not-the-revision"})
    assert stale.value.code == INVALID_REQUEST
    read = client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "read"},
                                                   "expectedRevision": state["revision"]})
    assert read["readState"]["firstUnread"] is None
    assert read["readState"]["revision"] != state["revision"]
    note = wait_for(client, "thread/readState/changed")
    assert note["params"]["readState"] == read["readState"]

    unread = client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "unread"},
                                                     "expectedRevision": read["readState"]["revision"]})
    assert unread["readState"]["firstUnread"] == {"type": "turn", "turnId": turn_id}
    listed = client.call("thread/list", {})
    assert listed["readStates"][thread_id] == unread["readState"]

    with pytest.raises(RpcError) as missing:
        client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "read"}})
    assert missing.value.message == "Invalid request: missing field `expectedRevision`"
    with pytest.raises(RpcError) as bad_op:
        client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "shred"},
                                                "expectedRevision": "x"})
    assert bad_op.value.code == INVALID_REQUEST


def test_ephemeral_threads_have_no_read_state(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path, ephemeral=True)
    _, seen, _ = run_turn(client, thread_id, "title please")
    assert "thread/readState/changed" not in [m.get("method") for m in seen]
    with pytest.raises(RpcError) as none:
        client.call("thread/readState/update", {"threadId": thread_id, "operation": {"type": "read"},
                                                "expectedRevision": "x"})
    assert none.value.message == "thread read state unavailable"


def test_turns_list_refuses_unmaterialized_and_ephemeral_threads(agentd_factory, model, tmp_path):
    _, client = start_agentd(agentd_factory, model)
    fresh = start_thread(client, tmp_path)
    with pytest.raises(RpcError) as early:
        client.call("thread/turns/list", {"threadId": fresh, "cursor": None, "limit": 1, "sortDirection": None,
                                          "itemsView": None})
    assert early.value.code == INVALID_REQUEST
    assert early.value.message == (f"thread {fresh} is not materialized yet; thread/turns/list is unavailable "
                                   "before first user message")
    run_turn(client, fresh, "now it has one")
    assert len(client.call("thread/turns/list", {"threadId": fresh, "limit": 1})["data"]) == 1
    ephemeral = start_thread(client, tmp_path, ephemeral=True)
    run_turn(client, ephemeral, "title")
    with pytest.raises(RpcError) as eph:
        client.call("thread/turns/list", {"threadId": ephemeral, "limit": 1})
    assert eph.value.message == "ephemeral threads do not support thread/turns/list"


def test_output_schema_reaches_the_model_as_structured_output(agentd_factory, model, tmp_path):
    """The TUI titles a thread with an ephemeral structured-output turn (tui-session.md)."""
    _, client = start_agentd(agentd_factory, model)
    thread_id = start_thread(client, tmp_path, ephemeral=True)
    schema = {"type": "object", "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 36}},
              "required": ["title"], "additionalProperties": False}
    model.script(mm.text_answer('{"title":"Fix the build"}'))
    _, _, completed = run_turn(client, thread_id, "Generate a concise, single-line task title", outputSchema=schema)
    assert completed["status"] == "completed"
    assert completed["items"][-1]["text"] == '{"title":"Fix the build"}'
    assert model.last_body()["text"] == {"format": {"type": "json_schema", "strict": True, "schema": schema,
                                                    "name": "codex_output_schema"}}
    # the next turn without one asks for plain text again
    run_turn(client, thread_id, "again")
    assert "text" not in model.last_body()
    with pytest.raises(RpcError) as bad:
        client.call("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "x"}],
                                   "outputSchema": "not a schema"})
    assert bad.value.code == INVALID_REQUEST


# --- a thread's own provider ---------------------------------------------------------------------

def test_thread_model_provider_is_the_one_its_turns_use(agentd_factory, model, tmp_path):
    with MockModel() as second:
        config = model.config_toml() + (f'\n[model_providers.second]\nname = "Second"\nbase_url = "{second.base_url}"\n'
                                        'wire_api = "responses"\nstream_max_retries = 0\n')
        proc = agentd_factory(["stdio://"], config=config)
        client = proc.stdio
        other = start_thread(client, tmp_path, modelProvider="second")
        default = start_thread(client, tmp_path)
        second.script(mm.text_answer("from the second provider"))
        _, _, done = run_turn(client, other, "which provider?")
        assert done["items"][-1]["text"] == "from the second provider"
        assert second.count() == 1 and model.count() == 0
        model.script(mm.text_answer("from the configured one"))
        _, _, done = run_turn(client, default, "and this one?")
        assert done["items"][-1]["text"] == "from the configured one"
        assert second.count() == 1 and model.count() == 1
        listed = {t["id"]: t["modelProvider"] for t in client.call("thread/list", {"modelProviders": []})["data"]}
        assert listed[other] == "second" and listed[default] == "mock_provider"
        unknown = start_thread(client, tmp_path, modelProvider="nowhere")
        _, _, failed = run_turn(client, unknown, "hello?")
        assert failed["status"] == "failed"
        assert failed["error"]["message"] == "unknown model_provider `nowhere`"


def test_a_resumed_thread_runs_on_the_configured_provider_unless_told(agentd_factory, model, tmp_path):
    """After a restart the rollout's provider is a record: the thread resumes on today's configured
    provider, or on the one thread/resume names."""
    from test_threads import start_on
    with MockModel() as second:
        home = tmp_path / "home"
        home.mkdir()
        (home / "config.toml").write_text(model.config_toml() + (
            f'\n[model_providers.second]\nname = "Second"\nbase_url = "{second.base_url}"\n'
            'wire_api = "responses"\nstream_max_retries = 0\n'))
        first = start_on(agentd_factory, home)
        thread_id = start_thread(first.stdio, tmp_path, modelProvider="second")
        second.script(mm.text_answer("one"))
        run_turn(first.stdio, thread_id, "one")
        assert first.stop() == 0

        again = start_on(agentd_factory, home)
        resumed = again.stdio.call("thread/resume", {"threadId": thread_id})
        assert resumed["modelProvider"] == "mock_provider"
        model.script(mm.text_answer("two"))
        run_turn(again.stdio, thread_id, "two")
        assert model.count() == 1 and second.count() == 1
        assert again.stop() == 0

        third = start_on(agentd_factory, home)
        told = third.stdio.call("thread/resume", {"threadId": thread_id, "modelProvider": "second"})
        assert told["modelProvider"] == "second"
        second.script(mm.text_answer("three"))
        run_turn(third.stdio, thread_id, "three")
        assert second.count() == 2 and model.count() == 1


def test_turn_start_overrides_outlive_a_restart(agentd_factory, model, tmp_path):
    """turn/start's model, approval policy, sandbox and effort are the thread's from then on; each
    turn records them (turn_context, as the reference) and a resume after a restart restores them."""
    from test_threads import rollouts, start_on
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(model.config_toml())
    first = start_on(agentd_factory, home)
    thread_id = start_thread(first.stdio, tmp_path)
    policy = {"type": "workspaceWrite", "writableRoots": [str(tmp_path)], "networkAccess": False,
              "excludeTmpdirEnvVar": True, "excludeSlashTmp": True}
    model.script(mm.text_answer("one"))
    run_turn(first.stdio, thread_id, "one", model="gpt-override", approvalPolicy="untrusted", sandboxPolicy=policy,
             effort="high")
    assert model.last_body()["model"] == "gpt-override"
    lines = [json.loads(line) for line in rollouts(home)[0].read_text().splitlines()]
    contexts = [line["payload"] for line in lines if line["type"] == "turn_context"]
    assert len(contexts) == 1
    assert contexts[0]["model"] == "gpt-override" and contexts[0]["approval_policy"] == "untrusted"
    assert contexts[0]["sandbox_policy"] == {"type": "workspace-write"} and contexts[0]["effort"] == "high"
    assert first.stop() == 0

    again = start_on(agentd_factory, home)
    resumed = again.stdio.call("thread/resume", {"threadId": thread_id})
    assert resumed["model"] == "gpt-override"
    assert resumed["approvalPolicy"] == "untrusted"
    assert resumed["sandbox"] == policy
    assert resumed["reasoningEffort"] == "high"
    model.script(mm.text_answer("two"))
    run_turn(again.stdio, thread_id, "two")
    body = model.last_body()
    assert body["model"] == "gpt-override" and body["reasoning"]["effort"] == "high"


def test_config_read_of_a_broken_file_and_a_broken_catalog(agentd_factory, model, tmp_path):
    """A config.toml broken after start-up is an error for config/read (the running config stays);
    a catalog file that is not one leaves model/list with the configured model."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"models": "not a list"}')
    proc, client = start_agentd(agentd_factory, model, model="gpt-kept", top_level=f'model_catalog_json = "{catalog}"')
    assert [m["id"] for m in client.call("model/list", {})["data"]] == ["gpt-kept"]
    catalog.write_text("{ not json")
    assert [m["id"] for m in client.call("model/list", {})["data"]] == ["gpt-kept"]
    path = proc.codex_home / "config.toml"
    path.write_text(path.read_text() + "\n[broken\n")
    with pytest.raises(RpcError) as bad:
        client.call("config/read", {"includeLayers": True})
    assert bad.value.code == -32603 and str(path) in bad.value.message and "invalid TOML" in bad.value.message
    assert client.call("configRequirements/read")["requirements"] is None  # the connection serves on
