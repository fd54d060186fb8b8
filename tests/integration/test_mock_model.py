# SPDX-License-Identifier: MIT
"""The mock model provider (mock_model.py) itself: a broken mock would make the model-client tests lie.

Driven with http.client only; the stream is parsed with the tiny SSE parser below (no SSE library),
and where the TCP writes matter the chunked transfer encoding is read by hand from the response's
socket file (each chunk is one write of the mock).
"""
import gzip
import http.client
import json
import threading
import time
import tomllib

import pytest

from mock_model import (DEFAULT_ENCRYPTED_CONTENT, DEFAULT_TEXT, ZERO_USAGE, MockModel, Request, add_file_patch,
                        apply_patch_call, bad_frame, comment, custom_tool_call, cut, delay, drop, encode_event,
                        encode_sse, ev_error, exec_command_call, failed, function_call, hang, incomplete, malformed,
                        out_apply_patch, out_function_call, out_message, out_reasoning, out_shell_command, pause,
                        rate_limit_headers, rate_limited, raw, reasoning, response, server_error,
                        shell_command_call, sleep, sse, status, text_answer, tool_output, update_file_patch,
                        usage, usage_limit_reached, usage_not_included)

# --------------------------------------------------------------------------------------
# a tiny SSE parser and HTTP helpers


def parse_sse(data):
    """(frames, rest): the complete frames of @data as {"event", "data", "comments"} (data lines
    joined with "\\n", None without one) and the bytes of an unfinished last frame."""
    data = data.replace(b"\r\n", b"\n")
    *blocks, rest = data.split(b"\n\n")
    frames = []
    for block in blocks:
        frame = {"event": None, "data": None, "comments": []}
        for line in block.decode("utf-8").split("\n"):
            if line.startswith(":"):
                frame["comments"].append(line[1:].strip())
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                frame["event"] = value
            elif field == "data":
                frame["data"] = value if frame["data"] is None else frame["data"] + "\n" + value
        frames.append(frame)
    return frames, rest


def sse_events(data):
    """The JSON payloads of @data's frames, skipping unparseable data lines as the reference does."""
    frames, _ = parse_sse(data)
    out = []
    for frame in frames:
        if frame["data"] is None:
            continue
        try:
            out.append(json.loads(frame["data"]))
        except ValueError:
            pass
    return out


def types(events):
    return [e["type"] for e in events]


def connect(model, timeout=5):
    return http.client.HTTPConnection("127.0.0.1", model.port, timeout=timeout)


REQUEST_BODY = {"model": "mock-model", "instructions": "You are a helpful assistant.",
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                "tools": [], "tool_choice": "auto", "parallel_tool_calls": False, "store": False, "stream": True}


def post(model, body=None, path="/v1/responses", headers=None, conn=None, timeout=5):
    """(connection, response) of a POST to @path; the body is left unread."""
    conn = conn or connect(model, timeout)
    hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    hdrs.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(REQUEST_BODY if body is None else body).encode()
    conn.request("POST", path, body=data, headers=hdrs)
    return conn, conn.getresponse()


def read_all(resp):
    """(body, complete): the whole body, or what came before the connection closed early."""
    try:
        return resp.read(), True
    except http.client.IncompleteRead as e:
        return e.partial, False


def read_chunk(resp):
    """(arrival time, data) of the next HTTP chunk read by hand; data b"" for the terminating chunk,
    None at EOF; data shorter than announced when the connection closed inside it."""
    line = resp.fp.readline()
    if not line:
        return time.monotonic(), None
    size = int(line.split(b";")[0].strip(), 16)
    if size == 0:
        resp.fp.readline()
        return time.monotonic(), b""
    data = resp.fp.read(size)
    if len(data) == size:
        assert resp.fp.read(2) == b"\r\n"
    return time.monotonic(), data


def read_chunks(resp):
    """([(time, data)], terminated): every chunk of a chunked body until its end or EOF."""
    assert resp.getheader("Transfer-Encoding") == "chunked"
    chunks = []
    while True:
        when, data = read_chunk(resp)
        if data is None:
            return chunks, False
        if data == b"":
            return chunks, True
        chunks.append((when, data))


def stream(model, behaviour=None, **kw):
    """Script @behaviour (if given), POST, return (response, body, complete)."""
    if behaviour is not None:
        model.script(behaviour)
    conn, resp = post(model, **kw)
    body, complete = read_all(resp)
    conn.close()
    return resp, body, complete


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


# --------------------------------------------------------------------------------------
# the server


def test_listens_on_loopback_over_http11_and_writes_the_provider_config(model):
    assert model.url.startswith("http://127.0.0.1:")
    assert model.base_url == model.url + "/v1"
    assert model.responses_url == model.url + "/v1/responses"
    assert model.env() == {"OPENAI_BASE_URL": model.base_url}
    config = tomllib.loads(model.config_toml(stream_idle_timeout_ms=2000, requires_openai_auth=True,
                                             top_level='model_reasoning_effort = "low"'))
    assert config["model"] == "mock-model" and config["model_provider"] == "mock_provider"
    assert config["approval_policy"] == "never" and config["sandbox_mode"] == "read-only"
    assert config["model_reasoning_effort"] == "low"
    assert config["model_providers"]["mock_provider"] == {
        "name": "Mock provider for test", "base_url": model.base_url, "wire_api": "responses",
        "request_max_retries": 0, "stream_max_retries": 0, "supports_websockets": False,
        "stream_idle_timeout_ms": 2000, "requires_openai_auth": True}
    conn, resp = post(model)
    assert (resp.status, resp.version) == (200, 11)
    resp.read()
    conn.close()


