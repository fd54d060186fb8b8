# SPDX-License-Identifier: MIT
"""The broker's allow-list: a sibling that breaks the internal protocol is cut off, not served."""
import subprocess

import pytest

from conftest import BUILDDIR

FAKE_HELPER = BUILDDIR / "tests" / "fake_helper"


def run_fake_helper(proc, service, mode):
    url = f"ipc://{proc.runtime_dir}/{service}.sock"
    return subprocess.run([str(FAKE_HELPER), url, service, mode], capture_output=True, timeout=20,
                          env=proc.env).returncode


@pytest.fixture
def broker_only(agentd_factory):
    assert FAKE_HELPER.exists(), f"{FAKE_HELPER} is missing: run `make check` or `make unit-tests`"
    return agentd_factory(args=["--no-spawn"])


def test_a_well_behaved_peer_stays_connected(broker_only):
    # The control: the same program, breaking no rule, is not disconnected (exit 2).
    assert run_fake_helper(broker_only, "execd", "quiet") == 2
    assert "cutting the peer off" not in broker_only.stderr()


@pytest.mark.parametrize("mode", ["spoof", "unknown-request", "unknown-service", "bad-event"])
def test_a_rule_breaking_peer_is_cut_off(broker_only, mode):
    assert run_fake_helper(broker_only, "execd", mode) == 0, f"{mode}: the broker kept the peer"
    assert "cutting the peer off" in broker_only.stderr()
    # agentd itself serves on, and the service slot is free again for a proper helper.
    assert broker_only.stdio.health()["status"] == "ok"
    assert run_fake_helper(broker_only, "execd", "quiet") == 2
