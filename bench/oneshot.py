#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""oneshot.py - `agentd exec PROMPT` against the reference `codex exec PROMPT`, the same mock model.

bench/oneshot.py [-n RUNS] [-i SAMPLE_MS] [-r CODEX | -R] [AGENTD]

Each run spawns one binary with a prompt and waits for it to exit: `agentd exec` starts a child
`agentd --listen stdio://` and its helpers and runs one turn through the app-server protocol; the
reference `codex exec --skip-git-repo-check` runs it in its own process. Both get the same text
answer from one mock Responses API (tests/integration/mock_model.py) in this process, a
config.toml from MockModel.config_toml() in a CODEX_HOME of their own (outside /tmp, as the
reference wants), an empty HOME, a minimal environment and /dev/null on stdin. Every run must
exit 0 with the mock's text (and nothing else) on stdout, or the benchmark fails. Each runs with
its defaults: the reference's include a login-shell snapshot, lsb_release and its plugin sync (a
git fetch of github.com, which fails at once offline); agentd exec's its sandbox helpers.

Per binary, RUNS runs after WARMUP_RUNS warm-up runs, in blocks of BLOCK_RUNS that take turns
(the one that goes first alternates) so background load hits both alike:

  wall      spawn -> the spawned process's exit (its pidfd readable); p50 / p90.
  CPU       user + system time of the whole process tree: this process is a subreaper
            (PR_SET_CHILD_SUBREAPER), so every descendant is reaped by it or by another
            descendant, and getrusage(RUSAGE_CHILDREN) after the last is reaped counts them all.
  memory    the peak of the tree's summed VmRSS (/proc/PID/statm of every live descendant,
            sampled every SAMPLE_MS; a process that lives between two samples is missed, so a
            lower bound), and the peak VmRSS of its largest single process, from the same samples.
            Not ru_maxrss: exec folds the peak of the image it replaces into the new process's, so
            the spawned binary's would be at least this Python's RSS, and each helper's its
            parent's.

Nothing may outlive a run: once the spawned process exits, what it left must exit by itself
within LINGER_S, or it is killed and the benchmark fails. The target: agentd exec's wall p50 at
most the reference's. A MISS is reported, not an error; a benchmark that cannot run is (exit 1).
"""
import argparse
import ctypes
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import mock_model as mm  # noqa: E402
from turn import cache_dir, pct, reap_orphans, ref_locate, ref_version  # noqa: E402  (the reference's finder)

TARGET_WALL_SHARE = 1.0         # of the reference's wall p50
WARMUP_RUNS = 2
BLOCK_RUNS = 5                  # runs of one binary before the other takes its turn
RUN_TIMEOUT_S = 60.0
LINGER_S = 10.0                 # what a run left may take to exit after it
PROMPT = "what is the answer?"
ANSWER = "The answer is 42."
ANSWER_DELTAS = ["The answer", " is", " 42."]
PR_SET_CHILD_SUBREAPER = 36
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def die(msg):
    print(f"bench/oneshot: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- the process tree ------------------------------------------------------------------------

def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[1])


def descendants():
    """The pids of every live (or zombie) descendant of this process."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = ppid_of(entry)
            if ppid is not None:
                parent_of[int(entry)] = ppid
    out, frontier = set(), [os.getpid()]
    while frontier:
        p = frontier.pop()
        for child, parent in parent_of.items():
            if parent == p and child not in out:
                out.add(child)
                frontier.append(child)
    return out


