# SPDX-License-Identifier: MIT
"""`agentd exec`: one prompt run as one turn through a child `agentd --listen stdio://`, against the
mock Responses API: the answer on stdout, progress on stderr, --json notifications, -o FILE, the exit
statuses (0 completed, 1 failed, 2 usage, 3 denied), prompts from stdin, interrupts, and no process
left behind.

agentd exec runs as a subprocess with a private CODEX_HOME; every run has a timeout and is reaped
(its process group killed if it overstays), and afterwards no process may still carry that
CODEX_HOME in its environment (the child agentd, its helpers, the commands they ran).
"""
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import AGENTD_BIN, SANITIZER_REPORT_RE, proc_stat, children_of, processes_with_env, wait_until
import mock_model as mm
from mock_model import MockModel

RUN_TIMEOUT = 25  # below conftest's 30 s per-test watchdog


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


class Exec:
    """One `agentd exec` run: the process while it runs, then returncode, stdout and stderr (text)."""

    def __init__(self, tmp_path, model, args, *, config=None, stdin=None, **config_kw):
        self.home = tmp_path / "codex-home"
        self.home.mkdir(exist_ok=True)
        self.work = tmp_path / "work"
        self.work.mkdir(exist_ok=True)
        (self.home / "config.toml").write_text(config if config is not None else model.config_toml(**config_kw))
        env = dict(os.environ)
        for key in ("CODEX_INTERNAL_ORIGINATOR_OVERRIDE", "AGENTD_RUNTIME_DIR"):
            env.pop(key, None)
        env["CODEX_HOME"] = str(self.home)
        # Where agentd exec makes the child's private runtime directory (short: socket paths).
        self.xdg_runtime = Path(tempfile.mkdtemp(prefix="ax-", dir="/tmp"))
        env["XDG_RUNTIME_DIR"] = str(self.xdg_runtime)
        self.stdin = stdin
        self.proc = subprocess.Popen([str(AGENTD_BIN), "exec", *args], cwd=self.work, env=env,
                                     stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.returncode = self.stdout = self.stderr = None
        self._early_stdout = b""

    def read_stdout_until(self, needle, timeout=10):
        """Read stdout (raw, unbuffered: communicate() gets the rest) until it holds @needle."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while needle.encode() not in self._early_stdout:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} on stdout within {timeout} s: {self._early_stdout[-500:]!r}"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                assert chunk, f"stdout closed before {needle!r}: {self._early_stdout[-500:]!r}"
                self._early_stdout += chunk

    def finish(self, timeout=RUN_TIMEOUT):
        try:
            out, err = self.proc.communicate(self.stdin.encode() if self.stdin is not None else None,
                                             timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
            raise AssertionError(f"agentd exec did not finish within {timeout} s; stderr:\n"
                                 f"{err.decode(errors='replace')[-4000:]}") from None
        self.returncode = self.proc.returncode
        self.stdout = (self._early_stdout + out).decode()
        self.stderr = err.decode(errors="replace")
        # Nothing agentd exec started may outlive it: not the child agentd, not its helpers.
        left = processes_with_env("CODEX_HOME", str(self.home))
        assert not left, f"processes left after agentd exec exited: {left}\n{self.stderr[-3000:]}"
        # The child's runtime directory is gone with it, whatever the child left in it.
        left_dirs = sorted(p.name for p in self.xdg_runtime.iterdir())
        shutil.rmtree(self.xdg_runtime, ignore_errors=True)
        assert not left_dirs, f"left in XDG_RUNTIME_DIR: {left_dirs}\n{self.stderr[-3000:]}"
        reports = SANITIZER_REPORT_RE.findall(self.stderr)
        assert not reports, f"sanitizer reports: {sorted(set(reports))}\n{self.stderr[-6000:]}"
        return self


def run_exec(tmp_path, model, *args, **kw):
    return Exec(tmp_path, model, args, **kw).finish()


def json_lines(stdout):
    lines = stdout.splitlines()
    assert lines and stdout.endswith("\n"), f"--json printed {stdout!r}"
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here


def exec_call(cmd, call_id):
    return mm.response(mm.out_exec_command(cmd, call_id=call_id))


# --- the answer, the progress -------------------------------------------------------------------


def test_answer_on_stdout_and_progress_on_stderr(tmp_path, model):
    model.script(exec_call("echo hello-from-exec", "call_1"), mm.text_answer("The answer is 42."))
    run = run_exec(tmp_path, model, "what is the answer?")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "The answer is 42.\n"
    err = run.stderr
    assert f"workdir: {run.work}" in err and "model: mock-model" in err and "provider: mock_provider" in err
    assert "approval: on-failure" in err and "sandbox: read-only" in err
    assert "thread id: " in err
    assert "echo hello-from-exec" in err
    # The output shown below the command, not only the command line itself.
    assert err.count("hello-from-exec") >= 2 and "\nhello-from-exec\n" in err
    assert "succeeded" in err and "what is the answer?" in err and "tokens used" in err
    assert "agentd exec:" not in err
    first, second = model.wait_requests(2)
    assert first.user_texts()[-1] == "what is the answer?"
    assert "hello-from-exec" in second.tool_output("call_1")


DAEMON_LOG_RE = re.compile(r"^\S+Z (agentd|execd|sandboxd|authd|watchd)\[\d+\] (info|warn): ", re.M)


def test_daemon_logs_stay_quiet_unless_a_level_is_asked_for(tmp_path, model, monkeypatch):
    model.set_default(mm.text_answer("quiet"))
    (tmp_path / "a").mkdir()
    run = run_exec(tmp_path / "a", model, "hi")
    assert run.returncode == 0 and run.stdout == "quiet\n"
    assert not DAEMON_LOG_RE.findall(run.stderr), run.stderr
    # AGENTD_LOG_LEVEL reaches agentd and, through it, every helper
    monkeypatch.setenv("AGENTD_LOG_LEVEL", "info")
    (tmp_path / "b").mkdir()
    loud = run_exec(tmp_path / "b", model, "hi")
    assert loud.returncode == 0
    assert {"agentd", "execd", "sandboxd", "authd", "watchd"} <= {d for d, _ in DAEMON_LOG_RE.findall(loud.stderr)}


def test_model_and_sandbox_flags_reach_the_thread(tmp_path, model):
    model.script(mm.text_answer("ok"))
    run = run_exec(tmp_path, model, "-m", "other-model", "-s", "workspace-write", "-C", str(tmp_path), "hi")
    assert run.returncode == 0, run.stderr
    assert "model: other-model" in run.stderr and "sandbox: workspace-write" in run.stderr
    assert f"workdir: {tmp_path}\n" in run.stderr
    (request,) = model.wait_requests(1)
    assert request.body["model"] == "other-model"


def test_json_prints_only_schema_valid_notifications(tmp_path, model, protocol):
    model.script(exec_call("echo json-mode", "call_j"), mm.text_answer("json answer"))
    run = run_exec(tmp_path, model, "--json", "go")
    assert run.returncode == 0, run.stderr
    messages = json_lines(run.stdout)
    for msg in messages:
        assert "method" in msg and "id" not in msg, msg
        assert protocol.check(msg, lambda _id: None) == [], msg
    methods = [m["method"] for m in messages]
    assert "thread/started" in methods and "turn/started" in methods
    assert methods[-1] == "turn/completed" and methods.count("turn/completed") == 1
    assert messages[-1]["params"]["turn"]["status"] == "completed"
    agent = [m["params"]["item"] for m in messages
             if m["method"] == "item/completed" and m["params"]["item"]["type"] == "agentMessage"]
    assert [a["text"] for a in agent] == ["json answer"]
    commands = [m["params"]["item"] for m in messages
                if m["method"] == "item/completed" and m["params"]["item"]["type"] == "commandExecution"]
    assert commands and "json-mode" in commands[0]["aggregatedOutput"]
    assert "json answer" not in run.stderr  # the human progress is not printed


@pytest.mark.parametrize("json_mode", [False, True])
def test_output_last_message_file(tmp_path, model, json_mode):
    target = tmp_path / "last.txt"
    target.write_text("stale content that must go")
    model.script(mm.response(mm.out_message("first words"), mm.out_message("final words")))
    args = ["-o", str(target)] + (["--json"] if json_mode else []) + ["say it"]
    run = run_exec(tmp_path, model, *args)
    assert run.returncode == 0, run.stderr
    assert target.read_text() == "final words"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("last.txt")] == ["last.txt"]
    if json_mode:
        assert all("method" in m for m in json_lines(run.stdout))
    else:
        assert run.stdout == "final words\n"


def test_output_last_message_is_empty_without_an_agent_message(tmp_path, model):
    target = tmp_path / "empty.txt"
    target.write_text("old")
    model.script(mm.response())  # a completed response with no message
    run = run_exec(tmp_path, model, "--output-last-message", str(target), "say nothing")
    assert run.returncode == 0, run.stderr
    assert target.exists() and target.read_text() == ""
    assert run.stdout == ""


def test_prompt_given_twice_is_refused(tmp_path, model):
    run = run_exec(tmp_path, model, "one", "two")
    assert run.returncode == 2 and "agentd exec:" in run.stderr
    assert model.count() == 0


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour,message", [
    (mm.status(500, {"error": {"message": "We are overloaded."}}), "currently experiencing high demand"),
    (mm.status(502, "bad gateway"), "unexpected status 502 Bad Gateway: bad gateway"),
    (mm.bad_request("The prompt is not allowed here."), "The prompt is not allowed here."),
    (mm.failed("server_error", "The model fell over."), "The model fell over."),
])
def test_model_error_exits_1_with_the_message(tmp_path, model, behaviour, message):
    model.set_default(behaviour)
    run = run_exec(tmp_path, model, "hi", stream_max_retries=0, request_max_retries=0)
    assert run.returncode == 1, run.stderr
    assert message in run.stderr
    assert "agentd exec: the turn failed" in run.stderr
    assert run.stdout == ""


def test_model_error_in_json_mode_still_prints_only_notifications(tmp_path, model):
    model.set_default(mm.status(500, {"error": {"message": "We are overloaded."}}))
    run = run_exec(tmp_path, model, "--json", "hi")
    assert run.returncode == 1
    messages = json_lines(run.stdout)
    assert messages[-1]["method"] == "turn/completed" and messages[-1]["params"]["turn"]["status"] == "failed"
    assert any(m["method"] == "error" for m in messages)
    assert "currently experiencing high demand" in run.stderr


def test_sandbox_denial_is_declined_and_exits_3(tmp_path, model):
    model.script(exec_call("touch denied.txt", "call_d"), mm.text_answer("I could not write it."))
    run = run_exec(tmp_path, model, "-s", "read-only", "write a file")
    assert run.returncode == 3, run.stderr
    assert not (run.work / "denied.txt").exists()
    assert run.stdout == "I could not write it.\n"
    assert "denied" in run.stderr and "touch denied.txt" in run.stderr
    _, second = model.wait_requests(2)
    output = second.tool_output("call_d")
    assert "Read-only file system" in output or "Permission denied" in output


def test_sandbox_denial_in_json_mode_exits_3(tmp_path, model, protocol):
    model.script(exec_call("touch denied.txt", "call_d"), mm.text_answer("no"))
    run = run_exec(tmp_path, model, "--json", "-s", "read-only", "write a file")
    assert run.returncode == 3, run.stderr
    for msg in json_lines(run.stdout):  # the approval request itself is no notification
        assert "id" not in msg and protocol.check(msg, lambda _id: None) == [], msg
    assert not (run.work / "denied.txt").exists()


def test_patch_approval_is_declined_and_exits_3(tmp_path, model):
    model.script(mm.apply_patch_call(mm.add_file_patch("patched.txt", ["hello"])), mm.text_answer("not patched"))
    run = run_exec(tmp_path, model, "-a", "untrusted", "-s", "workspace-write", "patch it")
    assert run.returncode == 3, run.stderr
    assert not (run.work / "patched.txt").exists()
    assert "apply a patch: denied" in run.stderr and "file update (declined)" in run.stderr
    assert "approval: untrusted" in run.stderr
    assert run.stdout == "not patched\n"


def test_workspace_write_needs_no_approval(tmp_path, model):
    model.script(exec_call("touch allowed.txt", "call_w"), mm.text_answer("written"))
    run = run_exec(tmp_path, model, "-s", "workspace-write", "write a file")
    assert run.returncode == 0, run.stderr
    assert (run.work / "allowed.txt").exists()
    assert "denied" not in run.stderr


def test_thread_start_refused_exits_1(tmp_path, model):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "sessions").write_text("not a directory: no rollout can be created")
    run = run_exec(tmp_path, model, "hi")
    assert run.returncode == 1
    assert "agentd exec: thread/start:" in run.stderr and "rollout" in run.stderr
    assert model.count() == 0
    # An ephemeral thread has no rollout: the same home serves it.
    model.script(mm.text_answer("ephemeral answer"))
    run = run_exec(tmp_path, model, "--ephemeral", "hi")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "ephemeral answer\n"


def test_child_that_cannot_start_exits_1(tmp_path, model):
    run = run_exec(tmp_path, model, "hi", config="this is = = not toml\n")
    assert run.returncode == 1
    assert "agentd exec: agentd closed the connection before answering initialize" in run.stderr
    assert "exited with status 1" in run.stderr


def test_bad_override_for_the_child_is_a_usage_error(tmp_path, model):
    run = run_exec(tmp_path, model, "-c", "no-equals-sign", "hi")
    assert run.returncode == 2
    assert "agentd exec:" in run.stderr and model.count() == 0


# --- usage ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,stdin", [
    (["--no-such-flag", "hi"], None),
    (["-s", "everything-allowed", "hi"], None),
    (["-a", "sometimes", "hi"], None),
    (["-C", "/nonexistent/dir", "hi"], None),
    (["-o"], None),
    ([""], None),
    (["   \n"], None),
    (["-"], ""),
    ([], " \n\t"),
])
def test_usage_errors_exit_2(tmp_path, model, args, stdin):
    run = run_exec(tmp_path, model, *args, stdin=stdin)
    assert run.returncode == 2, run.stderr
    assert "agentd exec: " in run.stderr
    assert run.stdout == ""
    assert model.count() == 0


def test_help_exits_0(tmp_path, model):
    run = run_exec(tmp_path, model, "--help")
    assert run.returncode == 0 and run.stdout.startswith("usage: agentd exec")


# --- the prompt from stdin ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["-"], []])
def test_prompt_from_stdin(tmp_path, model, args):
    model.script(mm.text_answer("read it"))
    prompt = "a prompt\nover two lines"
    run = run_exec(tmp_path, model, *args, stdin=prompt)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "read it\n"
    (request,) = model.wait_requests(1)
    assert request.user_texts()[-1] == prompt


# --- processes and signals -------------------------------------------------------------------------


def _live(pid, start):
    st = proc_stat(pid)
    return st is not None and st[2] == start


def _wait_child_agentd(run):
    def child():
        kids = children_of(run.proc.pid)
        return kids if kids else None

    kids = wait_until(child, 10, what="agentd exec's child agentd")
    assert len(kids) == 1, kids
    (pid, start), = kids.items()
    assert os.readlink(f"/proc/{pid}/exe") == os.readlink(f"/proc/{run.proc.pid}/exe")
    return pid, start


def test_child_agentd_and_helpers_are_gone_after_exit(tmp_path, model):
    gate = mm.hang(then=mm.text_answer("after the hold"))
    model.script(gate)
    run = Exec(tmp_path, model, ["hold on"])
    try:
        child, child_start = _wait_child_agentd(run)
        wait_until(lambda: model.count() == 1, 10, what="the model request")
        helpers = children_of(child)
        assert len(helpers) >= 4, helpers  # execd, sandboxd, authd, watchd
        model.wait_hanging(1, timeout=10)  # release() lets go only of requests already held
        model.release()
    finally:
        run.finish()
    assert run.returncode == 0, run.stderr
    assert run.stdout == "after the hold\n"
    assert not _live(child, child_start), f"child agentd {child} still there"
    assert not [pid for pid, start in helpers.items() if _live(pid, start)]


def test_sigint_interrupts_the_turn_and_reaps_the_child(tmp_path, model):
    events = mm.text_answer("never finished", deltas=["never", " finished"])
    events.insert(3, mm.pause("hold"))
    model.script(events)
    run = Exec(tmp_path, model, ["--json", "long work"])
    try:
        child, child_start = _wait_child_agentd(run)
        run.read_stdout_until('"item/agentMessage/delta"')  # the turn runs, its id is known
        os.kill(run.proc.pid, signal.SIGINT)
    finally:
        run.finish()
    model.release()
    assert run.returncode == 1, run.stderr
    assert "agentd exec: the turn interrupted" in run.stderr
    messages = json_lines(run.stdout)
    assert messages[-1]["method"] == "turn/completed"
    assert messages[-1]["params"]["turn"]["status"] == "interrupted"
    assert not _live(child, child_start)


def test_child_killed_mid_turn_exits_1_without_hanging(tmp_path, model):
    model.script(mm.hang())
    run = Exec(tmp_path, model, ["hold on"])
    try:
        child, _ = _wait_child_agentd(run)
        wait_until(lambda: model.count() == 1, 10, what="the model request")
        os.killpg(child, signal.SIGKILL)  # the child agentd and its helpers, at once
    finally:
        run.finish()
        model.release()
    assert run.returncode == 1
    assert "agentd exec: agentd closed the connection before the turn completed" in run.stderr
    assert "killed by signal 9" in run.stderr


# --- --remote: a running agentd ------------------------------------------------------------------


def run_remote(tmp_path, *args, timeout=RUN_TIMEOUT):
    work = tmp_path / "remote-work"
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CODEX_HOME", "AGENTD_RUNTIME_DIR")}
    return subprocess.run([str(AGENTD_BIN), "exec", *args], cwd=work, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout), work


def test_remote_runs_the_turn_on_a_running_agentd(agentd_factory, tmp_path, model):
    sock = tmp_path / "a.sock"
    proc = agentd_factory([f"unix://{sock}"], config=model.config_toml())
    model.script(exec_call("echo remote-hello", "call_r"), mm.text_answer("Remote answer."))
    run, work = run_remote(tmp_path, "--remote", f"unix://{sock}", "-o", str(tmp_path / "last.txt"), "go remote")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Remote answer.\n"
    assert "remote-hello" in run.stderr and "go remote" in run.stderr
    assert (tmp_path / "last.txt").read_text() == "Remote answer."
    # The thread is the server's: it stays loaded there, its rollout in the server's CODEX_HOME.
    client = proc.unix_client(sock)
    client.initialize()
    listed = client.call("thread/list", {})["data"]
    assert [t["preview"] for t in listed] == ["go remote"]
    assert listed[0]["cwd"] == str(work)
    assert listed[0]["id"] in client.call("thread/loaded/list", {})["data"]
    assert "remote-hello" in model.wait_requests(2)[1].tool_output("call_r")


def test_remote_refusals(agentd_factory, tmp_path, model):
    gone, _ = run_remote(tmp_path, "--remote", f"unix://{tmp_path}/nobody.sock", "hi")
    assert gone.returncode == 1
    assert "agentd exec: cannot connect to unix://" in gone.stderr and "No such file or directory" in gone.stderr
    for args in (["--remote", "ws://127.0.0.1:1", "hi"], ["--remote", "unix://", "hi"],
                 ["--remote", f"unix://{tmp_path}/x.sock", "-c", "model=\"m\"", "hi"]):
        bad, _ = run_remote(tmp_path, *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.startswith("agentd exec: "), bad.stderr
    assert model.count() == 0


# --- codex exec's shortcuts, --output-schema, resume ---------------------------------------------


def header_value(stderr, key):
    found = re.search(rf"^{re.escape(key)}: (.*)$", stderr, re.M)
    assert found, f"no {key!r} in the header:\n{stderr}"
    return found.group(1)


def test_output_schema_asks_the_model_for_structured_output(tmp_path, model):
    schema = {"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"],
              "additionalProperties": False}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    model.script(mm.text_answer('{"verdict":"ok"}'))
    run = run_exec(tmp_path, model, "--output-schema", str(tmp_path / "schema.json"), "judge it")
    assert run.returncode == 0, run.stderr
    assert run.stdout == '{"verdict":"ok"}\n'
    assert model.last_body()["text"]["format"] == {"type": "json_schema", "strict": True, "schema": schema,
                                                   "name": "codex_output_schema"}
    (tmp_path / "bad.json").write_text("[1, 2")
    bad = run_exec(tmp_path, model, "--output-schema", str(tmp_path / "bad.json"), "judge it")
    assert bad.returncode == 2 and "agentd exec: --output-schema" in bad.stderr
    assert model.count() == 1  # refused before any agentd ran


def test_full_auto_and_bypass_set_sandbox_and_approval(tmp_path, model):
    model.script(exec_call("touch made-by-full-auto", "call_fa"), mm.text_answer("made"))
    run = run_exec(tmp_path, model, "--full-auto", "--skip-git-repo-check", "make a file")
    assert run.returncode == 0, run.stderr
    assert header_value(run.stderr, "sandbox") == "workspace-write"
    assert header_value(run.stderr, "approval") == "on-request"
    assert (run.work / "made-by-full-auto").exists()
    # an explicit -a wins over --full-auto's
    model.script(mm.text_answer("ok"))
    explicit = run_exec(tmp_path, model, "--full-auto", "-a", "never", "hi")
    assert header_value(explicit.stderr, "approval") == "never"
    model.script(mm.text_answer("ok"))
    bypass = run_exec(tmp_path, model, "--dangerously-bypass-approvals-and-sandbox", "hi")
    assert bypass.returncode == 0, bypass.stderr
    assert header_value(bypass.stderr, "sandbox") == "danger-full-access"
    assert header_value(bypass.stderr, "approval") == "never"
    clash = run_exec(tmp_path, model, "--dangerously-bypass-approvals-and-sandbox", "-s", "read-only", "hi")
    assert clash.returncode == 2 and "agentd exec: " in clash.stderr


def test_resume_continues_a_thread(tmp_path, model):
    model.script(mm.text_answer("first answer"))
    first = run_exec(tmp_path, model, "remember the word plum")
    assert first.returncode == 0, first.stderr
    thread_id = header_value(first.stderr, "thread id")

    model.script(mm.text_answer("it was plum"))
    second = run_exec(tmp_path, model, "resume", "--last", "which word?")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "it was plum\n"
    assert header_value(second.stderr, "thread id") == thread_id
    texts = model.last_request().user_texts()
    assert "remember the word plum" in texts and texts[-1] == "which word?"
    assert any(i.get("type") == "message" and i.get("role") == "assistant" for i in model.last_body()["input"])

    model.script(mm.text_answer("third"))
    third = run_exec(tmp_path, model, "resume", thread_id, "-")  # the prompt from stdin
    assert third.returncode == 2  # an empty stdin
    third = Exec(tmp_path, model, ["resume", thread_id, "-"], stdin="and again").finish()
    assert third.returncode == 0, third.stderr
    assert header_value(third.stderr, "thread id") == thread_id
    assert model.last_request().user_texts()[-1] == "and again"


def test_resume_refusals(tmp_path, model):
    model.script(mm.text_answer("made one"))
    assert run_exec(tmp_path, model, "-C", str(tmp_path), "start one").returncode == 0
    # --last looks in this directory only (the thread above is of tmp_path, not of work/)
    none_here = run_exec(tmp_path, model, "resume", "--last", "go on")
    assert none_here.returncode == 1 and "no thread to resume in" in none_here.stderr
    model.script(mm.text_answer("went on"))
    anywhere = run_exec(tmp_path, model, "resume", "--last", "--all", "go on")
    assert anywhere.returncode == 0 and anywhere.stdout == "went on\n", anywhere.stderr
    unknown = run_exec(tmp_path, model, "resume", "0199a5b0-0000-7000-8000-000000000000", "go on")
    assert unknown.returncode == 1 and "thread/resume" in unknown.stderr
    for args in (["--last", "hi"], ["resume"], ["resume", "--all", "id", "hi"]):
        bad = run_exec(tmp_path, model, *args)
        assert bad.returncode == 2, (args, bad.stderr)
