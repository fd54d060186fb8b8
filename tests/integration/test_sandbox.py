# SPDX-License-Identifier: MIT
"""sandboxd run: the sandbox really enforced, under system bwrap and under the built-in launcher.

Every test that runs a command is parametrized over both launchers (`[sandboxd] launcher =
"system"` and `"builtin"` in config.toml); the fixture first checks with `--print` that the chosen
launcher is the one really used. Inside the sandbox, small Python programs (Debian's
/usr/bin/python3) try the operations and report errno names as JSON, so each assertion names the
exact failure expected; host-side checks confirm that allowed writes really landed and that
refused ones left nothing behind.

Each test gets its own AGENTD_RUNTIME_DIR, CODEX_HOME (with config.toml), HOME, TMPDIR and
workspace under tmp_path. Tests skip, saying why, when the probe reports no user namespaces.
"""
import base64
import contextlib
import fcntl
import json
import os
import pty
import socket
import subprocess
import tempfile
import termios
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import BUILDDIR, register_secret

SANDBOXD = BUILDDIR / "sandboxd" / "sandboxd"
# sandboxd re-enters itself through the link beside its real path (the compatibility path).
INNER_LINK = Path(os.path.realpath(SANDBOXD)).parent / "agentd-sandbox"
BWRAP = "/usr/bin/bwrap"
PYTHON = "/usr/bin/python3"
LAUNCHERS = ("system", "builtin")
RUN_TIMEOUT = 20  # seconds; a sandboxed command here takes ~20-50 ms

# --------------------------------------------------------------------------------------
# policies


def read_only(network=False):
    return {"type": "readOnly", "networkAccess": network}


def workspace_write(roots=(), network=False, exclude_tmpdir=False, exclude_slash_tmp=False):
    return {
        "type": "workspaceWrite",
        "writableRoots": [str(r) for r in roots],
        "networkAccess": network,
        "excludeTmpdirEnvVar": exclude_tmpdir,
        "excludeSlashTmp": exclude_slash_tmp,
    }


def restricted(*entries, network="restricted"):
    """The split filesystem policy; every entry is (path or special dict, access)."""
    return {"kind": "restricted", "network": network, "entries": [entry(p, a) for p, a in entries]}


def entry(path, access):
    spec = path if isinstance(path, dict) else {"type": "path", "path": str(path)}
    return {"path": spec, "access": access}


ROOT = {"type": "special", "value": {"kind": "root"}}


def project_roots(subpath=None):
    value = {"kind": "project_roots"}
    if subpath is not None:
        value["subpath"] = subpath
    return {"type": "special", "value": value}


# --------------------------------------------------------------------------------------
# programs run inside the sandbox: each prints one JSON document

# argv[1]: {label: [op, args...]}; prints {label: {"ok": value} | {"err": "ENAME"}}.
FS_PROBE = r"""
import errno, json, os, sys

def run(op, *args):
    if op == "write":
        with open(args[0], "w") as f:
            f.write(args[1] if len(args) > 1 else "sandboxed")
        return None
    if op == "read":
        with open(args[0]) as f:
            return f.read()
    if op == "list":
        return sorted(os.listdir(args[0]))
    if op == "mkdir":
        return os.mkdir(args[0])
    if op == "rename":
        return os.rename(args[0], args[1])
    if op == "unlink":
        return os.unlink(args[0])
    raise ValueError(op)

out = {}
for label, spec in json.loads(sys.argv[1]).items():
    try:
        out[label] = {"ok": run(*spec)}
    except OSError as e:
        out[label] = {"err": errno.errorcode.get(e.errno, str(e.errno))}
print(json.dumps(out))
"""

# argv[1]: TCP port on 127.0.0.1, argv[2]: a listening AF_UNIX socket path.
NET_PROBE = r"""
import errno, json, os, socket, sys

def attempt(fn):
    try:
        return fn() or "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def tcp():
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()

def unix_connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    try:
        s.connect(sys.argv[2])
    finally:
        s.close()

def pair():
    a, b = socket.socketpair()
    os.write(a.fileno(), b"ping")
    return "ok" if b.recv(4) == b"ping" else "mismatch"

print(json.dumps({
    "tcp_connect": attempt(tcp),
    "inet_socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()),
    "inet6_socket": attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()),
    "netlink_socket": attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close()),
    "unix_connect": attempt(unix_connect),
    "socketpair": attempt(pair),
    "netns": os.readlink("/proc/self/ns/net"),
}))
"""

PRIV_PROBE = r"""
import ctypes, errno, json

libc = ctypes.CDLL(None, use_errno=True)

def call(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")

status = {}
with open("/proc/self/status") as f:
    for line in f:
        key, _, value = line.partition(":")
        status[key] = value.strip()
out = {k: status.get(k) for k in
       ("NoNewPrivs", "Seccomp", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
out["ptrace"] = call(libc.ptrace, 0, 0, None, None)            # PTRACE_TRACEME
out["io_uring_setup"] = call(libc.syscall, 425, 1, None)       # same number on every arch
print(json.dumps(out))
"""


def ok(value=None):
    return {"ok": value}


def err(name):
    return {"err": name}


# --------------------------------------------------------------------------------------
# the harness


class Sandbox:
    """One private sandboxd environment under tmp_path, with the launcher set in config.toml."""

    def __init__(self, tmp_path, launcher):
        self.launcher = launcher
        self.base = tmp_path
        self.home = tmp_path / "home"  # CODEX_HOME
        self.runtime = tmp_path / "run"  # AGENTD_RUNTIME_DIR: sandboxd creates it
        self.user_home = tmp_path / "user"  # HOME
        self.tmpdir = tmp_path / "tmpdir"  # TMPDIR
        self.ws = tmp_path / "ws"  # the default -C directory
        for d in (self.home, self.user_home, self.tmpdir, self.ws):
            d.mkdir()
        self.write_config()

    def write_config(self, extra=""):
        """config.toml: the launcher, then @extra (permission profiles)."""
        (self.home / "config.toml").write_text(f'[sandboxd]\nlauncher = "{self.launcher}"\n\n{extra}')

    @property
    def env(self):
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.user_home),
            "TMPDIR": str(self.tmpdir),
            "AGENTD_RUNTIME_DIR": str(self.runtime),
            "CODEX_HOME": str(self.home),
        }

    def sandboxd(self, *args):
        return subprocess.run([str(SANDBOXD), *map(str, args)], env=self.env, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)

    def run_args(self, *command, policy=None, profile=None, cwd=None, print_only=False):
        """The argv of `sandboxd run [--policy JSON | --profile NAME] -C cwd [--print] -- command...`."""
        args = [str(SANDBOXD), "run"]
        if policy is not None:
            args += ["--policy", json.dumps(policy)]
        if profile is not None:
            args += ["--profile", profile]
        args += ["-C", str(cwd or self.ws)]
        if print_only:
            args.append("--print")
        return args + ["--", *map(str, command)]

    def run(self, *command, policy=None, profile=None, cwd=None, print_only=False, **kwargs):
        """Run sandboxd run to completion; kwargs go to subprocess.run."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.run_args(*command, policy=policy, profile=profile, cwd=cwd,
                                            print_only=print_only),
                              env=self.env, capture_output=True, text=True, timeout=RUN_TIMEOUT, **kwargs)

    def sh(self, script, *args, **kwargs):
        return self.run("/bin/sh", "-c", script, *args, **kwargs)

    def python(self, code, *args, **kwargs):
        """Run Python code inside the sandbox and return its JSON output."""
        result = self.run(PYTHON, "-c", code, *args, **kwargs)
        assert result.returncode == 0, result
        return json.loads(result.stdout)

    def fs(self, ops, **kwargs):
        """Try each {label: [op, args...]} inside the sandbox; {label: ok(...) | err("E...")}."""
        return self.python(FS_PROBE, json.dumps({k: [str(a) for a in v] for k, v in ops.items()}),
                           **kwargs)

    def launch_argv(self, policy=None, command=("true",), **kwargs):
        """The launcher argv `--print` shows (split on spaces: the tests use no spaced paths)."""
        result = self.run(*command, policy=policy or read_only(), print_only=True, **kwargs)
        assert result.returncode == 0, result
        return result.stdout.rstrip("\n").split(" ")

    def refused(self, policy=None, profile=None, cwd=None):
        """Assert sandboxd refuses the policy (exit 1, "sandboxd: ...") and runs nothing."""
        result = self.run("echo", "COMMAND-RAN", policy=policy, profile=profile, cwd=cwd)
        assert "COMMAND-RAN" not in result.stdout, "the command ran although its policy was refused"
        assert result.returncode == 1, result
        assert result.stderr.startswith("sandboxd: "), result.stderr
        return result.stderr


_probes = {}


def host_probe(launcher):
    """sandboxd --probe with @launcher configured, once per session."""
    if launcher not in _probes:
        with tempfile.TemporaryDirectory() as tmp:
            result = Sandbox(Path(tmp), launcher).sandboxd("--probe")
            assert result.stdout, result
            _probes[launcher] = json.loads(result.stdout)
    return _probes[launcher]


def bwrap_help():
    result = subprocess.run([BWRAP, "--help"], capture_output=True, text=True, timeout=10)
    return result.stdout + result.stderr


@pytest.fixture(params=LAUNCHERS)
def sandbox(request, tmp_path):
    """A Sandbox whose launcher was checked with --print to be the one configured."""
    assert SANDBOXD.exists(), f"{SANDBOXD} is missing: build first (make -j2) or set AGENTD_BUILDDIR"
    launcher = request.param
    probe = host_probe(launcher)
    if launcher == "system" and not probe["bwrap"]["found"]:
        pytest.skip(f"no usable system bwrap: {probe['warnings']}")
    if not probe["userNamespaces"]:
        pytest.skip(f"user namespaces unavailable ({launcher}): {probe['userNamespaceError']}")
    sb = Sandbox(tmp_path, launcher)
    argv = sb.launch_argv()
    if launcher == "system":
        assert argv[0] == BWRAP, argv
    else:
        assert argv[:2] == [str(INNER_LINK), "--launch"], argv
        assert BWRAP not in argv, argv
    return sb


class Listener:
    """A listening socket served by a thread that counts accepted connections."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def wait_accepted(self, count, timeout=3.0):
        deadline = time.monotonic() + timeout
        while self.accepted < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.accepted

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listeners(sandbox):
    """(tcp, unix): a TCP listener on 127.0.0.1 and an AF_UNIX one in the workspace."""
    tcp = Listener(socket.AF_INET, ("127.0.0.1", 0))
    unix = Listener(socket.AF_UNIX, str(sandbox.ws / "listener.sock"))
    yield tcp, unix
    tcp.close()
    unix.close()


