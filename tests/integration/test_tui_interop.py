# SPDX-License-Identifier: MIT
"""The stock Codex TUI (npm @openai/codex 0.169.0, `codex --remote ws://…`) against agentd.

The TUI runs under tmux (a private server socket, a 200x50 pane) with its own HOME and CODEX_HOME;
agentd listens on a loopback ws:// port with a config.toml whose model provider is a MockModel.
One prompt: the model calls exec_command, agentd runs it (approval_policy never, read-only sandbox),
the model answers with a text; the pane must show the command's output and the answer, and the
mock must have been sent the command's output. The TUI's ephemeral title thread gets a text too.
Variants: a capability token (--remote-auth-token-env), a trusted project, an approval answered in
the TUI's prompt (untrusted), unix://PATH instead of ws://; and `codex resume --last`, a patch
shown as a file change, and an interrupt with Esc.

The TUI is npm-installed once into $AGENTD_NPM_CACHE (default /var/tmp/agentd-codex-npm); the
tests skip only when npm or its registry is unreachable (or tmux is missing and cannot be
installed). The websocket traffic goes through a recording relay (tui_harness.WsTap): on failure
the last pane, the TUI<->agentd transcript and the requests agentd rejected are printed, and the
agentd_factory fixture prints agentd's -d log.
"""
import os
import re
import secrets
import time

import pytest

import mock_model as mm
import tui_harness
from conftest import register_secret, wait_until
from mock_model import MockModel

TITLE_MARKER = "Generate a concise, single-line task title"
CALL_ID = "call_interop_1"
STARTUP_TIMEOUT = 15.0  # the per-test alarm (conftest) is 30 s
TURN_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def codex_bin():
    tui_harness.ensure_tmux()
    return tui_harness.ensure_codex()


@pytest.fixture
def model():
    with MockModel() as mock:
        yield mock


@pytest.fixture
def tui_sessions(request):
    """Every TuiSession/WsTap the test made; on failure their pane and traffic are printed, then
    they are closed (before agentd_factory's teardown stops agentd)."""
    made = []
    yield made
    report = getattr(request.node, "rep_call", None)
    failed = report is None or report.failed
    verbose = failed or bool(os.environ.get("AGENTD_TUI_TRACE"))  # AGENTD_TUI_TRACE=1: print it all anyway
    leftovers = []
    for thing in reversed(made):  # the TUI first, then the relay
        if isinstance(thing, tui_harness.TuiSession):
            if verbose:
                status = thing.dead()
                print(f"--- TUI pane (last capture; TUI {'exited: ' + status if status else 'running'}) ---")
                print(thing.capture() or thing.last_capture)
                print(f"--- TUI command: {thing.command}")
            if not thing.close():
                leftovers.append(f"the TUI (pid {thing.pane_pid}) did not exit after tmux kill-server and SIGKILL")
        else:
            if verbose:
                problems = thing.problems()
                print("--- requests of the TUI agentd rejected or left unanswered ---")
                print("\n".join(problems) or "(none)")
                print("--- TUI <-> agentd websocket traffic" + (" (tail) ---" if failed else " ---"))
                print(thing.transcript(last=200 if failed else None))
            thing.close()
    assert not leftovers, "\n".join(leftovers)


def _dispatch(command, final_text, title_text):
    """The mock's answer to each request: the title thread's gets a text, the main thread's first
    an exec_command call, then (its output in the input) the final text."""

    def answer(request):
        texts = mm.user_texts(request)
        if any(TITLE_MARKER in t for t in texts):
            return mm.text_answer(title_text)
        if mm.function_call_output(request, CALL_ID) is not None:
            return mm.text_answer(final_text, deltas=[final_text[:9], final_text[9:]])
        return mm.response(mm.out_exec_command(command, call_id=CALL_ID))

    return answer


