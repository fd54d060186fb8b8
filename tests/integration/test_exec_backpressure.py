# SPDX-License-Identifier: MIT
"""Back-pressure of command/exec output: a client that stops reading stops the command.

execd reads a stream's next chunk only after agentd reports the previous outputDelta written to
the client's socket (agentd-ipc(7), "Flow control"). So while a client reads nothing, the suite
holds a bounded amount for it, whatever the command writes, and the command blocks on its full
pipe; once the client reads again every byte arrives, in order.

The stalled clients here are raw unix-socket and websocket connections this file reads itself,
only when it means to: the harness's clients run a reader thread that would drain the socket into
Python's memory and hide the stall. The command is an AES-CTR keystream (deterministic, different at every
offset, so a lost, doubled or reordered chunk changes the digest, and fast: ~1.5 GB/s).
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import AGENTD_BIN, JsonRpcClient, RawWs, connect_unix, wait_until, ws_frame

FULL = {"type": "dangerFullAccess"}
MIB = 1 << 20
WS_TEXT = 0x1


def sanitized_build():
    """Whether the agentd under test is the ASan+UBSan build (tools/test sets AGENTD_SANITIZERS too)."""
    if os.environ.get("AGENTD_SANITIZERS") == "1":
        return True
    return b"__asan_init" in AGENTD_BIN.read_bytes()


# The ASan build moves command output at 60-75 MB/s into this reader, the plain one at ~140 MB/s:
# 1 GiB would take 15-18 s to read there, too close to the harness's 30 s per-test deadline with
# the stall on top. A quarter of it is still 4000 chunks, far more than any queue could hide.
STREAM_BYTES = (256 if sanitized_build() else 1024) * MIB
# Over websocket the same stall is shown with a quarter of that: the framing differs, the credit
# path (a delta counts as written once libuv wrote its frame) is the same one.
WS_STREAM_BYTES = STREAM_BYTES // 4
RSS_SLACK_KIB = 16 * 1024
# ASan keeps freed blocks in a quarantine (256 MiB by default) before it reuses them, so under it RSS
# grows with every byte that went through (each delta is copied a few times on its way), not with
# what is held: the ~3 MB that fill TCP's buffers before a websocket stall cost +25 MiB. A 1 MiB
# quarantine (and small per-thread caches in front of it) makes RSS mean what is held again; ASan
# still checks every access.
SMALL_QUARANTINE = ({"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                     ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64"} if sanitized_build() else None)
STALL_SECONDS = 3.0
# How long the writer's write count must stay still before it counts as blocked.
QUIET_SECONDS = 1.0
# While stalled, agentd and its helpers wait in epoll: a few ms of CPU time, not a busy loop.
STALL_CPU_MAX_SECONDS = 0.3
# Full schema validation costs ~2 ms per 87 KB outputDelta (a oneOf over every notification), 40 s
# for 1 GiB: every message gets the cheap shape check below, and the full schema runs on the first
# deltas, every SCHEMA_SAMPLE_EVERY-th one, the last one, and every message that is not a delta.
SCHEMA_SAMPLE_FIRST = 8
SCHEMA_SAMPLE_EVERY = 256
DELTA_KEYS = {"method", "params", "emittedAtMs"}
DELTA_PARAM_KEYS = {"processId", "stream", "deltaBase64", "capReached"}
CHUNK_MAX = 64 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def keystream_command(nbytes, marker):
    """An sh -c script writing @nbytes of AES-128-CTR keystream; @marker names it in /proc."""
    return (f"openssl enc -aes-128-ctr -nosalt -pass {_passphrase(marker)} -in /dev/zero 2>/dev/null"
            f" | head -c {nbytes}")


def _passphrase(marker):
    return f"pass:agentd-keystream-{marker}"


def keystream_digest_start(nbytes, marker):
    """The expected sha256 of keystream_command(), computed by the same pipeline in the background."""
    return subprocess.Popen(["sh", "-c", keystream_command(nbytes, marker) + " | sha256sum"],
                            stdout=subprocess.PIPE, text=True)


def keystream_digest_wait(job):
    out, _ = job.communicate(timeout=60)
    assert job.returncode == 0, out
    return out.split()[0]


@pytest.fixture(autouse=True)
def needs_openssl():
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (tools/deps installs it)")


# --------------------------------------------------------------------------------------
# processes, from /proc


def _stat_fields(pid):
    """/proc/PID/stat from the state field on, or None when @pid is gone."""
    try:
        data = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def _parents():
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                out[int(entry)] = int(fields[1])
    return out


def _subtree(root, parents):
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def command_processes(agentd, marker):
    """The command's processes: the subtree of the agentd descendant that runs the script of
    @marker (the `sh -c`), whose parent does not (execd's spawner)."""
    parents, needle = _parents(), _passphrase(marker)
    for pid in _subtree(agentd.pid, parents):
        if needle in _cmdline(pid) and needle not in _cmdline(parents.get(pid, 0)):
            return _subtree(pid, parents)
    return []


def suite_processes(agentd, marker):
    """agentd and every process it runs itself (the helpers, execd's spawner), not the command."""
    command = set(command_processes(agentd, marker))
    return [pid for pid in _subtree(agentd.pid, _parents()) if pid not in command]


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def written_bytes(pid):
    """wchar of /proc/PID/io: every byte @pid has passed to write(), or None when it is gone."""
    try:
        for line in open(f"/proc/{pid}/io"):
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pipe_writer(agentd, marker):
    """The pid of `head`, the command's process that writes into execd's pipe."""
    def find():
        return next((pid for pid in command_processes(agentd, marker) if _comm(pid) == "head"), None)
    return wait_until(find, 10, what="the command's head process")


def wait_writer_blocked(pid, timeout=20):
    """Wait until @pid's write count stays still for QUIET_SECONDS; return that count."""
    deadline = time.monotonic() + timeout
    last, since = written_bytes(pid), time.monotonic()
    while True:
        time.sleep(0.05)
        now = written_bytes(pid)
        assert now is not None, "the writer exited: nothing held it back"
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_SECONDS:
            return now
        assert time.monotonic() < deadline, f"the writer never blocked (it wrote {last} bytes)"


def assert_blocked_in_write(pid):
    """@pid sleeps, and where the kernel shows it (wchan), it sleeps writing a pipe."""
    fields = _stat_fields(pid)
    assert fields is not None, "the writer is gone"
    assert fields[0] == "S", f"the writer is in state {fields[0]}, not sleeping"
    try:
        wchan = open(f"/proc/{pid}/wchan").read().strip()
    except OSError:
        wchan = ""
    if wchan and wchan != "0":  # hidden on some hosts (kptr_restrict); pipe_write, anon_pipe_write, pipe_wait
        assert "pipe" in wchan, f"the writer sleeps in {wchan}, not on its pipe"


# --------------------------------------------------------------------------------------
# a client that reads only when told to


class RawClient:
    """One connection, read here and nowhere else; a subclass frames the messages.

    Messages that are validated go through a harness checker (a JsonRpcClient without a
    transport), registered with the AgentdProcess so that teardown reports what it found.
    """

    def __init__(self, agentd, name):
        self.checker = JsonRpcClient(agentd.validator, owner=agentd)
        self.checker.kind = name
        agentd.raw_checkers.append(self.checker)

    def send(self, obj):
        self.checker.note_outgoing(obj)
        self.send_text(json.dumps(obj).encode())

    def validate(self, text):
        """The full protocol check; returns the message."""
        self.checker._deliver_text(text.decode("utf-8"))
        _, msg = self.checker.messages.get_nowait()
        self.checker.assert_conforming()
        return msg

    def next_message(self):
        return self.validate(self.line())

    def response(self, id_value):
        """Messages up to the response to @id_value, each fully validated; returns it."""
        while True:
            msg = self.next_message()
            if msg.get("id") == id_value and "method" not in msg:
                return msg

    def initialize(self):
        self.send({"id": 0, "method": "initialize", "params": {"clientInfo": {"name": "backpressure", "version": "1"}}})
        assert "result" in self.response(0)
        self.send({"method": "initialized"})

    def call(self, id_value, method, params):
        self.send({"id": id_value, "method": method, "params": params})
        msg = self.response(id_value)
        assert "result" in msg, msg
        return msg["result"]


class RawUnixClient(RawClient):
    """Newline-delimited JSON over a unix socket."""

    def __init__(self, agentd, path, name):
        super().__init__(agentd, f"raw-unix {name}")
        self.sock = connect_unix(path)
        self.sock.settimeout(30)  # only against a hang: the harness's per-test alarm comes first
        self.rfile = self.sock.makefile("rb", buffering=MIB)

    def send_text(self, data):
        self.sock.sendall(data + b"\n")

    def line(self):
        data = self.rfile.readline()
        assert data.endswith(b"\n"), f"{self.checker.kind}: connection ended: {data[:200]!r}"
        return data[:-1]

    def close(self):
        self.rfile.close()
        self.sock.close()


class RawWsClient(RawClient):
    """Websocket text frames over TCP: the harness's RawWs for the upgrade, frames read here in
    big blocks (RawWs validates every frame it reads, too slow for a 1 GiB stream)."""

    def __init__(self, agentd, name):
        super().__init__(agentd, f"raw-ws {name}")
        self.ws = RawWs(agentd.ws_port, self.checker, timeout=30)
        self.sock = self.ws.sock
        self.buf = bytearray(self.ws.buf)
        self.pos = 0

    def send_text(self, data):
        self.sock.sendall(ws_frame(WS_TEXT, data))

    def _need(self, n):
        while len(self.buf) - self.pos < n:
            if self.pos > MIB:
                del self.buf[:self.pos]
                self.pos = 0
            chunk = self.sock.recv(MIB)
            assert chunk, f"{self.checker.kind}: connection ended"
            self.buf += chunk

    def line(self):
        self._need(2)
        b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
        assert b0 == 0x80 | WS_TEXT and not b1 & 0x80, f"not an unmasked, unfragmented text frame: {b0:#x} {b1:#x}"
        n, head = b1 & 0x7F, 2
        if n >= 126:
            head += 2 if n == 126 else 8
            self._need(head)
            n = int.from_bytes(self.buf[self.pos + 2:self.pos + head], "big")
        self._need(head + n)
        text = bytes(self.buf[self.pos + head:self.pos + head + n])
        self.pos += head + n
        return text

    def close(self):
        self.sock.close()


def start_stream(client, id_value, process_id, nbytes, marker):
    client.send({"id": id_value, "method": "command/exec", "params": {
        "command": ["sh", "-c", keystream_command(nbytes, marker)], "processId": process_id,
        "streamStdoutStderr": True, "disableOutputCap": True, "disableTimeout": True, "sandboxPolicy": FULL}})


def read_stream(client, id_value, process_id):
    """Every outputDelta up to the response to @id_value: (response, sha256, bytes, deltas).

    Each delta gets the cheap shape check; the full schema runs on a sample (see the top).
    """
    digest, total, deltas = hashlib.sha256(), 0, 0
    last_delta = None
    while True:
        text = client.line()
        if not text.startswith(b'{"method":"command/exec/outputDelta"'):
            msg = client.validate(text)
            if msg.get("id") == id_value and "method" not in msg:
                break
            continue
        msg = json.loads(text)
        params = msg["params"]
        assert set(msg) == DELTA_KEYS and set(params) == DELTA_PARAM_KEYS, msg.keys()
        assert isinstance(msg["emittedAtMs"], int), msg["emittedAtMs"]
        assert params["processId"] == process_id and params["stream"] == "stdout", params["stream"]
        assert params["capReached"] is False
        chunk = base64.b64decode(params["deltaBase64"], validate=True)
        assert 0 < len(chunk) <= CHUNK_MAX, len(chunk)
        digest.update(chunk)
        total += len(chunk)
        if deltas < SCHEMA_SAMPLE_FIRST or deltas % SCHEMA_SAMPLE_EVERY == 0:
            client.validate(text)
        deltas += 1
        last_delta = text
    if last_delta is not None:
        client.validate(last_delta)
    return msg, digest.hexdigest(), total, deltas


def assert_nothing_follows(client, id_value):
    """The response was the command's last message: the next one answers a fresh request."""
    client.send({"id": id_value, "method": "agentd/health"})
    msg = client.next_message()
    assert msg.get("id") == id_value and "result" in msg, f"a message after the command's response: {msg}"


@pytest.fixture
def unix_agentd(agentd_factory, tmp_path):
    path = tmp_path / "agentd.sock"
    return agentd_factory([f"unix://{path}"]), path


# --------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("transport", ["unix", "ws"])
def test_client_that_stops_reading_stops_the_command(agentd_factory, tmp_path, transport):
    if transport == "unix":
        path = tmp_path / "agentd.sock"
        agentd = agentd_factory([f"unix://{path}"], env=SMALL_QUARANTINE)
        client, nbytes = RawUnixClient(agentd, path, "stalled"), STREAM_BYTES
    else:
        agentd = agentd_factory(["ws://127.0.0.1:0"], env=SMALL_QUARANTINE)
        client, nbytes = RawWsClient(agentd, "stalled"), WS_STREAM_BYTES
    marker = "stall"
    expected = keystream_digest_start(nbytes, marker)
    try:
        client.initialize()
        time.sleep(0.3)  # let start-up settle before the idle sample
        idle_kib = max(rss_kib(suite_processes(agentd, marker)) for _ in range(3))

        start_stream(client, 1, "bp", nbytes, marker)
        writer = pipe_writer(agentd, marker)
        ahead = wait_writer_blocked(writer)
        assert ahead < nbytes // 2, f"the writer got {ahead} bytes out before it blocked"

        # The stall: nothing is read for STALL_SECONDS. The writer stays blocked, the suite's
        # memory stays flat and its processes sleep.
        suite = suite_processes(agentd, marker)
        cpu_before = cpu_seconds(suite)
        peak_kib = 0
        deadline = time.monotonic() + STALL_SECONDS
        while time.monotonic() < deadline:
            peak_kib = max(peak_kib, rss_kib(suite_processes(agentd, marker)))
            time.sleep(0.1)
        cpu_used = cpu_seconds(suite) - cpu_before
        assert written_bytes(writer) == ahead, "the writer moved on while the client read nothing"
        assert_blocked_in_write(writer)
        print(f"\nback-pressure ({transport}): suite RSS idle {idle_kib} KiB, peak while stalled {peak_kib} KiB "
              f"(+{peak_kib - idle_kib} KiB); writer blocked after {ahead} bytes; "
              f"suite CPU while stalled {cpu_used:.3f} s; {len(suite)} suite processes")
        assert peak_kib <= idle_kib + RSS_SLACK_KIB, (
            f"suite RSS {peak_kib} KiB while the client stalls, idle {idle_kib} KiB: more than "
            f"{RSS_SLACK_KIB} KiB held for one stream")
        assert cpu_used <= STALL_CPU_MAX_SECONDS, f"the suite spent {cpu_used:.2f} s of CPU while stalled"

        # Read everything: every byte, in order, then the response, then nothing.
        t0 = time.monotonic()
        msg, digest, total, deltas = read_stream(client, 1, "bp")
        elapsed = time.monotonic() - t0
        print(f"back-pressure ({transport}): read {total} bytes in {deltas} deltas in {elapsed:.1f} s "
              f"({total / elapsed / 1e6:.0f} MB/s)")
        assert msg == {"id": 1, "result": {"exitCode": 0, "stdout": "", "stderr": ""}}
        assert total == nbytes
        assert digest == keystream_digest_wait(expected)
        assert_nothing_follows(client, 2)
    finally:
        expected.kill()
        expected.wait()
        client.close()


# The other connection's work: buffered `true` runs, then a streamed command it reads at once.
OTHER_TRUE_RUNS = 20
OTHER_STREAM_BYTES = (16 if sanitized_build() else 64) * MIB
# "Not slowed" with room for a loaded CI host: a stalled connection that blocked agentd's loop or
# execd's would hang the other one (the test's deadline), one that made them spin would cost a
# multiple of the baseline, both caught long before this bound is.
SLOWDOWN_MAX = 3.0
SLOWDOWN_GRACE_SECONDS = 1.0


def other_connection_work(client, first_id, marker):
    """Seconds for OTHER_TRUE_RUNS `true` runs and one OTHER_STREAM_BYTES stream, both checked."""
    expected = keystream_digest_start(OTHER_STREAM_BYTES, marker)
    t0 = time.monotonic()
    for i in range(OTHER_TRUE_RUNS):
        result = client.call(first_id + i, "command/exec", {"command": ["true"], "sandboxPolicy": FULL})
        assert result == {"exitCode": 0, "stdout": "", "stderr": ""}
    id_value = first_id + OTHER_TRUE_RUNS
    start_stream(client, id_value, "other", OTHER_STREAM_BYTES, marker)
    msg, digest, total, _ = read_stream(client, id_value, "other")
    elapsed = time.monotonic() - t0
    assert msg["result"]["exitCode"] == 0, msg
    assert total == OTHER_STREAM_BYTES
    assert digest == keystream_digest_wait(expected)
    return elapsed


def test_stalled_connection_does_not_slow_another(unix_agentd):
    agentd, path = unix_agentd
    other = RawUnixClient(agentd, path, "other")
    stalled = RawUnixClient(agentd, path, "stalled")
    try:
        other.initialize()
        stalled.initialize()
        baseline = other_connection_work(other, 100, "base")

        start_stream(stalled, 1, "bp", 1 << 40, "stall")  # never ends by itself
        writer = pipe_writer(agentd, "stall")
        ahead = wait_writer_blocked(writer)

        during = other_connection_work(other, 200, "during")
        assert written_bytes(writer) == ahead, "the stalled client's command moved on"
        assert_blocked_in_write(writer)
        print(f"\nother connection: {baseline:.2f} s alone, {during:.2f} s beside a stalled one")
        assert during <= SLOWDOWN_MAX * baseline + SLOWDOWN_GRACE_SECONDS, (
            f"the other connection took {during:.2f} s beside the stalled one, {baseline:.2f} s alone")
        assert_nothing_follows(other, 300)

        # Leaving without reading ends the stalled command (its whole group).
        stalled.close()
        wait_until(lambda: not command_processes(agentd, "stall"), 10, what="the stalled command to end")
    finally:
        stalled.close()
        other.close()