class TreeSampler:
    """Samples the summed VmRSS of this process's descendants every @interval_s in a thread.
    /proc has no children lists here (no CONFIG_PROC_CHILDREN), so each sample lists /proc and
    reads the stat of pids it has not seen before only: a pid that was not ours when first seen
    never becomes ours (an orphan comes to this subreaper, whose children are all ours), and pids
    are not reused within a run."""

    def __init__(self, interval_s):
        self.interval_s = interval_s
        self.foreign = set()            # kept across runs: the rest of the machine
        self.thread = None

    def start(self):
        self.tree, self.peak_bytes, self.largest_bytes, self.seen = set(), 0, 0, set()
        if self.interval_s <= 0:
            return
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self):
        """This run's peak summed VmRSS, the peak VmRSS of one process (bytes), the processes seen."""
        if self.thread:
            self.stopping.set()
            self.thread.join()
            self.thread = None
        return self.peak_bytes, self.largest_bytes, len(self.seen)

    def _loop(self):
        while True:
            self._sample()
            if self.stopping.wait(self.interval_s):
                return

    def _sample(self):
        me = os.getpid()
        new = sorted(int(e) for e in os.listdir("/proc")
                     if e.isdigit() and int(e) not in self.foreign and int(e) not in self.tree)
        for pid in new:                 # ascending: a parent is usually classified before its child
            ppid = ppid_of(pid)
            if ppid is None:
                continue
            if ppid == me or ppid in self.tree:
                self.tree.add(pid)
                self.seen.add(pid)
            else:
                self.foreign.add(pid)
        total = 0
        for pid in list(self.tree):
            try:
                with open(f"/proc/{pid}/statm") as f:
                    rss = int(f.read().split()[1]) * PAGE_BYTES
            except (OSError, IndexError, ValueError):
                self.tree.discard(pid)  # gone (and reaped)
                continue
            total += rss
            self.largest_bytes = max(self.largest_bytes, rss)
        self.peak_bytes = max(self.peak_bytes, total)


def kill_tree():
    """SIGKILL every descendant (all of them started by this benchmark) by pid, and reap them."""
    for _ in range(50):
        left = descendants()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_orphans()
        time.sleep(0.01)


# ---- one run -----------------------------------------------------------------------------------

class Binary:
    """One of the two programs: its argv, environment, working directory and results."""

    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.stderr_path = os.path.join(os.path.dirname(workdir), "stderr")
        self.runs = []

    def fail(self, why):
        try:
            with open(self.stderr_path, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        kill_tree()
        die(f"{self.name}: {why}\n--- its stderr (tail) ---\n{tail}")

    def run(self, model, sampler):
        """Run the prompt once: {wall_s, cpu_s, peak_bytes, largest_bytes, procs}."""
        model.script(mm.text_answer(ANSWER, deltas=ANSWER_DELTAS))
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(self.stderr_path, "wb") as err:
            sampler.start()
            start = time.monotonic()
            try:
                proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                        env=self.env, cwd=self.workdir, start_new_session=True)
            except OSError as e:
                sampler.stop()
                die(f"{self.name}: cannot spawn {self.argv[0]}: {e.strerror}")
        pid, out_r = proc.pid, proc.stdout.fileno()
        pidfd = os.pidfd_open(pid)
        stdout, exited_at, watched = b"", None, [out_r, pidfd]
        deadline = start + RUN_TIMEOUT_S
        try:
            while exited_at is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail(f"no exit in {RUN_TIMEOUT_S:.0f} s")
                ready = select.select(watched, [], [], left)[0]
                if pidfd in ready:
                    exited_at = time.monotonic()
                if out_r in ready:
                    chunk = os.read(out_r, 65536)
                    stdout += chunk
                    if not chunk:
                        watched = [pidfd]   # closed before the exit: wait for the exit alone
            proc.wait()
            # What it left behind must go by itself; stdout closes with the last holder.
            os.set_blocking(out_r, False)
            linger_until = time.monotonic() + LINGER_S
            while True:
                try:
                    while chunk := os.read(out_r, 65536):
                        stdout += chunk
                except BlockingIOError:
                    pass
                reap_orphans()
                left = descendants()
                if not left:
                    break
                if time.monotonic() > linger_until:
                    self.fail(f"{len(left)} process(es) still running {LINGER_S:.0f} s after it exited: "
                              f"{sorted(left)}")
                time.sleep(0.002)
        finally:
            os.close(pidfd)
            proc.stdout.close()
            peak_bytes, largest_bytes, procs = sampler.stop()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        code = proc.returncode
        if code != 0:
            self.fail(f"exit status {code}" if code > 0 else f"killed by signal {-code}")
        if stdout != (ANSWER + "\n").encode():
            self.fail(f"stdout {stdout[-300:]!r}, not the mock's {ANSWER!r}")
        return {"wall_s": exited_at - start,
                "cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
                "peak_bytes": peak_bytes, "largest_bytes": largest_bytes, "procs": procs}