class Rig:
    """agentd (on a loopback ws:// port, or @listen) with a HOME of its own — the command runs in a
    login shell (bash -lc), which would read the invoking user's profile otherwise — and the TUI's
    HOME and CODEX_HOME. The TUI sends thread/start with cwd null: the thread's cwd is agentd's, so
    the project is agentd's working directory, and the TUI runs there too. With @tap the TUI goes
    through a recording relay (.tap); tui() starts one TUI session on it."""

    def __init__(self, agentd_factory, model, codex_bin, tui_sessions, tmp_path, *, listen="ws://127.0.0.1:0",
                 args=(), approval_policy="never", trusted=False, tap=True):
        agentd_home = tmp_path / "agentd-home"
        agentd_home.mkdir()
        self.proc = agentd_factory([listen], args=list(args), env={"HOME": str(agentd_home)},
                                   config=model.config_toml(approval_policy=approval_policy, sandbox_mode="read-only"))
        self.project = self.proc.tmp_path.resolve()
        self.home, self.codex_home = tmp_path / "tui-home", tmp_path / "tui-codex-home"
        self.home.mkdir()
        self.codex_home.mkdir()
        (self.codex_home / "config.toml").write_text(tui_harness.tui_config(self.project, trusted=trusted))
        self.codex_bin, self.sessions, self.tap = codex_bin, tui_sessions, None
        if not listen.startswith("ws://"):
            self.url = listen
        elif tap:
            self.tap = tui_harness.WsTap(self.proc.ws_port)
            tui_sessions.append(self.tap)
            self.url = self.tap.url
        else:
            self.url = f"ws://127.0.0.1:{self.proc.ws_port}"

    def tui(self, args=(), env=None):
        session = tui_harness.TuiSession(self.codex_bin, url=self.url, project=self.project, home=self.home,
                                         codex_home=self.codex_home, args=args, env=env)
        self.sessions.append(session)
        return session


# Errors agentd may answer because the reference answers them too (tui-session.md): the TUI asks
# for the last turn of every listed thread, the fresh one and the ephemeral title thread included.
EXPECTED_ERRORS = (
    re.compile(r"is not materialized yet; thread/turns/list is unavailable before first user message"),
    re.compile(r"ephemeral threads do not support thread/turns/list"),
)


@pytest.mark.parametrize("auth,trusted", [("none", False), ("capability-token", False),
                                          ("signed-bearer-token", False), ("none", True)],
                         ids=["loopback", "capability-token", "signed-bearer-token", "trusted-project"])
def test_stock_tui_runs_a_command_turn(agentd_factory, model, codex_bin, tui_sessions, tmp_path, auth, trusted):
    token = secrets.token_hex(6)
    command = f'echo "out-$((20+22))-{token}"'  # the output differs from the command line
    output = f"out-42-{token}"
    final_text = f"All done: interop finished {token}"
    model.set_default(_dispatch(command, final_text, '{"title":"Run interop check"}'))

    args, tui_args, tui_env = ["-d"], [], {}
    if auth == "capability-token":
        secret = f"tui-capability-token-{secrets.token_hex(16)}"
        register_secret(secret)
        token_file = tmp_path / "ws-token"
        token_file.write_text(secret)
        token_file.chmod(0o600)
        args += ["--ws-auth", "capability-token", "--ws-token-file", str(token_file)]
        tui_args = ["--remote-auth-token-env", "AGENTD_TUI_TOKEN"]
        tui_env = {"AGENTD_TUI_TOKEN": secret}
    elif auth == "signed-bearer-token":
        # A short-lived HS256 JWT handed to the TUI as its token (what a broker would mint).
        from test_ws_auth import AUDIENCE, ISSUER, SECRET, make_jwt
        jwt = make_jwt({"sub": "tui", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300})
        register_secret(jwt)
        secret_file = tmp_path / "ws-secret"
        secret_file.write_bytes(SECRET + b"\n")
        secret_file.chmod(0o600)
        args += ["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", str(secret_file),
                 "--ws-issuer", ISSUER, "--ws-audience", AUDIENCE]
        tui_args = ["--remote-auth-token-env", "AGENTD_TUI_TOKEN"]
        tui_env = {"AGENTD_TUI_TOKEN": jwt}

    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path, args=args, trusted=trusted)
    tap = rig.tap
    tui = rig.tui(args=tui_args, env=tui_env)

    started = time.monotonic()
    tui.wait_for(lambda t: tui.composer_ready(t) and mm.DEFAULT_MODEL in t, timeout=STARTUP_TIMEOUT,
                 what="the composer (and the thread's model in the status line)")
    print(f"composer after {time.monotonic() - started:.1f} s")
    thread_start = [m for d, m in tap.messages() if d == "C>" and m.get("method") == "thread/start"]
    assert thread_start, "the TUI showed its composer without starting a thread"
    assert thread_start[0]["params"]["sandbox"] == ("workspace-write" if trusted else "read-only")

    prompt = f"please run the interop check {token}"
    tui.submit(prompt)
    tui.wait_for(lambda t: output in t and final_text in t, timeout=TURN_TIMEOUT,
                 what=f"the command's output {output!r} and the answer {final_text!r}")
    print(f"turn done after {time.monotonic() - started:.1f} s")

    main = [r for r in model.requests() if not any(TITLE_MARKER in t for t in mm.user_texts(r))]
    assert any(prompt in t for r in main for t in mm.user_texts(r)), "no model request carries the prompt"
    with_output = [r for r in main if mm.function_call_output(r, CALL_ID) is not None]
    assert with_output, f"no model request carries the exec_command output ({len(main)} main-thread requests)"
    assert output in mm.tool_output(with_output[-1], CALL_ID)

    # Every request of the TUI answered (give those in flight a moment), none with an error the
    # reference does not give.
    wait_until(lambda: not any(p.endswith("no answer") for p in tap.problems()), 3.0,
               what="agentd to answer every request of the TUI")
    unexpected = [p for p in tap.problems() if not any(e.search(p) for e in EXPECTED_ERRORS)]
    assert not unexpected, "agentd rejected requests of the TUI:\n" + "\n".join(unexpected)
    assert tui.dead() is None, "the TUI exited"


