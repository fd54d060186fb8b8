# SPDX-License-Identifier: MIT
"""BrokerCall: drive one helper daemon's internal methods from a test, through tests/broker-call.

broker-call plays agentd's broker for one helper (it listens on <runtime>/<service>.sock, spawns
the daemon with AGENTD_RUNTIME_DIR set and answers its hello); this class runs it and speaks its
JSON lines:

    with BrokerCall("watchd", [WATCHD, "--supervised"], env={"CODEX_HOME": home}) as bc:
        status, body = bc.call("watch.add", {"watchId": "w", "path": str(tmp)}, connection=3)
        event = bc.wait_event("fs.changed")
        answers = bc.call_many([("health", {})] * 50)
    # leaving the block: stdin closed, the daemon gets SIGTERM (SIGKILL after 5 s), exit status kept

What the daemon sends is kept in order:
  .events        every event ({"event": method, "connection": C, "body": ...}), never consumed
  .lines         every line broker-call printed (ready, responses, events, exited, disconnected,
                 violation: the daemon broke a broker rule and was cut off, request: the daemon
                 asked another helper, credit, unmatched: a response to no request of ours, error)
  .pid           the daemon's pid (the latest hello's); .ready_count how many hellos were accepted
  .exit_status   the spawned daemon's exit code, or -signal, once it exited (else None)
  .log()         what the daemon and broker-call wrote to stderr so far (for "never logs X" tests)

Statuses are the envelope's: 0 or a negative errno (-38 -ENOSYS for an unknown method, -113 when
the daemon is not registered or its link dropped while the request waited; such answers are
given by broker-call and marked "broker": true in .lines).

Bodies are JSON on both sides (broker-call packs them with common/mpjson.c). A body JSON cannot
carry (bin, ext) arrives as its raw msgpack and is decoded here (bin as bytes); raw_body= sends
exact msgpack bytes (mp_pack() builds them, bytes as bin), e.g. to test malformed bodies.

env is merged over os.environ; a value of None removes the variable (keep the host's
OPENAI_API_KEY and the like out of a credential test). With keep=True broker-call outlives the
daemon (restart(), or a daemon started by the test itself with AGENTD_RUNTIME_DIR=.runtime_dir,
registers again).
"""
import base64
import itertools
import json
import os
import signal
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("AGENTD_BUILDDIR", REPO_ROOT)).resolve()
BROKER_CALL_BIN = BUILDDIR / "tests" / "broker-call"

# Status codes (negative Linux errno values) that tests meet most.
ENOSYS = -38
EINVAL = -22
EBADMSG = -74
EMSGSIZE = -90
EHOSTUNREACH = -113


class BrokerCallError(Exception):
    """broker-call refused an input line or could not start the daemon."""


# --------------------------------------------------------------------------------------
# a little msgpack, for bodies JSON cannot carry (no python3-msgpack on Debian's minimal set)


