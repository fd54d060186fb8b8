# SPDX-License-Identifier: MIT
"""sandboxd's `plan` with a `workspace`: the directory a workspace-write policy makes writable is the
workspace, not the command's working directory (the model's commands run in a workdir it picks).
Driven through broker-call on a real sandboxd; the plans are run to see what they allow.
"""
import json
import subprocess

import pytest

from broker_call import BROKER_CALL_BIN, BUILDDIR, BrokerCall

SANDBOXD = BUILDDIR / "sandboxd" / "sandboxd"
EINVAL = -22

pytestmark = pytest.mark.skipif(not BROKER_CALL_BIN.exists(), reason=f"{BROKER_CALL_BIN} not built (make check)")

POLICY = json.dumps({"type": "workspaceWrite", "writableRoots": [], "networkAccess": False,
                     "excludeTmpdirEnvVar": True, "excludeSlashTmp": True})


@pytest.fixture
def sandboxd(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with BrokerCall("sandboxd", [SANDBOXD, "--supervised"], env={"CODEX_HOME": home},
                    runtime_dir=tmp_path / "run") as bc:
        yield bc


def run_plan(body):
    argv = [a.decode() if isinstance(a, bytes) else a for a in body["argv"]]
    return subprocess.run(argv, cwd=body["cwd"], capture_output=True, text=True, timeout=30)


def test_workspace_not_the_cwd_is_what_becomes_writable(sandboxd, tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    script = f"touch here 2>/dev/null; echo here=$?; touch {work}/there; echo there=$?"
    status, body = sandboxd.call("plan", {"cwd": str(elsewhere), "command": ["/bin/sh", "-c", script],
                                          "policy": POLICY, "workspace": str(work)})
    assert status == 0, body
    result = run_plan(body)
    assert "here=1" in result.stdout and "there=0" in result.stdout, result
    assert not (elsewhere / "here").exists() and (work / "there").exists()

    # Without a workspace, the working directory is the workspace (the client's command/exec).
    status, body = sandboxd.call("plan", {"cwd": str(elsewhere), "command": ["/bin/sh", "-c", script],
                                          "policy": POLICY})
    assert status == 0, body
    assert "here=0" in run_plan(body).stdout


@pytest.mark.parametrize("workspace", ["relative/dir", "/tmp/../tmp", ""])
def test_a_workspace_that_is_not_a_normal_absolute_path_is_refused(sandboxd, tmp_path, workspace):
    status, _ = sandboxd.call("plan", {"cwd": str(tmp_path), "command": ["/bin/true"], "policy": POLICY,
                                       "workspace": workspace})
    assert status == EINVAL
