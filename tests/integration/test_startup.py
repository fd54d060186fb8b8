# SPDX-License-Identifier: MIT
"""Start-up: configuration checking (-n), refused listen addresses, command line."""
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import AGENTD_BIN, HELPERS, START_TIMEOUT


def run_agentd(tmp_path, *args, config=None, binary=AGENTD_BIN, timeout=START_TIMEOUT):
    """Run agentd to completion (it is expected to exit by itself)."""
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    runtime = tmp_path / "rt"
    runtime.mkdir(exist_ok=True)
    if config is not None:
        (home / "config.toml").write_text(config)
    env = {"PATH": "/usr/bin:/bin", "CODEX_HOME": str(home), "AGENTD_RUNTIME_DIR": str(runtime)}
    done = subprocess.run([str(binary), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    return done, home / "config.toml", runtime


BAD_CONFIGS = [
    ("missing-value", "[agentd]\nmax_message_bytes = \n", 2),
    ("unterminated-string", 'a = 1\n[agentd]\nlog_level = "debug\n', 3),
    ("duplicate-key", '[agentd]\nlog_level = "info"\nlog_level = "debug"\n', 3),
    ("duplicate-table", "[agentd]\n[agentd]\n", 2),
    ("garbage-line", "# comment\n\nthis is not toml\n", 3),
]


@pytest.mark.parametrize("config,line", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_check_mode_names_file_line_column(tmp_path, config, line):
    done, path, runtime = run_agentd(tmp_path, "-n", config=config)
    assert done.returncode != 0, done
    assert re.search(re.escape(str(path)) + rf":{line}:\d+: ", done.stderr), done.stderr
    assert "OK" not in done.stdout


@pytest.mark.parametrize("config,line", [c[1:] for c in BAD_CONFIGS[:2]], ids=[c[0] for c in BAD_CONFIGS[:2]])
def test_bad_config_refuses_to_serve(tmp_path, config, line):
    done, path, runtime = run_agentd(tmp_path, "--listen", "ws://127.0.0.1:0", config=config)
    assert done.returncode != 0
    assert re.search(re.escape(str(path)) + rf":{line}:\d+: ", done.stderr), done.stderr
    assert "listening on" not in done.stderr
    assert not any(f"spawned {h}" in done.stderr for h in HELPERS), "helpers started despite a bad config"
    assert list(runtime.iterdir()) == []


@pytest.mark.parametrize(
    "config",
    [None, "", "[agentd]\nmax_message_bytes = 1_048_576\nlog_level = \"warn\"\n"],
    ids=["absent", "empty", "valid"],
)
def test_check_mode_accepts_good_config(tmp_path, config):
    done, path, _ = run_agentd(tmp_path, "-n", config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"agentd: configuration {path} OK"


def test_check_mode_rejects_out_of_range_value(tmp_path):
    done, path, _ = run_agentd(tmp_path, "-n", config="[agentd]\nmax_message_bytes = 12\n")
    assert done.returncode != 0
    assert str(path) in done.stderr and "max_message_bytes" in done.stderr


@pytest.mark.parametrize("address", ["0.0.0.0:0", "10.1.2.3:0", "[::]:0"])
def test_non_loopback_websocket_is_refused(agentd_factory, address):
    proc = agentd_factory([f"ws://{address}"], wait=False, expect_status=None)
    status = proc.wait(timeout=START_TIMEOUT)
    assert "refusing to start non-loopback websocket listener" in proc.stderr()
    assert "listening on: ws://" not in proc.stderr()
    assert status != 0, "agentd refused to listen but exited with status 0"
    # Refused before any helper was started.
    assert not any(f"spawned {h}" in proc.stderr() for h in HELPERS), proc.stderr()


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("address", [
    "127.0.0.1:0", "127.0.0.2:0",
    pytest.param("[::1]:0", marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")),
])
def test_loopback_addresses_are_accepted(agentd_factory, address):
    proc = agentd_factory([f"ws://{address}"])
    host = address.rsplit(":", 1)[0]
    c = proc.ws_client(f"ws://{host}:{proc.ws_port}")
    assert c.initialize()["platformOs"] == "linux"


def _unusable_listen(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    regular = tmp_path / "regular-file"
    regular.write_text("not a socket")
    return busy, {
        "unknown-scheme": "tcp://127.0.0.1:1",
        "ws-hostname": "ws://localhost:0",
        "ws-bad-port": "ws://127.0.0.1:99999",
        "ws-port-in-use": f"ws://127.0.0.1:{busy.getsockname()[1]}",
        "unix-relative": "unix://relative.sock",
        "unix-regular-file": f"unix://{regular}",
    }


@pytest.mark.parametrize(
    "case", ["unknown-scheme", "ws-hostname", "ws-port-in-use", "unix-regular-file"]
)
def test_unusable_listen_address_exits_non_zero(agentd_factory, tmp_path, case):
    busy, urls = _unusable_listen(tmp_path)
    try:
        proc = agentd_factory([urls[case]], wait=False, expect_status=None)
        status = proc.wait(timeout=START_TIMEOUT)
    finally:
        busy.close()
    assert " error: " in proc.stderr(), proc.stderr()
    assert "listening on" not in proc.stderr()
    if case == "unix-regular-file":
        assert (tmp_path / "regular-file").read_text() == "not a socket"  # never replaced
    assert status != 0, f"agentd could not listen on {urls[case]} but exited with status 0"


def test_bad_command_line(tmp_path):
    done, _, _ = run_agentd(tmp_path, "--no-such-flag")
    assert done.returncode == 2
    assert "usage:" in done.stderr
    done, _, _ = run_agentd(tmp_path, "extra-argument")
    assert done.returncode == 2


def test_version(tmp_path):
    done, _, _ = run_agentd(tmp_path, "--version")
    assert done.returncode == 0
    assert re.fullmatch(r"agentd \S+\n", done.stdout), done.stdout


def test_missing_helper_binary(tmp_path):
    """agentd copied away from the build tree cannot find its helpers and says so."""
    lonely = tmp_path / "bin" / "agentd"
    lonely.parent.mkdir()
    shutil.copy2(AGENTD_BIN, lonely)
    done, _, runtime = run_agentd(tmp_path, "--listen", "ws://127.0.0.1:0", binary=lonely)
    assert done.returncode != 0
    assert "cannot find the execd binary" in done.stderr, done.stderr
    assert [p for p in runtime.iterdir() if p.suffix == ".sock"] == []


def _run_with_stdin(tmp_path, stdin, args=()):
    env = dict(os.environ, AGENTD_RUNTIME_DIR=str(tmp_path / "rt"), CODEX_HOME=str(tmp_path))
    env.pop("XDG_RUNTIME_DIR", None)
    return subprocess.run([str(AGENTD_BIN), *args], stdin=stdin, capture_output=True, env=env, timeout=30)


def test_stdin_from_a_regular_file_is_answered_in_full(tmp_path):
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        json.dumps({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "f", "version": "1"}}})
        + "\n" + json.dumps({"id": 2, "method": "agentd/health", "params": {"service": "execd"}}) + "\n"
        + json.dumps({"id": 3, "method": "nope"}) + "\n")
    with open(requests, "rb") as stdin:
        done = _run_with_stdin(tmp_path, stdin)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    messages = list(map(json.loads, done.stdout.decode().splitlines()))
    answers = {m["id"]: m for m in messages if "id" in m}
    assert all(m["method"] == "configWarning" for m in messages if "id" not in m), messages
    assert answers[1]["result"]["userAgent"].startswith("f/")
    assert answers[2]["result"]["service"] == "execd"
    assert answers[3]["error"]["code"] == -32601


def test_stdin_dev_null_exits_cleanly(tmp_path):
    with open(os.devnull, "rb") as stdin:
        done = _run_with_stdin(tmp_path, stdin)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout == b""


def test_app_server_subcommand_as_codex_is_started(tmp_path):
    """IDE extensions start `codex app-server --analytics-default-enabled`."""
    line = json.dumps({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "ide", "version": "1"}}})
    done = subprocess.run([str(AGENTD_BIN), "app-server", "--analytics-default-enabled"], input=(line + "\n").encode(),
                          capture_output=True, timeout=30,
                          env=dict(os.environ, AGENTD_RUNTIME_DIR=str(tmp_path / "rt"), CODEX_HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout.decode().splitlines()[0])["result"]["userAgent"].startswith("ide/")


def test_codex_config_overrides_are_applied(tmp_path):
    """`-c key=value`, `--enable F` and `--disable F` work as on `codex app-server`."""
    line = json.dumps({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "c", "version": "1"}}})
    env = dict(os.environ, AGENTD_RUNTIME_DIR=str(tmp_path / "rt"), CODEX_HOME=str(tmp_path))
    done = subprocess.run([str(AGENTD_BIN), "app-server", "-c", "agentd.typo=1", "--enable", "x", "--disable", "y",
                           "-c", 'model="o3"'], input=(line + "\n").encode(), capture_output=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    messages = [json.loads(m) for m in done.stdout.decode().splitlines()]
    assert messages[0]["id"] == 1
    assert messages[1]["method"] == "configWarning" and "typo" in messages[1]["params"]["summary"]
    # An override outside its range is refused like a file value.
    refused = subprocess.run([str(AGENTD_BIN), "-c", "agentd.max_message_bytes=12", "-n"], capture_output=True,
                             timeout=30, env=env)
    assert refused.returncode == 1 and b"max_message_bytes" in refused.stderr
    malformed = subprocess.run([str(AGENTD_BIN), "-c", "novalue"], capture_output=True, timeout=30, env=env)
    assert malformed.returncode == 2 and b"key=value" in malformed.stderr
