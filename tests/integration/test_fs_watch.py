# SPDX-License-Identifier: MIT
"""fs/watch, fs/unwatch and fs/changed (watchd on inotify), through real clients.

Reference: ../shared/reference/codex-behaviour.md section 5 and issue 4. Watches are
connection-scoped and non-recursive; changes are coalesced per watch for a debounce window
(200 ms by default, [watchd] debounce_ms in config.toml) and arrive as one fs/changed with
sorted, de-duplicated absolute paths in the client's spelling. Most tests set the window to
50 ms to stay fast; the coalescing tests use the default or a long window on purpose.
"""
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import INTERNAL_ERROR, INVALID_REQUEST, wait_until

FAST = 50  # ms: the debounce window of most tests
FAST_CONFIG = f"[watchd]\ndebounce_ms = {FAST}\n"
SILENCE = 0.6  # s: comfortably past a 50 ms (and a 200 ms) window
DEADLINE = 3.0  # s: how long a notification may take to arrive

RELATIVE_MESSAGE = "Invalid request: AbsolutePathBuf deserialized without a base path"


# --------------------------------------------------------------------------------------
# helpers


def start_stdio(agentd_factory, debounce_ms=FAST):
    config = None if debounce_ms is None else f"[watchd]\ndebounce_ms = {debounce_ms}\n"
    proc = agentd_factory(config=config)
    return proc, proc.stdio


def start_ws(agentd_factory, debounce_ms=FAST, clients=1):
    proc = agentd_factory(["ws://127.0.0.1:0"], config=f"[watchd]\ndebounce_ms = {debounce_ms}\n")
    out = []
    for _ in range(clients):
        client = proc.ws_client()
        client.initialize()
        out.append(client)
    return proc, out


def watch(client, watch_id, path):
    result = client.call("fs/watch", {"watchId": watch_id, "path": str(path)})
    assert result == {"path": str(path)}, result
    return result


def unwatch(client, watch_id):
    result = client.call("fs/unwatch", {"watchId": watch_id})
    assert result == {}, result


def check_notification(msg, watch_id):
    """Shape checks the schema cannot make: sorted, unique, absolute; emittedAtMs present."""
    params = msg["params"]
    assert params["watchId"] == watch_id, msg
    paths = params["changedPaths"]
    assert paths, f"fs/changed without paths: {msg}"
    assert paths == sorted(paths), f"changedPaths not sorted: {paths}"
    assert len(paths) == len(set(paths)), f"changedPaths not de-duplicated: {paths}"
    assert all(p.startswith("/") for p in paths), f"changedPaths not absolute: {paths}"
    emitted = msg.get("emittedAtMs")
    assert isinstance(emitted, int) and not isinstance(emitted, bool), f"emittedAtMs missing: {msg}"
    assert abs(emitted / 1000 - time.time()) < 60, f"emittedAtMs {emitted} is not the wall clock"
    return paths