def test_stock_tui_approves_a_command(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """approval_policy untrusted: agentd asks (item/commandExecution/requestApproval), the TUI shows
    its approval prompt, `y` accepts, the command runs and its output reaches the model."""
    token = secrets.token_hex(6)
    command = f'echo "approved-$((40+2))-{token}"'  # shell syntax: untrusted asks for it
    output = f"approved-42-{token}"
    final_text = f"Approved and done {token}"
    model.set_default(_dispatch(command, final_text, '{"title":"Approve a command"}'))
    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path, args=["-d"], approval_policy="untrusted")
    tap, tui = rig.tap, rig.tui()
    tui.wait_for(lambda t: tui.composer_ready(t) and mm.DEFAULT_MODEL in t, timeout=STARTUP_TIMEOUT,
                 what="the composer")
    tui.submit(f"run the approved check {token}")
    tui.wait_for(lambda t: "Would you like to run the following command" in t and f"approved-$((40+2))-{token}" in t,
                 timeout=TURN_TIMEOUT, what="the approval prompt with the command")
    assert not [r for r in model.requests() if mm.function_call_output(r, CALL_ID) is not None], \
        "the command ran before it was approved"
    tui.key("y")
    tui.wait_for(lambda t: output in t and final_text in t, timeout=TURN_TIMEOUT,
                 what=f"the command's output {output!r} and the answer {final_text!r}")
    asked = [m for d, m in tap.messages() if d == "S>" and m.get("method") == "item/commandExecution/requestApproval"]
    assert len(asked) == 1
    answers = [m for d, m in tap.messages() if d == "C>" and m.get("id") == asked[0]["id"] and "result" in m]
    assert answers and answers[0]["result"]["decision"] in ("accept", "acceptForSession")
    with_output = [r for r in model.requests() if mm.function_call_output(r, CALL_ID) is not None]
    assert with_output and output in mm.tool_output(with_output[-1], CALL_ID)
    assert tui.dead() is None, "the TUI exited"


def test_stock_tui_over_a_unix_socket(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """`codex --remote unix://PATH`: the TUI opens with a websocket upgrade on the socket, which
    agentd's unix listener tells from a newline-delimited JSON client by its first byte."""
    token = secrets.token_hex(6)
    command = f'echo "unix-$((1+1))-{token}"'
    output = f"unix-2-{token}"
    final_text = f"Over the socket {token}"
    model.set_default(_dispatch(command, final_text, '{"title":"Use the socket"}'))
    sock = tmp_path / "a.sock"
    assert len(str(sock)) < 100, sock  # sun_path
    tui = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path, listen=f"unix://{sock}").tui()
    tui.wait_for(lambda t: tui.composer_ready(t) and mm.DEFAULT_MODEL in t, timeout=STARTUP_TIMEOUT,
                 what="the composer")
    tui.submit(f"run it over the socket {token}")
    tui.wait_for(lambda t: output in t and final_text in t, timeout=TURN_TIMEOUT,
                 what=f"the command's output {output!r} and the answer {final_text!r}")
    with_output = [r for r in model.requests() if mm.function_call_output(r, CALL_ID) is not None]
    assert with_output and output in mm.tool_output(with_output[-1], CALL_ID)
    assert tui.dead() is None, "the TUI exited"