def test_default_answer_is_a_streamed_text_answer(model):
    resp, body, complete = stream(model)
    assert complete
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Cache-Control") == "no-cache"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    frames, rest = parse_sse(body)
    assert rest == b""
    # Every frame: "event: TYPE" matching the data's type.
    assert all(f["event"] == json.loads(f["data"])["type"] for f in frames)
    events = sse_events(body)
    assert types(events) == ["response.created", "response.output_item.added", "response.output_text.delta",
                             "response.output_item.done", "response.completed"]
    assert events[0]["response"]["id"] == events[-1]["response"]["id"]
    assert events[0]["response"]["id"].startswith("resp_")
    assert events[2]["delta"] == DEFAULT_TEXT
    assert events[3]["item"]["content"] == [{"type": "output_text", "text": DEFAULT_TEXT}]
    assert events[-1]["response"]["usage"] == {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
                                               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                                               "total_tokens": 17}
    # A fresh answer (fresh ids) each time.
    again = sse_events(stream(model)[1])
    assert again[0]["response"]["id"] != events[0]["response"]["id"]
    assert [r["outcome"] for r in model.requests()] == ["completed", "completed"]


@pytest.mark.parametrize("path", ["/responses", "/v1/responses", "/backend-api/codex/responses"])
def test_responses_under_any_prefix(model, path):
    model.script(text_answer("here"))
    resp, body, _ = stream(model, path=path)
    assert resp.status == 200
    assert sse_events(body)[2]["delta"] == "here"
    assert model.last_request().path == path


def test_unknown_paths_and_methods(model):
    conn = connect(model)
    conn.request("GET", "/nowhere")
    resp = conn.getresponse()
    assert resp.status == 404 and "no GET /nowhere" in json.loads(resp.read())["error"]["message"]
    conn.request("GET", "/v1/responses")
    resp = conn.getresponse()
    assert resp.status == 405
    resp.read()
    conn.close()
    assert model.count() == 1 and model.count(None) == 1
    assert model.pending() == 0


def test_a_body_that_is_not_json_gets_400_and_takes_nothing(model):
    model.script(text_answer("kept"))
    conn, resp = post(model, body=b"{not json")
    assert resp.status == 400
    assert json.loads(resp.read())["error"]["type"] == "invalid_request_error"
    assert model.pending() == 1
    [req] = model.requests()
    assert (req["format"], req["body"], req["raw"], req["status"]) == ("other", None, b"{not json", 400)
    _, resp = post(model, conn=conn)
    assert sse_events(resp.read())[2]["delta"] == "kept"
    assert model.pending() == 0
    conn.close()


def test_keep_alive_several_streams_on_one_connection(model):
    model.script(text_answer("one"), text_answer("two"))
    conn = connect(model)
    texts = []
    for _ in range(3):
        _, resp = post(model, conn=conn)
        texts.append(sse_events(resp.read())[2]["delta"])
    conn.close()
    assert texts == ["one", "two", DEFAULT_TEXT]


def test_close_ends_idle_keep_alive_connections():
    mock = MockModel().start()
    conn, resp = post(mock)
    resp.read()
    mock.close()
    conn.sock.settimeout(5)
    assert conn.sock.recv(1) == b""
    conn.close()


# --------------------------------------------------------------------------------------
# recording


def test_every_request_is_recorded(model):
    before = time.time()
    body = dict(REQUEST_BODY, prompt_cache_key="thread-1")
    _, resp = post(model, body, headers={"Authorization": "Bearer sk-test", "originator": "codex_cli_rs",
                                         "session_id": "sess-1", "Session-Id": "sess-1", "X-Mixed-Case": "v"})
    resp.read()
    [req] = model.wait_requests(1)
    assert isinstance(req, Request)
    assert req["method"] == "POST" and req.path == "/v1/responses" and req["endpoint"] == "responses"
    assert req["index"] == 0 and req["kind"] == "sse" and req["status"] == 200
    assert before <= req["time"] <= time.time()
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.header("Originator") == "codex_cli_rs"
    assert req.header("session_id") == "sess-1" and req.header("session-id") == "sess-1"
    assert req.header("x-mixed-case") == "v" and "X-Mixed-Case" not in req.headers
    assert req.header("accept") == "text/event-stream"
    assert req.body == body and req["format"] == "json"
    assert json.loads(req["raw"]) == body
    assert model.last_body() == body
    assert req["frames_sent"] == 5 and req["outcome"] == "completed"
    # Copies: changing one does not change the record.
    req["body"]["model"] = "changed"
    assert model.last_body()["model"] == "mock-model"


