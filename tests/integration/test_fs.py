# SPDX-License-Identifier: MIT
"""fs/readFile, fs/writeFile, fs/createDirectory, fs/getMetadata, fs/readDirectory, fs/remove and
fs/copy through real clients (agentd checks the JSON, execd does the work).

Reference: ../shared/reference/codex-behaviour.md section 4.2; the error codes and messages are
those codex 0.169.0's app-server answered for the same requests (os errors -32603 "<strerror> (os
error N)", refusals -32600, serde's "Invalid request: ..." for malformed params). Where agentd
differs on purpose it says so: files over one envelope (8 MiB) are refused, and copying a file onto
itself leaves it intact (the reference truncates it).
"""
import base64
import json
import os
import random
import stat
import time

import jsonschema
import pytest

from conftest import INTERNAL_ERROR, INVALID_REQUEST, PROTOCOL_DIR

RELATIVE_MESSAGE = "Invalid request: AbsolutePathBuf deserialized without a base path"
ENOENT = "No such file or directory (os error 2)"
ENOTDIR = "Not a directory (os error 20)"
EEXIST = "File exists (os error 17)"
EISDIR = "Is a directory (os error 21)"
ENOTEMPTY = "Directory not empty (os error 39)"
NEEDS_RECURSIVE = "fs/copy requires recursive: true when sourcePath is a directory"
INTO_ITSELF = "fs/copy cannot copy a directory to itself or one of its descendants"
NOT_COPYABLE = "fs/copy only supports regular files, directories, and symlinks"

# The content limits of one envelope (agentd-ipc(7), "fs.*").
ENVELOPE_MAX_BODY_BYTES = 8 * 1024 * 1024
READ_MAX_BYTES = ENVELOPE_MAX_BODY_BYTES - 64
WRITE_MAX_BYTES = ENVELOPE_MAX_BODY_BYTES - 4096 - 64

RESPONSES = {
    "fs/readFile": "FsReadFileResponse",
    "fs/writeFile": "FsWriteFileResponse",
    "fs/createDirectory": "FsCreateDirectoryResponse",
    "fs/getMetadata": "FsGetMetadataResponse",
    "fs/readDirectory": "FsReadDirectoryResponse",
    "fs/remove": "FsRemoveResponse",
    "fs/copy": "FsCopyResponse",
}
_validators = {}


def check_result(method, result):
    """The result against the method's response schema (the harness checks only the envelope)."""
    if method not in _validators:
        schema = json.loads((PROTOCOL_DIR / "v2" / f"{RESPONSES[method]}.json").read_text())
        _validators[method] = jsonschema.Draft7Validator(schema)
    errors = [e.message for e in _validators[method].iter_errors(result)]
    assert not errors, f"{method} result {result!r} violates its schema: {errors}"


def call(client, method, params, **kw):
    result = client.call(method, params, **kw)
    check_result(method, result)
    return result


def error(client, method, params, **kw):
    """The error answer's (code, message); fails when the request succeeded."""
    msg = client.request(method, params, **kw)
    assert "error" in msg, f"{method} {params} succeeded: {msg}"
    assert set(msg["error"]) == {"code", "message"}, msg
    return msg["error"]["code"], msg["error"]["message"]


def b64(data):
    return base64.b64encode(data).decode()


def read(client, path, **kw):
    return base64.b64decode(call(client, "fs/readFile", {"path": str(path)}, **kw)["dataBase64"], validate=True)


def write(client, path, data, **kw):
    assert call(client, "fs/writeFile", {"path": str(path), "dataBase64": b64(data)}, **kw) == {}


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


@pytest.fixture
def client(stdio_agentd):
    return stdio_agentd.stdio


# --------------------------------------------------------------------------------------
# fs/readFile


def test_read_file_is_byte_exact(client, tmp_path):
    every_byte = bytes(range(256)) * 4
    noise = random_bytes(300_001, 1)  # not a multiple of 3: padding
    (tmp_path / "bytes").write_bytes(every_byte)
    (tmp_path / "noise").write_bytes(noise)
    (tmp_path / "empty").write_bytes(b"")
    assert read(client, tmp_path / "bytes") == every_byte
    assert read(client, tmp_path / "noise") == noise
    assert call(client, "fs/readFile", {"path": str(tmp_path / "empty")}) == {"dataBase64": ""}
    assert call(client, "fs/readFile", {"path": str(tmp_path / "bytes")})["dataBase64"] == b64(every_byte)


