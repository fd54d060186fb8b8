# SPDX-License-Identifier: MIT
"""Driving the stock Codex TUI (npm @openai/codex, pinned) under tmux against agentd.

  codex = ensure_codex()          # the platform binary, npm-installed once into a cache outside
                                  # the repository ($AGENTD_NPM_CACHE, default
                                  # /var/tmp/agentd-codex-npm); pytest.skip only when npm or its
                                  # registry cannot be reached
  ensure_tmux()                   # tmux, apt-get installed when root; else pytest.skip
  tap = WsTap(agentd_port)        # a loopback TCP relay that records the websocket traffic
  tui = TuiSession(codex, url=tap.url, project=dir, home=dir, codex_home=dir)
  tui.wait_for(tui.composer_ready, what="the composer")
  tui.submit("prompt")
  tui.close()                     # kill-server on the private socket, wait for the TUI to be gone

The relay only copies bytes; it decodes the frames of a copy for the record, so a failing test can
show which requests the TUI sent and what agentd answered (agentd -d does not log methods).
"""
import contextlib
import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

CODEX_VERSION = "0.169.0"
CODEX_PACKAGE = "@openai/codex"
NPM_CACHE = Path(os.environ.get("AGENTD_NPM_CACHE", "/var/tmp/agentd-codex-npm"))
NPM_VIEW_TIMEOUT = 30
NPM_INSTALL_TIMEOUT = 300

# (npm optional dependency, vendor triple) of the platform binary, by machine.
_PLATFORMS = {
    "x86_64": ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    "aarch64": ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
}


# --------------------------------------------------------------------------------------
# installing the TUI and tmux


def _codex_paths(prefix):
    machine = platform.machine()
    modules = prefix / "node_modules"
    paths = []
    if machine in _PLATFORMS:
        package, triple = _PLATFORMS[machine]
        paths.append(modules / "@openai" / package / "vendor" / triple / "bin" / "codex")
    paths.append(modules / ".bin" / "codex")  # the node wrapper, which finds the binary itself
    return paths


def _version_ok(binary):
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20,
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().endswith(CODEX_VERSION)


def _installed(prefix):
    for path in _codex_paths(prefix):
        if path.exists() and os.access(path, os.X_OK) and _version_ok(path):
            return path
    return None


