#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""turn.py - agentd's overhead per turn against the reference app-server, the same mock model.

bench/turn.py [-n TURNS] [-d DELTAS] [-c CPU_DELTAS] [-s RUNS] [-r CODEX | -R] [AGENTD]

Both servers run over stdio (newline-delimited JSON), driven by the same client code, against one
mock model (tests/integration/mock_model.py) in this process, so one clock times both ends:

  latency   a text answer of DELTAS deltas per turn; the time from the mock's last SSE byte (the
            write of its response.completed frame, stamped by a wrapper around the mock's writes)
            to the line carrying turn/completed read by the client; p50/p90/max over TURNS turns
            per server, in blocks that take turns so background load hits both alike.
  CPU       one turn of CPU_DELTAS small deltas, RUNS times per server: the CPU time of the server
            and its descendants (the run time of every thread, /proc/PID/task/*/schedstat, checked
            against utime+stime of /proc/PID/stat, which also counts threads that have exited) from
            turn/start sent to turn/completed read, less the idle rate measured just before, per
            1,000 deltas. Also shown: the CPU of a DELTAS-delta turn (the cost of any turn), what
            each 1,000 deltas beyond it cost, and the CPU per 1,000 of a turn a quarter as long (a
            cost linear in the deltas gives the same figure at both lengths).

The client reads the servers' stdout in 1 MiB reads and only counts lines while streaming (it
json-parses none of the delta lines), so the servers, not the client, set the pace. The target
(the issue's): agentd's CPU per delta at most half the reference's. A MISS is reported, not an
error; a benchmark that cannot run is (exit 1).
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import mock_model as mm  # noqa: E402

REF_VERSION = "0.169.0"
REF_PREINSTALLED = "/opt/codex-ref"
TARGET_CPU_SHARE = 0.5          # of the reference's CPU per delta
WARMUP_TURNS = 3
BLOCK_TURNS = 5                 # latency turns per server before the other takes its turn
IDLE_WINDOW_S = 1.0             # before each CPU turn, its server's idle rate is measured this long,
SETTLE_S = 0.5                  # starting this long after the turn before (what follows turn/completed
                                # is not idle)
PR_SET_CHILD_SUBREAPER = 36
TURN_TIMEOUT_S = 120.0
READ_BYTES = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
DELTA_MARK = b'"item/agentMessage/delta"'
COMPLETED_MARK = b'"turn/completed"'


def die(msg):
    print(f"bench/turn: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- the mock's last byte -------------------------------------------------------------------

class LastByteClock:
    """Stamps time.monotonic() after every SSE write of the mock (its _Handler._write) and keeps,
    per responses request, the stamp of the last one. Patching is the only way in: the mock has no
    timing hook, and one here costs a clock read per write."""

    def __init__(self):
        handler = mm._Handler
        if not (hasattr(handler, "_write") and hasattr(handler, "_stream")):
            die("mock_model._Handler has no _write/_stream to time; update bench/turn.py")
        self.last = None
        self.stamps = []            # one per finished stream, in order
        clock = self
        write, stream = handler._write, handler._stream

        def timed_write(self, data, framing, declared=None):
            write(self, data, framing, declared)
            clock.last = time.monotonic()

        def timed_stream(self, call, b):
            clock.last = None
            stream(self, call, b)
            clock.stamps.append(clock.last)

        handler._write, handler._stream = timed_write, timed_stream


# ---- processes -----------------------------------------------------------------------------

_TICKS_ONLY = set()             # pids whose exited threads make the schedstat sum short


def proc_cpu_s(pid):
    """CPU seconds of @pid, all its threads: the sum of their run times (/proc/PID/task/*/schedstat,
    nanoseconds), unless utime+stime (/proc/PID/stat, clock ticks, which also count threads that
    have exited) says more than rounding allows: then, for good, the ticks (so that two readings
    of one process are always of one kind); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    ticks_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    if pid in _TICKS_ONLY:
        return ticks_s
    run_ns = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    run_ns += int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        return ticks_s
    run_s = run_ns / 1e9
    if ticks_s - run_s > 3.0 / CLK_TCK:
        _TICKS_ONLY.add(pid)
        return ticks_s
    return run_s