def test_stock_tui_resumes_the_last_session(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """`codex resume --last --remote …`: the TUI finds the thread through thread/list, resumes it
    (thread/resume) and shows its earlier turn; a new prompt continues the same thread."""
    token = secrets.token_hex(6)
    command = f'echo "first-$((2+3))-{token}"'
    first_answer = f"First session done {token}"
    model.set_default(_dispatch(command, first_answer, '{"title":"First session"}'))
    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path)
    tap, first = rig.tap, rig.tui()
    first.wait_for(lambda t: first.composer_ready(t), timeout=STARTUP_TIMEOUT, what="the composer")
    first.submit(f"first prompt {token}")
    first.wait_for(lambda t: first_answer in t, timeout=TURN_TIMEOUT, what="the first answer")
    started = [m for d, m in tap.messages() if d == "S>" and m.get("method") == "thread/started"
               and not m["params"]["thread"]["ephemeral"]]
    thread_id = started[0]["params"]["thread"]["id"]
    first.close()

    second_answer = f"Second session done {token}"
    model.set_default(lambda request: mm.text_answer(second_answer))
    second = rig.tui(args=["resume", "--last"])
    second.wait_for(lambda t: second.composer_ready(t) and first_answer in t, timeout=STARTUP_TIMEOUT,
                    what="the resumed session with its earlier answer")
    resumed = [m for d, m in tap.messages() if d == "C>" and m.get("method") == "thread/resume"]
    assert resumed and resumed[-1]["params"]["threadId"] == thread_id
    second.submit(f"second prompt {token}")
    second.wait_for(lambda t: second_answer in t, timeout=TURN_TIMEOUT, what="the second answer")
    last = [r for r in model.requests() if any(f"second prompt {token}" in t for t in mm.user_texts(r))
            and not any(TITLE_MARKER in t for t in mm.user_texts(r))][-1]
    texts = mm.user_texts(last)
    assert any(f"first prompt {token}" in t for t in texts), "the resumed thread lost its history"
    assert second.dead() is None, "the TUI exited"


def test_stock_tui_shows_a_patch_the_model_applies(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """A trusted project (the TUI asks for workspace-write): the model's apply_patch adds a file,
    agentd applies it in the sandbox and the pane shows the file change and the answer."""
    token = secrets.token_hex(6)
    name = f"notes-{token}.txt"
    final_text = f"Wrote the notes {token}"
    patch = mm.add_file_patch(name, [f"hello {token}", "second line"])

    def answer(request):
        if any(TITLE_MARKER in t for t in mm.user_texts(request)):
            return mm.text_answer('{"title":"Write notes"}')
        if mm.custom_tool_call_output(request, CALL_ID) is not None:
            return mm.text_answer(final_text)
        return mm.response(mm.out_apply_patch(patch, call_id=CALL_ID))

    model.set_default(answer)
    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path, trusted=True, tap=False)
    project, tui = rig.project, rig.tui()
    tui.wait_for(lambda t: tui.composer_ready(t), timeout=STARTUP_TIMEOUT, what="the composer")
    tui.submit(f"write the notes {token}")
    tui.wait_for(lambda t: final_text in t and name in t, timeout=TURN_TIMEOUT,
                 what=f"the file change {name!r} and the answer")
    assert (project / name).read_text() == f"hello {token}\nsecond line\n"
    pane = tui.capture()
    assert f"Added {name} (+2 -0)" in pane and f"+hello {token}" in pane, "the pane does not show the change"
    assert tui.dead() is None, "the TUI exited"


def test_stock_tui_interrupts_a_turn(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """Esc while the model streams: the TUI sends turn/interrupt, agentd ends the turn interrupted
    and the composer takes the next prompt, which runs a new turn on the same thread."""
    token = secrets.token_hex(6)
    partial = f"Partial answer {token}"
    after = f"After the interrupt {token}"
    state = {"main": 0}

    def answer(request):
        if any(TITLE_MARKER in t for t in mm.user_texts(request)):
            return mm.text_answer('{"title":"Interrupt me"}')
        state["main"] += 1
        if state["main"] == 1:
            events = mm.text_answer(partial, deltas=[partial[:8], partial[8:]])
            events.insert(len(events) - 2, mm.pause("held"))  # mid-answer: streaming, not done
            return events
        return mm.text_answer(after)

    model.set_default(answer)
    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path)
    tap, tui = rig.tap, rig.tui()
    tui.wait_for(lambda t: tui.composer_ready(t), timeout=STARTUP_TIMEOUT, what="the composer")
    tui.submit(f"start something long {token}")
    model.wait_hanging(1, timeout=TURN_TIMEOUT)
    tui.key("Escape")
    wait_until(lambda: any(d == "C>" and m.get("method") == "turn/interrupt" for d, m in tap.messages()),
               TURN_TIMEOUT, what="the TUI's turn/interrupt")
    wait_until(lambda: any(d == "S>" and m.get("method") == "turn/completed"
                           and m["params"]["turn"]["status"] == "interrupted" for d, m in tap.messages()),
               TURN_TIMEOUT, what="turn/completed interrupted")
    model.release()
    tui.wait_for(lambda t: tui.composer_ready(t), timeout=TURN_TIMEOUT, what="the composer after the interrupt")
    tui.submit(f"go on {token}")
    tui.wait_for(lambda t: after in t, timeout=TURN_TIMEOUT, what="the next turn's answer")
    last = [r for r in model.requests() if not any(TITLE_MARKER in t for t in mm.user_texts(r))][-1]
    assert any(f"go on {token}" in t for t in mm.user_texts(last))
    assert any("<turn_aborted>" in t for t in mm.user_texts(last)), "the model was not told of the interrupt"
    assert tui.dead() is None, "the TUI exited"