def next_changed(client, watch_id, timeout=DEADLINE):
    """The next fs/changed for @watch_id (its changedPaths); fs/changed for another watch fails."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no fs/changed for {watch_id!r} within {timeout:.1f} s")
        try:
            msg = client.recv(timeout=left)
        except TimeoutError:
            raise AssertionError(f"no fs/changed for {watch_id!r} within {timeout:.1f} s") from None
        if msg.get("method") != "fs/changed":
            if msg.get("method"):
                continue  # some other notification (none is expected, none matters here)
            raise AssertionError(f"unexpected message while waiting for fs/changed: {msg}")
        assert msg["params"]["watchId"] == watch_id, f"fs/changed for another watch: {msg}"
        return check_notification(msg, watch_id)


def collect(client, watch_id, expected, timeout=DEADLINE):
    """Union of changedPaths of fs/changed notifications until it covers @expected.

    A change may be split over two windows (create, then the write's close): every path seen
    is returned, so callers can also check that nothing unexpected was reported.
    """
    expected = {str(p) for p in expected}
    seen = set()
    deadline = time.monotonic() + timeout
    while not expected <= seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"fs/changed for {watch_id!r}: saw {sorted(seen)}, missing {sorted(expected - seen)}")
        seen |= set(next_changed(client, watch_id, timeout=left))
    return seen


def expect_changes(client, watch_id, expected, timeout=DEADLINE):
    """Exactly the paths @expected are reported (over one or more notifications)."""
    seen = collect(client, watch_id, expected, timeout)
    assert seen == {str(p) for p in expected}, f"unexpected paths reported: {sorted(seen)}"


def drain_changed(client, window=0.3):
    """Swallow whatever fs/changed arrives within @window (used after set-up steps)."""
    got = []
    while True:
        try:
            msg = client.recv(timeout=window)
        except TimeoutError:
            return got
        assert msg.get("method") == "fs/changed", f"unexpected message: {msg}"
        got.append(msg)


def write(path, text="x"):
    Path(path).write_text(text)


def watchd_pid(client):
    services = {s["name"]: s for s in client.health()["services"]}
    entry = services["watchd"]
    assert entry["registered"] and entry["pid"] > 0, services
    return entry["pid"]


def inotify_fds(pid):
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                fds.append(int(fd))
    return fds


def inotify_watch_lines(pid):
    """The 'inotify wd:' lines of every inotify instance of @pid."""
    lines = []
    for fd in inotify_fds(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                lines += [line for line in f if line.startswith("inotify wd:")]
    return lines


def inotify_watch_count(pid):
    return len(inotify_watch_lines(pid))


def watches_on_inode(pid, path):
    """How many of @pid's inotify watches are on @path's inode (fdinfo prints ino in hex)."""
    st = os.stat(path)
    n = 0
    for line in inotify_watch_lines(pid):
        fields = dict(f.split(":", 1) for f in line.split() if ":" in f)
        if int(fields.get("ino", "-1"), 16) == st.st_ino:
            n += 1
    return n


@contextlib.contextmanager
def sysctl(path, value):
    """Set a /proc/sys value for the duration of the block; always restore it."""
    saved = Path(path).read_text().strip()
    Path(path).write_text(f"{value}\n")
    try:
        yield saved
    finally:
        Path(path).write_text(f"{saved}\n")


def _can_change_inotify_limits():
    knobs = ("/proc/sys/fs/inotify/max_queued_events", "/proc/sys/fs/inotify/max_user_watches")
    return os.geteuid() == 0 and all(os.access(k, os.W_OK) for k in knobs)


needs_root = pytest.mark.skipif(not _can_change_inotify_limits(),
                                reason="changes /proc/sys/fs/inotify limits: needs root and a writable /proc/sys")


# --------------------------------------------------------------------------------------
# requests and errors


def test_watch_answers_with_the_requested_path(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    (tmp_path / "dir").mkdir()
    assert client.call("fs/watch", {"watchId": "w1", "path": str(tmp_path / "dir")}) == {"path": str(tmp_path / "dir")}
    # A file, and a path that does not exist (yet): both are fine.
    write(tmp_path / "file")
    assert client.call("fs/watch", {"watchId": "w2", "path": str(tmp_path / "file")}) == {"path": str(tmp_path / "file")}
    missing = tmp_path / "not" / "there"
    assert client.call("fs/watch", {"watchId": "w3", "path": str(missing)}) == {"path": str(missing)}
    client.sync()


@pytest.mark.parametrize("spelling", ["{d}/", "{d}/.", "{d}/./", "{d}//", "{d}/sub/..", "{d}/sub/../", "{d}/./sub/../."])
def test_watch_answers_with_the_lexically_normalised_path(agentd_factory, tmp_path, spelling):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    d.mkdir()
    result = client.call("fs/watch", {"watchId": "w", "path": spelling.format(d=d)})
    assert result == {"path": str(d)}, result
    # Changes are reported under the normalised root.
    write(d / "child")
    expect_changes(client, "w", [d / "child"])


def test_relative_path_is_an_invalid_request(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    for path in ("relative/dir", "dir", ".", "./x", ""):
        msg = client.request("fs/watch", {"watchId": f"w-{path}", "path": path})
        assert "error" in msg, f"relative path {path!r} was accepted: {msg}"
        assert msg["error"]["code"] == INVALID_REQUEST, msg
        assert msg["error"]["message"].startswith(RELATIVE_MESSAGE), msg
    # The refused ids were not registered: they can be used for a real watch.
    watch(client, "w-relative/dir", tmp_path)
    client.sync()


def test_duplicate_watch_id_is_refused_and_keeps_the_first_watch(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    watch(client, "dup", first)
    for path in (second, first):  # another path, or the same one again
        msg = client.request("fs/watch", {"watchId": "dup", "path": str(path)})
        assert "error" in msg, msg
        assert msg["error"]["code"] == INVALID_REQUEST, msg
        assert msg["error"]["message"] == "watchId already exists: dup", msg
    # The refused request did not replace the first watch.
    write(second / "a")
    client.expect_silence(SILENCE)
    write(first / "b")
    expect_changes(client, "dup", [first / "b"])


@pytest.mark.parametrize(
    "method,params",
    [
        ("fs/watch", None),
        ("fs/watch", {}),
        ("fs/watch", {"watchId": "w"}),
        ("fs/watch", {"path": "/tmp"}),
        ("fs/watch", {"watchId": 5, "path": "/tmp"}),
        ("fs/watch", {"watchId": None, "path": "/tmp"}),
        ("fs/watch", {"watchId": "w", "path": 42}),
        ("fs/watch", {"watchId": "w", "path": ["/tmp"]}),
        ("fs/watch", ["w", "/tmp"]),
        ("fs/unwatch", None),
        ("fs/unwatch", {}),
        ("fs/unwatch", {"watchId": 7}),
        ("fs/unwatch", {"watchId": {"id": "w"}}),
    ],
)
def test_missing_or_mistyped_params_are_invalid_requests(agentd_factory, method, params):
    """As the reference's deserializer: -32600 "Invalid request: …"."""
    _, client = start_stdio(agentd_factory)
    msg = client.request(method, params)
    assert "error" in msg, f"{method} {params!r} was accepted: {msg}"
    assert msg["error"]["code"] == INVALID_REQUEST, msg
    assert msg["error"]["message"].startswith("Invalid request: "), msg
    client.sync()


def test_unwatch_of_unknown_id_is_a_no_op(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    assert client.call("fs/unwatch", {"watchId": "never-watched"}) == {}
    watch(client, "w", tmp_path)
    unwatch(client, "w")
    assert client.call("fs/unwatch", {"watchId": "w"}) == {}  # twice
    # The id is free again.
    watch(client, "w", tmp_path)
    write(tmp_path / "again")
    expect_changes(client, "w", [tmp_path / "again"])


# --------------------------------------------------------------------------------------
# what a directory watch reports


def test_directory_reports_child_create_modify_delete_and_rename(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    d.mkdir()
    outside = tmp_path / "outside"
    write(outside)
    watch(client, "dir", d)

    write(d / "a", "created")
    expect_changes(client, "dir", [d / "a"])

    with open(d / "a", "a") as f:  # modify in place
        f.write("more")
    expect_changes(client, "dir", [d / "a"])

    os.rename(d / "a", d / "b")  # rename within: both names
    expect_changes(client, "dir", [d / "a", d / "b"])

    os.rename(outside, d / "moved-in")
    expect_changes(client, "dir", [d / "moved-in"])

    os.rename(d / "moved-in", tmp_path / "moved-out")
    expect_changes(client, "dir", [d / "moved-in"])

    os.unlink(d / "b")
    expect_changes(client, "dir", [d / "b"])

    (d / "subdir").mkdir()  # a directory is a child like any other
    expect_changes(client, "dir", [d / "subdir"])
    (d / "subdir").rmdir()
    expect_changes(client, "dir", [d / "subdir"])
    client.sync()


def test_directory_reports_itself(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)
    d.rmdir()
    seen = collect(client, "dir", [d])
    assert seen == {str(d)}, seen


def test_grandchildren_are_ignored(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    sub = d / "sub"
    sub.mkdir(parents=True)
    write(sub / "existing")
    watch(client, "dir", d)

    write(sub / "grandchild")
    write(sub / "existing", "changed")
    os.rename(sub / "grandchild", sub / "renamed")
    os.unlink(sub / "renamed")
    (sub / "deeper").mkdir()
    write(sub / "deeper" / "great-grandchild")
    client.expect_silence(SILENCE)

    # Still watching: a direct child shows up, and alone.
    write(d / "child")
    expect_changes(client, "dir", [d / "child"])


def test_paths_are_reported_in_the_clients_spelling(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    watch(client, "link", link)
    write(real / "x")  # written through the real name, reported under the watched one
    expect_changes(client, "link", [link / "x"])


# --------------------------------------------------------------------------------------
# what a file watch reports


def test_file_reports_its_own_modification_only(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    f = tmp_path / "file.txt"
    write(f, "one")
    watch(client, "file", f)

    write(f, "two")
    expect_changes(client, "file", [f])

    with open(f, "a") as fh:
        fh.write("three")
    expect_changes(client, "file", [f])

    # Siblings in the same directory are not this watch's business.
    write(tmp_path / "sibling")
    os.unlink(tmp_path / "sibling")
    client.expect_silence(SILENCE)

    f.unlink()
    expect_changes(client, "file", [f])


def test_atomic_replace_is_reported_as_the_file(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    head = tmp_path / "HEAD"
    lock = tmp_path / "HEAD.lock"
    write(head, "ref: refs/heads/main\n")
    watch(client, "head", head)

    for branch in ("one", "two", "three"):  # the new inode is followed each time
        write(lock, f"ref: refs/heads/{branch}\n")
        os.rename(lock, head)
        expect_changes(client, "head", [head])

    # And a plain write to the replaced file is still seen.
    write(head, "plain")
    expect_changes(client, "head", [head])
    client.sync()


def test_missing_file_is_reported_when_created_and_deleted(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    target = tmp_path / "later.txt"
    watch(client, "later", target)

    write(tmp_path / "unrelated")  # the watched ancestor's other children do not count
    client.expect_silence(SILENCE)

    write(target, "now")
    expect_changes(client, "later", [target])

    target.unlink()
    expect_changes(client, "later", [target])

    write(target, "back again")
    expect_changes(client, "later", [target])


def test_missing_file_two_levels_deep(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    parent = tmp_path / "sub"
    target = parent / "deep.txt"
    watch(client, "deep", target)

    parent.mkdir()  # the watch moves closer; whether this is reported is not specified
    drain_changed(client, 0.3)

    write(target, "here")
    expect_changes(client, "deep", [target])

    target.unlink()
    expect_changes(client, "deep", [target])


def test_missing_file_three_levels_deep(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    target = tmp_path / "a" / "b" / "deep.txt"
    watch(client, "deep", target)
    (tmp_path / "a").mkdir()
    drain_changed(client, 0.3)
    (tmp_path / "a" / "b").mkdir()
    drain_changed(client, 0.3)
    write(target, "here")
    expect_changes(client, "deep", [target])


def test_missing_directory_is_reported_and_then_watched(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "newdir"
    watch(client, "newdir", d)

    d.mkdir()
    expect_changes(client, "newdir", [d])

    write(d / "child")  # once it exists, it is watched as a directory
    expect_changes(client, "newdir", [d / "child"])
    (d / "child").unlink()
    expect_changes(client, "newdir", [d / "child"])

    d.rmdir()
    collect(client, "newdir", [d])


def test_reads_and_attribute_changes_are_not_reported(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    d.mkdir()
    f = d / "file"
    write(f, "content")
    watch(client, "dir", d)
    watch(client, "file", f)

    f.read_text()
    os.listdir(d)
    os.utime(f, (1_000_000, 2_000_000))
    os.utime(d, (1_000_000, 2_000_000))
    os.chmod(f, 0o600)
    os.chmod(f, 0o644)
    os.chmod(d, 0o700)
    with open(f, "rb") as fh:
        fh.read()
    client.expect_silence(SILENCE)

    write(f, "changed")  # the watches are alive
    got = {}
    deadline = time.monotonic() + DEADLINE
    while set(got) != {"dir", "file"}:
        msg = client.recv(timeout=max(0.0, deadline - time.monotonic()))
        assert msg.get("method") == "fs/changed", msg
        wid = msg["params"]["watchId"]
        got.setdefault(wid, set()).update(check_notification(msg, wid))
    assert got == {"dir": {str(f)}, "file": {str(f)}}, got


# --------------------------------------------------------------------------------------
# coalescing


def test_default_window_coalesces_a_burst_into_one_notification(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory, debounce_ms=None)  # no [watchd]: 200 ms
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)

    names = ["e", "c", "a", "d", "b"]
    started = time.monotonic()
    for name in names:
        write(d / name, "1")
    for name in names:  # each path again: still listed once
        write(d / name, "2")
    os.unlink(d / "e")
    paths = next_changed(client, "dir")
    elapsed = time.monotonic() - started
    assert paths == sorted(str(d / n) for n in names), paths
    assert elapsed >= 0.15, f"the burst was reported after {elapsed * 1000:.0f} ms, inside the 200 ms window"
    client.expect_silence(SILENCE)


def test_configured_window_is_honoured(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory, debounce_ms=1000)
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)

    started = time.monotonic()
    write(d / "first")
    time.sleep(0.4)  # well inside the 1 s window, outside the 200 ms default
    write(d / "second")
    paths = next_changed(client, "dir", timeout=4.0)
    elapsed = time.monotonic() - started
    assert paths == [str(d / "first"), str(d / "second")], paths
    assert elapsed >= 0.8, f"reported after {elapsed * 1000:.0f} ms with a 1000 ms window"
    client.expect_silence(0.3)


def test_short_window_reports_separate_bursts_separately(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory, debounce_ms=FAST)
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)
    write(d / "one")
    assert next_changed(client, "dir") == [str(d / "one")]
    write(d / "two")
    assert next_changed(client, "dir") == [str(d / "two")]


# --------------------------------------------------------------------------------------
# unwatch


def test_nothing_arrives_after_unwatch(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)
    write(d / "before")
    expect_changes(client, "dir", [d / "before"])

    unwatch(client, "dir")
    write(d / "after")
    os.unlink(d / "before")
    client.expect_silence(SILENCE)
    client.sync()


def test_unwatch_with_a_batch_pending_drops_it(agentd_factory, tmp_path):
    """Changes inside the window when fs/unwatch is answered are never delivered after it."""
    _, client = start_stdio(agentd_factory, debounce_ms=None)  # 200 ms: the batch is pending
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)
    for i in range(20):
        write(d / f"f{i}")
    msg = client.request("fs/unwatch", {"watchId": "dir"})  # notifications before it are fine
    assert msg["result"] == {}, msg
    write(d / "later")
    client.expect_silence(SILENCE)


def test_unwatch_keeps_the_other_watches(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "one", d)
    watch(client, "two", d)
    unwatch(client, "one")
    write(d / "x")
    assert next_changed(client, "two") == [str(d / "x")]
    client.expect_silence(SILENCE)


# --------------------------------------------------------------------------------------
# connections


def test_each_connection_gets_its_own_notifications(agentd_factory, tmp_path):
    _, (alpha, beta) = start_ws(agentd_factory, clients=2)
    d = tmp_path / "dir"
    d.mkdir()
    watch(alpha, "alpha", d)
    watch(beta, "beta", d)

    write(d / "shared")
    assert next_changed(alpha, "alpha") == [str(d / "shared")]
    assert next_changed(beta, "beta") == [str(d / "shared")]
    alpha.expect_silence(0.2)
    beta.expect_silence(0.2)

    # beta cannot unwatch alpha's watch: a no-op answered with {}.
    assert beta.call("fs/unwatch", {"watchId": "alpha"}) == {}
    write(d / "second")
    assert next_changed(alpha, "alpha") == [str(d / "second")]
    assert next_changed(beta, "beta") == [str(d / "second")]

    # Closing alpha leaves beta working.
    alpha.close()
    time.sleep(0.1)
    write(d / "third")
    assert next_changed(beta, "beta") == [str(d / "third")]
    beta.expect_silence(SILENCE)


def test_the_same_watch_id_on_two_connections(agentd_factory, tmp_path):
    _, (alpha, beta) = start_ws(agentd_factory, clients=2)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    watch(alpha, "same", a)
    watch(beta, "same", b)  # ids are scoped to their connection: not a duplicate
    write(b / "only-b")
    assert next_changed(beta, "same") == [str(b / "only-b")]
    alpha.expect_silence(SILENCE)
    unwatch(alpha, "same")
    write(b / "again")
    assert next_changed(beta, "same") == [str(b / "again")]


# --------------------------------------------------------------------------------------
# kernel resources


def test_a_thousand_watches_are_released_on_disconnect(agentd_factory, tmp_path):
    proc, (client,) = start_ws(agentd_factory)
    pid = watchd_pid(client)
    assert inotify_fds(pid), f"watchd (pid {pid}) has no inotify instance"
    baseline = inotify_watch_count(pid)

    root = tmp_path / "many"
    root.mkdir()
    dirs = []
    for i in range(1000):
        dirs.append(root / f"d{i:04d}")
        dirs[-1].mkdir()
    # Pipelined: all requests out, then all answers in (in order, one connection).
    ids = []
    for i, d in enumerate(dirs):
        ids.append(f"req-{i}")
        client.send({"id": ids[-1], "method": "fs/watch", "params": {"watchId": f"w{i}", "path": str(d)}})
    for i, rid in enumerate(ids):
        msg = client.wait_response(rid, timeout=10)
        assert msg.get("result") == {"path": str(dirs[i])}, msg
    held = inotify_watch_count(pid)
    assert held >= baseline + 1000, f"watchd holds {held} inotify watches for 1000 watched directories"

    # They work: one of them reports.
    write(dirs[567] / "x")
    assert next_changed(client, "w567") == [str(dirs[567] / "x")]

    client.close()
    wait_until(lambda: inotify_watch_count(pid) == baseline, 5.0,
               what=f"watchd to release its inotify watches (holds {inotify_watch_count(pid)})")
    # watchd itself is still the same process, still serving.
    other = proc.ws_client()
    other.initialize()
    assert watchd_pid(other) == pid


def test_one_inotify_watch_per_path_however_many_watch_ids(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    pid = watchd_pid(client)
    d = tmp_path / "dir"
    d.mkdir()
    baseline = inotify_watch_count(pid)
    assert watches_on_inode(pid, d) == 0

    watch(client, "first", d)
    one = inotify_watch_count(pid)
    assert one >= baseline + 1
    assert watches_on_inode(pid, d) == 1, inotify_watch_lines(pid)

    watch(client, "second", d)
    assert watches_on_inode(pid, d) == 1, f"a second watch of the same path added an inotify watch: {inotify_watch_lines(pid)}"
    assert inotify_watch_count(pid) == one

    unwatch(client, "first")
    assert watches_on_inode(pid, d) == 1, "unwatching one subscriber released the shared inotify watch"
    write(d / "still")
    assert next_changed(client, "second") == [str(d / "still")]

    unwatch(client, "second")
    wait_until(lambda: watches_on_inode(pid, d) == 0, 2.0, what="the last unwatch to release the inotify watch")
    assert inotify_watch_count(pid) == baseline


def test_watchd_stops_promptly_on_sigterm_after_serving_watches(agentd_factory, tmp_path):
    """agentd's SIGTERM reaches watchd; with watches held it must still exit by itself.

    agentd SIGKILLs a helper that has not stopped within 3 s and still exits 0, so the
    harness's teardown does not notice a hang: look for it here. A hang was intermittent
    (about one shutdown in five), hence several rounds, stopping at the first one.
    """
    for round_ in range(8):
        proc = agentd_factory(config=FAST_CONFIG)
        client = proc.stdio
        pid = watchd_pid(client)
        d = tmp_path / f"dir{round_}"
        d.mkdir()
        watch(client, "w", d)
        write(d / "x")
        expect_changes(client, "w", [d / "x"])
        started = time.monotonic()
        assert proc.stop() == 0
        log = proc.stderr()
        assert "watchd did not stop" not in log, (
            f"round {round_}: watchd (pid {pid}) hung after SIGTERM and was SIGKILLed "
            f"(agentd took {time.monotonic() - started:.1f} s to stop)"
        )
        assert f"watchd[{pid}] info: stopped" in log, f"round {round_}: watchd did not log its stop"


# --------------------------------------------------------------------------------------
# kernel limits (root: they change /proc/sys/fs/inotify for a moment)


@needs_root
def test_queue_overflow_reports_the_watched_root(agentd_factory, tmp_path):
    knob = "/proc/sys/fs/inotify/max_queued_events"
    saved = Path(knob).read_text().strip()
    Path(knob).write_text("16\n")
    try:
        proc, client = start_stdio(agentd_factory, debounce_ms=500)
        pid = watchd_pid(client)
        # The queue limit is taken when watchd opens its inotify instance (at start-up).
        wait_until(lambda: inotify_fds(pid), 2.0, what="watchd's inotify instance")
    finally:
        Path(knob).write_text(f"{saved}\n")

    d = tmp_path / "dir"
    d.mkdir()
    watch(client, "dir", d)
    # Stop watchd while the burst lands so that the 16-event queue surely overflows, then
    # let it read: IN_Q_OVERFLOW must turn into a notification naming the root.
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(200):
            fd = os.open(d / f"f{i:03d}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"x")
            os.close(fd)
    finally:
        os.kill(pid, signal.SIGCONT)
    seen = collect(client, "dir", [d], timeout=DEADLINE)
    assert str(d) in seen
    assert all(p == str(d) or p.startswith(str(d) + "/") for p in seen), seen
    assert "overflow" in proc.stderr().lower(), "the queue overflow was not logged"

    # The watch goes on working after the overflow.
    drain_changed(client, 0.8)
    write(d / "after-overflow")
    collect(client, "dir", [d / "after-overflow"])


@needs_root
def test_running_out_of_inotify_watches_is_an_error(agentd_factory, tmp_path):
    _, client = start_stdio(agentd_factory)
    root = tmp_path / "limit"
    root.mkdir()
    dirs = [root / f"d{i:03d}" for i in range(200)]
    for d in dirs:
        d.mkdir()

    failed = None
    with sysctl("/proc/sys/fs/inotify/max_user_watches", 64):
        for i, d in enumerate(dirs):
            msg = client.request("fs/watch", {"watchId": f"w{i}", "path": str(d)})
            if "error" in msg:
                failed = (i, msg)
                break
    assert failed is not None, "200 watches succeeded with max_user_watches = 64: the limit was ignored"
    i, msg = failed
    assert msg["error"]["code"] in (INTERNAL_ERROR, INVALID_REQUEST), msg
    assert "max_user_watches" in msg["error"]["message"], msg

    # The refused watch id was not kept; with the limit back, it works.
    watch(client, f"w{i}", dirs[i])
    write(dirs[i] / "x")
    assert next_changed(client, f"w{i}") == [str(dirs[i] / "x")]