@contextlib.contextmanager
def running(sandbox, *command, **kwargs):
    """A sandboxed command left running (stdin and stdout piped); ended and reaped on exit."""
    proc = subprocess.Popen(sandbox.run_args(*command, **kwargs), env=sandbox.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        try:
            proc.communicate("done\n", timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


LOCK_DIR = Path(f"/tmp/agentd-locks-{os.geteuid()}")  # see sandboxd(8), Mount points of masks


def fnv1a64(data):
    value = 14695981039346656037
    for byte in data:
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return value


def unheld_masks(directory):
    """Empty .git, .codex and .agents in @directory that no running sandbox holds: masks' mount
    points left behind. (Ones another test run's sandboxes hold are theirs to remove.)"""
    left = []
    st = os.stat(directory)
    for name in protected_leftovers(directory):
        path = directory / name
        if not path.is_dir() or path.is_symlink() or any(path.iterdir()):
            continue
        lock = LOCK_DIR / f"{st.st_dev:x}-{st.st_ino:x}-{fnv1a64(name.encode()):016x}"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            left.append(name)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            left.append(name)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return left


def inside_repository(path):
    return any((parent / ".git").exists() for parent in Path(path).parents)


def protected_leftovers(directory):
    return sorted(n for n in (".git", ".codex", ".agents") if os.path.lexists(directory / n))


# --------------------------------------------------------------------------------------
# 1. read-only


def test_read_only_refuses_every_write(sandbox):
    """readOnly: writes in cwd, /tmp, /etc, $HOME, $TMPDIR, mkdir, rename and unlink all fail
    with EROFS, reads work, and the host is left exactly as it was."""
    (sandbox.ws / "existing").write_text("host")
    name = f"agentd-sandbox-test-{uuid.uuid4().hex}"
    outside = [Path("/tmp") / name, Path("/etc") / name]  # removed below should a write get through
    try:
        r = sandbox.fs({
            "write_cwd": ["write", "new.txt"],
            "overwrite_cwd": ["write", "existing"],
            "write_tmp": ["write", outside[0]],
            "write_etc": ["write", outside[1]],
            "write_home": ["write", sandbox.user_home / "x"],
            "write_tmpdir": ["write", sandbox.tmpdir / "x"],
            "mkdir": ["mkdir", "newdir"],
            "rename": ["rename", "existing", "renamed"],
            "unlink": ["unlink", "existing"],
            "read_cwd": ["read", "existing"],
            "read_etc": ["read", "/etc/passwd"],
        }, policy=read_only())
        assert not any(p.exists() for p in outside)
    finally:
        for p in outside:
            if p.exists():
                p.unlink()
    for label in ("write_cwd", "overwrite_cwd", "write_tmp", "write_etc", "write_home", "write_tmpdir",
                  "mkdir", "rename", "unlink"):
        assert r[label] == err("EROFS"), (label, r[label])
    assert r["read_cwd"] == ok("host")
    assert r["read_etc"] == ok(Path("/etc/passwd").read_text())
    assert sorted(p.name for p in sandbox.ws.iterdir()) == ["existing"]
    assert (sandbox.ws / "existing").read_text() == "host"
    assert list(sandbox.user_home.iterdir()) == [] and list(sandbox.tmpdir.iterdir()) == []


@pytest.mark.parametrize("script, status", [
    ("exit 0", 0),
    ("exit 7", 7),
    ("exit 125", 125),
    ("kill -TERM $$", 128 + 15),
    ("exec /nonexistent/command", 127),
])
def test_exit_status_propagates(sandbox, script, status):
    """sandboxd run exits with the command's status (128+N when killed by signal N)."""
    result = sandbox.sh(script, policy=read_only())
    assert result.returncode == status, result


def test_missing_command_exits_127(sandbox):
    """A command that does not exist inside the sandbox is 127, as a shell would say."""
    result = sandbox.run("/nonexistent/agentd-test-command", policy=read_only())
    assert result.returncode == 127, result


def test_stdout_and_stdin_pass_through(sandbox):
    """The command's standard streams are the caller's."""
    result = sandbox.run("cat", policy=read_only(), stdin=None, input="through the sandbox")
    assert (result.returncode, result.stdout) == (0, "through the sandbox"), result


# --------------------------------------------------------------------------------------
# 2. workspace-write


def test_workspace_write_allows_cwd_and_writable_roots_only(sandbox):
    """workspaceWrite: cwd and writableRoots are writable and the writes land on the host;
    any other directory (with /tmp and $TMPDIR excluded) is read-only."""
    extra, other = sandbox.base / "extra", sandbox.base / "other"
    extra.mkdir()
    other.mkdir()
    r = sandbox.fs({
        "cwd": ["write", "made-in-cwd", "cwd-data"],
        "cwd_mkdir": ["mkdir", "subdir"],
        "extra": ["write", extra / "made-in-extra", "extra-data"],
        "other": ["write", other / "x"],
        "tmpdir": ["write", sandbox.tmpdir / "x"],
        "parent": ["write", sandbox.base / "x"],
    }, policy=workspace_write([extra], exclude_tmpdir=True, exclude_slash_tmp=True))
    assert r == {"cwd": ok(), "cwd_mkdir": ok(), "extra": ok(), "other": err("EROFS"),
                 "tmpdir": err("EROFS"), "parent": err("EROFS")}
    assert (sandbox.ws / "made-in-cwd").read_text() == "cwd-data"
    assert (sandbox.ws / "subdir").is_dir()
    assert (extra / "made-in-extra").read_text() == "extra-data"
    assert list(other.iterdir()) == [] and list(sandbox.tmpdir.iterdir()) == []


def test_workspace_write_tmp_and_tmpdir_follow_their_flags(sandbox):
    """/tmp is writable unless excludeSlashTmp; $TMPDIR unless excludeTmpdirEnvVar."""
    target = Path("/tmp") / f"agentd-sandbox-test-{uuid.uuid4().hex}"
    try:
        r = sandbox.fs({"tmp": ["write", target, "t"], "tmpdir": ["write", sandbox.tmpdir / "a"]},
                       policy=workspace_write())
        assert r == {"tmp": ok(), "tmpdir": ok()}
        assert target.read_text() == "t" and (sandbox.tmpdir / "a").exists()
        target.unlink()
        r = sandbox.fs({"tmp": ["write", target], "tmpdir": ["write", sandbox.tmpdir / "b"]},
                       policy=workspace_write(exclude_slash_tmp=True))
        assert r == {"tmp": err("EROFS"), "tmpdir": ok()}
        r = sandbox.fs({"tmp": ["write", target], "tmpdir": ["write", sandbox.tmpdir / "c"]},
                       policy=workspace_write(exclude_tmpdir=True, exclude_slash_tmp=True))
        assert r == {"tmp": err("EROFS"), "tmpdir": err("EROFS")}
        assert not target.exists() and not (sandbox.tmpdir / "c").exists()
    finally:
        if target.exists():
            target.unlink()


def test_existing_git_and_codex_in_cwd_stay_read_only(sandbox):
    """.git and .codex that exist in a writable cwd can be read but not written, replaced,
    renamed or removed; a missing .agents cannot be created."""
    (sandbox.ws / ".git").mkdir()
    (sandbox.ws / ".git" / "config").write_text("orig-git")
    (sandbox.ws / ".codex").mkdir()
    (sandbox.ws / ".codex" / "config.toml").write_text("orig-codex")
    r = sandbox.fs({
        "git_read": ["read", ".git/config"],
        "git_overwrite": ["write", ".git/config", "evil"],
        "git_new_hook": ["write", ".git/hook", "evil"],
        "git_rename": ["rename", ".git", "moved-git"],
        "git_unlink": ["unlink", ".git/config"],
        "codex_overwrite": ["write", ".codex/config.toml", "evil"],
        "codex_new": ["write", ".codex/new", "evil"],
        "codex_rename": ["rename", ".codex", "moved-codex"],
        "agents_file": ["write", ".agents/x", "evil"],
        "cwd_file": ["write", "fine", "ok"],
    }, policy=workspace_write(exclude_slash_tmp=True))
    assert r["git_read"] == ok("orig-git")
    for label in ("git_overwrite", "git_new_hook", "git_unlink", "codex_overwrite", "codex_new", "agents_file"):
        assert r[label] == err("EROFS"), (label, r[label])
    for label in ("git_rename", "codex_rename"):
        assert "err" in r[label], (label, r[label])
    assert r["cwd_file"] == ok()
    assert (sandbox.ws / ".git" / "config").read_text() == "orig-git"
    assert (sandbox.ws / ".codex" / "config.toml").read_text() == "orig-codex"
    assert sorted(p.name for p in sandbox.ws.iterdir()) == [".codex", ".git", "fine"]


def test_missing_codex_cannot_be_created_and_masks_are_removed(sandbox):
    """In a non-repository workspace, .codex, .agents and .git cannot be created (they are
    masked while the command runs), and after the run no mask is left on the host."""
    if inside_repository(sandbox.ws):
        pytest.skip(f"{sandbox.ws} is inside a git repository: its .git may be created")
    r = sandbox.fs({
        "codex_mkdir": ["mkdir", ".codex"],
        "codex_file": ["write", ".codex/config.toml", "evil"],
        "agents_file": ["write", ".agents/skill", "evil"],
        "git_file": ["write", ".git/config", "evil"],
        "listing": ["list", "."],
    }, policy=workspace_write(exclude_slash_tmp=True))
    assert r["listing"] == ok([".agents", ".codex", ".git"]), r  # the masks, while it runs
    assert "err" in r["codex_mkdir"]
    for label in ("codex_file", "agents_file", "git_file"):
        assert r[label] == err("EROFS"), (label, r[label])
    assert protected_leftovers(sandbox.ws) == []
    assert protected_leftovers(sandbox.tmpdir) == []
    assert list(sandbox.ws.iterdir()) == []


def test_masks_of_each_writable_root_are_removed(sandbox):
    """Masks made in extra writable roots and in $TMPDIR are removed as well."""
    extra = sandbox.base / "extra"
    extra.mkdir()
    result = sandbox.sh("test -d .codex && test -d \"$TMPDIR/.codex\" && test -d \"$1/.codex\"", "sh", extra,
                        policy=workspace_write([extra], exclude_slash_tmp=True))
    assert result.returncode == 0, "the masks were not there while the command ran"
    for root in (sandbox.ws, extra, sandbox.tmpdir):
        assert protected_leftovers(root) == [], root


def test_parent_repository_keeps_codex_non_creatable(sandbox):
    """cwd below a directory holding .git: .codex still cannot be created in cwd, and the run
    leaves no .codex or .agents behind."""
    repo = sandbox.base / "repo"
    sub = repo / "sub"
    (repo / ".git").mkdir(parents=True)
    sub.mkdir()
    r = sandbox.fs({"codex": ["write", ".codex/config.toml", "evil"],
                    "agents": ["write", ".agents/x", "evil"],
                    "cwd": ["write", "file", "ok"]},
                   policy=workspace_write(exclude_slash_tmp=True), cwd=sub)
    assert r == {"codex": err("EROFS"), "agents": err("EROFS"), "cwd": ok()}
    assert not (sub / ".codex").exists() and not (sub / ".agents").exists()


def test_gitdir_file_target_stays_read_only(sandbox):
    """A .git file (worktree/submodule `gitdir:` pointer) protects the directory it names."""
    root = sandbox.base / "root"
    wt, gitdir = root / "wt", root / "gitdirs" / "wt"
    wt.mkdir(parents=True)
    gitdir.mkdir(parents=True)
    (wt / ".git").write_text("gitdir: ../gitdirs/wt\n")
    (gitdir / "HEAD").write_text("ref: refs/heads/main\n")
    r = sandbox.fs({"head": ["write", gitdir / "HEAD", "evil"],
                    "pointer": ["write", ".git", "gitdir: /elsewhere"],
                    "sibling": ["write", root / "free", "ok"]},
                   policy=workspace_write([root], exclude_slash_tmp=True), cwd=wt)
    assert r == {"head": err("EROFS"), "pointer": err("EROFS"), "sibling": ok()}
    assert (gitdir / "HEAD").read_text() == "ref: refs/heads/main\n"


def test_nested_writable_root_keeps_its_git_protected(sandbox):
    """cwd inside another writable root (here writableRoots=[parent]; /tmp does the same for
    any workspace under /tmp): the sandbox must not be able to swap the cwd for a directory
    of its own and so write <cwd>/.git/config on the host."""
    parent = sandbox.base / "parent"
    ws = parent / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / ".git" / "config").write_text("orig")
    sandbox.sh("cd .. && mv ws ws.moved && mkdir -p ws/.git && echo evil > ws/.git/config",
               policy=workspace_write([parent], exclude_slash_tmp=True), cwd=ws)
    assert (ws / ".git" / "config").read_text() == "orig"


def test_concurrent_run_masks_do_not_make_git_creatable(sandbox):
    """While one command runs with a writable root P (so an empty P/.git mask exists on the
    host), a command planned for a workspace below P still cannot create its own .git."""
    parent = sandbox.base / "parent"
    first, second = parent / "first", parent / "second"
    first.mkdir(parents=True)
    second.mkdir()
    if inside_repository(first):
        pytest.skip(f"{parent} is inside a git repository")
    policy = workspace_write([parent], exclude_slash_tmp=True)
    with running(sandbox, "/bin/sh", "-c", "echo ready; read line", policy=policy, cwd=first) as holder:
        assert holder.stdout.readline() == "ready\n"
        assert (parent / ".git").is_dir()  # the first run's mask
        sandbox.sh("mkdir .git && echo '[core] fsmonitor = evil' > .git/config", policy=policy, cwd=second)
    assert not (second / ".git").exists()


def test_mask_outlives_the_sandbox_that_made_it_while_another_uses_it(sandbox):
    """Two sandboxes on one workspace: the first makes the masks' mount points, the second
    finds them there. When the first ends, the masks stay (on the host and inside the second,
    where .codex still cannot be written), and the second, last out, removes them."""
    if inside_repository(sandbox.ws):
        pytest.skip(f"{sandbox.ws} is inside a git repository")
    policy = workspace_write(exclude_slash_tmp=True)
    script = "echo ready; read line; mkdir .codex/x 2>/dev/null && echo WROTE; test -d .codex && echo masked"
    with running(sandbox, "/bin/sh", "-c", "echo ready; read line", policy=policy) as first:
        assert first.stdout.readline() == "ready\n"
        with running(sandbox, "/bin/sh", "-c", script, policy=policy) as second:
            assert second.stdout.readline() == "ready\n"
            first.stdin.write("done\n")
            first.stdin.flush()
            assert first.wait(timeout=RUN_TIMEOUT) == 0
            assert protected_leftovers(sandbox.ws) == [".agents", ".codex", ".git"]  # still held
            second.stdin.write("go\n")
            second.stdin.flush()
            assert second.stdout.readline() == "masked\n"
        assert second.returncode == 0
    assert protected_leftovers(sandbox.ws) == []


def test_own_empty_codex_is_masked_and_kept(sandbox):
    """An empty .codex made by the user (not by a sandbox) is masked like a missing one while
    the command runs, and left where it was afterwards."""
    (sandbox.ws / ".codex").mkdir()
    (sandbox.ws / ".env").write_text("")
    r = sandbox.fs({"codex": ["write", ".codex/config.toml", "evil"], "env": ["read", ".env"]},
                   policy=restricted((ROOT, "read"), (sandbox.ws, "write"), (sandbox.ws / ".env", "none")))
    assert r["codex"] == err("EROFS"), r
    assert "err" in r["env"], r
    assert (sandbox.ws / ".codex").is_dir() and list((sandbox.ws / ".codex").iterdir()) == []
    assert (sandbox.ws / ".env").read_text() == ""
    assert sorted(p.name for p in sandbox.ws.iterdir()) == [".codex", ".env"]


# --------------------------------------------------------------------------------------
# 3. split filesystem policies and profiles


def test_none_carve_out_in_writable_root_is_unreadable(sandbox):
    """A `deny` directory and a `deny` file inside a writable root can be neither read nor
    listed, nor overwritten; the rest of the root stays writable."""
    ws = sandbox.ws
    (ws / "secret").mkdir()
    (ws / "secret" / "key").write_text("TOP-SECRET")
    (ws / "private.txt").write_text("TOP-SECRET")
    policy = restricted((ROOT, "read"), (ws, "write"), (ws / "secret", "deny"), (ws / "private.txt", "deny"))
    r = sandbox.fs({"dir_read": ["read", "secret/key"], "dir_list": ["list", "secret"],
                    "file_read": ["read", "private.txt"], "file_write": ["write", "private.txt", "x"],
                    "file_unlink": ["unlink", "private.txt"], "other": ["write", "other", "ok"]},
                   policy=policy)
    assert r["dir_read"] == err("EACCES") and r["dir_list"] == err("EACCES"), r
    assert r["file_read"] == err("EACCES"), r
    assert "err" in r["file_write"] and "err" in r["file_unlink"], r
    assert r["other"] == ok()
    assert "TOP-SECRET" not in json.dumps(r)
    assert (ws / "private.txt").read_text() == "TOP-SECRET"
    assert (ws / "secret" / "key").read_text() == "TOP-SECRET"


def test_write_reopened_under_read_only_parent(sandbox):
    """root read, ws read, ws/out write: ws/out is writable (on the host), ws itself is not."""
    out = sandbox.ws / "out"
    out.mkdir()
    policy = restricted((ROOT, "read"), (sandbox.ws, "read"), (out, "write"))
    r = sandbox.fs({"out": ["write", out / "x", "data"], "ws": ["write", sandbox.ws / "y"]}, policy=policy)
    assert r == {"out": ok(), "ws": err("EROFS")}
    assert (out / "x").read_text() == "data"
    assert not (sandbox.ws / "y").exists()
    assert protected_leftovers(out) == []


def test_write_reopened_under_deny_parent(sandbox):
    """ws write, ws/a deny, ws/a/b write: nothing of a is visible, a/b is writable."""
    a, b = sandbox.ws / "a", sandbox.ws / "a" / "b"
    b.mkdir(parents=True)
    (a / "hidden").write_text("TOP-SECRET")
    policy = restricted((ROOT, "read"), (sandbox.ws, "write"), (a, "deny"), (b, "write"))
    r = sandbox.fs({"list_a": ["list", a], "read_a": ["read", a / "hidden"],
                    "write_a": ["write", a / "new"], "write_b": ["write", b / "x", "data"]}, policy=policy)
    assert r["list_a"] == err("EACCES"), r
    assert "err" in r["read_a"] and "err" in r["write_a"], r
    assert r["write_b"] == ok()
    assert (b / "x").read_text() == "data"
    assert sorted(p.name for p in a.iterdir()) == ["b", "hidden"]
    assert protected_leftovers(b) == []


@pytest.mark.parametrize("order", ["deny-last", "deny-first"])
def test_equal_path_deny_beats_write_beats_read(sandbox, order):
    """Two rules on one path: deny wins over write, write over read, whatever their order."""
    ws = sandbox.ws
    (ws / "f").write_text("TOP-SECRET")
    (ws / "g").mkdir()
    rules = [(ws / "f", "write"), (ws / "f", "deny"), (ws / "g", "read"), (ws / "g", "write")]
    if order == "deny-first":
        rules.reverse()
    r = sandbox.fs({"f": ["read", ws / "f"], "g": ["write", ws / "g" / "x"]},
                   policy=restricted((ROOT, "read"), (ws, "read"), *rules))
    assert r == {"f": err("EACCES"), "g": ok()}


def test_missing_writable_path_under_read_only_rule_is_refused(sandbox):
    """A writable path that does not exist under an explicit read-only or deny rule has
    nothing to bind: the policy is refused, naming the path, and nothing runs."""
    ws = sandbox.ws
    missing = ws / "missing"
    message = sandbox.refused(restricted((ROOT, "read"), (ws, "read"), (missing, "write")))
    assert f"cannot enforce sandbox writable path {missing}" in message
    assert f"read-only path {ws}" in message
    message = sandbox.refused(restricted((ROOT, "read"), (ws, "deny"), (missing, "write")))
    assert f"cannot enforce sandbox writable path {missing}" in message and "deny-read" in message
    assert not missing.exists()


def test_deny_globs_hide_what_they_match(sandbox):
    """A deny glob ("**/*.env") is expanded when the plan is made: every match is unreadable,
    in JSON policies and in profiles alike; other files stay as the policy says."""
    ws = sandbox.ws
    (ws / "app" / "conf").mkdir(parents=True)
    (ws / ".env").write_text("TOP-SECRET")
    (ws / "app" / "conf" / "prod.env").write_text("TOP-SECRET")
    (ws / "app" / "notes.txt").write_text("fine")
    glob = {"path": {"type": "glob_pattern", "pattern": f"{ws}/**/*.env"}, "access": "deny"}
    policy = {"kind": "restricted", "network": "restricted", "entries": [entry(ROOT, "read"), entry(ws, "write"), glob]}
    probe = {"top": ["read", ".env"], "deep": ["read", "app/conf/prod.env"], "notes": ["read", "app/notes.txt"]}
    r = sandbox.fs(probe, policy=policy)
    assert r["top"] == err("EACCES") and r["deep"] == err("EACCES"), r
    assert r["notes"] == ok("fine"), r
    assert "TOP-SECRET" not in json.dumps(r)
    sandbox.write_config('[permissions.globby.filesystem]\n":root" = "read"\nglob_scan_max_depth = 1\n'
                         '[permissions.globby.filesystem.":workspace_roots"]\n"." = "write"\n"**/*.env" = "none"\n')
    r = sandbox.fs(probe, profile="globby")
    assert r["top"] == err("EACCES"), r
    assert r["deep"] == ok("TOP-SECRET"), r  # three levels down: beyond glob_scan_max_depth = 1



def require_launcher(launcher):
    """Skip, saying why, when @launcher cannot run sandboxes on this host."""
    probe = host_probe(launcher)
    if launcher == "system" and not probe["bwrap"]["found"]:
        pytest.skip(f"no usable system bwrap: {probe['warnings']}")
    if not probe["userNamespaces"]:
        pytest.skip(f"user namespaces unavailable: {probe['userNamespaceError']}")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_plans_made_by_the_daemon_list_directories(agentd_factory, tmp_path, launcher):
    """Through agentd (sandboxd as a daemon, under its seccomp allow-list) a plan lists
    directories as `sandboxd run` does: a deny glob hides what it matches, and an existing .git
    at the top of a writable root is bound read-only as it is, not taken for an empty one."""
    require_launcher(launcher)
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (ws / "prod.env").write_text("ENV-SECRET")
    agentd = agentd_factory(config=f'[sandboxd]\nlauncher = "{launcher}"\n')
    glob = {"path": {"type": "glob_pattern", "pattern": f"{ws}/*.env"}, "access": "deny"}
    policy = {"kind": "restricted", "network": "restricted", "entries": [entry(ROOT, "read"), entry(ws, "write"), glob]}
    result = agentd.stdio.call("command/exec", {"command": ["sh", "-c", "cat .git/HEAD; cat prod.env"],
                                                "cwd": str(ws), "sandboxPolicy": policy})
    assert result["stdout"] == "ref: refs/heads/main\n" and "Permission denied" in result["stderr"], result


def test_globs_that_read_or_write_are_refused(sandbox):
    """Globs can only deny: a read or write glob is refused, never silently dropped."""
    message = sandbox.refused({"kind": "restricted", "network": "restricted", "entries": [
        entry(ROOT, "read"), {"path": {"type": "glob_pattern", "pattern": "/tmp/*.txt"}, "access": "write"}]})
    assert "can only deny" in message
    sandbox.write_config('[permissions.globby.filesystem]\n":root" = "read"\n"/tmp/*.env" = "read"\n')
    assert "can only deny" in sandbox.refused(profile="globby")


def test_config_profile_with_extends_scoped_table_and_network(sandbox, listeners):
    """--profile NAME: `extends`, `:root`, an absolute `none` path, a scoped
    `:workspace_roots` table ("." write, "secret" none) and network.enabled all apply."""
    tcp, _ = listeners
    ws, outside = sandbox.ws, sandbox.base / "outside"
    outside.mkdir()
    (outside / "f").write_text("TOP-SECRET")
    (ws / "secret").mkdir()
    (ws / "secret" / "f").write_text("TOP-SECRET")
    sandbox.write_config(f'''
[permissions.base.filesystem]
":root" = "read"
"{outside}" = "none"

[permissions.dev]
extends = "base"

[permissions.dev.filesystem.":workspace_roots"]
"." = "write"
"secret" = "none"

[permissions.dev.network]
enabled = true
''')
    r = sandbox.fs({"cwd": ["write", "made", "data"], "secret": ["read", "secret/f"],
                    "outside": ["read", outside / "f"], "etc": ["write", "/etc/x"]}, profile="dev")
    assert r == {"cwd": ok(), "secret": err("EACCES"), "outside": err("EACCES"), "etc": err("EROFS")}
    assert (ws / "made").read_text() == "data"
    net = sandbox.python(NET_PROBE, tcp.address[1], ws / "listener.sock", profile="dev")
    assert net["tcp_connect"] == "ok", net
    # base alone: read-only everywhere, network restricted.
    r = sandbox.fs({"cwd": ["write", "again"], "outside": ["read", outside / "f"]}, profile="base")
    assert r == {"cwd": err("EROFS"), "outside": err("EACCES")}
    net = sandbox.python(NET_PROBE, tcp.address[1], ws / "listener.sock", profile="base")
    assert net["tcp_connect"] == "EPERM", net
    assert "is not defined" in sandbox.refused(profile="undefined")


# --------------------------------------------------------------------------------------
# 4. symlinks: fail closed


@pytest.mark.parametrize("access, word", [("read", "read-only"), ("deny", "deny-read")])
def test_rule_through_writable_symlink_is_refused(sandbox, access, word):
    """A read-only or deny path reached through a symlink in a writable area is refused (the
    command could replace the link), and the message names the path and the symlink."""
    target = sandbox.base / "target"
    target.mkdir()
    link = sandbox.ws / "link"
    link.symlink_to(target)
    policy = restricted((ROOT, "read"), (sandbox.ws, "write"), (link / "x", access))
    message = sandbox.refused(policy)
    assert f"cannot enforce sandbox {word} path {link / 'x'} because it crosses writable symlink {link}" \
        in message, message


def test_symlinked_git_in_writable_cwd_is_refused(sandbox):
    """The implicit .git protection fails closed too: a .git symlink in the writable cwd could
    be swapped for a real directory, so workspace-write is refused."""
    gitdir = sandbox.base / "real-git"
    gitdir.mkdir()
    (sandbox.ws / ".git").symlink_to(gitdir)
    message = sandbox.refused(workspace_write(exclude_slash_tmp=True))
    assert f"crosses writable symlink {sandbox.ws / '.git'}" in message, message


def test_symlink_in_read_only_area_is_accepted(sandbox):
    """Fail-closed is not over-broad: a symlink the command cannot replace is followed."""
    target = sandbox.base / "target"
    target.mkdir()
    (target / "x").write_text("data")
    link = sandbox.base / "ro-link"
    link.symlink_to(target)
    policy = restricted((ROOT, "read"), (sandbox.ws, "write"), (link / "x", "read"))
    assert sandbox.fs({"x": ["read", link / "x"]}, policy=policy) == {"x": ok("data")}


def test_writable_symlink_check_sees_through_symlinked_writable_root(sandbox):
    """The writable area named through a symlink (/base/ws-link -> /base/ws-real) is still
    writable: a read-only rule crossing a symlink inside it must be refused too."""
    real, target = sandbox.base / "ws-real", sandbox.base / "target"
    real.mkdir()
    target.mkdir()
    (sandbox.base / "ws-link").symlink_to(real)
    (real / "link").symlink_to(target)
    policy = restricted((ROOT, "read"), (sandbox.base / "ws-link", "write"), (real / "link" / "x", "read"))
    sandbox.refused(policy)


# --------------------------------------------------------------------------------------
# 5. network


NETWORK_RESTRICTED = {
    "readOnly": read_only(),
    "workspaceWrite": workspace_write(),
    "split": restricted((ROOT, "read"), (project_roots(), "write")),
}
NETWORK_ENABLED = {
    "workspaceWrite": workspace_write(network=True),
    "split": restricted((ROOT, "read"), (project_roots(), "write"), network="enabled"),
}


@pytest.mark.parametrize("name", NETWORK_RESTRICTED)
def test_network_restricted(sandbox, listeners, name):
    """Restricted network: a new network namespace, socket() of any family but AF_UNIX fails
    with EPERM, connect() fails even on a reachable AF_UNIX socket, the host listeners see
    nothing, and an AF_UNIX socketpair still works."""
    tcp, unix = listeners
    r = sandbox.python(NET_PROBE, tcp.address[1], unix.address, policy=NETWORK_RESTRICTED[name])
    assert r["netns"] != os.readlink("/proc/self/ns/net"), "no new network namespace"
    assert {k: r[k] for k in ("tcp_connect", "inet_socket", "inet6_socket", "netlink_socket",
                              "unix_connect")} == dict.fromkeys(
        ("tcp_connect", "inet_socket", "inet6_socket", "netlink_socket", "unix_connect"), "EPERM"), r
    assert r["socketpair"] == "ok", r
    assert tcp.wait_accepted(1, timeout=0.2) == 0 and unix.accepted == 0


@pytest.mark.parametrize("name", NETWORK_ENABLED)
def test_network_enabled(sandbox, listeners, name):
    """Network enabled: the host's network namespace, so the host loopback listener and the
    AF_UNIX listener both accept the sandbox's connections."""
    tcp, unix = listeners
    r = sandbox.python(NET_PROBE, tcp.address[1], unix.address, policy=NETWORK_ENABLED[name])
    assert r["netns"] == os.readlink("/proc/self/ns/net"), r
    assert {k: r[k] for k in ("tcp_connect", "inet_socket", "inet6_socket", "unix_connect", "socketpair")} \
        == dict.fromkeys(("tcp_connect", "inet_socket", "inet6_socket", "unix_connect", "socketpair"), "ok"), r
    assert tcp.wait_accepted(1) == 1 and unix.wait_accepted(1) == 1


# --------------------------------------------------------------------------------------
# 6. privileges


@pytest.mark.parametrize("network", [False, True], ids=["net-restricted", "net-enabled"])
def test_no_privileges_inside(sandbox, network):
    """Inside: no_new_privs, seccomp filter mode, every capability set empty, and ptrace and
    io_uring denied with EPERM (with or without network)."""
    r = sandbox.python(PRIV_PROBE, policy=workspace_write(network=network))
    assert r["NoNewPrivs"] == "1" and r["Seccomp"] == "2", r
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(r[field], 16) == 0, (field, r[field])
    assert r["ptrace"] == "EPERM" and r["io_uring_setup"] == "EPERM", r


def test_no_controlling_terminal_inside(sandbox):
    """The command runs in a new session: even when sandboxd has a controlling terminal, the
    command cannot open /dev/tty (no TIOCSTI into the caller's terminal)."""
    code = ("import errno, os\ntry:\n    os.close(os.open('/dev/tty', os.O_RDWR)); print('ok')\n"
            "except OSError as e:\n    print(errno.errorcode[e.errno])")
    master, slave = pty.openpty()

    def take_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        runs = {name: sandbox.run(PYTHON, "-c", code, policy=policy, stdin=slave, preexec_fn=take_terminal)
                for name, policy in (("unwrapped", {"type": "dangerFullAccess"}), ("sandboxed", read_only()))}
    finally:
        os.close(slave)
        os.close(master)
    assert runs["unwrapped"].stdout.strip() == "ok", runs["unwrapped"]  # the harness gave it a tty
    assert runs["sandboxed"].stdout.strip() == "ENXIO", runs["sandboxed"]


# --------------------------------------------------------------------------------------
# 7. cwd and argv


def test_command_sees_its_cwd(sandbox):
    """-C through a symlink: the command starts in the real directory."""
    link = sandbox.base / "ws-link"
    link.symlink_to(sandbox.ws)
    result = sandbox.run("pwd", "-P", policy=read_only(), cwd=link)
    assert result.stdout == f"{os.path.realpath(sandbox.ws)}\n", result
    result = sandbox.run("pwd", "-P", policy=workspace_write(exclude_slash_tmp=True))
    assert result.stdout == f"{os.path.realpath(sandbox.ws)}\n", result


def test_command_keeps_its_argv0(sandbox):
    """The command gets its own argv: sh's $0, /proc/self/cmdline and /proc/self/exe name
    the command, never agentd-sandbox or sandboxd."""
    result = sandbox.sh('echo "$0"', "myname", policy=read_only())
    assert result.stdout == "myname\n", result
    result = sandbox.run("cat", "/proc/self/cmdline", policy=read_only())
    assert result.stdout == "cat\0/proc/self/cmdline\0", result
    script = sandbox.ws / "show-argv"
    script.write_text("#!/usr/bin/python3\nimport os, sys\n"
                      "print(sys.argv[0], os.readlink('/proc/self/exe'), sep='|')\n")
    script.chmod(0o755)
    result = sandbox.run("./show-argv", policy=read_only())
    assert result.stdout == f"./show-argv|{os.path.realpath(PYTHON)}\n", result


# --------------------------------------------------------------------------------------
# 8. hidden paths


def test_runtime_dir_and_auth_json_are_hidden(sandbox):
    """The runtime directory (created 0700) cannot be read or listed inside, and
    $CODEX_HOME/auth.json is not there at all (CODEX_HOME is an empty tmpfs with its other
    entries bound back), even when CODEX_HOME is the writable cwd (where it cannot be
    written, removed or replaced either)."""
    assert (sandbox.runtime.stat().st_mode & 0o7777) == 0o700  # made by sandboxd, private
    (sandbox.runtime / "planted").write_text("RUNTIME-SECRET")
    auth = sandbox.home / "auth.json"
    auth.write_text('{"OPENAI_API_KEY": "sk-TOP-SECRET"}')
    ops = {"runtime_list": ["list", sandbox.runtime], "runtime_read": ["read", sandbox.runtime / "planted"],
           "auth_read": ["read", auth]}
    r = sandbox.fs(ops, policy=read_only())
    assert r == {"runtime_list": err("EACCES"), "runtime_read": err("EACCES"), "auth_read": err("ENOENT")}
    r = sandbox.fs(dict(ops, auth_write=["write", auth, "evil"], auth_unlink=["unlink", auth],
                        auth_rename=["rename", auth, sandbox.home / "stolen"]),
                   policy=workspace_write(exclude_slash_tmp=True), cwd=sandbox.home)
    assert all("err" in v for v in r.values()), r
    assert "TOP-SECRET" not in json.dumps(r) and "RUNTIME-SECRET" not in json.dumps(r)
    assert auth.read_text() == '{"OPENAI_API_KEY": "sk-TOP-SECRET"}'
    assert not (sandbox.home / "stolen").exists()


def make_codex_home(home):
    """CODEX_HOME as authd and codex leave it: the store, its lock and a temporary file of
    authd's, with the rest (config.toml is the fixture's); links to the store, and to the
    directory itself. Returns the secrets in it."""
    secrets = {"auth.json": '{"OPENAI_API_KEY": "sk-HOME-SECRET-1"}', "auth.json.lock": "LOCK-SECRET",
               ".auth.json.tmp.42.00ff00ff00ff00ff": '{"OPENAI_API_KEY": "sk-TEMP-SECRET"}'}
    for name, text in secrets.items():
        (home / name).write_text(text)
    (home / "sessions").mkdir()
    (home / "sessions" / "s1.jsonl").write_text("session")
    (home / "notes.txt").write_text("notes")
    (home / "alias.json").symlink_to("auth.json")
    (home / "self").symlink_to(".")
    return secrets


def test_codex_home_shows_all_but_the_credential_files(sandbox):
    """Inside, CODEX_HOME lists what it held when the plan was made but auth.json, its lock
    and authd's temporary files; links are links there (to auth.json: to nothing), entries keep
    the policy's access (read-only, or writable in a writable CODEX_HOME), and nothing new can
    be made at its top. A file made on the host while the sandbox runs does not show."""
    secrets = make_codex_home(sandbox.home)
    home = sandbox.home
    ops = {"list": ["list", home], "config": ["read", home / "config.toml"],
           "session": ["read", home / "sessions" / "s1.jsonl"], "notes": ["read", home / "notes.txt"],
           "auth": ["read", home / "auth.json"], "lock": ["read", home / "auth.json.lock"],
           "temp": ["read", home / ".auth.json.tmp.42.00ff00ff00ff00ff"], "alias": ["read", home / "alias.json"],
           "via_self": ["read", home / "self" / "auth.json"], "self_list": ["list", home / "self"]}
    visible = ["alias.json", "config.toml", "notes.txt", "self", "sessions"]
    r = sandbox.fs(ops, policy=read_only())
    assert r["list"] == ok(visible) and r["self_list"] == ok(visible), r
    assert r["config"]["ok"].startswith("[sandboxd]") and r["session"] == ok("session") and r["notes"] == ok("notes")
    for label in ("auth", "lock", "temp", "alias", "via_self"):
        assert r[label] == err("ENOENT"), (label, r)
    r = sandbox.fs({"session": ["write", home / "sessions" / "new"], "top": ["write", home / "new"]},
                   policy=read_only())
    assert r == {"session": err("EROFS"), "top": err("EROFS")}, r
    writes = {"session": ["write", home / "sessions" / "new", "from-sandbox"],
              "notes": ["write", home / "notes.txt", "rewritten"], "top": ["write", home / "new"],
              "auth": ["write", home / "auth.json", "evil"], "alias": ["write", home / "alias.json", "evil"],
              "unlink_lock": ["unlink", home / "auth.json.lock"], "rename_notes": ["rename", home / "notes.txt",
                                                                                  home / "moved"]}
    r = sandbox.fs(writes, policy=workspace_write(exclude_slash_tmp=True), cwd=home)
    assert r["session"] == ok() and r["notes"] == ok(), r
    assert all("err" in r[k] for k in ("top", "auth", "alias", "unlink_lock", "rename_notes")), r
    assert (home / "sessions" / "new").read_text() == "from-sandbox" and (home / "notes.txt").read_text() == "rewritten"
    assert not (home / "new").exists() and not (home / "moved").exists()
    for name, text in secrets.items():
        assert (home / name).read_text() == text
    # Made on the host while the sandbox runs: not there inside.
    script = 'echo ready; read line; ls -a "$1"; cat "$1/later.txt" "$1/auth.json" 2>&1; echo end'
    with running(sandbox, "/bin/sh", "-c", script, "sh", home, policy=read_only()) as proc:
        assert proc.stdout.readline() == "ready\n"
        (home / "later.txt").write_text("LATER-SECRET")
        (home / "auth.json").unlink()
        (home / "auth.json").write_text("NEW-SECRET")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = proc.stdout.read()
    assert out.endswith("end\n") and "LATER-SECRET" not in out and "NEW-SECRET" not in out, out
    assert "later.txt" not in out.split() and "auth.json" not in out.split(), out


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_auth_json_replaced_by_rename_stays_hidden_in_running_sandbox(agentd_factory, tmp_path, launcher):
    """authd writes auth.json as a temporary file renamed over the old one; a mount point
    renamed over on the host is detached in every other mount namespace (Linux >= 3.18), so a
    mask bound over auth.json itself fell off in each sandbox running at a token refresh. Through
    the real suite (command/exec, readOnly): a command reads $CODEX_HOME/auth.json, the test
    replaces it with os.replace() while the command runs, the command reads it again: neither
    read sees either credential, and config.toml beside it stays readable."""
    require_launcher(launcher)
    old_key, new_key = f"sk-OLD-{uuid.uuid4().hex}", f"sk-NEW-{uuid.uuid4().hex}"
    register_secret(old_key, new_key)
    agentd = agentd_factory(config=f'[sandboxd]\nlauncher = "{launcher}"\n')
    home, go = agentd.codex_home, tmp_path / "go"
    auth = home / "auth.json"
    auth.write_text(json.dumps({"OPENAI_API_KEY": old_key}))
    auth.chmod(0o600)
    code = (
        "import json, os, sys, time\n"
        "home, go = sys.argv[1], sys.argv[2]\n"
        "def read(name):\n"
        "    try:\n"
        "        return open(os.path.join(home, name)).read()\n"
        "    except OSError as e:\n"
        "        return e.strerror\n"
        "first = read('auth.json')\n"
        "print('ready', flush=True)\n"
        "deadline = time.monotonic() + 10\n"
        "while not os.path.exists(go) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.2)\n"
        "print(json.dumps({'first': first, 'second': read('auth.json'), 'config': read('config.toml'),\n"
        "                  'listing': sorted(os.listdir(home))}), flush=True)\n"
    )
    client = agentd.stdio
    client.send({"id": "r", "method": "command/exec",
                 "params": {"command": [PYTHON, "-c", code, str(home), str(go)], "processId": "reader",
                            "streamStdoutStderr": True, "sandboxPolicy": {"type": "readOnly"}, "cwd": str(tmp_path)}})
    out, answer = b"", None
    deadline = time.monotonic() + RUN_TIMEOUT
    while answer is None and time.monotonic() < deadline:
        msg = client.recv(timeout=RUN_TIMEOUT)
        if msg.get("method") == "command/exec/outputDelta":
            out += base64.b64decode(msg["params"]["deltaBase64"])
            if out.startswith(b"ready\n") and not go.exists():
                # The sandbox is up and has read once: replace auth.json as authd does.
                temp = home / f".auth.json.tmp.{os.getpid()}.{uuid.uuid4().hex[:16]}"
                temp.write_text(json.dumps({"OPENAI_API_KEY": new_key}))
                temp.chmod(0o600)
                os.replace(temp, auth)
                go.touch()
            continue
        if msg.get("method"):
            client.notifications.append(msg)
            continue
        assert msg.get("id") == "r", msg
        answer = msg
    assert answer is not None and answer.get("result", {}).get("exitCode") == 0, (answer, out)
    assert go.exists(), f"the command never said it was ready: {out!r}"
    assert old_key not in out.decode() and new_key not in out.decode(), out
    report = json.loads(out.decode().splitlines()[1])
    assert "No such file or directory" in report["first"] and "No such file or directory" in report["second"], report
    assert report["config"] == f'[sandboxd]\nlauncher = "{launcher}"\n', report
    assert "auth.json" not in report["listing"] and "config.toml" in report["listing"], report
    assert json.loads(auth.read_text()) == {"OPENAI_API_KEY": new_key}  # the replace did happen


def test_mount_point_locks_are_hidden(sandbox):
    """The directory of the masks' locks, shared by every instance of this user, cannot be
    listed or opened inside (so no command can hold a lock against other sandboxes, or remove
    one), neither read-only nor with /tmp writable, where it cannot be replaced either."""
    sandbox.sh("true", policy=workspace_write())  # sandboxd makes it before its first plan
    assert LOCK_DIR.is_dir() and LOCK_DIR.stat().st_uid == os.geteuid()
    assert (LOCK_DIR.lstat().st_mode & 0o7777) == 0o700
    ops = {"list": ["list", LOCK_DIR], "lock": ["write", LOCK_DIR / "0-0-0000000000000000", ""]}
    r = sandbox.fs(ops, policy=read_only())
    assert r == {"list": err("EACCES"), "lock": err("EACCES")}, r
    r = sandbox.fs(dict(ops, rename=["rename", LOCK_DIR, f"/tmp/moved-{uuid.uuid4().hex}"]), policy=workspace_write())
    assert r["list"] == err("EACCES") and r["lock"] == err("EACCES") and "err" in r["rename"], r
    assert not (LOCK_DIR / "0-0-0000000000000000").exists()


def test_secrets_hidden_with_unrestricted_filesystem_and_restricted_network(sandbox):
    """{"kind":"unrestricted","network":"restricted"} still runs in a sandbox: the runtime
    directory and auth.json are hidden there as in every sandbox."""
    auth = sandbox.home / "auth.json"
    auth.write_text("TOP-SECRET")
    policy = {"kind": "unrestricted", "network": "restricted"}
    assert sandbox.launch_argv(policy)[0] != "true"
    r = sandbox.fs({"auth": ["read", auth], "runtime": ["list", sandbox.runtime]}, policy=policy)
    assert "err" in r["auth"] and "err" in r["runtime"], r


# --------------------------------------------------------------------------------------
# 9. danger-full-access


def test_danger_full_access_runs_unwrapped(sandbox):
    """dangerFullAccess: --print shows just the command, and the command runs as the caller
    does (same no_new_privs, same network namespace, any path writable)."""
    policy = {"type": "dangerFullAccess"}
    assert sandbox.launch_argv(policy, ("/bin/sh", "-c", "exit")) == ["/bin/sh", "-c", "exit"]
    with open("/proc/self/status") as f:
        own_nnp = next(line.split()[1] for line in f if line.startswith("NoNewPrivs:"))
    target = sandbox.base / "anywhere"
    code = (f"import os; open({str(target)!r}, 'w').write('x'); "
            "print(os.readlink('/proc/self/ns/net')); "
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs:')))")
    result = sandbox.run(PYTHON, "-c", code, policy=policy)
    assert result.returncode == 0, result
    assert result.stdout.split() == [os.readlink("/proc/self/ns/net"), own_nnp]
    assert target.read_text() == "x"
    assert sandbox.sh("exit 3", policy=policy).returncode == 3


# --------------------------------------------------------------------------------------
# launch argv (--print)


def test_print_shows_the_launcher_and_inner_stage(sandbox):
    """--print: system bwrap with user+pid(+net) namespaces re-entering through the
    agentd-sandbox link (no --argv0 on old bwrap) or --argv0; the built-in launcher as
    `agentd-sandbox --launch`. Restricted network adds --unshare-net and the restricted
    seccomp stage; enabled network has neither."""
    argv = sandbox.launch_argv(read_only(), ("true",))
    net = sandbox.launch_argv(read_only(network=True), ("true",))
    assert " ".join(argv).endswith("--seccomp restricted -- true"), argv
    assert " ".join(net).endswith("--seccomp base -- true"), net
    assert "--unshare-net" in argv and "--unshare-net" not in net
    if sandbox.launcher == "system":
        assert argv[0] == BWRAP
        for flag in ("--unshare-user", "--unshare-pid", "--die-with-parent", "--new-session"):
            assert flag in argv, (flag, argv)
        if "--argv0" in bwrap_help():
            assert f"--argv0 agentd-sandbox -- {os.path.realpath(SANDBOXD)} --seccomp" in " ".join(argv)
        else:
            assert "--argv0" not in argv
            assert f" -- {INNER_LINK} --seccomp restricted -- true" in " ".join(argv), argv
    else:
        assert argv[:2] == [str(INNER_LINK), "--launch"] and argv[2] == "--unshare-net", argv
        assert net[:2] == [str(INNER_LINK), "--launch"] and BWRAP not in net


# --------------------------------------------------------------------------------------
# 10. probe


def configured(tmp_path, config):
    """A Sandbox environment whose config.toml is exactly @config."""
    sb = Sandbox(tmp_path, "system")
    (sb.home / "config.toml").write_text(config)
    return sb


def probe(tmp_path, config):
    return configured(tmp_path, config).sandboxd("--probe")


def test_probe_reports_system_bwrap(tmp_path):
    """--probe with launcher = "system": bwrap at /usr/bin/bwrap, its --argv0 and --perms
    support as `bwrap --help` lists them, and a warning about the compatibility path when
    --argv0 is missing."""
    if not os.access(BWRAP, os.X_OK):
        pytest.skip(f"{BWRAP} is not installed")
    help_text = bwrap_help()
    has_argv0, has_perms = "--argv0" in help_text, "--perms" in help_text
    result = probe(tmp_path, '[sandboxd]\nlauncher = "system"\n')
    info = json.loads(result.stdout)
    assert info["bwrap"] == {"found": has_perms, "path": BWRAP, "argv0": has_argv0, "perms": has_perms}, info
    assert info["launcherSetting"] == "system"
    if not has_perms:
        assert result.returncode != 0
        return
    assert result.returncode == 0, result
    assert info["launcher"] == "system"
    argv0_warnings = [w for w in info["warnings"] if "--argv0" in w]
    assert bool(argv0_warnings) == (not has_argv0), info["warnings"]
    assert set(info) >= {"userNamespaces", "userNamespaceError", "landlockAbi", "seccomp", "warnings"}


def test_probe_auto_prefers_usable_system_bwrap(tmp_path):
    """Without a launcher key the setting is "auto", which picks system bwrap when usable."""
    if not os.access(BWRAP, os.X_OK) or "--perms" not in bwrap_help():
        pytest.skip(f"no usable {BWRAP}")
    result = probe(tmp_path, "")
    info = json.loads(result.stdout)
    assert result.returncode == 0, result
    assert (info["launcherSetting"], info["launcher"]) == ("auto", "system")


def test_probe_reports_builtin_launcher(tmp_path):
    """--probe with launcher = "builtin": the built-in launcher, whatever bwrap is there."""
    result = probe(tmp_path, '[sandboxd]\nlauncher = "builtin"\n')
    assert result.returncode == 0, result
    info = json.loads(result.stdout)
    assert (info["launcher"], info["launcherSetting"]) == ("builtin", "builtin"), info
    assert not [w for w in info["warnings"] if "bubblewrap" in w], info["warnings"]


def test_bogus_launcher_setting_is_an_error(tmp_path):
    """launcher = "bogus": --probe and run both exit non-zero, name the key, and run nothing."""
    sb = configured(tmp_path, '[sandboxd]\nlauncher = "bogus"\n')
    result = sb.sandboxd("--probe")
    assert result.returncode != 0 and "launcher" in result.stderr, result
    marker = tmp_path / "ran"
    result = sb.sh(f"echo ran > {marker}", policy=read_only())
    assert result.returncode != 0 and "launcher" in result.stderr, result
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# 11. many sandboxes at once


# Inside: every mask there, none writable; a short, varied life, so launches and ends interleave.
MASK_CHECK = (
    'for d in .git .codex .agents "$1/.git" "$1/.codex" "$1/.agents" /tmp/.git /tmp/.codex /tmp/.agents; do '
    'test -d "$d" || { echo "no mask at $d"; exit 1; }; '
    'mkdir "$d/x$$" 2>/dev/null && { rmdir "$d/x$$"; echo "wrote in $d"; exit 1; }; '
    'done; sleep "0.0$2"; echo ok'
)


def keep_busy(client, prefix, total, in_flight, params):
    """Run @total commands through @client, @in_flight at a time (a new one as each ends, so
    plans, launches and ends of sandboxes keep overlapping); {id: answer}."""
    answers, sent = {}, 0

    def send_next():
        nonlocal sent
        command = ["/bin/sh", "-c", MASK_CHECK, "sh", params["shared"], str(sent * 7 % 10)]
        client.send({"id": f"{prefix}-{sent}", "method": "command/exec",
                     "params": {"command": command, "sandboxPolicy": params["policy"], "cwd": params["cwd"]}})
        sent += 1

    while sent < min(in_flight, total):
        send_next()
    while len(answers) < total:
        msg = client.recv(timeout=60)
        if "id" not in msg and "method" in msg:
            client.notifications.append(msg)
            continue
        answers[msg["id"]] = msg
        if sent < total:
            send_next()
    return answers


@pytest.mark.parametrize("launchers", [("system", "system"), ("builtin", "builtin"), ("system", "builtin")],
                         ids=["system", "builtin", "mixed"])
def test_concurrent_sandboxes_of_two_instances_share_their_masks(agentd_factory, tmp_path, launchers):
    """Two agentd instances on one workspace (each its own runtime directory) keep many
    workspace-write commands running at once, with an extra writable root and /tmp writable:
    every command finds all its masks and can write in none, every launch succeeds, and no
    mask's mount point is left behind. A mask's mount point is shared by all the sandboxes
    masking it: one that removed it under another made that one's launch fail ("bwrap: Can't
    find source path /tmp/.agents") or shed its mask."""
    for launcher in set(launchers):
        probe = host_probe(launcher)
        if launcher == "system" and not probe["bwrap"]["found"]:
            pytest.skip(f"no usable system bwrap: {probe['warnings']}")
        if not probe["userNamespaces"]:
            pytest.skip(f"user namespaces unavailable: {probe['userNamespaceError']}")
    ws, shared = tmp_path / "ws", tmp_path / "shared"
    ws.mkdir()
    shared.mkdir()
    if inside_repository(ws):
        pytest.skip(f"{ws} is inside a git repository: its .git may be created")
    instances = [agentd_factory(config=f'[sandboxd]\nlauncher = "{launcher}"\n') for launcher in launchers]
    params = {"policy": {"type": "workspaceWrite", "writableRoots": [str(shared)], "networkAccess": False},
              "shared": str(shared), "cwd": str(ws)}
    results = [None] * len(instances)

    def worker(index):
        results[index] = keep_busy(instances[index].stdio, f"a{index}", 80, 8, params)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(instances))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for index, answers in enumerate(results):
        assert answers is not None, f"agentd {index} did not answer every command"
        failed = {k: v for k, v in answers.items() if v.get("result") != {"exitCode": 0, "stdout": "ok\n", "stderr": ""}}
        assert not failed, f"{len(failed)} of {len(answers)} failed, e.g. {next(iter(failed.items()))}"
    assert protected_leftovers(ws) == []
    assert protected_leftovers(shared) == []
    assert unheld_masks(Path("/tmp")) == []
