# SPDX-License-Identifier: MIT
"""sandboxd's host probe as clients see it: the health field, configWarning after initialize,
and a fresh probe after SIGHUP. (tests/integration/test_sandbox.py tests the enforcement.)"""
import json
import os
import signal
import subprocess

from conftest import BUILDDIR, wait_until

SANDBOXD = BUILDDIR / "sandboxd" / "sandboxd"
BWRAP = "/usr/bin/bwrap"
# A PATH without any bwrap on it (Debian's /bin is /usr/bin).
NO_BWRAP_PATH = "/nonexistent-agentd-bin"


def bwrap_help():
    done = subprocess.run([BWRAP, "--help"], capture_output=True, text=True, timeout=10)
    return done.stdout + done.stderr


def probe_field(client):
    return client.health("sandboxd")["probe"]


def test_health_carries_the_host_probe(stdio_agentd):
    probe = probe_field(stdio_agentd.stdio)
    help_text = bwrap_help()
    assert probe["launcher"] == "system"
    assert probe["bwrap"] == {"found": True, "path": os.path.realpath(BWRAP),
                              "argv0": "--argv0" in help_text, "perms": "--perms" in help_text}
    assert probe["userNamespaces"] is True and probe["refusing"] is False
    assert probe["seccomp"] is True and isinstance(probe["landlockAbi"], int)
    # The same probe as `sandboxd --probe` run by hand in the same environment.
    assert probe["warnings"] == stdio_agentd.expected_sandbox_warnings()


def test_old_bwrap_warns_every_connection_after_initialize(agentd_factory):
    """This host's bubblewrap 0.8.0 has no --argv0: every client is told, right after its
    initialize response, and the compatibility path is used."""
    proc = agentd_factory(["ws://127.0.0.1:0"])
    has_argv0 = "--argv0" in bwrap_help()
    for _ in range(2):
        client = proc.ws_client()
        client.initialize()
        argv0_warnings = [w for w in client.sandbox_warnings if "--argv0" in w]
        assert len(argv0_warnings) == (0 if has_argv0 else 1), client.sandbox_warnings
        client.sync()  # nothing else follows


def test_missing_bwrap_warns_and_uses_the_builtin_launcher(agentd_factory, tmp_path):
    proc = agentd_factory(["ws://127.0.0.1:0"], env={"PATH": NO_BWRAP_PATH},
                          config=f'[sandboxd]\nbwrap_path = "{tmp_path}/no-bwrap"\n')
    client = proc.ws_client()
    client.initialize()
    assert len(client.sandbox_warnings) == 1, client.sandbox_warnings
    assert "could not find bubblewrap on PATH" in client.sandbox_warnings[0]
    probe = probe_field(client)
    assert probe["launcher"] == "builtin" and probe["bwrap"]["found"] is False


