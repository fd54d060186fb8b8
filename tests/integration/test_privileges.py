# SPDX-License-Identifier: MIT
"""Each daemon keeps only the privilege its duty needs: capabilities, no_new_privs, seccomp."""
import os

import pytest

from conftest import HELPERS



# Only a process holding CAP_SETPCAP (root) can empty its bounding set.
CAP_FIELDS = ("CapEff", "CapPrm", "CapInh", "CapAmb") + (("CapBnd",) if os.geteuid() == 0 else ())


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def helper_pids(client):
    services = client.health()["services"]
    pids = {s["name"]: s["pid"] for s in services}
    assert set(pids) == set(HELPERS) and all(pids.values()), services
    return pids


@pytest.mark.parametrize("service", HELPERS)
def test_helper_runs_under_seccomp_with_no_new_privs(stdio_agentd, service):
    status = proc_status(helper_pids(stdio_agentd.stdio)[service])
    assert status["NoNewPrivs"] == "1", status
    assert status["Seccomp"] == "2", f"{service} is not in seccomp filter mode: {status['Seccomp']}"
    assert int(status.get("Seccomp_filters", "1")) >= 1


@pytest.mark.parametrize("service", HELPERS)
def test_helper_capabilities_are_dropped(stdio_agentd, service):
    status = proc_status(helper_pids(stdio_agentd.stdio)[service])
    for field in CAP_FIELDS:
        assert int(status[field], 16) == 0, f"{service} {field}={status[field]}"


def test_sandboxd_probe_child_is_gone_once_registered(stdio_agentd):
    """sandboxd probes the host in a child forked before its seccomp list (bwrap needs exec and
    namespaces): that child exits and is reaped; nothing stays beside the daemon."""
    pid = helper_pids(stdio_agentd.stdio)["sandboxd"]
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        assert f.read().split() == []
    assert "probe: launcher" in stdio_agentd.stderr()


def test_agentd_holds_no_capability(stdio_agentd):
    status = proc_status(stdio_agentd.pid)
    for field in ("CapEff", "CapPrm", "CapInh"):
        assert int(status[field], 16) == 0, f"agentd {field}={status[field]}"


def test_helpers_never_inherit_agentd_stdout(stdio_agentd):
    """A helper writing to its stdout must not be able to corrupt the stdio client's stream."""
    for service, pid in helper_pids(stdio_agentd.stdio).items():
        target = os.readlink(f"/proc/{pid}/fd/1")
        assert target == "/dev/null", f"{service} stdout is {target}"
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"


def test_no_spawn_agentd_confines_itself_and_serves_external_helpers(agentd_factory, tmp_path):
    """Under systemd (--no-spawn) agentd installs its own seccomp allow-list once it listens,
    and still accepts helpers started elsewhere, routes to them and reloads its configuration."""
    import signal
    import subprocess

    from conftest import AGENTD_BIN, wait_until

    proc = agentd_factory(["ws://127.0.0.1:0"], args=["--no-spawn"])
    wait_until(lambda: proc_status(proc.pid)["Seccomp"] == "2", 5, what="agentd's seccomp filter")
    assert proc_status(proc.pid)["NoNewPrivs"] == "1"
    helpers = []
    try:
        for name in HELPERS:
            binary = AGENTD_BIN.parent.parent / name / name
            helpers.append(subprocess.Popen([str(binary)], env=proc.env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        client = proc.ws_client()
        # Up before its helpers: the sandbox warnings may or may not be known yet, so none asked for.
        client.initialize(capabilities={"optOutNotificationMethods": ["configWarning"]})
        wait_until(lambda: all(s["registered"] for s in client.health()["services"]), 10,
                   what="the external helpers to register")
        assert client.health("watchd")["service"] == "watchd"
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in proc.stderr(), 5, what="the reload")
        assert client.health()["status"] == "ok"
    finally:
        for h in helpers:
            h.terminate()
        for h in helpers:
            try:
                h.wait(timeout=5)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
