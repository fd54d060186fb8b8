# SPDX-License-Identifier: MIT
"""A mock of the model provider: the OpenAI Responses API streaming server-sent events.

A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) in a background thread:

    with MockModel() as model:
        model.script(function_call("shell_command", {"command": "echo hi"}, call_id="call_1"),
                     text_answer("Done", deltas=["Do", "ne"]))
        write_config(home, model.config_toml())      # model_provider = "mock_provider", base_url .../v1
        ...                                          # agentd runs a turn
        first, second = model.wait_requests(2)
        assert second.tool_output("call_1").startswith("Exit code: 0")
        assert first.header("originator") == "codex_cli_rs" and "shell_command" in first.tool_names()

Endpoints (any prefix, as codex's wiremock matches `.*/responses$`: /responses, /v1/responses,
/backend-api/codex/responses):
  POST .../responses   a JSON body (the request of §13.1). Each request takes the next scripted
                       behaviour (script(); a callable gets the Request and returns one), else the
                       default (set_default(); initially a fresh text_answer(DEFAULT_TEXT)). A body
                       that is not a JSON object gets 400 invalid_request_error and takes nothing.
                       MockModel(strict=True): a request beyond the script gets 500 and is listed
                       in .unexpected (codex's create_mock_responses_server_sequence panics there).
  GET  .../models      the model list: shape="openai" {"object":"list","data":[{"id","object":
                       "model","created","owned_by"}]} (default; §13 does not describe the body) or
                       shape="codex" {"models":[{"slug",...}]} (codex's ModelsResponse, as its
                       tests' mount_models_once sends it), with an ETag when etag= is given.
                       set_models(); script(..., endpoint="models") queues status/hang/drop there.
Anything else: 404 (405 for another method on those paths), JSON error bodies.

Behaviours (what a scripted request gets):
  sse(events, delay=, split=, coalesce=, framing=, headers=, eol=)
        200 text/event-stream, each event a frame "event: TYPE\\ndata: <compact JSON>\\n\\n" (an
        object with only "type": "event: TYPE\\n\\n", as codex's sse() writes it), one TCP write
        per frame (TCP_NODELAY), @delay seconds before each. split="mid": each frame in two
        writes, cut inside its JSON; split=N: N bytes a write; coalesce=True: all frames in one
        write. framing="chunked" (default; as api.openai.com answers), "close" (no length,
        Connection: close, the body ends at EOF) or "length" (Content-Length). A list of events
        given where a behaviour is expected is sse(list).
  cut(events, after=N, mid_frame=, mid_chunk=, reset=)
        send N frames, then close the connection: no terminating chunk (chunked), short of the
        Content-Length (length). mid_frame: half of frame N+1 first; mid_chunk (chunked): its chunk
        header announces the whole frame; reset: an RST (SO_LINGER 0) instead of a FIN.
  status(code, body, headers)    any status, a JSON body (dict/list) or bytes/str as they are.
  malformed(events, data=, at=)  frame @at's data line is @data, not JSON (the reference skips it).
  hang(then=, event=)   hold the request, nothing sent, until release(), @event or close(); then
                        answer @then (None: close without an answer).
  delay(seconds, then), drop() (close without an answer).
Markers inside an event list: pause(name) (stop streaming until release()/release(name): a stalled
stream, for idle timeouts and interrupts), sleep(seconds), raw(bytes) (written as they are),
comment(text) (": text" frame), bad_frame(data, event) (a frame whose data is @data verbatim).
While hanging or paused the mock notices the client closing (outcome "client_closed").

Event builders (field names of §13.3; ids from new_id(): resp_…, msg_…, rs_…, fc_…, ctc_…, call_…):
  ev_created, ev_in_progress, ev_output_item_added, ev_output_item_done, ev_output_text_delta,
  ev_reasoning_summary_part_added, ev_reasoning_summary_text_delta, ev_reasoning_text_delta,
  ev_function_call_arguments_delta, ev_custom_tool_call_input_delta, ev_completed, ev_failed,
  ev_incomplete, ev_error, usage(); items: message_item, reasoning_item, function_call_item,
  custom_tool_call_item.
  Outputs (one output item with its streaming events): out_message(text, deltas), out_reasoning(
  summary, deltas, raw), out_function_call(name, arguments, call_id, deltas|chunks),
  out_custom_tool_call(name, input, ...), out_apply_patch(patch), out_shell_command(command, ...),
  out_exec_command(cmd, ...), out_apply_patch_via_shell(patch).
  response(*outputs, response_id=, usage_=, end="completed"|"failed"|"incomplete"|None, ...) →
  response.created, each output's events (output_index 0, 1, ...), the terminal event;
  realistic=True adds what api.openai.com also sends (response.in_progress, content_part events,
  *.done events, sequence_number, full response objects) for a client that must ignore them.
  Whole responses: text_answer(text, deltas), reasoning(summary, deltas, text=), function_call(…),
  custom_tool_call(…), apply_patch_call(patch), shell_command_call(command), exec_command_call(cmd),
  failed(code, message), incomplete(reason). encode_event()/encode_sse() give the bytes.
  Canned statuses: usage_limit_reached(plan_type, resets_at, ...) (429 of §12.3/§13.3, with
  Retry-After and x-codex-* rate-limit headers), usage_not_included(), rate_limited(),
  server_error(), overloaded(), unauthorized(), bad_request(); rate_limit_headers(...).
  Patches: add_file_patch(path, lines), update_file_patch(path, old, new).

Every request is recorded as a Request (a dict: method, path, query, headers with lower-case names,
raw, body (parsed JSON; None for zstd, which Debian's python3 cannot decode), format "json",
"empty", "other", "zstd" or "gzip+json", time, monotonic, endpoint "responses"/"models"/None,
index (n-th responses request), behaviour kind, status answered,
outcome (None while answering; "completed", "cut", "dropped", "client_closed", "error"),
frames_sent). requests(endpoint="responses"), all_requests(), last_request(), last_body(),
wait_requests(n, timeout), wait_finished(n, timeout) (the outcomes are certain only then),
wait_hanging(n), count(), pending(), assert_all_consumed().
Request helpers (also module functions of a body): .body, .headers, .header(name),
.input_items(type, role), .messages(role), .user_texts(), .function_call_output(call_id),
.custom_tool_call_output(call_id), .tool_output(call_id), .tools(), .tool_names(), .tool(name),
.instructions().
"""
import copy
import gzip
import http.server
import itertools
import json
import secrets
import select
import socket
import struct
import threading
import time
import urllib.parse

from loopback_server import LoopbackServer

DEFAULT_TEXT = "Done"
DEFAULT_MODEL = "mock-model"
DEFAULT_MODELS = ("mock-model",)
DEFAULT_ENCRYPTED_CONTENT = "gAAAAmock-encrypted-reasoning"
RESPONSES_SUFFIX = "/responses"
MODELS_SUFFIX = "/models"