def mp_pack(obj):
    """@obj as msgpack bytes: None, bool, int, float, str, bytes (bin), list, tuple, dict."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 0x80:
            return bytes([obj])
        if -32 <= obj < 0:
            return struct.pack("b", obj)
        if obj >= 0:
            for fmt, tag in (("B", 0xCC), ("H", 0xCD), ("I", 0xCE), ("Q", 0xCF)):
                if obj < 1 << (8 * struct.calcsize(fmt)):
                    return bytes([tag]) + struct.pack(">" + fmt, obj)
        for fmt, tag in (("b", 0xD0), ("h", 0xD1), ("i", 0xD2), ("q", 0xD3)):
            bits = 8 * struct.calcsize(fmt)
            if -(1 << (bits - 1)) <= obj:
                return bytes([tag]) + struct.pack(">" + fmt, obj)
        raise ValueError(f"integer out of range: {obj}")
    if isinstance(obj, float):
        return b"\xcb" + struct.pack(">d", obj)
    if isinstance(obj, str):
        data = obj.encode()
        n = len(data)
        if n < 32:
            return bytes([0xA0 | n]) + data
        return (b"\xd9" + struct.pack(">B", n) if n < 256 else
                b"\xda" + struct.pack(">H", n) if n < 65536 else b"\xdb" + struct.pack(">I", n)) + data
    if isinstance(obj, (bytes, bytearray)):
        n = len(obj)
        return (b"\xc4" + struct.pack(">B", n) if n < 256 else
                b"\xc5" + struct.pack(">H", n) if n < 65536 else b"\xc6" + struct.pack(">I", n)) + bytes(obj)
    if isinstance(obj, (list, tuple)):
        n = len(obj)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n) if n < 65536 else \
            b"\xdd" + struct.pack(">I", n)
        return head + b"".join(mp_pack(v) for v in obj)
    if isinstance(obj, dict):
        n = len(obj)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n) if n < 65536 else \
            b"\xdf" + struct.pack(">I", n)
        return head + b"".join(mp_pack(k) + mp_pack(v) for k, v in obj.items())
    raise TypeError(f"cannot pack {type(obj).__name__}")


def mp_unpack(data):
    """One msgpack value occupying all of @data (bin as bytes, ext as (type, bytes))."""
    value, end = _mp_unpack_at(bytes(data), 0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} trailing bytes after the msgpack value")
    return value


def _mp_unpack_at(data, i):
    b = data[i]
    i += 1

    def take(n):
        if i + n > len(data):
            raise ValueError("truncated msgpack")
        return data[i:i + n]

    def seq(count, j, is_map):
        out = {} if is_map else []
        for _ in range(count):
            key, j = _mp_unpack_at(data, j)
            if is_map:
                out[key], j = _mp_unpack_at(data, j)
            else:
                out.append(key)
        return out, j

    if b < 0x80:
        return b, i
    if b >= 0xE0:
        return b - 256, i
    if 0x80 <= b <= 0x8F:
        return seq(b & 0x0F, i, True)
    if 0x90 <= b <= 0x9F:
        return seq(b & 0x0F, i, False)
    if 0xA0 <= b <= 0xBF:
        n = b & 0x1F
        return take(n).decode(), i + n
    simple = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in simple:
        return simple[b], i
    fixed = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if b in fixed:
        n = struct.calcsize(fixed[b])
        return struct.unpack(fixed[b], take(n))[0], i + n
    sized = {0xC4: (1, "bin"), 0xC5: (2, "bin"), 0xC6: (4, "bin"), 0xD9: (1, "str"), 0xDA: (2, "str"),
             0xDB: (4, "str"), 0xDC: (2, "array"), 0xDD: (4, "array"), 0xDE: (2, "map"), 0xDF: (4, "map"),
             0xC7: (1, "ext"), 0xC8: (2, "ext"), 0xC9: (4, "ext")}
    if b in sized:
        width, kind = sized[b]
        n = int.from_bytes(take(width), "big")
        i += width
        if kind == "array":
            return seq(n, i, False)
        if kind == "map":
            return seq(n, i, True)
        if kind == "ext":
            ext_type = struct.unpack("b", take(1))[0]
            i += 1
            return (ext_type, take(n)), i + n
        return (take(n).decode() if kind == "str" else take(n)), i + n
    fixext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if b in fixext:
        ext_type = struct.unpack("b", take(1))[0]
        i += 1
        n = fixext[b]
        return (ext_type, take(n)), i + n
    raise ValueError(f"bad msgpack byte 0x{b:02x}")


def _line_body(line):
    if line.get("body") is None and "raw" in line:
        return mp_unpack(base64.b64decode(line["raw"]))
    return line.get("body")


# --------------------------------------------------------------------------------------


class BrokerCall:
    """broker-call running @argv as helper @service; see the module's docstring."""

    def __init__(self, service, argv, env=None, runtime_dir=None, *, keep=False, start_timeout=10.0,
                 binary=None):
        self.service = service
        self.argv = [str(a) for a in argv]
        self.keep = keep
        self.pid = None
        self.ready_count = 0
        self.runtime_dir = str(runtime_dir) if runtime_dir else None
        self.exit_status = None
        self.events = []
        self.lines = []
        self._cond = threading.Condition()
        self._answers = {}
        self._ids = itertools.count(1)
        self._events_taken = set()
        self._write_lock = threading.Lock()
        self._eof = False
        self._closed = False

        full_env = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = str(value)
        cmd = [str(binary or BROKER_CALL_BIN)]
        if runtime_dir:
            cmd += ["--runtime", str(runtime_dir)]
        if keep:
            cmd.append("--keep")
        cmd += [service, "--", *self.argv]
        # stderr (the daemon's log and broker-call's) goes to a file the test can read.
        self._stderr = tempfile.TemporaryFile(prefix="broker-call-")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=full_env, bufsize=0)
        self._reader = threading.Thread(target=self._read_loop, name=f"broker-call-{service}", daemon=True)
        self._reader.start()
        try:
            self.wait_ready(1, start_timeout)
        except Exception:
            self._kill()
            raise

    # ---- reading ----------------------------------------------------------------------

    def _read_loop(self):
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"error": f"unparsable output line: {raw!r}"}
            with self._cond:
                self.lines.append(line)
                if "ready" in line:
                    self.pid = line.get("pid")
                    self.runtime_dir = line.get("runtime", self.runtime_dir)
                    self.ready_count += 1
                elif "exited" in line:
                    self.exit_status = line.get("status")
                elif "event" in line:
                    self.events.append(line)
                elif "id" in line and ("status" in line or "error" in line):
                    self._answers[_key(line["id"])] = line
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=5.0, what="a condition"):
        """Wait until @predicate() (called under the lock, on any new line) is truthy; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if self._eof:
                    raise BrokerCallError(f"broker-call ended while waiting for {what}\n{self._log_tail()}")
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}\n{self._log_tail()}")
                self._cond.wait(remaining)

    def wait_ready(self, count=None, timeout=10.0):
        """Wait for hello number @count (default: one more than now); return the daemon's pid."""
        with self._cond:
            target = self.ready_count + 1 if count is None else count
        self.wait_for(lambda: self.ready_count >= target, timeout, f"{self.service}'s hello #{target}")
        return self.pid

    def wait_exited(self, timeout=10.0):
        """Wait for the spawned daemon to exit; return its status (exit code or -signal)."""
        self.wait_for(lambda: self.exit_status is not None, timeout, f"{self.service} to exit")
        return self.exit_status

    def wait_line(self, predicate, timeout=5.0, what="a line"):
        """Wait for a printed line satisfying @predicate (searching all lines so far); return it."""
        def find():
            return next((line for line in self.lines if predicate(line)), None)
        return self.wait_for(find, timeout, what)

    def log(self):
        """Everything written to stderr so far (the daemon's log lines and broker-call's)."""
        self._stderr.flush()
        return Path(f"/proc/self/fd/{self._stderr.fileno()}").read_bytes().decode(errors="replace")

    def _log_tail(self, n=30):
        try:
            lines = self.log().splitlines()
        except OSError:
            return ""
        return "--- stderr (last lines) ---\n" + "\n".join(lines[-n:])

    # ---- writing ----------------------------------------------------------------------

    def _send_lines(self, objs):
        data = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs).encode()
        with self._write_lock:
            if self._closed:
                raise BrokerCallError("broker-call's stdin is closed")
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _request(self, method, body, connection, raw_body, extra):
        obj = {"id": next(self._ids), "method": method, "connection": connection}
        if raw_body is not None:
            obj["raw_body"] = base64.b64encode(bytes(raw_body)).decode()
        elif body is not None:
            obj["body"] = body
        obj.update(extra)
        return obj

    def _wait_answer(self, req_id, timeout, method):
        line = self.wait_for(lambda: self._answers.get(_key(req_id)), timeout, f"the answer to {method} #{req_id}")
        with self._cond:
            del self._answers[_key(req_id)]
        if "error" in line:
            raise BrokerCallError(line["error"])
        return line

    def send_request(self, method, body=None, connection=0, raw_body=None, **extra):
        """Send a request without waiting; return its id for wait_answer()."""
        obj = self._request(method, body, connection, raw_body, extra)
        self._send_lines([obj])
        return obj["id"]

    def wait_answer(self, req_id, timeout=5.0):
        """The answer line to send_request()'s @req_id, body decoded."""
        line = self._wait_answer(req_id, timeout, "request")
        return dict(line, body=_line_body(line))

    def request(self, method, body=None, connection=0, timeout=5.0, raw_body=None, **extra):
        """Like call(), but return the whole answer line ({"id","status","connection","body",...})."""
        obj = self._request(method, body, connection, raw_body, extra)
        self._send_lines([obj])
        line = self._wait_answer(obj["id"], timeout, method)
        return dict(line, body=_line_body(line))

    def call(self, method, body=None, connection=0, timeout=5.0, raw_body=None, **extra):
        """Request @method with @body (a dict; None sends {}); return (status, body).

        @raw_body (bytes) replaces @body with exact msgpack; @extra may set "source" or
        "destination" to test the daemon's own checks.
        """
        line = self.request(method, body, connection, timeout, raw_body, **extra)
        return line["status"], line["body"]

    def call_many(self, calls, timeout=10.0):
        """Send all @calls at once (pipelined) and return their (status, body) in the same order.

        Each call is (method, body), (method, body, connection) or a dict of call()'s arguments.
        """
        objs = []
        for c in calls:
            if isinstance(c, dict):
                c = dict(c)
                objs.append(self._request(c.pop("method"), c.pop("body", None), c.pop("connection", 0),
                                          c.pop("raw_body", None), c))
            else:
                method, body, *rest = c
                objs.append(self._request(method, body, rest[0] if rest else 0, None, {}))
        self._send_lines(objs)
        deadline = time.monotonic() + timeout
        results = []
        for obj in objs:
            line = self._wait_answer(obj["id"], max(0.0, deadline - time.monotonic()), obj["method"])
            results.append((line["status"], _line_body(line)))
        return results

    def send_event(self, method, body=None, connection=0, raw_body=None, **extra):
        """Send event @method (e.g. "conn.closed") about client @connection; events are never answered."""
        obj = {"event": method, "connection": connection}
        if raw_body is not None:
            obj["raw_body"] = base64.b64encode(bytes(raw_body)).decode()
        elif body is not None:
            obj["body"] = body
        obj.update(extra)
        self._send_lines([obj])

    def send_credit(self, body=None, connection=0):
        """Send a credit envelope (e.g. {"watchId": ...} for a watchd watch)."""
        self._send_lines([{"credit": True, "connection": connection, "body": body or {}}])

    def wait_event(self, method, timeout=5.0, predicate=None, connection=None):
        """The first event @method (matching @connection and @predicate(body)) not returned before."""
        def find():
            for i, ev in enumerate(self.events):
                if i in self._events_taken or ev.get("event") != method:
                    continue
                if connection is not None and ev.get("connection") != connection:
                    continue
                if predicate and not predicate(_line_body(ev)):
                    continue
                self._events_taken.add(i)
                return dict(ev, body=_line_body(ev))
            return None
        return self.wait_for(find, timeout, f"event {method}")

    def expect_no_event(self, method, window=0.5):
        """Fail if event @method (not returned by wait_event before) arrives within @window s."""
        try:
            ev = self.wait_event(method, window)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event: {ev}")

    # ---- the daemon's life ------------------------------------------------------------

    def spawn(self, timeout=10.0):
        """Start DAEMON_ARGV again (needs keep=True; the previous one must have exited)."""
        with self._cond:
            target = self.ready_count + 1
            self.exit_status = None
        self._send_lines([{"spawn": True}])
        self.wait_ready(target, timeout)
        return self.pid

    def restart(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the daemon with @sig, wait for its exit, spawn it again; return (old status, new pid)."""
        if not self.keep:
            raise BrokerCallError("restart() needs BrokerCall(..., keep=True)")
        os.kill(self.pid, sig)
        status = self.wait_exited(timeout)
        return status, self.spawn(timeout)

    def close(self, timeout=15.0):
        """Close stdin: broker-call lets answers in flight arrive, stops the daemon (SIGTERM, SIGKILL
        after 5 s) and exits. Return the daemon's exit status (exit code or -signal)."""
        with self._write_lock:
            if not self._closed:
                self._closed = True
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise TimeoutError(f"broker-call did not stop within {timeout} s\n{self._log_tail()}")
        self._reader.join(5)
        if rc not in (0, None) and self.exit_status is None:
            raise BrokerCallError(f"broker-call exited {rc}\n{self._log_tail()}")
        return self.exit_status

    def _kill(self):
        with self._write_lock:
            self._closed = True
        if self.proc.poll() is None:
            # Our own child, by its pid: SIGTERM lets it stop the daemon and remove its files.
            self.proc.terminate()
            try:
                self.proc.wait(12)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # The daemon is broker-call's child; without broker-call to reap it, stop it ourselves.
        if self.pid and self.exit_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            try:
                self.close()
            except Exception:
                self._kill()
        return False


def _key(value):
    return json.dumps(value, sort_keys=True)