def test_stock_tui_bang_command_runs_in_the_threads_sandbox(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """`!cmd` in the composer: the TUI sends thread/shellCommand; agentd runs it inside the thread's
    read-only sandbox (a write fails), the pane shows its output, and the next model request
    carries the command and its output."""
    token = secrets.token_hex(6)
    final_text = f"Saw your command {token}"
    model.set_default(lambda request: mm.text_answer('{"title":"Bang"}') if any(
        TITLE_MARKER in t for t in mm.user_texts(request)) else mm.text_answer(final_text))
    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path)
    project, tap, tui = rig.project, rig.tap, rig.tui()
    tui.wait_for(lambda t: tui.composer_ready(t), timeout=STARTUP_TIMEOUT, what="the composer")
    marker = project / f"bang-{token}"
    # `!` first, alone: it switches the composer to shell mode, which then takes the command
    tui.type("!")
    time.sleep(0.3)
    tui.submit(f"echo bang-$((6*7))-{token}; touch {marker.name} || echo write-refused-{token}")
    tui.wait_for(lambda t: f"bang-42-{token}" in t and f"write-refused-{token}" in t, timeout=TURN_TIMEOUT,
                 what="the shell command's output and its refused write")
    assert not marker.exists(), "the ! command wrote outside the sandbox's writable roots"
    sent = [m for d, m in tap.messages() if d == "C>" and m.get("method") == "thread/shellCommand"]
    assert len(sent) == 1 and f"bang-$((6*7))-{token}" in sent[0]["params"]["command"]
    tui.wait_for(lambda t: tui.composer_ready(t), timeout=TURN_TIMEOUT, what="the composer again")
    tui.submit(f"what did I run {token}")
    tui.wait_for(lambda t: final_text in t, timeout=TURN_TIMEOUT, what="the answer")
    last = [r for r in model.requests() if any(f"what did I run {token}" in t for t in mm.user_texts(r))
            and not any(TITLE_MARKER in t for t in mm.user_texts(r))][-1]
    shell = [t for t in mm.user_texts(last) if "<user_shell_command>" in t]
    assert shell and f"bang-42-{token}" in shell[-1], f"the next request lacks the command's output: {mm.user_texts(last)}"
    assert tui.dead() is None, "the TUI exited"


def test_stock_tui_with_a_wrong_token_is_refused(agentd_factory, model, codex_bin, tui_sessions, tmp_path):
    """A capability-token listener refuses the TUI's upgrade with a wrong token (401): the TUI says
    so and exits; agentd serves on (a right token still gets in)."""
    secret = f"tui-right-token-{secrets.token_hex(16)}"
    register_secret(secret)
    token_file = tmp_path / "ws-token"
    token_file.write_text(secret)
    token_file.chmod(0o600)
    rig = Rig(agentd_factory, model, codex_bin, tui_sessions, tmp_path, tap=False,
              args=["--ws-auth", "capability-token", "--ws-token-file", str(token_file)])
    proc = rig.proc
    tui = rig.tui(args=["--remote-auth-token-env", "AGENTD_TUI_TOKEN"], env={"AGENTD_TUI_TOKEN": "not-the-token"})
    wait_until(lambda: tui.dead() is not None, STARTUP_TIMEOUT, what="the TUI to give up")
    assert "401" in tui.capture(), tui.last_capture
    assert model.count() == 0
    client = proc.ws_client(extra_headers={"Authorization": f"Bearer {secret}"})
    assert client.initialize(name="after-refusal")["userAgent"].startswith("after-refusal/")