def _npm(args, timeout, cwd):
    env = dict(os.environ)
    env.setdefault("npm_config_update_notifier", "false")
    return subprocess.run(["npm", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def ensure_codex():
    """Path of the codex binary @CODEX_VERSION, installing it into NPM_CACHE when missing.

    Skips (pytest.skip, with the reason printed) only when npm is missing or its registry does not
    answer; an install that fails once the registry answered is a failure."""
    prefix = NPM_CACHE
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs share the cache
        found = _installed(prefix)
        if found:
            return found
        if shutil.which("npm") is None:
            _skip("npm is not installed: cannot install the stock Codex TUI")
        spec = f"{CODEX_PACKAGE}@{CODEX_VERSION}"
        try:
            view = _npm(["view", "--fetch-retries=1", spec, "version"], NPM_VIEW_TIMEOUT, prefix)
        except subprocess.TimeoutExpired:
            _skip(f"`npm view {spec} version` timed out after {NPM_VIEW_TIMEOUT} s: the npm registry is unreachable")
        if view.returncode != 0 or CODEX_VERSION not in view.stdout:
            lines = (view.stderr or view.stdout).strip().splitlines()
            why = " / ".join(line for line in lines if re.match(r"npm (error|ERR!) (code|errno|request|network)", line))
            _skip(f"`npm view {spec} version` failed ({view.returncode}): the npm registry is unreachable: "
                  f"{(why or ' / '.join(lines[:3]))[:400]}")
        if not (prefix / "package.json").exists():  # keeps npm from looking for one further up
            (prefix / "package.json").write_text('{"private": true}\n')
        install = _npm(["install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--include=optional",
                        "--save-exact", spec], NPM_INSTALL_TIMEOUT, prefix)
        assert install.returncode == 0, f"npm install {spec} failed:\n{install.stdout}\n{install.stderr}"
        found = _installed(prefix)
        if found is None and platform.machine() in _PLATFORMS:
            # npm leaves optional dependencies out on some setups (omit=optional): ask for it by name.
            package, _ = _PLATFORMS[platform.machine()]
            alias = f"@openai/{package}@npm:{CODEX_PACKAGE}@{CODEX_VERSION}-{package.split('-', 1)[1]}"
            extra = _npm(["install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", alias],
                         NPM_INSTALL_TIMEOUT, prefix)
            assert extra.returncode == 0, f"npm install {alias} failed:\n{extra.stdout}\n{extra.stderr}"
            found = _installed(prefix)
        assert found, f"npm installed {spec} into {prefix} but no working codex {CODEX_VERSION} binary is there"
        return found


def ensure_tmux():
    """Path of tmux; apt-get installs it when missing and running as root, else the test skips."""
    path = shutil.which("tmux")
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _skip("tmux is not installed (and not root with apt-get to install it)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run = lambda *a: subprocess.run(["apt-get", *a], capture_output=True, text=True, timeout=300, env=env)
    if run("install", "-y", "--no-install-recommends", "tmux").returncode != 0:
        run("update")
        result = run("install", "-y", "--no-install-recommends", "tmux")
        if result.returncode != 0:
            _skip(f"tmux is missing and apt-get could not install it: {result.stderr.strip()[-400:]}")
    path = shutil.which("tmux")
    assert path, "apt-get installed tmux but it is not on PATH"
    return path


def _skip(reason):
    print(f"SKIP: {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------------------
# the TUI's own configuration


def tui_config(project=None, trusted=False, extra=""):
    """The TUI's config.toml (its CODEX_HOME, not agentd's): no update check, no analytics, no
    screen-reader probe, no animations or tooltips (a steadier pane), Enter after typed text submits.

    With --remote the TUI shows no trust or onboarding screen either way; @trusted marks @project
    trusted, and then the TUI asks thread/start for sandbox "workspace-write" instead of "read-only"."""
    lines = ["check_for_update_on_startup = false", ""]
    if trusted:
        lines += [f"[projects.{json.dumps(str(project))}]", 'trust_level = "trusted"', ""]
    lines += [
        "[analytics]",
        "enabled = false",
        "",
        "[tui]",
        "screen_reader_detection_done = true",
        "animations = false",
        "show_tooltips = false",
        "disable_paste_burst = true",
    ]
    if extra:
        lines.append(extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# a recording relay between the TUI and agentd


class _FrameDecoder:
    """Decodes one direction of a websocket connection, from a copy of its bytes."""

    def __init__(self, tap, direction):
        self.tap = tap
        self.direction = direction  # "C>" (client to server) or "S>"
        self.buf = b""
        self.handshake_done = False
        self.fragments = None
        self.broken = False

    def feed(self, data):
        if self.broken:
            return
        self.buf += data
        try:
            self._drain()
        except Exception as e:  # the record only: never disturb the relay
            self.broken = True
            self.tap.record(self.direction, f"<cannot decode further: {e!r}>")

    def _drain(self):
        if not self.handshake_done:
            if b"\r\n\r\n" not in self.buf:
                return
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            redacted = [re.sub(r"(?i)^(authorization:\s*\S+\s+).*", r"\1<redacted>", line) for line in lines]
            self.tap.record(self.direction, "HTTP " + " | ".join(redacted))
            self.handshake_done = True
            if self.direction == "S>" and not lines[0].split(" ")[1:2] == ["101"]:
                self.broken = True
                return
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
            mask = None
            if b1 & 0x80:
                if len(self.buf) < pos + 4:
                    return
                mask, pos = self.buf[pos:pos + 4], pos + 4
            if len(self.buf) < pos + n:
                return
            payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            self._frame(bool(b0 & 0x80), b0 & 0x0F, payload, bool(b0 & 0x70))

    def _frame(self, fin, opcode, payload, rsv):
        if opcode == 0x0 and self.fragments is not None:
            self.fragments[1] += payload
            if fin:
                opcode, payload = self.fragments
                self.fragments = None
            else:
                return
        elif opcode in (0x1, 0x2) and not fin:
            self.fragments = [opcode, payload]
            return
        if opcode == 0x1 and not rsv:
            self.tap.record(self.direction, payload.decode("utf-8", "replace"))
        elif opcode in (0x1, 0x2):
            self.tap.record(self.direction, f"<{'text' if opcode == 1 else 'binary'} frame, {len(payload)} bytes"
                                            f"{', compressed' if rsv else ''}>")
        elif opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.tap.record(self.direction, f"<close {code} {payload[2:].decode('utf-8', 'replace')!r}>")


class WsTap:
    """127.0.0.1:<port> relaying every connection to 127.0.0.1:@target_port, recording the frames."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lock = threading.Lock()
        self.log = []  # (monotonic, direction, text)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.closing = False
        self.socks = []
        self.threads = []
        self.accepter = threading.Thread(target=self._accept, name="ws-tap", daemon=True)
        self.accepter.start()

    def record(self, direction, text):
        with self.lock:
            self.log.append((time.monotonic(), direction, text))

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError as e:
                self.record("--", f"<cannot reach agentd: {e}>")
                client.close()
                continue
            self.record("--", "<connection>")
            with self.lock:
                self.socks += [client, upstream]
            for src, dst, direction in ((client, upstream, "C>"), (upstream, client, "S>")):
                t = threading.Thread(target=self._pump, args=(src, dst, _FrameDecoder(self, direction)),
                                     name=f"ws-tap{direction}", daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, decoder):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                decoder.feed(data)
        except OSError:
            pass
        finally:
            self.record(decoder.direction, "<EOF>")
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self):
        self.closing = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self.threads:
            t.join(timeout=2)
        self.accepter.join(timeout=2)

    # -- reading the record ---------------------------------------------------------------
    def messages(self):
        """[(direction, parsed JSON)] of the text frames that hold JSON."""
        out = []
        with self.lock:
            log = list(self.log)
        for _, direction, text in log:
            if text.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append((direction, json.loads(text)))
        return out

    def requests(self):
        """{id key: method} of the client's requests."""
        return {json.dumps(m["id"]): m["method"] for d, m in self.messages()
                if d == "C>" and "id" in m and isinstance(m.get("method"), str)}

    def problems(self):
        """The client's requests agentd answered with an error, or has not answered yet."""
        requests = self.requests()
        answered = {}
        for d, m in self.messages():
            if d == "S>" and "id" in m and "method" not in m:
                answered[json.dumps(m["id"])] = m
        out = []
        for key, method in requests.items():
            answer = answered.get(key)
            if answer is None:
                out.append(f"{method} (id {key}): no answer")
            elif "error" in answer:
                out.append(f"{method} (id {key}): error {json.dumps(answer['error'])[:300]}")
        # server requests (approvals, …) the TUI answered with an error
        server_requests = {json.dumps(m["id"]): m["method"] for d, m in self.messages()
                           if d == "S>" and "id" in m and "method" in m}
        for d, m in self.messages():
            if d == "C>" and "id" in m and "method" not in m and "error" in m:
                key = json.dumps(m["id"])
                out.append(f"TUI rejected agentd's {server_requests.get(key, '?')} (id {key}): "
                           f"{json.dumps(m['error'])[:300]}")
        return out

    def transcript(self, limit=1500, last=None):
        with self.lock:
            log = list(self.log)
        if last is not None:
            log = log[-last:]
        start = log[0][0] if log else 0
        return "\n".join(f"{t - start:7.3f} {d} {text[:limit]}{' …' if len(text) > limit else ''}"
                         for t, d, text in log)


# --------------------------------------------------------------------------------------
# the TUI under tmux


class TuiSession:
    """The TUI in a detached tmux session on a private server socket (tmux -L NAME)."""

    WIDTH, HEIGHT = 200, 50

    def __init__(self, codex, *, url, project, home, codex_home, args=(), env=None, name=None):
        self.tmux = ensure_tmux()
        self.name = name or f"agentd-tui-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self.project = Path(project)
        self.last_capture = ""
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "CODEX_HOME": str(codex_home),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "COLORTERM": "truecolor",
        }
        environment.update(env or {})
        self.argv = [str(codex), "--remote", url, *args]
        command = "exec env -i " + " ".join(shlex.quote(f"{k}={v}") for k, v in environment.items()) + \
                  " " + " ".join(shlex.quote(a) for a in self.argv)
        self.command = command
        # One command list, so that the options hold before the TUI starts: the pane (and its last
        # screen, "Pane is dead (status N, …)") stays when the TUI exits, to show why.
        self._tmux("-f", "/dev/null", "start-server", ";",
                   "set-option", "-g", "remain-on-exit", "on", ";",
                   "set-option", "-g", "history-limit", "5000", ";",
                   "new-session", "-d", "-x", str(self.WIDTH), "-y", str(self.HEIGHT),
                   "-s", "tui", "-c", str(self.project), command)
        self.pane_pid = int(self._tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())

    def _tmux(self, *args, check=True, timeout=10):
        result = subprocess.run([self.tmux, "-u", "-L", self.name, *args], capture_output=True, text=True,
                                timeout=timeout, env=dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8"))
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args[:3])} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    # -- observing ------------------------------------------------------------------------
    def capture(self, history=True):
        """The pane's text (with its scrollback when @history), wrapped lines joined."""
        args = ["capture-pane", "-p", "-J", "-t", "tui"]
        if history:
            args += ["-S", "-"]
        text = self._tmux(*args, check=False)
        if text:
            self.last_capture = text
        return text

    def screen(self):
        return self.capture(history=False)

    def dead(self):
        """None while the TUI runs, else its exit status (or the signal) as tmux reports it."""
        fmt = "#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal}"
        for _ in range(20):
            out = self._tmux("display-message", "-p", "-t", "tui", fmt, check=False).split()
            if not out or out[0] != "1":
                return None
            found = [f for f in out[1:] if not f.endswith("=")]
            if found:
                return " ".join(found)
            time.sleep(0.05)  # dead (EOF on the pty) but not reaped by tmux yet: no status so far
        return "unknown status"

    def wait_for(self, predicate, timeout=20.0, what="the pane", interval=0.1):
        """Poll the pane until @predicate(text) is truthy; returns its value. Fails early when the
        TUI exits."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.capture()
            value = predicate(text)
            if value:
                return value
            status = self.dead()
            if status is not None:
                raise AssertionError(f"the TUI exited ({status}) while waiting for {what}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} in the TUI's pane")
            time.sleep(interval)

    @staticmethod
    def composer_ready(text):
        """The composer: a prompt line `› …` on the live screen, with the footer under it."""
        lines = [line.rstrip() for line in text.splitlines()]
        tail = lines[-12:]
        return any(line.startswith("› ") for line in tail) and any("for shortcuts" in line for line in tail)

    # -- typing ---------------------------------------------------------------------------
    def type(self, text):
        self._tmux("send-keys", "-t", "tui", "-l", text)

    def key(self, *keys):
        self._tmux("send-keys", "-t", "tui", *keys)

    def submit(self, prompt, timeout=10.0):
        """Type @prompt into the composer and press Enter; wait until the TUI took it (the composer
        no longer holds it). Enter is pressed again once if the first was taken as a newline."""
        self.type(prompt)
        self.wait_for(lambda t: prompt in t, timeout=5, what="the typed prompt")
        time.sleep(0.3)
        self.key("Enter")

        def taken(_):
            # The composer is the last `› ` line (the transcript shows the sent prompt as one too).
            prompts = [line for line in self.screen().splitlines() if line.startswith("› ")]
            return bool(prompts) and prompt not in prompts[-1]

        try:
            self.wait_for(taken, timeout=3, what="the prompt to be submitted")
        except AssertionError:
            if self.dead() is not None:
                raise
            self.key("Enter")
            self.wait_for(taken, timeout=timeout, what="the prompt to be submitted")

    # -- ending ---------------------------------------------------------------------------
    def close(self):
        """Kill the private tmux server (SIGHUP to the TUI) and wait for the TUI to be gone."""
        with contextlib.suppress(Exception):
            self.capture()
        with contextlib.suppress(Exception):
            self._tmux("kill-server", check=False)
        pid = self.pane_pid
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 3
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        socket_path = Path(f"/tmp/tmux-{os.getuid()}") / self.name
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        return not _alive(pid)


def _alive(pid):
    """@pid exists and is not a zombie (the TUI is tmux's child, reaped by tmux or init)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return data[data.rindex(")") + 2:].split()[0] != "Z"