def test_read_file_follows_symlinks_and_normalises_the_path(client, tmp_path):
    (tmp_path / "f").write_bytes(b"hello")
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "f")
    assert call(client, "fs/readFile", {"path": str(tmp_path / "link")}) == {"dataBase64": "aGVsbG8="}
    assert read(client, f"{tmp_path}/d/../f") == b"hello"
    assert read(client, f"{tmp_path}//./f") == b"hello"


def test_read_file_errors(client, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    R = "fs/readFile"
    assert error(client, R, {"path": str(tmp_path / "missing")}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, R, {"path": str(tmp_path / "dangling")}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, R, {"path": str(tmp_path / "f" / "x")}) == (INTERNAL_ERROR, ENOTDIR)
    # The reference names the path as normalised; a FIFO is refused without waiting for a writer.
    assert error(client, R, {"path": f"{tmp_path}/dir/./"}) == (INVALID_REQUEST, f"path `{tmp_path}/dir` is not a file")
    assert error(client, R, {"path": str(tmp_path / "fifo")}) == (INVALID_REQUEST, f"path `{tmp_path}/fifo` is not a file")
    assert error(client, R, {"path": "/dev/null"}) == (INVALID_REQUEST, "path `/dev/null` is not a file")


def test_read_file_larger_than_one_envelope_is_refused(client, tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(READ_MAX_BYTES + 1)
    code, message = error(client, "fs/readFile", {"path": str(big)})
    assert code == INVALID_REQUEST
    assert message == (f"path `{big}` is too large to read: {READ_MAX_BYTES + 1} bytes, "
                       f"the limit is {READ_MAX_BYTES} bytes")
    # Exactly the limit still comes back whole.
    data = random_bytes(READ_MAX_BYTES, 2)
    big.write_bytes(data)
    assert read(client, big, timeout=30) == data


# --------------------------------------------------------------------------------------
# fs/writeFile


def test_write_file_is_byte_exact_and_truncates(client, tmp_path):
    data = random_bytes(200_002, 3)
    target = tmp_path / "w.bin"
    write(client, target, data)
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~current_umask()
    write(client, target, b"short")
    assert target.read_bytes() == b"short"
    assert call(client, "fs/writeFile", {"path": str(target), "dataBase64": ""}) == {}
    assert target.read_bytes() == b""
    # An existing file keeps its mode; a symlink is written through.
    target.chmod(0o600)
    (tmp_path / "link").symlink_to(target)
    write(client, tmp_path / "link", b"through")
    assert (tmp_path / "link").is_symlink()
    assert target.read_bytes() == b"through"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_then_read_round_trip_of_megabytes(client, tmp_path):
    data = random_bytes(5 * 1024 * 1024 + 1, 4)
    write(client, tmp_path / "big", data, timeout=30)
    assert read(client, tmp_path / "big", timeout=30) == data


def test_requests_sent_together_run_in_order(client, tmp_path):
    """writeFile then readFile without waiting: the read sees the write (execd keeps the order)."""
    path = str(tmp_path / "ordered")
    for i in range(20):
        client.send({"id": f"w{i}", "method": "fs/writeFile", "params": {"path": path, "dataBase64": b64(b"%d" % i)}})
        client.send({"id": f"r{i}", "method": "fs/readFile", "params": {"path": path}})
    for i in range(20):
        assert client.wait_response(f"w{i}")["result"] == {}
        assert base64.b64decode(client.wait_response(f"r{i}")["result"]["dataBase64"]) == b"%d" % i


@pytest.mark.parametrize("data, why", [
    ("!!!", "Invalid symbol 33, offset 0."),
    ("aGk", "Invalid padding"),
    ("a", "Invalid input length: 1"),
    ("aGl=", "Invalid last symbol 108, offset 2."),
    ("aGk=\n", "Invalid symbol 10, offset 4."),
    ("aGVsbG8==", "Invalid symbol 61, offset 7."),
    ("AAAA-_AA", "Invalid symbol 45, offset 4."),
])
def test_write_file_bad_base64_is_refused_as_the_reference_words_it(client, tmp_path, data, why):
    code, message = error(client, "fs/writeFile", {"path": str(tmp_path / "b"), "dataBase64": data})
    assert (code, message) == (INVALID_REQUEST, f"fs/writeFile requires valid base64 dataBase64: {why}")
    assert not (tmp_path / "b").exists()


def test_write_file_errors(client, tmp_path):
    (tmp_path / "dir").mkdir()
    W = "fs/writeFile"
    assert error(client, W, {"path": str(tmp_path / "nope" / "w"), "dataBase64": "aGk="}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, W, {"path": str(tmp_path / "dir"), "dataBase64": "aGk="}) == (INTERNAL_ERROR, EISDIR)
    assert error(client, W, {"path": str(tmp_path / "x")}) == (INVALID_REQUEST, "Invalid request: missing field `dataBase64`")
    assert error(client, W, {"path": str(tmp_path / "x"), "dataBase64": 3}) == (
        INVALID_REQUEST, "Invalid request: invalid type: integer `3`, expected a string")


def test_write_file_larger_than_one_envelope_is_refused(client, tmp_path):
    data = b64(bytes(WRITE_MAX_BYTES + 1))
    code, message = error(client, "fs/writeFile", {"path": str(tmp_path / "big"), "dataBase64": data}, timeout=30)
    assert code == INVALID_REQUEST
    assert message == (f"fs/writeFile dataBase64 decodes to {WRITE_MAX_BYTES + 1} bytes, more than the "
                       f"{WRITE_MAX_BYTES} bytes agentd can write in one request")
    assert not (tmp_path / "big").exists()
    write(client, tmp_path / "big", bytes(WRITE_MAX_BYTES), timeout=30)
    assert (tmp_path / "big").stat().st_size == WRITE_MAX_BYTES


# --------------------------------------------------------------------------------------
# fs/createDirectory


def test_create_directory(client, tmp_path):
    C = "fs/createDirectory"
    assert call(client, C, {"path": str(tmp_path / "a" / "b" / "c")}) == {}
    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert call(client, C, {"path": str(tmp_path / "a" / "b" / "c")}) == {}  # existing: fine
    assert call(client, C, {"path": str(tmp_path / "n1" / "n2"), "recursive": None}) == {}
    assert call(client, C, {"path": str(tmp_path / "a" / "single"), "recursive": False}) == {}
    assert (tmp_path / "a" / "single").is_dir()
    (tmp_path / "real").mkdir()
    (tmp_path / "dlink").symlink_to(tmp_path / "real")
    assert call(client, C, {"path": str(tmp_path / "dlink" / "new")}) == {}
    assert (tmp_path / "real" / "new").is_dir()


def test_create_directory_errors(client, tmp_path):
    C = "fs/createDirectory"
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert error(client, C, {"path": str(tmp_path / "d"), "recursive": False}) == (INTERNAL_ERROR, EEXIST)
    assert error(client, C, {"path": str(tmp_path / "x" / "y"), "recursive": False}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, C, {"path": str(tmp_path / "f")}) == (INTERNAL_ERROR, EEXIST)
    assert error(client, C, {"path": str(tmp_path / "f" / "x" / "y")}) == (INTERNAL_ERROR, ENOTDIR)
    assert error(client, C, {"path": str(tmp_path / "dangling")}) == (INTERNAL_ERROR, EEXIST)
    assert error(client, C, {"path": str(tmp_path / "n"), "recursive": "yes"}) == (
        INVALID_REQUEST, 'Invalid request: invalid type: string "yes", expected a boolean')
    assert not (tmp_path / "n").exists()
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------------------
# fs/getMetadata


def metadata(client, path):
    return call(client, "fs/getMetadata", {"path": str(path)})


def test_get_metadata(client, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    (tmp_path / "d").mkdir()
    (tmp_path / "flink").symlink_to(f)
    (tmp_path / "dlink").symlink_to(tmp_path / "d")
    os.mkfifo(tmp_path / "fifo")
    md = metadata(client, f)
    assert list(md) == ["isDirectory", "isFile", "isSymlink", "createdAtMs", "modifiedAtMs"]  # reference order
    assert (md["isDirectory"], md["isFile"], md["isSymlink"]) == (False, True, False)
    assert md["modifiedAtMs"] == f.stat().st_mtime_ns // 1_000_000
    now_ms = time.time() * 1000
    assert md["createdAtMs"] == 0 or abs(md["createdAtMs"] - now_ms) < 60_000  # statx birth time, if any
    md = metadata(client, tmp_path / "d")
    assert (md["isDirectory"], md["isFile"], md["isSymlink"]) == (True, False, False)
    md = metadata(client, tmp_path / "flink")
    assert (md["isDirectory"], md["isFile"], md["isSymlink"]) == (False, True, True)
    assert md["modifiedAtMs"] == f.stat().st_mtime_ns // 1_000_000  # the target's
    md = metadata(client, tmp_path / "dlink")
    assert (md["isDirectory"], md["isFile"], md["isSymlink"]) == (True, False, True)
    md = metadata(client, tmp_path / "fifo")
    assert (md["isDirectory"], md["isFile"], md["isSymlink"]) == (False, False, False)
    md = metadata(client, f"{f}/")  # a trailing slash is normalised away, as the reference does
    assert md["isFile"]
    assert metadata(client, "/")["isDirectory"]


def test_get_metadata_errors(client, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    M = "fs/getMetadata"
    assert error(client, M, {"path": str(tmp_path / "missing")}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, M, {"path": str(tmp_path / "dangling")}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, M, {"path": str(tmp_path / "f" / "x")}) == (INTERNAL_ERROR, ENOTDIR)


# --------------------------------------------------------------------------------------
# fs/readDirectory


def entries(client, path):
    result = call(client, "fs/readDirectory", {"path": str(path)})
    for entry in result["entries"]:
        assert list(entry) == ["fileName", "isDirectory", "isFile"], entry
    return sorted((e["fileName"], e["isDirectory"], e["isFile"]) for e in result["entries"])


def test_read_directory(client, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "sub").mkdir()
    (d / "f").write_bytes(b"x")
    (d / "flink").symlink_to(d / "f")
    (d / "dlink").symlink_to(d / "sub")
    (d / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(d / "fifo")
    with open(os.fsencode(d) + b"/\xff\xfe-raw", "wb") as f:
        f.write(b"x")
    (tmp_path / "empty").mkdir()
    # Symlinks typed by their targets; a dangling one is left out (as the reference does); a
    # name that is not UTF-8 arrives with U+FFFD for each bad byte, as Rust's lossy conversion.
    assert entries(client, d) == [
        ("dlink", True, False),
        ("f", False, True),
        ("fifo", False, False),
        ("flink", False, True),
        ("sub", True, False),
        ("\ufffd\ufffd-raw", False, True),
    ]
    assert entries(client, d / "dlink") == []
    assert entries(client, tmp_path / "empty") == []


def test_read_directory_errors(client, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    D = "fs/readDirectory"
    assert error(client, D, {"path": str(tmp_path / "f")}) == (INTERNAL_ERROR, ENOTDIR)
    assert error(client, D, {"path": str(tmp_path / "missing")}) == (INTERNAL_ERROR, ENOENT)


# --------------------------------------------------------------------------------------
# fs/remove


def remove(client, path, **params):
    assert call(client, "fs/remove", {"path": str(path), **params}) == {}


def test_remove(client, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    remove(client, tmp_path / "f")
    assert not (tmp_path / "f").exists()
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "deep").write_bytes(b"x")
    (tree / "top").write_bytes(b"x")
    remove(client, tree)  # recursive by default
    assert not tree.exists()
    (tmp_path / "empty").mkdir()
    remove(client, tmp_path / "empty", recursive=False)
    assert not (tmp_path / "empty").exists()
    (tmp_path / "plain").write_bytes(b"x")
    remove(client, tmp_path / "plain", recursive=False, force=False)
    # Missing paths are fine by default (force), also under a missing parent.
    remove(client, tmp_path / "missing")
    remove(client, tmp_path / "missing", force=None)
    remove(client, tmp_path / "no" / "such" / "parent")


def test_remove_of_a_symlink_leaves_its_target(client, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_bytes(b"k")
    (tmp_path / "target-file").write_bytes(b"t")
    (tmp_path / "dlink").symlink_to(target)
    (tmp_path / "flink").symlink_to(tmp_path / "target-file")
    remove(client, tmp_path / "dlink")  # recursive by default: still only the link
    assert not os.path.lexists(tmp_path / "dlink")
    assert (target / "keep").read_bytes() == b"k"
    remove(client, tmp_path / "flink", force=False)
    assert not os.path.lexists(tmp_path / "flink")
    assert (tmp_path / "target-file").read_bytes() == b"t"
    # A link inside a removed tree goes with the tree; what it points at stays.
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "out").symlink_to(target)
    remove(client, tmp_path / "tree")
    assert (target / "keep").read_bytes() == b"k"
    # Spelled with a trailing slash, it is still the link that goes.
    (tmp_path / "dlink").symlink_to(target)
    remove(client, f"{tmp_path}/dlink/")
    assert not os.path.lexists(tmp_path / "dlink")
    assert target.is_dir()


def test_remove_errors(client, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"x")
    (tmp_path / "f").write_bytes(b"x")
    X = "fs/remove"
    assert error(client, X, {"path": str(tmp_path / "full"), "recursive": False}) == (INTERNAL_ERROR, ENOTEMPTY)
    assert (tmp_path / "full" / "x").exists()
    assert error(client, X, {"path": str(tmp_path / "missing"), "force": False}) == (INTERNAL_ERROR, ENOENT)
    assert error(client, X, {"path": str(tmp_path / "f" / "x")}) == (INTERNAL_ERROR, ENOTDIR)  # force or not
    assert error(client, X, {"path": str(tmp_path / "f"), "force": 1}) == (
        INVALID_REQUEST, "Invalid request: invalid type: integer `1`, expected a boolean")
    assert (tmp_path / "f").exists()


# --------------------------------------------------------------------------------------
# fs/copy


def copy(client, source, destination, **params):
    assert call(client, "fs/copy", {"sourcePath": str(source), "destinationPath": str(destination), **params}) == {}


def test_copy_file_is_byte_exact(client, tmp_path):
    data = random_bytes(150_001, 5)
    src = tmp_path / "src"
    src.write_bytes(data)
    src.chmod(0o751)
    copy(client, src, tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "dst").stat().st_mode) == 0o751
    (tmp_path / "existing").write_bytes(b"a much longer old content")
    copy(client, src, tmp_path / "existing", recursive=True)  # ignored for files
    assert (tmp_path / "existing").read_bytes() == data
    # Onto itself (also through a symlink): unchanged. The reference empties the file here.
    (tmp_path / "src-link").symlink_to(src)
    copy(client, src, src)
    copy(client, src, tmp_path / "src-link")
    assert src.read_bytes() == data


def test_copy_directory_tree(client, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a").write_bytes(b"A")
    (src / "sub" / "deeper" / "b").write_bytes(bytes(range(256)))
    (src / "rel-link").symlink_to("a")
    os.mkfifo(src / "fifo")
    copy(client, src, tmp_path / "dst", recursive=True)
    dst = tmp_path / "dst"
    assert (dst / "a").read_bytes() == b"A"
    assert (dst / "sub" / "deeper" / "b").read_bytes() == bytes(range(256))
    assert (dst / "rel-link").is_symlink() and os.readlink(dst / "rel-link") == "a"
    assert not os.path.lexists(dst / "fifo")  # special files inside a tree are skipped
    # Onto an existing directory: merged into it, not nested below it.
    merge = tmp_path / "merge"
    merge.mkdir()
    (merge / "a").write_bytes(b"OLD")
    (merge / "keep").write_bytes(b"K")
    copy(client, src, merge, recursive=True)
    assert (merge / "a").read_bytes() == b"A"
    assert (merge / "keep").read_bytes() == b"K"
    assert not (merge / "src").exists()
    # A sibling whose name starts with the source's name is no descendant.
    copy(client, src, tmp_path / "srcx", recursive=True)
    assert (tmp_path / "srcx" / "a").read_bytes() == b"A"


def test_copy_symlink_copies_the_link(client, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to("relative/target")
    (tmp_path / "dlink").symlink_to(tmp_path / "d")
    copy(client, tmp_path / "link", tmp_path / "copy")
    assert (tmp_path / "copy").is_symlink() and os.readlink(tmp_path / "copy") == "relative/target"
    copy(client, tmp_path / "dlink", tmp_path / "dlink2")  # a link to a directory needs no recursive
    assert (tmp_path / "dlink2").is_symlink() and os.readlink(tmp_path / "dlink2") == str(tmp_path / "d")
    assert error(client, "fs/copy", {"sourcePath": str(tmp_path / "link"),
                                     "destinationPath": str(tmp_path / "copy")}) == (INTERNAL_ERROR, EEXIST)


def test_copy_refusals(client, tmp_path):
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "f").write_bytes(b"x")
    (tmp_path / "dlink").symlink_to(d)
    (tmp_path / "plain").write_bytes(b"p")
    os.mkfifo(tmp_path / "fifo")

    def refused(source, destination, **params):
        return error(client, "fs/copy", {"sourcePath": str(source), "destinationPath": str(destination), **params})

    assert refused(d, tmp_path / "dir2") == (INVALID_REQUEST, NEEDS_RECURSIVE)
    assert refused(d, tmp_path / "dir2", recursive=False) == (INVALID_REQUEST, NEEDS_RECURSIVE)
    assert not (tmp_path / "dir2").exists()
    for destination in (d, d / "sub" / "inner", f"{d}/sub/..", tmp_path / "dlink" / "sub" / "y",
                        tmp_path / "dlink", d / "f"):
        assert refused(d, destination, recursive=True) == (INVALID_REQUEST, INTO_ITSELF), destination
    assert not (d / "sub" / "inner").exists()
    assert refused(tmp_path / "fifo", tmp_path / "fifo2") == (INVALID_REQUEST, NOT_COPYABLE)
    assert refused("/dev/null", tmp_path / "null2") == (INVALID_REQUEST, NOT_COPYABLE)
    assert refused(tmp_path / "missing", tmp_path / "m2") == (INTERNAL_ERROR, ENOENT)
    assert refused(d, tmp_path / "plain", recursive=True) == (INTERNAL_ERROR, EEXIST)
    assert refused(tmp_path / "plain", d) == (INTERNAL_ERROR, EISDIR)
    assert refused(tmp_path / "plain", tmp_path / "nope" / "x") == (INTERNAL_ERROR, ENOENT)
    assert refused(d, tmp_path / "n", recursive=None) == (
        INVALID_REQUEST, "Invalid request: invalid type: null, expected a boolean")
    assert error(client, "fs/copy", {"sourcePath": str(tmp_path / "plain")}) == (
        INVALID_REQUEST, "Invalid request: missing field `destinationPath`")
    assert (tmp_path / "plain").read_bytes() == b"p"


# --------------------------------------------------------------------------------------
# params, every method


PATH_PARAMS = {
    "fs/readFile": lambda p: {"path": p},
    "fs/writeFile": lambda p: {"path": p, "dataBase64": "aGk="},
    "fs/createDirectory": lambda p: {"path": p},
    "fs/getMetadata": lambda p: {"path": p},
    "fs/readDirectory": lambda p: {"path": p},
    "fs/remove": lambda p: {"path": p},
    "fs/copy": lambda p: {"sourcePath": p, "destinationPath": "/tmp/x"},
}


@pytest.mark.parametrize("method", sorted(PATH_PARAMS))
def test_relative_path_is_refused_by_every_method(client, tmp_path, method):
    for path in ("rel/x", "x", ".", "./x", ""):
        assert error(client, method, PATH_PARAMS[method](path)) == (INVALID_REQUEST, RELATIVE_MESSAGE), path
    if method == "fs/copy":
        params = {"sourcePath": str(tmp_path), "destinationPath": "dest"}
        assert error(client, method, params) == (INVALID_REQUEST, RELATIVE_MESSAGE)


@pytest.mark.parametrize("method", sorted(PATH_PARAMS))
def test_malformed_params_are_worded_as_serde_does(client, method):
    key = "sourcePath" if method == "fs/copy" else "path"
    assert error(client, method, {}) == (INVALID_REQUEST, f"Invalid request: missing field `{key}`")
    params = PATH_PARAMS[method]("/tmp")
    for value, unexpected in ((5, "integer `5`"), (None, "null"), (True, "boolean `true`"),
                              ([], "sequence"), ({}, "map"), (1.5, "floating point `1.5`")):
        params[key] = value
        assert error(client, method, params) == (
            INVALID_REQUEST, f"Invalid request: invalid type: {unexpected}, expected path string")


def test_unknown_members_are_ignored(client):
    md = call(client, "fs/getMetadata", {"path": "/", "bogus": 1, "sandbox": {"x": []}})
    assert md["isDirectory"]


def test_fs_over_websocket(agentd_factory, tmp_path):
    """The same answers over the websocket transport (one round of each method)."""
    proc = agentd_factory(["ws://127.0.0.1:0"])
    ws = proc.ws_client()
    ws.initialize()
    data = random_bytes(70_000, 6)
    write(ws, tmp_path / "f", data)
    assert read(ws, tmp_path / "f") == data
    assert call(ws, "fs/createDirectory", {"path": str(tmp_path / "d")}) == {}
    assert metadata(ws, tmp_path / "d")["isDirectory"]
    copy(ws, tmp_path / "f", tmp_path / "d" / "g")
    assert entries(ws, tmp_path / "d") == [("g", False, True)]
    remove(ws, tmp_path / "d")
    assert not (tmp_path / "d").exists()
    ws.assert_conforming()
