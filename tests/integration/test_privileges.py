# SPDX-License-Identifier: MIT
"""Each daemon keeps only the privilege its duty needs: capabilities, no_new_privs, seccomp."""
import os

import pytest

from conftest import HELPERS

# sandboxd keeps what namespace set-up needs when it runs as root (sandboxd/main.c).
CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_CHROOT, CAP_SYS_ADMIN = 6, 7, 8, 18, 21
SANDBOXD_KEPT = sum(1 << c for c in (CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_CHROOT, CAP_SYS_ADMIN))


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
    allowed = SANDBOXD_KEPT if service == "sandboxd" else 0
    for field in ("CapEff", "CapPrm", "CapInh"):
        value = int(status[field], 16)
        assert value & ~allowed == 0, f"{service} {field}={status[field]} holds more than {allowed:#x}"
    if os.geteuid() == 0 and service == "sandboxd":
        # As root it must still hold exactly its kept set: dropping is not the same as losing all.
        assert int(status["CapPrm"], 16) == SANDBOXD_KEPT, status["CapPrm"]


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