_id_counter = itertools.count(1)
_id_lock = threading.Lock()


def new_id(prefix):
    """A fresh id "<prefix>_<n><hex>": resp, msg, rs, fc, ctc, call (unique within the process)."""
    with _id_lock:
        n = next(_id_counter)
    return f"{prefix}_{n:04d}{secrets.token_hex(6)}"


def _compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------
# events (§13.3)


def _merge(event, extra):
    if extra:
        event.update(extra)
    return event


def ev_created(response_id, **extra):
    return _merge({"type": "response.created", "response": {"id": response_id}}, extra)


def ev_in_progress(response_id, **extra):
    return _merge({"type": "response.in_progress", "response": {"id": response_id}}, extra)


def ev_output_item_added(item, output_index=0, **extra):
    return _merge({"type": "response.output_item.added", "output_index": output_index, "item": item}, extra)


def ev_output_item_done(item, output_index=0, **extra):
    return _merge({"type": "response.output_item.done", "output_index": output_index, "item": item}, extra)


def ev_output_text_delta(delta, item_id=None, output_index=0, content_index=0, **extra):
    event = {"type": "response.output_text.delta", "delta": delta}
    if item_id is not None:
        event.update(item_id=item_id, output_index=output_index, content_index=content_index)
    return _merge(event, extra)


def ev_reasoning_summary_part_added(summary_index=0, item_id=None, output_index=0, **extra):
    event = {"type": "response.reasoning_summary_part.added", "summary_index": summary_index}
    if item_id is not None:
        event.update(item_id=item_id, output_index=output_index, part={"type": "summary_text", "text": ""})
    return _merge(event, extra)


def ev_reasoning_summary_text_delta(delta, summary_index=0, item_id=None, output_index=0, **extra):
    event = {"type": "response.reasoning_summary_text.delta", "delta": delta, "summary_index": summary_index}
    if item_id is not None:
        event.update(item_id=item_id, output_index=output_index)
    return _merge(event, extra)


def ev_reasoning_text_delta(delta, content_index=0, item_id=None, output_index=0, **extra):
    event = {"type": "response.reasoning_text.delta", "delta": delta, "content_index": content_index}
    if item_id is not None:
        event.update(item_id=item_id, output_index=output_index)
    return _merge(event, extra)


def ev_function_call_arguments_delta(delta, item_id=None, output_index=0, **extra):
    event = {"type": "response.function_call_arguments.delta", "delta": delta}
    if item_id is not None:
        event.update(item_id=item_id, output_index=output_index)
    return _merge(event, extra)


def ev_custom_tool_call_input_delta(delta, item_id=None, call_id=None, output_index=0, **extra):
    event = {"type": "response.custom_tool_call_input.delta", "delta": delta}
    if item_id is not None:
        event["item_id"] = item_id
    if call_id is not None:
        event["call_id"] = call_id
    event["output_index"] = output_index
    return _merge(event, extra)


