# SPDX-License-Identifier: MIT
"""configWarning notifications follow the initialize response; opt-outs and reloads are honoured."""
import os
import signal
import time

from conftest import wait_until

TYPO_CONFIG = "[agentd]\nmax_mesage_bytes = 4096\nlog_level = \"info\"\n"


def start_ws(agentd_factory, config):
    proc = agentd_factory(["ws://127.0.0.1:0"], config=config)
    return proc, proc.ws_client()


def test_unknown_agentd_key_is_reported_after_initialize(agentd_factory):
    proc, client = start_ws(agentd_factory, TYPO_CONFIG)
    client.initialize()
    msg = client.recv()
    assert msg["method"] == "configWarning", msg
    params = msg["params"]
    assert "max_mesage_bytes" in params["summary"]
    assert params["path"] == str(proc.codex_home / "config.toml")
    assert isinstance(msg["emittedAtMs"], int) and abs(msg["emittedAtMs"] / 1000 - time.time()) < 60
    client.sync()  # exactly one warning: the known keys raise none


def test_clean_config_sends_no_warning(agentd_factory):
    _, client = start_ws(agentd_factory, "[agentd]\nmax_message_bytes = 4096\n")
    client.initialize()
    client.sync()


def test_opted_out_client_gets_no_warning(agentd_factory):
    _, client = start_ws(agentd_factory, TYPO_CONFIG)
    client.initialize(capabilities={"optOutNotificationMethods": ["configWarning"]})
    client.sync()


def test_other_opt_outs_do_not_suppress_config_warnings(agentd_factory):
    _, client = start_ws(agentd_factory, TYPO_CONFIG)
    client.initialize(capabilities={"optOutNotificationMethods": ["thread/started", "configwarning"]})
    assert client.recv()["method"] == "configWarning"


def test_warnings_follow_a_reload(agentd_factory):
    proc, first = start_ws(agentd_factory, "[agentd]\nlog_level = \"info\"\n")
    first.initialize()
    first.sync()
    (proc.codex_home / "config.toml").write_text("[agentd]\nlog_levle = \"debug\"\n")
    os.kill(proc.pid, signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in proc.stderr(), 5.0, what="the reload")
    second = proc.ws_client()
    second.initialize()
    msg = second.recv()
    assert msg["method"] == "configWarning" and "log_levle" in msg["params"]["summary"], msg


def test_refused_reload_keeps_the_old_warnings(agentd_factory):
    proc, _ = start_ws(agentd_factory, TYPO_CONFIG)
    (proc.codex_home / "config.toml").write_text("[agentd]\nmax_message_bytes = 1\n")  # out of range
    os.kill(proc.pid, signal.SIGHUP)
    wait_until(lambda: "keeping the old configuration" in proc.stderr(), 5.0, what="the refused reload")
    client = proc.ws_client()
    client.initialize()
    assert "max_mesage_bytes" in client.recv()["params"]["summary"]