def test_wait_requests_waits_and_times_out(model):
    def later():
        time.sleep(0.3)
        for _ in range(2):
            conn, resp = post(model)
            resp.read()
            conn.close()

    t = threading.Thread(target=later)
    t.start()
    reqs = model.wait_requests(2, timeout=5)
    assert [r["index"] for r in reqs] == [0, 1]
    assert len(model.wait_finished(2, timeout=5)) == 2
    t.join(5)
    with pytest.raises(TimeoutError, match="3 responses request"):
        model.wait_requests(3, timeout=0.2)
    with pytest.raises(AssertionError):
        MockModel().last_request()


def test_chunked_and_gzip_request_bodies(model):
    conn = connect(model)
    data = json.dumps(REQUEST_BODY).encode()
    conn.request("POST", "/v1/responses", body=iter([data[:10], data[10:]]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    resp = conn.getresponse()
    resp.read()
    _, resp = post(model, gzip.compress(data), headers={"Content-Encoding": "gzip"}, conn=conn)
    resp.read()
    _, resp = post(model, b"\x28\xb5\x2f\xfd-opaque", headers={"Content-Encoding": "zstd"}, conn=conn)
    resp.read()
    conn.close()
    chunked, gzipped, zstd = model.requests()
    assert chunked["headers"]["transfer-encoding"] == "chunked" and chunked.body == REQUEST_BODY
    assert gzipped["format"] == "gzip+json" and gzipped.body == REQUEST_BODY
    assert zstd["format"] == "zstd" and zstd.body is None and zstd["status"] == 200


def test_request_inspection_helpers(model):
    body = {
        "model": "mock-model", "instructions": "<base instructions>",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Run tests"}]},
            {"type": "function_call", "call_id": "call_1", "name": "shell_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "Exit code: 0\nOutput:\nok\n"},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Success."},
            {"type": "function_call_output", "call_id": "call_3",
             "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        ],
        "tools": [{"type": "function", "name": "shell_command", "parameters": {"type": "object"}},
                  {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
                  {"type": "web_search"}],
    }
    _, resp = post(model, body, headers={"Authorization": "Bearer tok", "originator": "codex-tui",
                                         "session_id": "s-1"})
    resp.read()
    req = model.last_request()
    assert req.instructions() == "<base instructions>"
    assert req.tool_names() == ["shell_command", "apply_patch", "web_search"]
    assert req.tool("apply_patch")["type"] == "custom" and req.tool("nope") is None
    assert [m["role"] for m in req.messages()] == ["developer", "user", "user"]
    assert req.user_texts() == ["<environment_context>", "Run tests"]
    assert len(req.input_items("function_call_output")) == 2
    assert req.input_items(role="developer")[0]["content"][0]["text"] == "<permissions>"
    assert req.function_call_output("call_1")["output"].startswith("Exit code: 0")
    assert req.function_call_output("call_2") is None
    assert req.custom_tool_call_output("call_2")["output"] == "Success."
    assert req.tool_output("call_1") == "Exit code: 0\nOutput:\nok\n"
    assert req.tool_output("call_2") == "Success."
    assert req.tool_output("call_3") == "ab"
    with pytest.raises(AssertionError, match="call_9"):
        req.tool_output("call_9")
    assert tool_output(req.body, "call_2") == "Success."     # the module functions take a body too
    assert (req.header("authorization"), req.header("originator"), req.header("session_id")) == \
        ("Bearer tok", "codex-tui", "s-1")


# --------------------------------------------------------------------------------------
# scripting


def test_script_order_callables_lists_and_the_default(model):
    seen = []

    def echo(req):
        seen.append(req["index"])
        return text_answer("you said " + req.user_texts()[-1])

    model.script(text_answer("first"), echo, [{"type": "response.created", "response": {"id": "r"}}])
    model.set_default(server_error())
    answers = []
    for _ in range(4):
        resp, body, _ = stream(model)
        answers.append((resp.status, sse_events(body) if resp.status == 200 else json.loads(body)))
    assert answers[0][1][2]["delta"] == "first"
    assert answers[1][1][2]["delta"] == "you said hi" and seen == [1]
    assert answers[2] == (200, [{"type": "response.created", "response": {"id": "r"}}])
    assert answers[3][0] == 500 and answers[3][1]["error"]["type"] == "server_error"
    assert [r["kind"] for r in model.requests()] == ["sse", "sse", "sse", "status"]
    model.set_default(None)
    assert stream(model)[0].status == 200


def test_strict_mode_refuses_requests_beyond_the_script():
    with MockModel(strict=True, script=[text_answer("only")]) as mock:
        assert mock.pending() == 1
        assert sse_events(stream(mock)[1])[2]["delta"] == "only"
        mock.assert_all_consumed()
        resp, body, _ = stream(mock)
        assert resp.status == 500 and "no scripted response left" in json.loads(body)["error"]["message"]
        assert len(mock.unexpected) == 1
        with pytest.raises(AssertionError, match="beyond the script"):
            mock.assert_all_consumed()
    with MockModel(strict=True, script=[text_answer(), text_answer()]) as mock:
        stream(mock)
        with pytest.raises(AssertionError, match="1 scripted response"):
            mock.assert_all_consumed()


def test_status_answers(model):
    model.script(status(500, {"error": {"message": "boom"}}), status(503, "plain text", {"X-Thing": "1"}),
                 server_error(), rate_limited(), usage_not_included(), status(401, b"raw"))
    answers = []
    for _ in range(6):
        resp, body, complete = stream(model)
        assert complete
        answers.append((resp.status, resp.getheader("Content-Type"), body))
    assert answers[0] == (500, "application/json", b'{"error": {"message": "boom"}}')
    assert answers[1] == (503, None, b"plain text")
    assert json.loads(answers[2][2])["error"]["type"] == "server_error"
    assert answers[3][0] == 429 and json.loads(answers[3][2])["error"]["code"] == "rate_limit_exceeded"
    assert "Please try again in 1.5s" in json.loads(answers[3][2])["error"]["message"]
    assert json.loads(answers[4][2])["error"]["type"] == "usage_not_included"
    assert answers[5][:1] == (401,) and answers[5][2] == b"raw"
    assert [r["status"] for r in model.requests()] == [500, 503, 500, 429, 429, 401]


def test_usage_limit_reached_429(model):
    now = int(time.time())
    model.script(usage_limit_reached(plan_type="team", resets_in_seconds=600),
                 usage_limit_reached(resets_at=now + 60, retry_after=None, rate_limits=None, message=None,
                                     headers={"x-codex-active-limit": "codex"}))
    resp, body, _ = stream(model)
    assert resp.status == 429
    assert resp.getheader("Retry-After") == "600"
    error = json.loads(body)["error"]
    assert error["type"] == "usage_limit_reached" and error["plan_type"] == "team"
    assert now + 600 <= error["resets_at"] <= int(time.time()) + 600
    assert resp.getheader("x-codex-primary-used-percent") == "100.0"
    assert resp.getheader("x-codex-primary-window-minutes") == "300"
    assert resp.getheader("x-codex-primary-reset-at") == str(error["resets_at"])
    resp, body, _ = stream(model)
    assert json.loads(body) == {"error": {"type": "usage_limit_reached", "plan_type": "plus", "resets_at": now + 60}}
    assert resp.getheader("Retry-After") is None and resp.getheader("x-codex-primary-used-percent") is None
    assert resp.getheader("x-codex-active-limit") == "codex"


def test_rate_limit_headers_on_a_stream(model):
    headers = rate_limit_headers(primary_used_percent=42.5, primary_window_minutes=300, primary_reset_at=1700000000,
                                 secondary_used_percent=10, credits_has_credits=False, credits_balance="12.5",
                                 promo_message="Try X", rate_limit_reached_type="workspace_owner_credits_depleted",
                                 limits={"codex_other": {"used_percent": 91, "limit_name": "GPT-5.4-mini"}})
    assert headers["x-codex-credits-has-credits"] == "false"
    model.script(sse(text_answer(), headers=dict(headers, **{"x-codex-turn-state": "ts-1"})))
    resp, _, _ = stream(model)
    assert resp.getheader("x-codex-primary-used-percent") == "42.5"
    assert resp.getheader("x-codex-secondary-used-percent") == "10"
    assert resp.getheader("x-codex-rate-limit-reached-type") == "workspace_owner_credits_depleted"
    assert resp.getheader("x-codex-other-primary-used-percent") is None
    assert resp.getheader("x-codex_other-primary-used-percent") == "91"
    assert resp.getheader("x-codex_other-limit-name") == "GPT-5.4-mini"
    assert resp.getheader("x-codex-turn-state") == "ts-1"


def test_drop_and_delay(model):
    model.script(drop(), delay(0.3, text_answer("late")))
    with pytest.raises(http.client.RemoteDisconnected):
        post(model)
    start = time.monotonic()
    _, body, _ = stream(model)
    assert time.monotonic() - start >= 0.25
    assert sse_events(body)[2]["delta"] == "late"
    assert [r["outcome"] for r in model.requests()] == ["dropped", "completed"]


# --------------------------------------------------------------------------------------
# hang and pause


def _in_thread(fn):
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the test
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, result


def test_hang_until_released(model):
    model.script(hang(then=text_answer("released")))
    t, result = _in_thread(lambda: stream(model, timeout=10))
    model.wait_hanging(1)
    time.sleep(0.3)
    assert result == {}
    assert model.requests()[0]["hung"] is True and model.requests()[0]["status"] is None
    model.release()
    t.join(5)
    resp, body, complete = result["value"]
    assert resp.status == 200 and complete
    assert sse_events(body)[2]["delta"] == "released"


def test_hang_on_its_own_event_then_the_default_or_nothing(model):
    event = threading.Event()
    model.script(hang(event=event), hang(then=None))
    t, result = _in_thread(lambda: stream(model, timeout=10))
    model.wait_hanging(1)
    event.set()
    t.join(5)
    assert sse_events(result["value"][1])[2]["delta"] == DEFAULT_TEXT
    t, result = _in_thread(lambda: stream(model, timeout=10))
    model.wait_hanging(1)
    model.release()
    t.join(5)
    assert isinstance(result["error"], http.client.RemoteDisconnected)
    assert model.requests()[1]["outcome"] == "dropped"


def test_a_hang_is_dropped_when_the_mock_closes():
    mock = MockModel().start()
    mock.script(hang())
    t, result = _in_thread(lambda: stream(mock, timeout=10))
    mock.wait_hanging(1)
    mock.close()
    t.join(5)
    assert isinstance(result["error"], (http.client.HTTPException, OSError))


def test_a_client_giving_up_on_a_hang_is_noticed(model):
    model.script(hang())
    conn = connect(model)
    conn.request("POST", "/v1/responses", body=json.dumps(REQUEST_BODY), headers={"Content-Type": "application/json"})
    model.wait_hanging(1)
    conn.close()
    [req] = model.wait_finished(1)
    assert req["outcome"] == "client_closed"


def test_pause_stalls_a_stream_mid_way(model):
    events = text_answer("stalled")
    model.script(sse(events[:2] + [pause("mid")] + events[2:]))
    conn, resp = post(model)
    _, first = read_chunk(resp)
    _, second = read_chunk(resp)
    assert [first, second] == [encode_event(e) for e in events[:2]]
    model.wait_hanging(1)
    assert model.requests()[0]["frames_sent"] == 2
    model.release("another name")           # not this pause
    timer = threading.Timer(0.3, model.release, ["mid"])
    start = time.monotonic()
    timer.start()
    chunks, terminated = read_chunks(resp)
    assert time.monotonic() - start >= 0.25 and terminated
    assert b"".join(c for _, c in chunks) == encode_sse(events[2:])
    conn.close()


def test_a_client_closing_a_paused_stream_is_noticed(model):
    model.script(sse(text_answer()[:1] + [pause()] + text_answer()[1:]))
    conn, resp = post(model)
    read_chunk(resp)
    model.wait_hanging(1)
    resp.close()
    conn.close()
    [req] = model.wait_finished(1)
    assert (req["outcome"], req["frames_sent"]) == ("client_closed", 1)


# --------------------------------------------------------------------------------------
# writes: one frame per write, delays, splits, framings


def test_each_event_is_one_write_with_its_delay(model):
    events = text_answer("slow", deltas=["s", "l", "o", "w"])
    model.script(sse(events, delay=0.1))
    start = time.monotonic()
    conn, resp = post(model)
    chunks, terminated = read_chunks(resp)
    conn.close()
    assert terminated
    assert [c for _, c in chunks] == [encode_event(e) for e in events]
    times = [start] + [when for when, _ in chunks]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 0.08 for g in gaps), gaps


def test_split_mid_frame_across_writes(model):
    events = text_answer("split me")
    model.script(sse(events, split="mid", split_delay=0.02))
    conn, resp = post(model)
    chunks, terminated = read_chunks(resp)
    conn.close()
    assert terminated
    pieces = [c for _, c in chunks]
    assert len(pieces) == 2 * len(events)
    for head, tail, event in zip(pieces[::2], pieces[1::2], events):
        assert head + tail == encode_event(event)
        # The cut is inside the data line's JSON.
        assert b"data: {" in head and not head.endswith(b"\n") and not parse_sse(head)[0]
    assert sse_events(b"".join(pieces)) == events


def test_split_into_small_writes_keeps_utf8_intact_when_joined(model):
    text = "héllo ✓ wörld"
    model.script(sse(text_answer(text), split=3, split_delay=0))
    conn, resp = post(model)
    chunks, _ = read_chunks(resp)
    conn.close()
    assert all(len(c) <= 3 for _, c in chunks)
    body = b"".join(c for _, c in chunks)
    assert "✓".encode() in body                         # UTF-8 on the wire, not \\u escapes
    assert sse_events(body)[3]["item"]["content"][0]["text"] == text


def test_coalesce_writes_every_frame_at_once(model):
    events = text_answer()
    model.script(sse(events, coalesce=True))
    conn, resp = post(model)
    chunks, _ = read_chunks(resp)
    conn.close()
    assert [c for _, c in chunks] == [encode_sse(events)]


def test_framing_close_and_length(model):
    events = text_answer("framed")
    model.script(sse(events, framing="close"), sse(events, framing="length"))
    resp, body, complete = stream(model)
    assert complete and body == encode_sse(events)
    assert resp.getheader("Connection") == "close"
    assert resp.getheader("Content-Length") is None and resp.getheader("Transfer-Encoding") is None
    resp, body, complete = stream(model)
    assert complete and body == encode_sse(events)
    assert resp.getheader("Content-Length") == str(len(body)) and resp.getheader("Transfer-Encoding") is None


def test_crlf_line_endings_comments_and_raw_frames(model):
    events = text_answer("crlf")
    model.script(sse([comment("keep-alive")] + events[:1] + [sleep(0.05), raw(b"event: custom\ndata: 1\n\n")]
                     + events[1:], eol="\r\n"))
    _, body, _ = stream(model)
    assert b'\r\ndata: {"type":"response.created"' in body
    frames, rest = parse_sse(body)
    assert rest == b"" and frames[0]["comments"] == ["keep-alive"] and frames[2]["data"] == "1"
    assert [e for e in sse_events(body) if isinstance(e, dict)] == events


# --------------------------------------------------------------------------------------
# broken streams


def test_cut_after_n_frames(model):
    events = text_answer("never finished", deltas=["never ", "finished"])
    model.script(cut(events, after=3))
    resp, body, complete = stream(model)
    assert resp.status == 200 and not complete        # no terminating chunk
    assert body == encode_sse(events[:3])
    assert "response.completed" not in types(sse_events(body))
    [req] = model.requests()
    assert (req["outcome"], req["frames_sent"], req["kind"]) == ("cut", 3, "cut")


def test_cut_mid_frame(model):
    events = text_answer("partial")
    model.script(cut(events, after=2, mid_frame=True))
    _, body, complete = stream(model)
    assert not complete
    frames, rest = parse_sse(body)
    assert len(frames) == 2 and rest and encode_event(events[2]).startswith(rest)
    assert b"data: {" in rest


def test_cut_mid_chunk(model):
    events = text_answer("partial")
    model.script(cut(events, after=1, mid_chunk=True))
    conn, resp = post(model)
    when, first = read_chunk(resp)
    assert first == encode_event(events[0])
    line = resp.fp.readline()
    announced = int(line.strip(), 16)
    rest = resp.fp.read()
    conn.close()
    assert announced == len(encode_event(events[1])) and 0 < len(rest) < announced


def test_cut_with_length_and_close_framings(model):
    events = text_answer("cut")
    model.script(cut(events, after=2, framing="length"), cut(events, after=2, framing="close", mid_frame=True))
    resp, body, complete = stream(model)
    assert not complete and body == encode_sse(events[:2])
    assert int(resp.getheader("Content-Length")) == len(encode_sse(events))
    # Without framing the HTTP body just ends: only the SSE layer can tell.
    resp, body, complete = stream(model)
    assert complete and body.startswith(encode_sse(events[:2])) and parse_sse(body)[1]


def test_cut_with_a_reset(model):
    model.script(cut(text_answer(), after=1, reset=True))
    conn, resp = post(model)
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        resp.read()
    conn.close()
    assert model.wait_finished(1)[0]["outcome"] == "cut"


def test_cut_after_every_frame_still_lacks_the_end(model):
    events = text_answer()
    model.script(cut(events, after=len(events)))
    _, body, complete = stream(model)
    assert not complete and sse_events(body) == events


def test_malformed_data_line(model):
    events = text_answer("survives")
    model.script(malformed(events), malformed(events, data="not json either", at=len(events)))
    _, body, complete = stream(model)
    assert complete
    frames, _ = parse_sse(body)
    assert len(frames) == len(events) + 1
    assert frames[1] == {"event": "response.output_item.added", "data": "{this is not json", "comments": []}
    assert sse_events(body) == events                   # a client skipping it loses nothing
    _, body, _ = stream(model)
    assert parse_sse(body)[0][-1]["data"] == "not json either"
    assert model.requests()[0]["kind"] == "malformed"
    assert encode_event(bad_frame("x", None)) == b"data: x\n\n"


# --------------------------------------------------------------------------------------
# event builders


def test_the_reference_fixture_byte_for_byte():
    first = response({"type": "response.output_item.done",
                      "item": {"type": "function_call", "call_id": "call1", "name": "shell_command",
                               "arguments": json.dumps({"command": "echo hi", "workdir": None, "timeout_ms": None},
                                                       separators=(",", ":"))}},
                     response_id="resp-1", usage_=ZERO_USAGE)
    assert encode_sse(first).decode() == (
        'event: response.created\n'
        'data: {"type":"response.created","response":{"id":"resp-1"}}\n\n'
        'event: response.output_item.done\n'
        'data: {"type":"response.output_item.done","item":{"type":"function_call","call_id":"call1",'
        '"name":"shell_command","arguments":"{\\"command\\":\\"echo hi\\",\\"workdir\\":null,\\"timeout_ms\\":null}"}}'
        '\n\n'
        'event: response.completed\n'
        'data: {"type":"response.completed","response":{"id":"resp-1","usage":{"input_tokens":0,'
        '"input_tokens_details":null,"output_tokens":0,"output_tokens_details":null,"total_tokens":0}}}\n\n')
    # An object with only "type": no data line (as codex's sse() writes it).
    assert encode_event({"type": "response.done"}) == b"event: response.done\n\n"
    # out_shell_command writes the same arguments as the fixture.
    assert out_shell_command("echo hi", call_id="call1").item["arguments"] == \
        first[1]["item"]["arguments"]


def test_text_answer_deltas_and_ids():
    events = text_answer(deltas=["Hel", "lo", " world"], phase="final_answer")
    assert types(events) == ["response.created", "response.output_item.added"] + \
        ["response.output_text.delta"] * 3 + ["response.output_item.done", "response.completed"]
    added, done = events[1]["item"], events[5]["item"]
    assert added == {"type": "message", "role": "assistant", "id": added["id"], "status": "in_progress",
                     "content": [], "phase": "final_answer"}
    assert added["id"].startswith("msg_") and done["id"] == added["id"]
    assert done["content"] == [{"type": "output_text", "text": "Hello world"}] and done["phase"] == "final_answer"
    assert [e["delta"] for e in events[2:5]] == ["Hel", "lo", " world"]
    assert all(e["item_id"] == added["id"] and e["output_index"] == 0 and e["content_index"] == 0
               for e in events[2:5])
    # Deltas and the done text may disagree (the done item is authoritative for the reference).
    odd = text_answer("final", deltas=["draft"])
    assert odd[2]["delta"] == "draft" and odd[3]["item"]["content"][0]["text"] == "final"
    assert types(text_answer("x", usage_=None))[-1] == "response.completed"
    assert "usage" not in text_answer("x", usage_=None)[-1]["response"]
    assert text_answer("x", usage_=usage(100, 7, cached_tokens=40, reasoning_tokens=3))[-1]["response"]["usage"] == {
        "input_tokens": 100, "input_tokens_details": {"cached_tokens": 40}, "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 107}
    assert text_answer("x", end_turn=True)[-1]["response"]["end_turn"] is True


def test_function_call_arguments_stream_in_pieces():
    events = function_call("shell_command", {"command": "ls -la", "workdir": "/repo"}, call_id="call_7", chunks=4)
    kinds = types(events)
    assert kinds[:2] == ["response.created", "response.output_item.added"]
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) == 4
    done = events[-2]["item"]
    assert done["type"] == "function_call" and done["call_id"] == "call_7" and done["name"] == "shell_command"
    assert done["id"].startswith("fc_") and all(d["item_id"] == done["id"] for d in deltas)
    assert "".join(d["delta"] for d in deltas) == done["arguments"]
    assert json.loads(done["arguments"]) == {"command": "ls -la", "workdir": "/repo"}
    assert events[1]["item"]["arguments"] == "" and events[1]["item"]["status"] == "in_progress"
    explicit = function_call("f", '{"a":1}', deltas=['{"a"', ":1}"])
    assert [e["delta"] for e in explicit if e["type"].endswith("arguments.delta")] == ['{"a"', ":1}"]
    # Fresh call ids unless given.
    a, b = function_call("f", {}), function_call("f", {})
    assert a[-2]["item"]["call_id"].startswith("call_") and a[-2]["item"]["call_id"] != b[-2]["item"]["call_id"]
    assert json.loads(exec_command_call("make", workdir="/w")[-2]["item"]["arguments"]) == {"cmd": "make",
                                                                                           "workdir": "/w"}
    assert json.loads(shell_command_call("true", timeout_ms=500)[-2]["item"]["arguments"]) == {
        "command": "true", "workdir": None, "timeout_ms": 500}


def test_custom_tool_call_and_apply_patch():
    patch = add_file_patch("hello.txt", ["hello", "world"])
    assert patch == "*** Begin Patch\n*** Add File: hello.txt\n+hello\n+world\n*** End Patch"
    assert update_file_patch("a.py", "x = 1", "x = 2", "def f():") == \
        "*** Begin Patch\n*** Update File: a.py\n@@ def f():\n-x = 1\n+x = 2\n*** End Patch"
    events = apply_patch_call(patch, call_id="call_p")
    done = events[-2]["item"]
    assert done == {"type": "custom_tool_call", "id": done["id"], "call_id": "call_p", "name": "apply_patch",
                    "input": patch, "status": "completed"}
    deltas = [e for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert deltas and "".join(d["delta"] for d in deltas) == patch
    assert all(d["item_id"] == done["id"] and d["call_id"] == "call_p" for d in deltas)
    other = custom_tool_call("grep", "pattern", chunks=1)
    assert [e["delta"] for e in other if e["type"].endswith("input.delta")] == ["pattern"]


def test_reasoning_items():
    events = reasoning(deltas=["Think", "ing"], text="Answer")
    assert types(events) == ["response.created", "response.output_item.added",
                             "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                             "response.reasoning_summary_text.delta", "response.output_item.done",
                             "response.output_item.added", "response.output_text.delta",
                             "response.output_item.done", "response.completed"]
    item = events[5]["item"]
    assert item["type"] == "reasoning" and item["id"].startswith("rs_")
    assert item["summary"] == [{"type": "summary_text", "text": "Thinking"}]
    assert item["encrypted_content"] == DEFAULT_ENCRYPTED_CONTENT
    assert events[3] == {"type": "response.reasoning_summary_text.delta", "delta": "Think", "summary_index": 0,
                         "item_id": item["id"], "output_index": 0}
    assert events[7]["output_index"] == 1 and events[8]["output_index"] == 1
    multi = out_reasoning(["First.", "Second."], raw="raw thoughts").events(0)
    parts = [e["summary_index"] for e in multi if e["type"] == "response.reasoning_summary_part.added"]
    assert parts == [0, 1]
    raw_deltas = [e for e in multi if e["type"] == "response.reasoning_text.delta"]
    assert raw_deltas[0]["delta"] == "raw thoughts" and raw_deltas[0]["content_index"] == 0
    assert multi[-1]["item"]["content"] == [{"type": "reasoning_text", "text": "raw thoughts"}]


def test_multi_output_response():
    think = out_reasoning("Plan")
    call = out_function_call("shell_command", {"command": "ls"})
    patch = out_apply_patch(add_file_patch("x", "y"))
    events = response(think, call, patch, out_message("Doing it", added=False), response_id="resp_multi")
    dones = [e for e in events if e["type"] == "response.output_item.done"]
    assert [d["item"]["type"] for d in dones] == ["reasoning", "function_call", "custom_tool_call", "message"]
    assert [d["output_index"] for d in dones] == [0, 1, 2, 3]
    assert len([e for e in events if e["type"] == "response.output_item.added"]) == 3
    assert call.call_id == dones[1]["item"]["call_id"] and patch.id == dones[2]["item"]["id"]
    ids = [d["item"]["id"] for d in dones]
    assert len(set(ids)) == 4
    assert events[0]["response"]["id"] == events[-1]["response"]["id"] == "resp_multi"


def test_failed_incomplete_and_error_events():
    events = failed("context_length_exceeded", "Your input exceeds the context window of this model.")
    assert types(events) == ["response.created", "response.failed"]
    assert events[1]["response"]["error"] == {"code": "context_length_exceeded",
                                              "message": "Your input exceeds the context window of this model."}
    assert events[1]["response"]["id"] == events[0]["response"]["id"]
    partial = failed("server_is_overloaded", "busy", out_message("half"))
    assert types(partial)[-2:] == ["response.output_item.done", "response.failed"]
    inc = incomplete("max_output_tokens")
    assert inc[-1]["type"] == "response.incomplete"
    assert inc[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert ev_error("bad", "invalid_prompt") == {"type": "error", "code": "invalid_prompt", "message": "bad",
                                                 "param": None}
    unfinished = response(out_message("no end"), end=None)
    assert types(unfinished)[-1] == "response.output_item.done"
    with pytest.raises(ValueError):
        response(end="nope")


def test_realistic_mode_adds_what_the_real_api_sends():
    events = response(out_reasoning("R"), out_message("Hi"), out_function_call("f", {"x": 1}), realistic=True,
                      model="gpt-test")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = types(events)
    for extra in ("response.in_progress", "response.content_part.added", "response.output_text.done",
                  "response.content_part.done", "response.function_call_arguments.done",
                  "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"):
        assert extra in kinds
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["object"] == "response" and created["output"] == []
    assert completed["status"] == "completed" and completed["model"] == "gpt-test"
    assert [i["type"] for i in completed["output"]] == ["reasoning", "message", "function_call"]
    assert completed["usage"]["total_tokens"] == 17
    # The events of §13.3 are all still there, in order.
    plain = [k for k in kinds if k not in ("response.in_progress", "response.content_part.added",
                                           "response.output_text.done", "response.content_part.done",
                                           "response.function_call_arguments.done",
                                           "response.reasoning_summary_text.done",
                                           "response.reasoning_summary_part.done")]
    assert plain == types(response(out_reasoning("R"), out_message("Hi"), out_function_call("f", {"x": 1})))
    fail = failed("slow_down", "later", realistic=True)
    assert fail[-1]["response"]["status"] == "failed" and fail[-1]["response"]["error"]["code"] == "slow_down"


def test_builders_stream_through_the_server(model):
    patch = add_file_patch("a.txt", "a")
    model.script(response(out_reasoning(deltas=["a", "b"]), out_apply_patch(patch, call_id="call_ap")))
    _, body, _ = stream(model)
    events = sse_events(body)
    assert events[-2]["item"]["input"] == patch and events[-2]["item"]["call_id"] == "call_ap"
    assert "".join(e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta") == patch


# --------------------------------------------------------------------------------------
# models


def test_models_list_openai_shape(model):
    for path in ("/models", "/v1/models"):
        conn = connect(model)
        conn.request("GET", path + "?client_version=0.169.0")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
        assert json.loads(resp.read()) == {"object": "list", "data": [
            {"id": "mock-model", "object": "model", "created": 1700000000, "owned_by": "openai"}]}
        conn.close()
    reqs = model.requests("models")
    assert [r.path for r in reqs] == ["/models", "/v1/models"]
    assert reqs[0]["query"] == {"client_version": "0.169.0"}
    assert model.count() == 0                                # not among the responses requests


def test_models_list_codex_shape_etag_and_scripted_failures(model):
    model.set_models(["gpt-a", {"slug": "gpt-b", "display_name": "B", "visibility": "list"}], shape="codex",
                     etag='"e1"')
    model.script(status(500, {"error": {"message": "down"}}), endpoint="models")
    conn = connect(model)
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    assert resp.status == 500
    resp.read()
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    assert resp.getheader("ETag") == '"e1"'
    assert json.loads(resp.read()) == {"models": [{"slug": "gpt-a", "display_name": "gpt-a"},
                                                  {"slug": "gpt-b", "display_name": "B", "visibility": "list"}]}
    conn.close()
    with pytest.raises(ValueError):
        model.set_models([], shape="other")
    model.wait_requests(2, endpoint="models")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        sse([], framing="websocket")
    with pytest.raises(ValueError):
        sse([], split="half")
    with pytest.raises(ValueError):
        encode_event(pause())
    assert encode_sse([pause(), sleep(1), {"type": "a", "x": 1}]) == b'event: a\ndata: {"type":"a","x":1}\n\n'