def test_forced_builtin_launcher_has_nothing_to_warn_about(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"], config='[sandboxd]\nlauncher = "builtin"\n')
    client = proc.ws_client()
    client.initialize()
    assert client.sandbox_warnings == []
    client.sync()
    assert probe_field(client)["launcher"] == "builtin"


def test_unsandboxed_default_sends_no_sandbox_warning(agentd_factory):
    """As the reference: the warnings matter only when commands would run in a sandbox."""
    proc = agentd_factory(["ws://127.0.0.1:0"], env={"PATH": NO_BWRAP_PATH},
                          config='default_permissions = ":danger-full-access"\n[sandboxd]\nbwrap_path = "/nope"\n')
    client = proc.ws_client()
    client.initialize()
    client.sync()
    assert "could not find" in probe_field(client)["warnings"][0]  # probed all the same


def test_opted_out_client_gets_no_sandbox_warning(agentd_factory):
    proc = agentd_factory(["ws://127.0.0.1:0"], env={"PATH": NO_BWRAP_PATH},
                          config='[sandboxd]\nbwrap_path = "/nope"\n')
    client = proc.ws_client()
    client.initialize(capabilities={"optOutNotificationMethods": ["configWarning"]})
    client.sync()


def test_sighup_probes_the_host_again(agentd_factory, tmp_path):
    """After SIGHUP sandboxd probes again and agentd warns new connections accordingly."""
    proc = agentd_factory(["ws://127.0.0.1:0"], env={"PATH": NO_BWRAP_PATH},
                          config=f'[sandboxd]\nbwrap_path = "{tmp_path}/no-bwrap"\n')
    first = proc.ws_client()
    first.initialize()
    assert "could not find bubblewrap" in first.sandbox_warnings[0]
    (proc.codex_home / "config.toml").write_text(f'[sandboxd]\nbwrap_path = "{BWRAP}"\n')
    proc._sandbox_warnings = None  # the harness asks sandboxd --probe again for new clients
    proc.signal(signal.SIGHUP)
    wait_until(lambda: probe_field(first)["launcher"] == "system", 5, what="sandboxd's new probe")
    second = proc.ws_client()
    second.initialize()
    assert not any("could not find" in w for w in second.sandbox_warnings), second.sandbox_warnings
    assert second.sandbox_warnings == proc.expected_sandbox_warnings()
    second.sync()


def test_bad_launcher_setting_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[sandboxd]\nlauncher = "chroot"\n')
    env = dict(os.environ, CODEX_HOME=str(home), AGENTD_RUNTIME_DIR=str(tmp_path / "run"))
    for argv in ([str(SANDBOXD), "-n"], [str(SANDBOXD), "--probe"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
        assert done.returncode != 0, (argv, done.stdout)
        assert "launcher must be one of auto|system|builtin" in done.stderr


def test_forced_system_launcher_without_bwrap_refuses(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[sandboxd]\nlauncher = "system"\nbwrap_path = "/nope/bwrap"\n')
    env = dict(os.environ, CODEX_HOME=str(home), AGENTD_RUNTIME_DIR=str(tmp_path / "run"), PATH=NO_BWRAP_PATH)
    done = subprocess.run([str(SANDBOXD), "--probe"], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    probe = json.loads(done.stdout)
    assert probe["warnings"][0].startswith('[sandboxd] launcher = "system" but no usable system bubblewrap')
    run = subprocess.run([str(SANDBOXD), "run", "--", "/bin/true"], env=env, capture_output=True, text=True,
                         timeout=10)
    assert run.returncode == 1 and "no usable system bubblewrap" in run.stderr


def test_bwrap_under_the_commands_cwd_is_not_used(tmp_path):
    """A plan for a cwd that holds the system bwrap (here /usr) goes to the built-in launcher; with
    the system launcher forced it is refused."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, CODEX_HOME=str(home), AGENTD_RUNTIME_DIR=str(tmp_path / "run"))
    bwrap_dir = os.path.dirname(os.path.realpath(BWRAP))
    parent = os.path.dirname(bwrap_dir)

    def run(cwd, *command):
        return subprocess.run([str(SANDBOXD), "run", "--print", "-C", cwd, "--", *command], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=10)

    elsewhere = run(str(tmp_path), "/bin/true")
    assert elsewhere.returncode == 0 and elsewhere.stdout.startswith(os.path.realpath(BWRAP) + " "), elsewhere
    inside = run(parent, "/bin/true")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split()[:2] == [str(SANDBOXD.parent / "agentd-sandbox"), "--launch"], inside.stdout
    (home / "config.toml").write_text('[sandboxd]\nlauncher = "system"\n')
    forced = run(parent, "/bin/true")
    assert forced.returncode == 1 and "lies under the command's cwd" in forced.stderr, forced


def test_an_unprivileged_user_runs_sandboxes_again_and_again():
    """Run as a plain user (the usual deployment): the mask files sandboxd made on the first run,
    one of them mode 0000, are reused by the next runs, under both launchers."""
    import shutil
    import tempfile

    import pytest

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to become an unprivileged user")
    base = tempfile.mkdtemp(prefix="agentd-unpriv-", dir="/tmp")  # pytest's tmp_path is root's alone
    try:
        home, work = os.path.join(base, "home"), os.path.join(base, "ws")
        os.mkdir(home)
        os.mkdir(work)
        for path in (base, home, work):
            os.chown(path, 65534, 65534)
        env = dict(os.environ, CODEX_HOME=home, AGENTD_RUNTIME_DIR=os.path.join(base, "run"), HOME=home)
        for launcher in ("system", "builtin", "system"):
            with open(os.path.join(home, "config.toml"), "w") as f:
                f.write(f'[sandboxd]\nlauncher = "{launcher}"\n')
            done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SANDBOXD),
                                   "run", "--policy", '{"type":"workspaceWrite","excludeSlashTmp":true}', "-C",
                                   work, "--", "/bin/sh", "-c", "id -u && touch made"],
                                  env=env, cwd=base, capture_output=True, text=True, timeout=20)
            assert done.returncode == 0, (launcher, done.stderr)
            assert done.stdout.strip() == "65534"
            assert os.stat(os.path.join(work, "made")).st_uid == 65534
    finally:
        shutil.rmtree(base, ignore_errors=True)