# ---- main --------------------------------------------------------------------------------------

def summary(runs, is_sampled):
    """Wall p50/p90, median CPU and memory of @runs; memory NaN unless @is_sampled."""
    walls = [r["wall_s"] for r in runs]
    nan = float("nan")
    return {"p50": statistics.median(walls), "p90": pct(walls, 0.9),
            "cpu": statistics.median(r["cpu_s"] for r in runs),
            "peak": statistics.median(r["peak_bytes"] for r in runs) if is_sampled else nan,
            "peak_max": max(r["peak_bytes"] for r in runs) if is_sampled else nan,
            "largest": statistics.median(r["largest_bytes"] for r in runs) if is_sampled else nan,
            "procs": max(r["procs"] for r in runs)}


def main():
    ap = argparse.ArgumentParser(description="agentd exec against the reference codex exec, one prompt each")
    ap.add_argument("-n", type=int, default=20, help="measured runs per binary (default 20)")
    ap.add_argument("-i", type=float, default=5.0, metavar="SAMPLE_MS",
                    help="VmRSS sampling interval in ms (default 5; 0: no sampling)")
    ap.add_argument("-r", metavar="CODEX", help="the reference binary (default: $CODEX_REF_BIN, "
                    "/opt/codex-ref, the cache)")
    ap.add_argument("-R", action="store_true", help="no reference")
    ap.add_argument("agentd", nargs="?", default=os.path.join(TOP, "agentd", "agentd"))
    args = ap.parse_args()
    if args.n < 1 or args.i < 0:
        ap.error("-n must be positive, -i not negative")
    agentd = os.path.abspath(args.agentd)
    if not os.access(agentd, os.X_OK):
        die(f"{agentd} is not built")
    ref_bin, skip = (None, "-R: no reference") if args.R else ref_locate(args.r)
    if ref_bin:
        ref_bin = os.path.abspath(ref_bin)
    sys.setswitchinterval(1e-4)  # the mock's thread and the sampler share the GIL: short hand-offs
    # Every descendant that outlives its parent comes to this process, which reaps it and so counts
    # its CPU and its peak.
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        die(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    if descendants():
        die("this process already has children; run it on its own")

    os.makedirs(cache_dir(), exist_ok=True)
    homes_root = tempfile.mkdtemp(prefix="oneshot-homes-", dir=cache_dir())  # outside /tmp
    runtime = tempfile.mkdtemp(prefix="agentd-oneshot-", dir="/tmp")          # short socket paths
    sampler = TreeSampler(args.i / 1000)
    try:
        with mm.MockModel() as model:
            model.set_default(mm.text_answer(ANSWER, deltas=ANSWER_DELTAS))
            config = model.config_toml()
            binaries = []
            specs = [("agentd exec", [agentd, "exec", PROMPT])]
            if ref_bin:
                # Its plugin sync would try github.com: benchmarks stay on loopback as tests do.
                specs.append(("reference codex exec", [ref_bin, "exec", "--skip-git-repo-check", "--disable", "plugins",
                                                       "--disable", "remote_plugin", PROMPT]))
            for name, argv in specs:
                base = os.path.join(homes_root, name.split()[0])
                codex_home, user_home, workdir = (os.path.join(base, d) for d in ("codex-home", "home", "work"))
                for d in (codex_home, user_home, workdir):
                    os.makedirs(d)
                with open(os.path.join(codex_home, "config.toml"), "w") as f:
                    f.write(config)
                # No ~/.codex, no RUST_LOG, no API key of the user's: only what both need.
                env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": user_home,
                       "CODEX_HOME": codex_home, "XDG_RUNTIME_DIR": runtime, "LANG": "C.UTF-8"}
                binaries.append(Binary(name, argv, env, workdir))
            for b in binaries:
                for _ in range(WARMUP_RUNS):
                    b.run(model, sampler)
            block = 0
            while len(binaries[0].runs) < args.n:
                count = min(BLOCK_RUNS, args.n - len(binaries[0].runs))
                for b in binaries if block % 2 == 0 else binaries[::-1]:
                    for _ in range(count):
                        b.runs.append(b.run(model, sampler))
                block += 1
    finally:
        kill_tree()
        shutil.rmtree(homes_root, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)

    ours = binaries[0]
    theirs = binaries[1] if len(binaries) > 1 else None
    if theirs:
        print(f"reference: {ref_version(ref_bin)} ({ref_bin}), CODEX_HOME under {cache_dir()}")
    else:
        print(f"reference: skipped ({skip})")
    print(f"one prompt, one text answer from the mock: spawn -> exit, {args.n} runs per binary (after "
          f"{WARMUP_RUNS} warm-up), blocks of {BLOCK_RUNS} taking turns; CPU user+sys and memory of the whole "
          f"process tree (VmRSS summed over it and of its largest process, median; "
          f"{f'sampled every {args.i:g} ms' if args.i > 0 else 'not sampled: -i 0'})")
    print(f"{'binary':<22} {'p50 ms':>8} {'p90 ms':>8} {'CPU ms':>8} {'peak RSS MB':>12} {'(max)':>7} "
          f"{'largest MB':>11} {'procs':>6}")  # procs: the processes the samples saw (at least)
    stats = {}
    for b in binaries:
        s = stats[b.name] = summary(b.runs, args.i > 0)
        print(f"{b.name:<22} {s['p50'] * 1e3:>8.1f} {s['p90'] * 1e3:>8.1f} {s['cpu'] * 1e3:>8.1f} "
              f"{s['peak'] / 1e6:>12.1f} {s['peak_max'] / 1e6:>7.1f} {s['largest'] / 1e6:>11.1f} {s['procs']:>6}")
    nan = float("nan")
    mine = stats[ours.name]
    ref = stats[theirs.name] if theirs else {k: nan for k in mine}

    def ratio(key):
        return mine[key] / ref[key] if theirs and ref[key] else nan

    if theirs:
        print(f"  agentd / reference: wall p50 {ratio('p50'):.3f}x, p90 {ratio('p90'):.3f}x, CPU {ratio('cpu'):.3f}x, "
              f"peak RSS {ratio('peak'):.3f}x, largest process {ratio('largest'):.3f}x")
        verdict = "PASS" if mine["p50"] <= TARGET_WALL_SHARE * ref["p50"] else "MISS"
        print(f"target: agentd exec wall p50 <= {TARGET_WALL_SHARE:.1f}x the reference's ... {verdict} "
              f"({ratio('p50'):.3f}x)")
    else:
        print(f"target: agentd exec wall p50 <= {TARGET_WALL_SHARE:.1f}x the reference's ... skipped ({skip})")
    print(f"RESULT oneshot p50_ms={mine['p50'] * 1e3:.1f} p90_ms={mine['p90'] * 1e3:.1f} "
          f"ref_p50_ms={ref['p50'] * 1e3:.1f} ref_p90_ms={ref['p90'] * 1e3:.1f} "
          f"cpu_ms={mine['cpu'] * 1e3:.1f} ref_cpu_ms={ref['cpu'] * 1e3:.1f} "
          f"peak_rss_mb={mine['peak'] / 1e6:.1f} ref_peak_rss_mb={ref['peak'] / 1e6:.1f} "
          f"largest_mb={mine['largest'] / 1e6:.1f} ref_largest_mb={ref['largest'] / 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