def usage(input_tokens=12, output_tokens=5, cached_tokens=0, reasoning_tokens=0, total_tokens=None):
    """A response.completed usage object; cached_tokens/reasoning_tokens None: that details object is null."""
    return {"input_tokens": input_tokens,
            "input_tokens_details": None if cached_tokens is None else {"cached_tokens": cached_tokens},
            "output_tokens": output_tokens,
            "output_tokens_details": None if reasoning_tokens is None else {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens if total_tokens is None else total_tokens}


ZERO_USAGE = {"input_tokens": 0, "input_tokens_details": None, "output_tokens": 0, "output_tokens_details": None,
              "total_tokens": 0}


def ev_completed(response_id, usage_=None, end_turn=None, **extra):
    """response.completed; @usage_ "default" means usage(), None leaves usage out."""
    body = {"id": response_id}
    if usage_ == "default":
        usage_ = usage()
    if usage_ is not None:
        body["usage"] = usage_
    if end_turn is not None:
        body["end_turn"] = end_turn
    return _merge({"type": "response.completed", "response": body}, extra)


def ev_failed(response_id, code="server_error", message="The model failed.", **extra):
    return _merge({"type": "response.failed", "response": {"id": response_id, "status": "failed",
                                                           "error": {"code": code, "message": message}}}, extra)


def ev_incomplete(response_id, reason="max_output_tokens", **extra):
    return _merge({"type": "response.incomplete", "response": {"id": response_id, "status": "incomplete",
                                                               "incomplete_details": {"reason": reason}}}, extra)


def ev_error(message="An error occurred while processing your request.", code="server_error", param=None, **extra):
    """The Responses API's top-level "error" event."""
    return _merge({"type": "error", "code": code, "message": message, "param": param}, extra)


# --------------------------------------------------------------------------------------
# items


def message_item(text, item_id=None, phase=None, status="completed", role="assistant"):
    item = {"type": "message", "role": role, "id": item_id or new_id("msg"), "status": status,
            "content": [{"type": "output_text", "text": text}]}
    if phase is not None:
        item["phase"] = phase
    return item


def reasoning_item(summary=(), item_id=None, raw=None, encrypted_content=DEFAULT_ENCRYPTED_CONTENT):
    item = {"type": "reasoning", "id": item_id or new_id("rs"),
            "summary": [{"type": "summary_text", "text": s} for s in summary]}
    if raw is not None:
        item["content"] = [{"type": "reasoning_text", "text": r} for r in raw]
    if encrypted_content is not None:
        item["encrypted_content"] = encrypted_content
    return item


def function_call_item(name, arguments, call_id=None, item_id=None, status="completed"):
    if not isinstance(arguments, str):
        arguments = _compact(arguments)
    return {"type": "function_call", "id": item_id or new_id("fc"), "call_id": call_id or new_id("call"),
            "name": name, "arguments": arguments, "status": status}


def custom_tool_call_item(name, input_, call_id=None, item_id=None, status="completed"):
    return {"type": "custom_tool_call", "id": item_id or new_id("ctc"), "call_id": call_id or new_id("call"),
            "name": name, "input": input_, "status": status}


# --------------------------------------------------------------------------------------
# outputs: one output item with the events that stream it


def _split(text, chunks):
    """@text in @chunks roughly equal non-empty pieces (fewer when it is shorter)."""
    chunks = max(1, min(int(chunks), len(text) or 1))
    size = -(-len(text) // chunks) if text else 0
    return [text[i:i + size] for i in range(0, len(text), size)] if text else []


class Output:
    """One output item of a response: @item (the output_item.done item, authoritative), @added (the
    output_item.added item, or None not to send one) and the delta events between them."""

    def __init__(self, item, added, deltas, realistic_extras=None):
        self.item = item
        self.added = added
        self._deltas = deltas                       # fn(output_index) -> [events]
        self._realistic = realistic_extras          # fn(output_index) -> ([before deltas], [after deltas])

    def events(self, output_index, realistic=False):
        events = []
        if self.added is not None:
            events.append(ev_output_item_added(copy.deepcopy(self.added), output_index))
        before, after = self._realistic(output_index) if realistic and self._realistic else ([], [])
        events += before + self._deltas(output_index) + after
        events.append(ev_output_item_done(copy.deepcopy(self.item), output_index))
        return events

    @property
    def call_id(self):
        return self.item.get("call_id")

    @property
    def id(self):
        return self.item.get("id")


def out_message(text=None, deltas=None, item_id=None, phase=None, added=True):
    """An assistant message: output_item.added, output_text.delta per @deltas (default: the whole
    @text in one), output_item.done with @text (default: the deltas joined; they may differ)."""
    if text is None:
        text = "".join(deltas or [])
    if deltas is None:
        deltas = [text] if text else []
    item = message_item(text, item_id, phase)
    mid = item["id"]
    added_item = {"type": "message", "role": "assistant", "id": mid, "status": "in_progress", "content": []}
    if phase is not None:
        added_item["phase"] = phase

    def stream(index):
        return [ev_output_text_delta(d, mid, index, 0) for d in deltas]

    def extras(index):
        part = {"type": "output_text", "text": ""}
        return ([{"type": "response.content_part.added", "item_id": mid, "output_index": index,
                  "content_index": 0, "part": part}],
                [{"type": "response.output_text.done", "item_id": mid, "output_index": index,
                  "content_index": 0, "text": text},
                 {"type": "response.content_part.done", "item_id": mid, "output_index": index,
                  "content_index": 0, "part": {"type": "output_text", "text": text}}])

    return Output(item, added_item if added else None, stream, extras)


def out_reasoning(summary=None, deltas=None, raw=None, raw_deltas=None, item_id=None,
                  encrypted_content=DEFAULT_ENCRYPTED_CONTENT, added=True):
    """A reasoning item. @summary: a string or a list (one summary part each); @deltas: the
    summary deltas, a list of strings (one part) or of lists (per part; default: each part whole);
    @raw: raw reasoning texts (response.reasoning_text.delta, content_index per text)."""
    if deltas is not None and deltas and all(isinstance(d, str) for d in deltas):
        deltas = [deltas]
    if isinstance(summary, str):
        summary = [summary]
    if summary is None:
        summary = ["".join(part) for part in (deltas or [])]
    if deltas is None:
        deltas = [[s] if s else [] for s in summary]
    if isinstance(raw, str):
        raw = [raw]
    if raw is not None and raw_deltas is None:
        raw_deltas = [[r] if r else [] for r in raw]
    item = reasoning_item(summary, item_id, raw, encrypted_content)
    rid = item["id"]

    def stream(index):
        events = []
        for si, part in enumerate(deltas):
            events.append(ev_reasoning_summary_part_added(si, rid, index))
            events += [ev_reasoning_summary_text_delta(d, si, rid, index) for d in part]
        for ci, part in enumerate(raw_deltas or []):
            events += [ev_reasoning_text_delta(d, ci, rid, index) for d in part]
        return events

    def extras(index):
        after = []
        for si, text in enumerate(summary):
            after.append({"type": "response.reasoning_summary_text.done", "item_id": rid, "output_index": index,
                          "summary_index": si, "text": text})
            after.append({"type": "response.reasoning_summary_part.done", "item_id": rid, "output_index": index,
                          "summary_index": si, "part": {"type": "summary_text", "text": text}})
        return [], after

    added_item = {"type": "reasoning", "id": rid, "summary": []}
    return Output(item, added_item if added else None, stream, extras)


def out_function_call(name, arguments, call_id=None, item_id=None, deltas=None, chunks=3, added=True):
    """A function call: @arguments (a dict, compact-JSON encoded, or a string) streamed as
    response.function_call_arguments.delta in @chunks pieces (or exactly @deltas), then
    output_item.done with the whole arguments string."""
    item = function_call_item(name, arguments, call_id, item_id)
    fid, full = item["id"], item["arguments"]
    if deltas is None:
        deltas = _split(full, chunks)
    added_item = dict(item, arguments="", status="in_progress")

    def stream(index):
        return [ev_function_call_arguments_delta(d, fid, index) for d in deltas]

    def extras(index):
        return [], [{"type": "response.function_call_arguments.done", "item_id": fid, "output_index": index,
                     "arguments": full}]

    return Output(item, added_item if added else None, stream, extras)


def out_custom_tool_call(name, input_, call_id=None, item_id=None, deltas=None, chunks=3, added=True):
    """A custom (freeform) tool call: @input_ streamed as response.custom_tool_call_input.delta."""
    item = custom_tool_call_item(name, input_, call_id, item_id)
    cid, call = item["id"], item["call_id"]
    if deltas is None:
        deltas = _split(input_, chunks)
    added_item = dict(item, input="", status="in_progress")

    def stream(index):
        return [ev_custom_tool_call_input_delta(d, cid, call, index) for d in deltas]

    def extras(index):
        return [], [{"type": "response.custom_tool_call_input.done", "item_id": cid, "output_index": index,
                     "input": input_}]

    return Output(item, added_item if added else None, stream, extras)


def out_apply_patch(patch, call_id=None, **kw):
    """apply_patch as the freeform tool of §13.2 (a custom_tool_call whose input is the patch)."""
    return out_custom_tool_call("apply_patch", patch, call_id, **kw)


def out_shell_command(command, workdir=None, timeout_ms=None, call_id=None, extra_args=None, **kw):
    """shell_command with {"command","workdir","timeout_ms"} (null when not given, as codex's fixtures)."""
    args = {"command": command, "workdir": workdir, "timeout_ms": timeout_ms}
    args.update(extra_args or {})
    return out_function_call("shell_command", args, call_id, **kw)


def out_exec_command(cmd, workdir=None, yield_time_ms=None, tty=None, call_id=None, extra_args=None, **kw):
    """exec_command (unified exec) with {"cmd", ...}; arguments not given are left out."""
    args = {"cmd": cmd}
    for key, value in (("workdir", workdir), ("yield_time_ms", yield_time_ms), ("tty", tty)):
        if value is not None:
            args[key] = value
    args.update(extra_args or {})
    return out_function_call("exec_command", args, call_id, **kw)


def out_apply_patch_via_shell(patch, workdir=None, call_id=None, **kw):
    """apply_patch through shell_command's heredoc, as models without freeform tools do (§13.2)."""
    body = patch if patch.endswith("\n") else patch + "\n"
    return out_shell_command(f"apply_patch <<'EOF'\n{body}EOF\n", workdir, None, call_id, **kw)


def add_file_patch(path, lines):
    """A patch adding @path with @lines (a list or a string split on newlines)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    return "*** Begin Patch\n*** Add File: " + path + "\n" + "".join(f"+{line}\n" for line in lines) + "*** End Patch"


def update_file_patch(path, old, new, context=None):
    """A patch replacing the lines @old by @new in @path (one @@ chunk, optional @context header)."""
    old = old.splitlines() if isinstance(old, str) else list(old)
    new = new.splitlines() if isinstance(new, str) else list(new)
    head = "@@" + (f" {context}" if context else "")
    body = "".join(f"-{line}\n" for line in old) + "".join(f"+{line}\n" for line in new)
    return f"*** Begin Patch\n*** Update File: {path}\n{head}\n{body}*** End Patch"


# --------------------------------------------------------------------------------------
# whole responses


def _response_object(response_id, status, model, output=None, usage_=None):
    body = {"id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
            "model": model, "output": output or []}
    if usage_ is not None:
        body["usage"] = usage_
    return body


def response(*outputs, response_id=None, usage_="default", end="completed", error_code="server_error",
             error_message="The model failed.", incomplete_reason="max_output_tokens", end_turn=None,
             created=True, realistic=False, model=DEFAULT_MODEL):
    """The events of one response: response.created, each output's events (Output objects, or
    raw event dicts passed as they are) with output_index 0, 1, ..., then the end: "completed"
    (with @usage_: "default" = usage(), None = none, or a dict), "failed" (@error_code,
    @error_message), "incomplete" (@incomplete_reason), or None (the stream just ends)."""
    rid = response_id or new_id("resp")
    events = []
    if created:
        events.append(ev_created(rid))
        if realistic:
            events.append(ev_in_progress(rid))
    index = 0
    done_items = []
    for out in outputs:
        if isinstance(out, Output):
            events += out.events(index, realistic)
            done_items.append(copy.deepcopy(out.item))
            index += 1
        elif isinstance(out, (list, tuple)):
            events += copy.deepcopy(list(out))
        else:
            events.append(copy.deepcopy(out))
    if end == "completed":
        events.append(ev_completed(rid, usage_, end_turn))
    elif end == "failed":
        events.append(ev_failed(rid, error_code, error_message))
    elif end == "incomplete":
        events.append(ev_incomplete(rid, incomplete_reason))
    elif end is not None:
        raise ValueError(f"end must be completed, failed, incomplete or None, not {end!r}")
    if realistic:
        status_of = {"response.created": "in_progress", "response.in_progress": "in_progress",
                     "response.completed": "completed", "response.failed": "failed",
                     "response.incomplete": "incomplete"}
        for seq, event in enumerate(events):
            if isinstance(event, dict) and event.get("type") in status_of and isinstance(event.get("response"), dict):
                old = event["response"]
                final = event["type"] != "response.created" and event["type"] != "response.in_progress"
                full = _response_object(rid, status_of[event["type"]], model, done_items if final else None,
                                        old.get("usage"))
                full.update({k: v for k, v in old.items() if k not in full or k in ("status",)})
                event["response"] = full
            if isinstance(event, dict):
                event["sequence_number"] = seq
    return events


def text_answer(text=None, deltas=None, phase=None, item_id=None, **response_kw):
    """One assistant message (see out_message) in a response (see response); @text defaults to
    the deltas joined, else DEFAULT_TEXT."""
    if text is None and deltas is None:
        text = DEFAULT_TEXT
    return response(out_message(text, deltas, item_id, phase), **response_kw)


def reasoning(summary=None, deltas=None, raw=None, text=None, text_deltas=None, **response_kw):
    """A reasoning item (see out_reasoning), then an assistant message when @text is given."""
    outputs = [out_reasoning(summary, deltas, raw)]
    if text is not None or text_deltas is not None:
        outputs.append(out_message(text, text_deltas))
    return response(*outputs, **response_kw)


def function_call(name, arguments, call_id=None, deltas=None, chunks=3, **response_kw):
    return response(out_function_call(name, arguments, call_id, deltas=deltas, chunks=chunks), **response_kw)


def custom_tool_call(name, input_, call_id=None, deltas=None, chunks=3, **response_kw):
    return response(out_custom_tool_call(name, input_, call_id, deltas=deltas, chunks=chunks), **response_kw)


def apply_patch_call(patch, call_id=None, **response_kw):
    return response(out_apply_patch(patch, call_id), **response_kw)


def shell_command_call(command, workdir=None, timeout_ms=None, call_id=None, **response_kw):
    return response(out_shell_command(command, workdir, timeout_ms, call_id), **response_kw)


def exec_command_call(cmd, workdir=None, yield_time_ms=None, call_id=None, **response_kw):
    return response(out_exec_command(cmd, workdir, yield_time_ms, call_id=call_id), **response_kw)


def failed(code="server_error", message="The model failed.", *outputs, **response_kw):
    """response.created (then @outputs) then response.failed {error:{code,message}}; codes per
    §13.3: context_length_exceeded, insufficient_quota, usage_not_included, invalid_prompt,
    cyber_policy, server_is_overloaded, slow_down, rate_limit_exceeded ("Please try again in 1.5s")."""
    return response(*outputs, end="failed", error_code=code, error_message=message, **response_kw)


def incomplete(reason="max_output_tokens", *outputs, **response_kw):
    return response(*outputs, end="incomplete", incomplete_reason=reason, **response_kw)


# --------------------------------------------------------------------------------------
# SSE encoding and stream markers


class _Marker:
    def __init__(self, kind, **fields):
        self.kind = kind
        self.__dict__.update(fields)

    def __repr__(self):
        return f"<{self.kind} {self.__dict__}>"


def pause(name=None):
    """In an event list: stop streaming here until release() (or release(@name))."""
    return _Marker("pause", name=name)


def sleep(seconds):
    """In an event list: wait @seconds here."""
    return _Marker("sleep", seconds=float(seconds))


def raw(data):
    """In an event list: bytes (or str) written as they are, as one frame."""
    return _Marker("frame", data=data.encode() if isinstance(data, str) else bytes(data))


def comment(text="keep-alive"):
    """In an event list: an SSE comment frame ": @text"."""
    return raw(f": {text}\n\n")


def bad_frame(data="{this is not json", event="response.output_text.delta"):
    """In an event list: a frame whose data line is @data verbatim (not JSON)."""
    head = f"event: {event}\n" if event else ""
    return raw(f"{head}data: {data}\n\n")


def encode_event(event, eol="\n"):
    """One SSE frame as codex's test sse() writes it: "event: TYPE" then "data: <compact JSON>" and
    a blank line; an object with only "type" gets no data line; one without "type" no event line."""
    if isinstance(event, _Marker):
        if event.kind != "frame":
            raise ValueError(f"{event!r} is not a frame")
        return event.data
    if isinstance(event, (bytes, str)):
        return event.encode() if isinstance(event, str) else event
    lines = []
    if "type" in event:
        lines.append(f"event: {event['type']}")
    if not (len(event) == 1 and "type" in event):
        lines.append("data: " + _compact(event))
    return (eol.join(lines) + eol + eol).encode()


def encode_sse(events, eol="\n"):
    """The body of @events (markers other than raw frames skipped)."""
    return b"".join(encode_event(e, eol) for e in events if not isinstance(e, _Marker) or e.kind == "frame")


def _mid(frame):
    """Where to split @frame: inside its data line's JSON when it has one, else in its middle."""
    at = frame.find(b"data: ")
    if at >= 0:
        end = frame.find(b"\n", at)
        end = len(frame) if end < 0 else end
        start = at + len(b"data: ")
        return start + max(1, (end - start) // 2)
    return max(1, len(frame) // 2)


# --------------------------------------------------------------------------------------
# behaviours


def sse(events, *, delay=0.0, split=None, split_delay=None, coalesce=False, framing="chunked", headers=None,
        eol="\n", status_code=200, content_type="text/event-stream"):
    """A 200 text/event-stream of @events (dicts, raw()/bytes frames, markers); see the module doc."""
    if framing not in ("chunked", "close", "length"):
        raise ValueError(f"framing must be chunked, close or length, not {framing!r}")
    if split not in (None, "mid") and not (isinstance(split, int) and split > 0):
        raise ValueError(f"split must be None, 'mid' or a positive byte count, not {split!r}")
    return {"mode": "sse", "events": list(events), "delay": float(delay), "split": split,
            "split_delay": (0.01 if split else 0.0) if split_delay is None else float(split_delay),
            "coalesce": coalesce, "framing": framing, "headers": dict(headers or {}), "eol": eol,
            "status": status_code, "content_type": content_type, "cut_after": None, "cut_mid_frame": False,
            "cut_mid_chunk": False, "reset": False}


def cut(events, after, mid_frame=False, mid_chunk=False, reset=False, **sse_kw):
    """Send @after frames of @events, then close the connection (see the module doc)."""
    behaviour = sse(events, **sse_kw)
    behaviour.update(mode="sse", kind="cut", cut_after=int(after), cut_mid_frame=bool(mid_frame or mid_chunk),
                     cut_mid_chunk=bool(mid_chunk), reset=bool(reset))
    return behaviour


def malformed(events=None, data="{this is not json", at=1, **sse_kw):
    """@events (default: a text answer) with a frame whose data line is @data inserted at @at."""
    events = list(text_answer() if events is None else events)
    kind = events[at]["type"] if at < len(events) and isinstance(events[at], dict) and "type" in events[at] \
        else "response.output_text.delta"
    events.insert(at, bad_frame(data, kind))
    behaviour = sse(events, **sse_kw)
    behaviour["kind"] = "malformed"
    return behaviour


def status(code, body=None, headers=None):
    """Answer @code with @body: a dict/list (JSON), bytes or str (sent as they are), None: {}."""
    return {"mode": "status", "status": int(code), "body": {} if body is None else body, "headers": dict(headers or {})}


def hang(then="default", event=None):
    """Hold the request until released (release(), @event, or close()); then answer @then
    ("default": the next default answer; None: close the connection without one)."""
    return {"mode": "hang", "then": then, "event": event or threading.Event()}


def delay(seconds, then="default"):
    return {"mode": "delay", "seconds": float(seconds), "then": then}


def drop():
    """Close the connection without sending anything."""
    return {"mode": "drop"}


def _api_error(message, type_, code=None, param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def rate_limit_headers(primary_used_percent=None, primary_window_minutes=None, primary_reset_at=None,
                       secondary_used_percent=None, secondary_window_minutes=None, secondary_reset_at=None,
                       credits_has_credits=None, credits_unlimited=None, credits_balance=None, active_limit=None,
                       promo_message=None, rate_limit_reached_type=None, limits=None):
    """The rate-limit headers of §13.3 (only those given). @limits: {limit_id: {"used_percent",
    "window_minutes", "reset_at", "limit_name"}} for the per-limit x-<limit-id>-* families."""
    def fmt(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    headers = {}
    for name, value in (("x-codex-primary-used-percent", primary_used_percent),
                        ("x-codex-primary-window-minutes", primary_window_minutes),
                        ("x-codex-primary-reset-at", primary_reset_at),
                        ("x-codex-secondary-used-percent", secondary_used_percent),
                        ("x-codex-secondary-window-minutes", secondary_window_minutes),
                        ("x-codex-secondary-reset-at", secondary_reset_at),
                        ("x-codex-credits-has-credits", credits_has_credits),
                        ("x-codex-credits-unlimited", credits_unlimited),
                        ("x-codex-credits-balance", credits_balance),
                        ("x-codex-active-limit", active_limit),
                        ("x-codex-promo-message", promo_message),
                        ("x-codex-rate-limit-reached-type", rate_limit_reached_type)):
        if value is not None:
            headers[name] = fmt(value)
    for limit_id, fields in (limits or {}).items():
        for key in ("used_percent", "window_minutes", "reset_at"):
            if fields.get(key) is not None:
                headers[f"x-{limit_id}-primary-{key.replace('_', '-')}"] = fmt(fields[key])
        if fields.get("limit_name") is not None:
            headers[f"x-{limit_id}-limit-name"] = fmt(fields["limit_name"])
    return headers


def usage_limit_reached(plan_type="plus", resets_at=None, resets_in_seconds=3600, retry_after="default",
                        message="The usage limit has been reached", headers=None, rate_limits="default"):
    """The 429 of §12.3/§13.3: {"error":{"type":"usage_limit_reached","message","plan_type","resets_at"}}
    (@resets_at: epoch seconds, default now + @resets_in_seconds; None fields are left out), a
    Retry-After (default: @resets_in_seconds), x-codex-primary-* headers at 100 % unless @rate_limits
    (a rate_limit_headers() dict, or None for none)."""
    if resets_at is None and resets_in_seconds is not None:
        resets_at = int(time.time()) + int(resets_in_seconds)
    error = {"type": "usage_limit_reached"}
    if message is not None:
        error["message"] = message
    if plan_type is not None:
        error["plan_type"] = plan_type
    if resets_at is not None:
        error["resets_at"] = int(resets_at)
    hdrs = {}
    if retry_after == "default":
        retry_after = resets_in_seconds
    if retry_after is not None:
        hdrs["Retry-After"] = str(retry_after)
    if rate_limits == "default":
        rate_limits = rate_limit_headers(primary_used_percent=100.0, primary_window_minutes=300,
                                         primary_reset_at=resets_at)
    hdrs.update(rate_limits or {})
    hdrs.update(headers or {})
    return status(429, {"error": error}, hdrs)


def usage_not_included(plan_type="free", headers=None):
    return status(429, {"error": {"type": "usage_not_included", "message": "Codex is not included in your plan.",
                                  "plan_type": plan_type}}, headers)


def rate_limited(retry_in=1.5, retry_after="1", headers=None):
    """A 429 that is not a usage limit (the reference retries it)."""
    hdrs = {"Retry-After": retry_after} if retry_after is not None else {}
    hdrs.update(headers or {})
    return status(429, _api_error(f"Rate limit reached for requests. Please try again in {retry_in}s.",
                                  "requests", "rate_limit_exceeded"), hdrs)


def server_error(message="The server had an error while processing your request. Sorry about that!"):
    return status(500, _api_error(message, "server_error"))


def overloaded():
    return status(503, _api_error("The server is overloaded.", "server_error", "server_is_overloaded"))


def unauthorized(message="Incorrect API key provided."):
    return status(401, _api_error(message, "invalid_request_error", "invalid_api_key"))


def bad_request(message="Invalid request.", code=None, param=None):
    return status(400, _api_error(message, "invalid_request_error", code, param))


# --------------------------------------------------------------------------------------
# inspecting requests


def _body_of(thing):
    if isinstance(thing, Request):
        return thing.get("body") or {}
    return thing or {}


def input_items(body, type=None, role=None):
    """The input items of a request body (or Request), of @type and @role when given."""
    items = _body_of(body).get("input") or []
    return [i for i in items if isinstance(i, dict) and (type is None or i.get("type") == type)
            and (role is None or i.get("role") == role)]


def message_text(item):
    """The text of a message item's content (its input_text/output_text parts joined)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def messages(body, role=None):
    return [i for i in input_items(body) if i.get("type", "message") == "message" and "role" in i
            and (role is None or i.get("role") == role)]


def user_texts(body):
    """The texts of the user messages of a request (environment context and AGENTS.md included)."""
    return [message_text(m) for m in messages(body, "user")]


def _find_output(body, type_, call_id):
    found = [i for i in input_items(body, type_) if i.get("call_id") == call_id]
    return found[-1] if found else None


def function_call_output(body, call_id):
    """The function_call_output item for @call_id in a request, or None."""
    return _find_output(body, "function_call_output", call_id)


def custom_tool_call_output(body, call_id):
    """The custom_tool_call_output item for @call_id in a request, or None."""
    return _find_output(body, "custom_tool_call_output", call_id)


def tool_output(body, call_id):
    """The output text of the function_call_output or custom_tool_call_output for @call_id (content
    items' text joined when it is a list); AssertionError when there is none."""
    item = function_call_output(body, call_id) or custom_tool_call_output(body, call_id)
    if item is None:
        types = [(i.get("type"), i.get("call_id")) for i in input_items(body)]
        raise AssertionError(f"no tool output for call_id {call_id!r} in the request; input items: {types}")
    output = item.get("output")
    if isinstance(output, list):
        return "".join(part.get("text", "") for part in output if isinstance(part, dict))
    if isinstance(output, dict):  # older shape {"content": ..., "success": ...}
        return output.get("content", "")
    return output


def tools(body):
    return list(_body_of(body).get("tools") or [])


def tool_names(body):
    return [t.get("name") or t.get("type") for t in tools(body)]


def tool(body, name):
    """The tool definition named @name, or None."""
    for t in tools(body):
        if t.get("name") == name:
            return t
    return None


def instructions(body):
    return _body_of(body).get("instructions")


class Request(dict):
    """A recorded request (a dict) with helpers for its body."""

    @property
    def body(self):
        return self.get("body")

    @property
    def headers(self):
        return self.get("headers") or {}

    @property
    def path(self):
        return self.get("path")

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def input_items(self, type=None, role=None):
        return input_items(self, type, role)

    def messages(self, role=None):
        return messages(self, role)

    def user_texts(self):
        return user_texts(self)

    def function_call_output(self, call_id):
        return function_call_output(self, call_id)

    def custom_tool_call_output(self, call_id):
        return custom_tool_call_output(self, call_id)

    def tool_output(self, call_id):
        return tool_output(self, call_id)

    def tools(self):
        return tools(self)

    def tool_names(self):
        return tool_names(self)

    def tool(self, name):
        return tool(self, name)

    def instructions(self):
        return instructions(self)


# --------------------------------------------------------------------------------------


class _Closing(Exception):
    """The mock is closing: drop the connection."""


class _ClientGone(Exception):
    """The client closed its end."""


class MockModel(LoopbackServer):
    """The mock model provider; see the module's docstring. A context manager, or start()/close()."""

    HANDLER_ATTR = "model"
    THREAD_NAME = "mock-model"

    def __init__(self, *, script=(), default=None, strict=False, models=DEFAULT_MODELS, models_shape="openai",
                 models_etag=None):
        self.strict = strict
        LoopbackServer.__init__(self)
        self._requests = []
        self._queues = {"responses": list(script), "models": []}
        self._defaults = {"responses": default, "models": None}
        self._hanging = []                   # [(event, name)]
        self._connections = set()
        self._index = 0
        self.unexpected = []
        self.set_models(models, models_shape, models_etag)

    # ---- life ---------------------------------------------------------------------------

    def _progress(self):
        return f"requests so far: {[(r['method'], r['path'], r['outcome']) for r in self._requests]}"

    def close(self):
        """Stop serving; requests hanging or paused are dropped (their clients see the connection close)."""
        LoopbackServer.close(self)

    def _after_shutdown(self):
        # Connections kept alive by clients would otherwise stay open (their threads blocked reading).
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])

    @property
    def base_url(self):
        """The provider base_url: <url>/v1 (requests go to <base_url>/responses)."""
        return self.url + "/v1"

    @property
    def responses_url(self):
        return self.base_url + RESPONSES_SUFFIX

    def env(self):
        """Environment pointing the built-in openai provider here."""
        return {"OPENAI_BASE_URL": self.base_url}

    def config_toml(self, model=DEFAULT_MODEL, provider="mock_provider", name="Mock provider for test",
                    approval_policy="never", sandbox_mode="read-only", request_max_retries=0, stream_max_retries=0,
                    stream_idle_timeout_ms=None, requires_openai_auth=False, top_level="", provider_extra=""):
        """The config.toml codex's app-server tests write (§13.4), pointed at this mock. @top_level:
        more top-level lines; @provider_extra: more lines in the provider's table."""
        lines = [f'model = "{model}"']
        if approval_policy is not None:
            lines.append(f'approval_policy = "{approval_policy}"')
        if sandbox_mode is not None:
            lines.append(f'sandbox_mode = "{sandbox_mode}"')
        lines.append(f'model_provider = "{provider}"')
        if top_level:
            lines.append(top_level.rstrip("\n"))
        lines += ["", f"[model_providers.{provider}]", f'name = "{name}"', f'base_url = "{self.base_url}"',
                  'wire_api = "responses"', f"request_max_retries = {int(request_max_retries)}",
                  f"stream_max_retries = {int(stream_max_retries)}", "supports_websockets = false"]
        if stream_idle_timeout_ms is not None:
            lines.append(f"stream_idle_timeout_ms = {int(stream_idle_timeout_ms)}")
        if requires_openai_auth:
            lines.append("requires_openai_auth = true")
        if provider_extra:
            lines.append(provider_extra.rstrip("\n"))
        return "\n".join(lines) + "\n"

    # ---- scripting ----------------------------------------------------------------------

    def script(self, *behaviours, endpoint="responses"):
        """Queue @behaviours (dicts, event lists, or callables taking the Request) for the next
        requests to @endpoint ("responses" or "models"), one each, in order."""
        with self._cond:
            self._queues[endpoint].extend(behaviours)

    def set_default(self, behaviour, endpoint="responses"):
        """What requests get once the queue is empty (None: a fresh text_answer(); for models: the list)."""
        with self._cond:
            self._defaults[endpoint] = behaviour

    def set_models(self, models, shape="openai", etag=None):
        """The GET .../models answer: @models are ids (or dicts sent as they are), in @shape."""
        if shape not in ("openai", "codex"):
            raise ValueError(f"shape must be openai or codex, not {shape!r}")
        with self._cond:
            self.models = list(models)
            self.models_shape = shape
            self.models_etag = etag

    def pending(self, endpoint="responses"):
        """How many scripted behaviours are still queued."""
        with self._cond:
            return len(self._queues[endpoint])

    def assert_all_consumed(self):
        """AssertionError unless every scripted response was taken and none was asked for beyond them."""
        with self._cond:
            left, unexpected = len(self._queues["responses"]), list(self.unexpected)
        assert left == 0, f"mock model: {left} scripted response(s) never requested"
        assert not unexpected, f"mock model: {len(unexpected)} request(s) beyond the script: " \
                               f"{[u.get('path') for u in unexpected]}"

    def release(self, name=None):
        """Let every request hanging or stream paused now go on (only the pauses named @name when given)."""
        with self._cond:
            for event, ename in self._hanging:
                if name is None or ename == name:
                    event.set()

    def wait_hanging(self, n=1, timeout=5.0):
        """Wait until @n requests are hanging or paused."""
        self._wait(lambda: len([e for e, _ in self._hanging if not e.is_set()]) >= n, timeout,
                   f"{n} hanging request(s)")

    # ---- what happened ------------------------------------------------------------------

    def all_requests(self):
        """Copies of every recorded request, oldest first."""
        with self._cond:
            return [copy.deepcopy(r) for r in self._requests]

    def requests(self, endpoint="responses"):
        """Copies of the recorded requests to @endpoint ("responses", "models"; None: unknown paths)."""
        with self._cond:
            return [copy.deepcopy(r) for r in self._requests if r["endpoint"] == endpoint]

    def count(self, endpoint="responses"):
        with self._cond:
            return sum(1 for r in self._requests if r["endpoint"] == endpoint)

    def last_request(self, endpoint="responses"):
        found = self.requests(endpoint)
        if not found:
            raise AssertionError(f"mock model: no {endpoint} request yet")
        return found[-1]

    def last_body(self):
        return self.last_request()["body"]

    def wait_requests(self, n, timeout=5.0, endpoint="responses"):
        """Wait until at least @n requests to @endpoint arrived; return them all."""
        self._wait(lambda: self.count(endpoint) >= n, timeout, f"{n} {endpoint} request(s)")
        return self.requests(endpoint)

    def wait_finished(self, n, timeout=5.0, endpoint="responses"):
        """Wait until @n requests to @endpoint were answered to the end (an outcome recorded)."""
        def done():
            return sum(1 for r in self._requests if r["endpoint"] == endpoint and r["outcome"]) >= n
        self._wait(done, timeout, f"{n} finished {endpoint} request(s)")
        return self.requests(endpoint)


    # ---- serving (handler threads) -------------------------------------------------------

    def _record(self, call):
        with self._cond:
            if call["endpoint"] == "responses" and call["format"] in ("json", "gzip+json"):
                call["index"] = self._index
                self._index += 1
            self._requests.append(call)
            self._cond.notify_all()

    def _update(self, call, **fields):
        with self._cond:
            call.update(fields)
            self._cond.notify_all()

    def _next_behaviour(self, call):
        endpoint = call["endpoint"]
        with self._cond:
            queue = self._queues[endpoint]
            if queue:
                behaviour = queue.pop(0)
            elif endpoint == "responses" and self.strict:
                self.unexpected.append(call)
                behaviour = status(500, _api_error("mock model: no scripted response left", "server_error"))
            else:
                behaviour = self._defaults[endpoint]
        return self._materialise(behaviour, call)

    def _materialise(self, behaviour, call):
        if behaviour == "default":
            with self._cond:
                behaviour = self._defaults[call["endpoint"]]
        if callable(behaviour):
            behaviour = behaviour(copy.deepcopy(call))
        if behaviour is None:
            behaviour = sse(text_answer()) if call["endpoint"] == "responses" else {"mode": "models"}
        if isinstance(behaviour, (list, tuple)):
            behaviour = sse(behaviour)
        return behaviour

    def _wait_event(self, event, conn, call, name=None):
        """Wait for @event; raise _Closing when the mock closes, _ClientGone when the client does."""
        with self._cond:
            self._hanging.append((event, name))
            self._cond.notify_all()
        try:
            while not event.wait(0.05):
                if self._closing.is_set():
                    raise _Closing()
                if _peer_closed(conn):
                    raise _ClientGone()
        finally:
            with self._cond:
                self._hanging.remove((event, name))
                self._cond.notify_all()

    def _sleep(self, seconds):
        if seconds > 0 and self._closing.wait(seconds):
            raise _Closing()

    def _resolve(self, behaviour, call, conn):
        """Follow hang/delay to the final behaviour (None: drop)."""
        while behaviour is not None and behaviour.get("mode") in ("hang", "delay"):
            if behaviour["mode"] == "hang":
                self._update(call, hung=True)
                self._wait_event(behaviour["event"], conn, call)
            else:
                self._sleep(behaviour["seconds"])
            then = behaviour["then"]
            behaviour = None if then is None else self._materialise(then, call)
        if self._closing.is_set():
            raise _Closing()
        return behaviour

    def _models_body(self):
        with self._cond:
            models, shape, etag = list(self.models), self.models_shape, self.models_etag
        if shape == "codex":
            body = {"models": [m if isinstance(m, dict) else {"slug": m, "display_name": m} for m in models]}
        else:
            body = {"object": "list", "data": [m if isinstance(m, dict) else
                                               {"id": m, "object": "model", "created": 1700000000,
                                                "owned_by": "openai"} for m in models]}
        return body, ({"ETag": etag} if etag else {})


def _peer_closed(conn):
    """Whether the client closed its end of @conn (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _parse_body(raw_body, content_type, content_encoding):
    encoding = (content_encoding or "").strip().lower()
    if not raw_body:
        return None, "empty"
    prefix = ""
    if encoding == "zstd":
        return None, "zstd"       # no zstd in Debian's python3 stdlib; the raw bytes are recorded
    if encoding == "gzip":
        try:
            raw_body = gzip.decompress(raw_body)
        except (OSError, EOFError):
            return None, "other"
        prefix = "gzip+"
    elif encoding not in ("", "identity"):
        return None, "other"
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        return None, "other"
    try:
        return json.loads(raw_body), prefix + "json"
    except ValueError:
        return None, "other"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model = None  # set by MockModel.start()

    def log_message(self, fmt, *args):  # quiet: the requests are recorded instead
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.model._cond:
            self.model._connections.add(self.connection)

    def finish(self):
        with self.model._cond:
            self.model._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _endpoint(self, path):
        if path.endswith(RESPONSES_SUFFIX):
            return "responses", "POST"
        if path.endswith(MODELS_SUFFIX):
            return "models", "GET"
        return None, None

    def _handle(self):
        mock = self.model
        split = urllib.parse.urlsplit(self.path)
        raw_body = self._read_body()
        body, fmt = _parse_body(raw_body, self.headers.get("Content-Type"), self.headers.get("Content-Encoding"))
        endpoint, method = self._endpoint(split.path)
        call = Request(method=self.command, path=split.path, query=dict(urllib.parse.parse_qsl(split.query)),
                       headers={k.lower(): v for k, v in self.headers.items()}, raw=raw_body, body=body, format=fmt,
                       time=time.time(), monotonic=time.monotonic(), endpoint=endpoint, index=None, kind=None,
                       status=None, outcome=None, frames_sent=0, hung=False)
        mock._record(call)
        if endpoint is None:
            return self._send_json(call, 404, _api_error(f"mock model: no {self.command} {split.path} here",
                                                         "invalid_request_error"))
        if self.command != method:
            return self._send_json(call, 405, _api_error(f"mock model: {split.path} takes {method}",
                                                         "invalid_request_error"))
        if endpoint == "responses" and fmt == "zstd":
            pass  # recorded; answered as scripted without a parsed body
        elif endpoint == "responses" and not isinstance(body, dict):
            return self._send_json(call, 400, _api_error(
                "We could not parse the JSON body of your request.", "invalid_request_error"))
        try:
            behaviour = mock._resolve(mock._next_behaviour(call), call, self.connection)
            if behaviour is None or behaviour["mode"] == "drop":
                mock._update(call, kind="drop", outcome="dropped")
                self.close_connection = True
                return
            mode = behaviour["mode"]
            mock._update(call, kind=behaviour.get("kind", mode))
            if mode == "status":
                payload, headers = behaviour["body"], behaviour["headers"]
                return self._send_json(call, behaviour["status"], payload, headers)
            if mode == "models":
                payload, headers = mock._models_body()
                return self._send_json(call, 200, payload, headers)
            if mode == "sse":
                return self._stream(call, behaviour)
            raise ValueError(f"mock model: unknown behaviour {behaviour!r}")
        except _Closing:
            mock._update(call, outcome=call["outcome"] or "dropped")
            self.close_connection = True
        except _ClientGone:
            mock._update(call, outcome="client_closed")
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            mock._update(call, outcome="client_closed")
            self.close_connection = True
        except Exception:
            mock._update(call, outcome="error")
            self.close_connection = True
            raise

    def _send_json(self, call, code, payload, headers=None):
        data = payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str) else \
            json.dumps(payload).encode()
        self.send_response(code)
        lower = {k.lower() for k in (headers or {})}
        if not isinstance(payload, (bytes, str)) and "content-type" not in lower:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        # Recorded before the client can see the answer (a failed write overrides the outcome).
        self.model._update(call, status=code, outcome="completed")
        self.end_headers()
        self.wfile.write(data)

    # ---- streaming ------------------------------------------------------------------------

    def _write(self, data, framing, declared=None):
        """One TCP write of @data (one chunk when chunked; @declared: the size its header announces)."""
        if not data and framing == "chunked":
            return
        if framing == "chunked":
            data = b"%x\r\n" % (len(data) if declared is None else declared) + data + \
                (b"\r\n" if declared is None else b"")
        self.connection.sendall(data)

    def _write_frame(self, frame, b, framing):
        split = b["split"]
        if split is None:
            self._write(frame, framing)
            return
        if split == "mid":
            at = _mid(frame)
            pieces = [frame[:at], frame[at:]]
        else:
            pieces = [frame[i:i + split] for i in range(0, len(frame), split)]
        for i, piece in enumerate(pieces):
            if i:
                self.model._sleep(b["split_delay"])
            self._write(piece, framing)

    def _stream(self, call, b):
        mock = self.model
        framing, eol = b["framing"], b["eol"]
        steps = [e if isinstance(e, _Marker) and e.kind != "frame" else encode_event(e, eol) for e in b["events"]]
        self.send_response(b["status"])
        self.send_header("Content-Type", b["content_type"])
        self.send_header("Cache-Control", "no-cache")
        for name, value in b["headers"].items():
            self.send_header(name, value)
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif framing == "length":
            self.send_header("Content-Length", str(sum(len(s) for s in steps if isinstance(s, bytes))))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        mock._update(call, status=b["status"])
        cut_after = b["cut_after"]
        pending = []
        sent = 0

        def flush():
            if pending:
                self._write(b"".join(pending), framing)
                pending.clear()

        for step in steps:
            if isinstance(step, _Marker):
                flush()
                if step.kind == "pause":
                    mock._update(call, paused=True)
                    mock._wait_event(threading.Event(), self.connection, call, step.name)
                elif step.kind == "sleep":
                    mock._sleep(step.seconds)
                continue
            if cut_after is not None and sent >= cut_after:
                break
            if b["delay"] and not b["coalesce"]:
                mock._sleep(b["delay"])
            if b["coalesce"]:
                pending.append(step)
            else:
                self._write_frame(step, b, framing)
            sent += 1
            mock._update(call, frames_sent=sent)
        flush()
        if cut_after is not None:
            self._cut(call, b, steps, sent, framing)
            return
        # Recorded before the client sees the end (a failed write overrides it); with
        # framing="length" the last frame may reach the client first.
        mock._update(call, outcome="completed")
        if framing == "chunked":
            self.connection.sendall(b"0\r\n\r\n")

    def _cut(self, call, b, steps, sent, framing):
        self.model._update(call, outcome="cut")
        if b["cut_mid_frame"]:
            frames = [s for s in steps if isinstance(s, bytes)]
            frame = frames[sent] if sent < len(frames) else \
                encode_event(ev_output_text_delta("never finished", "msg_cut"), b["eol"])
            half = frame[:_mid(frame)]
            if b["cut_mid_chunk"] and framing == "chunked":
                self._write(half, framing, declared=len(frame))
            else:
                self._write(half, framing)
        if b["reset"]:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle


MockModel.HANDLER = _Handler