def descendants(pid):
    """{pid: comm} of every live descendant of @pid."""
    parent_of, comm_of = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        parent_of[int(entry)] = int(data[data.rindex(")") + 2:].split()[1])
        comm_of[int(entry)] = data[data.index("(") + 1:data.rindex(")")]
    out, frontier = {}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parent_of.items():
            if parent == p and child not in out:
                out[child] = comm_of[child]
                frontier.append(child)
    return out


class Server:
    """An app-server on stdio; only the lines it needs are parsed."""

    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.workdir = workdir
        self.stderr_path = os.path.join(workdir, f"{name.split()[0]}.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=env, cwd=workdir, start_new_session=True, bufsize=0)
        self.fd = self.proc.stdout.fileno()
        self.comm = os.path.basename(argv[0])[:15]
        self.buf = b""
        self.next_id = 0
        self.thread_id = None

    def fail(self, why):
        try:
            with open(self.stderr_path, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        self.stop()
        status = self.proc.returncode
        how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        die(f"{self.name}: {why} ({how})\n--- its stderr (tail) ---\n{tail}")

    def send(self, msg):
        self.proc.stdin.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())

    def read_lines(self):
        """The complete lines now readable (blocks until there is at least one chunk)."""
        data = os.read(self.fd, READ_BYTES)
        if not data:
            self.fail("closed its stdout")
        self.buf += data
        cut = self.buf.rfind(b"\n")
        if cut < 0:
            return b""
        lines, self.buf = self.buf[:cut + 1], self.buf[cut + 1:]
        return lines

    def request(self, method, params, timeout_s=30.0):
        """Send a request and return its result, parsing every line until the answer."""
        self.next_id += 1
        rid = self.next_id
        self.send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.read_lines().splitlines():
                if not line.strip():
                    continue
                msg = json.loads(line)
                if msg.get("id") == rid and "method" not in msg:
                    if "error" in msg:
                        self.fail(f"{method}: {msg['error']}")
                    return msg["result"]
        self.fail(f"no answer to {method} in {timeout_s:.0f} s")

    def handshake(self, cwd):
        self.request("initialize", {"clientInfo": {"name": "bench-turn", "version": "1"}})
        self.send({"method": "initialized"})
        self.thread_id = self.request("thread/start", {"cwd": cwd})["thread"]["id"]

    def run_turn(self, text):
        """turn/start, then read until turn/completed; (deltas seen, monotonic time it was read)."""
        self.next_id += 1
        self.send({"id": self.next_id, "method": "turn/start",
                   "params": {"threadId": self.thread_id, "input": [{"type": "text", "text": text}]}})
        deltas = 0
        deadline = time.monotonic() + TURN_TIMEOUT_S
        while True:
            lines = self.read_lines()
            done_at = time.monotonic()
            deltas += lines.count(DELTA_MARK)
            if COMPLETED_MARK in lines:
                for line in lines.splitlines():
                    if COMPLETED_MARK in line and json.loads(line).get("method") == "turn/completed":
                        return deltas, done_at
            if b'"error"' in lines:
                for line in lines.splitlines():
                    if b'"error"' in line:
                        msg = json.loads(line)
                        if "error" in msg and "method" not in msg:
                            self.fail(f"turn/start: {msg['error']}")
            if done_at > deadline:
                self.fail(f"no turn/completed in {TURN_TIMEOUT_S:.0f} s")

    def cpu(self):
        """(CPU seconds of the server and its descendants, {comm: CPU seconds} of each)."""
        parts = {self.comm: proc_cpu_s(self.proc.pid) or 0.0}
        for pid, comm in descendants(self.proc.pid).items():
            parts[comm] = parts.get(comm, 0.0) + (proc_cpu_s(pid) or 0.0)
        return sum(parts.values()), parts

    def stop(self):
        """Close stdin (both exit at end of input), then SIGTERM, SIGKILL the group; reap."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it left in its session
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.stdout.close()
        self.stderr.close()


# ---- locating the servers ----------------------------------------------------------------------

def cache_dir():
    xdg, home = os.environ.get("XDG_CACHE_HOME", ""), os.environ.get("HOME", "")
    if xdg.startswith("/"):
        return os.path.join(xdg, "agentd-bench")
    return os.path.join(home if home.startswith("/") else "/root", ".cache", "agentd-bench")


def ref_bin_under(prefix):
    arm = platform.machine() == "aarch64"
    return (f"{prefix}/node_modules/@openai/codex-linux-{'arm64' if arm else 'x64'}/vendor/"
            f"{'aarch64' if arm else 'x86_64'}-unknown-linux-musl/bin/codex")


def ref_locate(arg):
    """The reference binary, or (None, why). bench/exec installs it into the cache when missing."""
    candidates = [arg] if arg else ([os.environ["CODEX_REF_BIN"]] if os.environ.get("CODEX_REF_BIN") else
                                   [ref_bin_under(REF_PREINSTALLED),
                                    ref_bin_under(os.path.join(cache_dir(), f"codex-{REF_VERSION}"))])
    for path in candidates:
        if os.access(path, os.X_OK):
            return path, None
    return None, f"no reference at {' or '.join(candidates)} (bench/exec installs it)"


def ref_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, timeout=10, text=True).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


# ---- measuring ---------------------------------------------------------------------------------

def answer(n, word):
    return mm.text_answer(deltas=[f"{word}{i % 10} " for i in range(n)])


def latency_turn(server, model, clock, deltas):
    """One short turn: (µs from the mock's last byte to turn/completed, CPU s of the turn)."""
    model.script(answer(deltas, "w"))
    cpu0, _ = server.cpu()
    seen, done_at = server.run_turn("say something")
    cpu1, _ = server.cpu()
    last = clock.stamps[-1] if clock.stamps else None
    if seen != deltas or last is None:
        server.fail(f"turn saw {seen} of {deltas} deltas (mock stamp {last})")
    return (done_at - last) * 1e6, cpu1 - cpu0


def cpu_turn(server, model, clock, deltas):
    """One long turn: its CPU s less the idle rate, the raw CPU, the idle rate, {comm: CPU s},
    the wall time from turn/start to turn/completed and the mock's time to its last byte."""
    model.script(answer(deltas, "t"))
    time.sleep(SETTLE_S)
    idle0, _ = server.cpu()
    t0 = time.monotonic()
    time.sleep(IDLE_WINDOW_S)
    idle1, _ = server.cpu()
    idle_rate = (idle1 - idle0) / (time.monotonic() - t0)
    cpu0, parts0 = server.cpu()
    start = time.monotonic()
    seen, done_at = server.run_turn("say a lot")
    cpu1, parts1 = server.cpu()
    wall = done_at - start
    if seen != deltas:
        server.fail(f"long turn saw {seen} of {deltas} deltas")
    parts = {k: v - parts0.get(k, 0.0) for k, v in parts1.items()}
    return {"cpu": cpu1 - cpu0 - idle_rate * wall, "raw": cpu1 - cpu0, "idle_rate": idle_rate,
            "parts": parts, "wall": wall, "stream": clock.stamps[-1] - start}


def reap_orphans():
    """Wait for what the servers left behind: as the subreaper this process inherits it."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main():
    ap = argparse.ArgumentParser(description="agentd's overhead per turn against the reference app-server")
    ap.add_argument("-n", type=int, default=30, help="latency turns per server (default 30)")
    ap.add_argument("-d", type=int, default=20, help="deltas per latency turn (default 20)")
    ap.add_argument("-c", type=int, default=20000, help="deltas of the CPU turn (default 20000)")
    ap.add_argument("-s", type=int, default=3, help="CPU turns per server (default 3)")
    ap.add_argument("-r", metavar="CODEX", help="the reference binary (default: $CODEX_REF_BIN, "
                    f"{REF_PREINSTALLED}, the cache)")
    ap.add_argument("-R", action="store_true", help="no reference")
    ap.add_argument("agentd", nargs="?", default=os.path.join(TOP, "agentd", "agentd"))
    args = ap.parse_args()
    if min(args.n, args.d, args.s) < 1 or args.c < 4:
        ap.error("counts must be positive (-c at least 4)")
    agentd = os.path.abspath(args.agentd)
    if not os.access(agentd, os.X_OK):
        die(f"{agentd} is not built")
    ref_bin, skip = (None, "-R: no reference") if args.R else ref_locate(args.r)
    sys.setswitchinterval(1e-4)  # the mock's thread and the reader share the GIL: short hand-offs
    # A helper that outlives agentd comes to this process, not to a PID 1 that may never reap it.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    clock = LastByteClock()
    tmp = tempfile.mkdtemp(prefix="agentd-bench-turn-")
    os.makedirs(cache_dir(), exist_ok=True)
    homes_root = tempfile.mkdtemp(prefix="turn-homes-", dir=cache_dir())  # outside /tmp, as the reference wants
    ref_home = os.path.join(homes_root, "reference")
    servers = []
    try:
        with mm.MockModel() as model:
            config = model.config_toml()
            homes = {"agentd": os.path.join(homes_root, "agentd"), "reference": ref_home}
            for home in homes.values():  # one file system for both servers' rollouts
                os.makedirs(home)
                with open(os.path.join(home, "config.toml"), "w") as f:
                    f.write(config)
            env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "CODEX_API_KEY")}
            os.makedirs(os.path.join(tmp, "rt"), mode=0o700)
            ours = Server("agentd", [agentd, "--listen", "stdio://"],
                          dict(env, AGENTD_RUNTIME_DIR=os.path.join(tmp, "rt"), CODEX_HOME=homes["agentd"]),
                          tmp)
            servers.append(ours)
            theirs = None
            if ref_bin:
                user_home = os.path.join(ref_home, "user")   # no ~/.bashrc, no real ~/.codex
                os.makedirs(user_home)
                theirs = Server("reference app-server", [ref_bin, "app-server"],
                                dict(env, CODEX_HOME=ref_home, HOME=user_home, RUST_LOG="warn"), ref_home)
                servers.append(theirs)
            for s in servers:
                cwd = os.path.join(s.workdir, "work")
                os.makedirs(cwd, exist_ok=True)
                s.handshake(cwd)
                for _ in range(WARMUP_TURNS):
                    latency_turn(s, model, clock, args.d)

            lat = {s.name: [] for s in servers}
            short_cpu = {s.name: [] for s in servers}
            while len(lat[ours.name]) < args.n:
                block = min(BLOCK_TURNS, args.n - len(lat[ours.name]))
                for s in servers:
                    for _ in range(block):
                        us, cpu_s = latency_turn(s, model, clock, args.d)
                        lat[s.name].append(us)
                        short_cpu[s.name].append(cpu_s)

            cpu = {s.name: [] for s in servers}
            for _ in range(args.s):
                for s in servers:
                    cpu[s.name].append(cpu_turn(s, model, clock, args.c))
            # A cost that is linear in the deltas is the same per 1,000 at a quarter of the length.
            quarter = {s.name: [] for s in servers}
            for _ in range(args.s):
                for s in servers:
                    quarter[s.name].append(cpu_turn(s, model, clock, args.c // 4))
    finally:
        for s in servers:
            s.stop()
        reap_orphans()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(homes_root, ignore_errors=True)

    if theirs:
        print(f"reference: {ref_version(ref_bin)} ({ref_bin}), CODEX_HOME under {cache_dir()}")
    else:
        print(f"reference: skipped ({skip})")
    print(f"turn overhead: the mock's last SSE byte -> turn/completed read by the client, {args.n} turns of "
          f"{args.d} deltas per server (after {WARMUP_TURNS} warm-up), blocks of {BLOCK_TURNS} taking turns")
    print(f"{'path':<40} {'p50 us':>10} {'p90 us':>10} {'max us':>10}")
    stats = {}
    for s in servers:
        v = lat[s.name]
        stats[s.name] = (statistics.median(v), pct(v, 0.9), max(v))
        print(f"{s.name:<40} {stats[s.name][0]:>10.0f} {stats[s.name][1]:>10.0f} {stats[s.name][2]:>10.0f}")
    if theirs:
        print(f"  agentd / reference p50: {stats[ours.name][0] / stats[theirs.name][0]:.3f}x, "
              f"p90 {stats[ours.name][1] / stats[theirs.name][1]:.3f}x (informational)")

    print(f"\nCPU per delta: one turn of {args.c} deltas, {args.s} runs per server taking turns (median "
          f"shown, all listed), turn/start -> turn/completed, the server and its helpers, less the idle rate")
    print(f"{'path':<40} {'CPU ms':>8} {'ms/1000 deltas':>15} {'wall ms':>8} {'mock ms':>8}  runs ms/1000")
    per_k, marginal = {}, {}
    for s in servers:
        runs = cpu[s.name]
        mid = sorted(runs, key=lambda r: r["cpu"])[len(runs) // 2]
        per_k[s.name] = mid["cpu"] * 1e3 / (args.c / 1000)
        listed = " ".join(f"{r['cpu'] * 1e3 / (args.c / 1000):.2f}" for r in runs)
        print(f"{s.name:<40} {mid['cpu'] * 1e3:>8.0f} {per_k[s.name]:>15.2f} {mid['wall'] * 1e3:>8.0f} "
              f"{mid['stream'] * 1e3:>8.0f}  {listed}")
        parts = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(mid["parts"].items(), key=lambda kv: -kv[1]))
        fixed = statistics.median(short_cpu[s.name])
        marginal[s.name] = (mid["cpu"] - fixed) * 1e3 / ((args.c - args.d) / 1000) if args.c > args.d else 0.0
        q = statistics.median(r["cpu"] for r in quarter[s.name]) * 1e3 / (args.c // 4 / 1000)
        print(f"  {s.name}: CPU ms {parts}; idle {mid['idle_rate'] * mid['wall'] * 1e3:.1f} ms subtracted; a "
              f"{args.d}-delta turn {fixed * 1e3:.1f} ms, so {marginal[s.name]:.2f} ms per 1,000 more deltas; "
              f"a {args.c // 4}-delta turn {q:.2f} ms per 1,000 (x{per_k[s.name] / q:.2f} at 4x the length)")
    if theirs:
        share = per_k[ours.name] / per_k[theirs.name]
        verdict = "PASS" if share <= TARGET_CPU_SHARE else "MISS"
        print(f"target: CPU per 1,000 deltas <= {TARGET_CPU_SHARE:.2f}x the reference ... {verdict} ({share:.3f}x; "
              f"beyond a short turn's cost {marginal[ours.name] / marginal[theirs.name]:.3f}x)")
    else:
        print(f"target: CPU per 1,000 deltas <= {TARGET_CPU_SHARE:.2f}x the reference ... skipped ({skip})")
    nan = float("nan")
    ref_stats = stats.get(theirs.name if theirs else "", (nan,) * 3)
    print(f"RESULT turn p50_us={stats[ours.name][0]:.0f} p90_us={stats[ours.name][1]:.0f} "
          f"ref_p50_us={ref_stats[0]:.0f} ref_p90_us={ref_stats[1]:.0f} "
          f"cpu_ms_per_1k={per_k[ours.name]:.2f} ref_cpu_ms_per_1k={per_k.get(theirs.name if theirs else '', nan):.2f} "
          f"marginal_ms_per_1k={marginal[ours.name]:.2f} "
          f"ref_marginal_ms_per_1k={marginal.get(theirs.name if theirs else '', nan):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
