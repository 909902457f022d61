"""tests/python/test_tgraph_files.py: the Python reader of tgraph's files
(scripts/python/tgraph_files.py) against files the real tgraph writes:
tg_dump() of every value type and dtype (the dump_values program) and
`tgraph run --output`. Malformed files must raise TgraphFileError naming
the file and the offset, never another exception.

Environment: TGRAPH_BIN (the tgraph program), TG_DUMP_VALUES (the
dump_values program), TG_SOURCE_ROOT (for scripts/python). Prints
"python: N passed, M failed" and exits 1 when any failed.
"""

import math
import mmap
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.environ["TG_SOURCE_ROOT"], "scripts",
                                "python"))
import tgraph_files as tf  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def same(a, b, where="value"):
    """Exact equality: types, dtypes, shapes and bits (NaN payloads,
    -0.0), dict key order."""
    assert type(a) is type(b), "%s: %s is not %s" % (where, type(a).__name__,
                                                    type(b).__name__)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, "%s: dtype %s, not %s" % (where, a.dtype,
                                                            b.dtype)
        assert a.shape == b.shape, "%s: shape %s, not %s" % (where, a.shape,
                                                            b.shape)
        assert a.tobytes() == b.tobytes(), "%s: data differs" % where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), \
            "%s: %r is not %r" % (where, a, b)
    elif isinstance(a, list):
        assert len(a) == len(b), "%s: %d items, not %d" % (where, len(a),
                                                           len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, "%s[%d]" % (where, i))
    elif isinstance(a, dict):
        assert list(a) == list(b), "%s: keys %r, not %r" % (where, list(a),
                                                           list(b))
        for k in a:
            same(a[k], b[k], "%s[%r]" % (where, k))
    else:
        assert a == b, "%s: %r is not %r" % (where, a, b)


def mapped(arr):
    """True when arr's memory belongs to an mmap.mmap (zero copy)."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


I64_MIN, I64_MAX = -2**63, 2**63 - 1


def pattern_bytes(n):
    return bytes((i * 7) & 0xFF for i in range(n))


def every_dtype():
    def a(dt, items):
        return np.array(items, dtype=dt).reshape(2, 3)
    def ints(dt):
        i = np.iinfo(dt)
        return a(dt, [i.min, i.max, 0, 1, -1, 42] if i.min < 0
                 else [0, i.max, 1, 2, 3, 42])
    out = {"bool": a(np.bool_, [1, 0, 1, 1, 0, 0])}
    for name in ("i8", "i16", "i32", "i64"):
        out[name] = ints(np.dtype("<i%d" % (int(name[1:]) // 8)))
    for name in ("u8", "u16", "u32", "u64"):
        out[name] = ints(np.dtype("<u%d" % (int(name[1:]) // 8)))
    out["f32"] = a("<f4", [0.5, -1.25, np.inf, -np.inf, np.nan, -0.0])
    out["f64"] = a("<f8", [0.1, -1e300, np.inf, -np.inf, np.nan, -0.0])
    # The C side's NAN is the default quiet NaN, as numpy's.
    return out


def nested_map():
    return {"z": 1, "a": ["x", None], "": False, "nul\0key": True,
            "\u00e9t\u00e9": -2.0, "inner": {"deep": [[], {}]}}


def ramp(n):
    return np.arange(n, dtype="<f8") * 0.5


EXPECTED = {
    "null": None,
    "true": True,
    "int": I64_MIN,
    "float": 0.1,
    "str": "h\u00e9llo\0w\u00f6rld \U0001F600",
    "scalars": [None, False, True, 0, -1, I64_MIN, I64_MAX, 1.5, -0.0,
                math.inf, -math.inf, math.nan, 5e-324, "", "\u20ac uro",
                b"", pattern_bytes(300)],
    "int_list": [1, -2, I64_MAX, I64_MIN, 0],
    "empty_list": [],
    "empty_map": {},
    "map": nested_map(),
    "bytes_big": pattern_bytes(10000),
    "dtypes": every_dtype(),
    "shapes": [np.zeros((0, 3), dtype="<i4"), np.array(2.5, dtype="<f8"),
               np.zeros((2, 0, 4), dtype="<u2")],
    "big": ramp(1 << 21),
    "compressed": [nested_map(), every_dtype(), ramp(100000)],
    "deep": None,  # 512 lists deep (the format's limit) around 1
}
for _ in range(512):
    EXPECTED["deep"] = [EXPECTED["deep"] if EXPECTED["deep"] is not None
                        else 1]

work = tempfile.mkdtemp(prefix="tgraph-python-")
dumped = os.path.join(work, "dumped")
os.mkdir(dumped)
subprocess.run([os.environ["TG_DUMP_VALUES"], dumped], check=True)


def tgraph(*args, cwd=work):
    env = dict(os.environ, TGRAPH_CACHE_DIR=os.path.join(work, "cache"))
    return subprocess.run([os.environ["TGRAPH_BIN"], *args], cwd=cwd,
                          env=env, capture_output=True, text=True)


def raises(fn, *must_say):
    try:
        fn()
    except tf.TgraphFileError as e:
        for s in must_say:
            assert s in str(e), "%r does not say %r" % (str(e), s)
        return e
    raise AssertionError("no TgraphFileError")


def corrupt(name, data):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def original(name):
    with open(os.path.join(dumped, name + ".tgv"), "rb") as f:
        return f.read()


# ---- tg_dump files: every type and dtype, read exactly ----

def case(name):
    def check():
        got = tf.load(os.path.join(dumped, name + ".tgv"))
        same(got, EXPECTED[name], name)
        # Read into memory instead of mapped: the same value.
        same(tf.load(os.path.join(dumped, name + ".tgv"), mmap_arrays=False),
             EXPECTED[name], name)
    check.__name__ = "dump_" + name
    return check


for _name in EXPECTED:
    TESTS.append(case(_name))


@test
def large_array_is_a_view_of_the_file_mapping():
    a = tf.load(os.path.join(dumped, "big.tgv"))
    assert mapped(a), "the array is not backed by an mmap"
    assert not a.flags.writeable
    assert a.ctypes.data % 64 == 0, "array data is not 64-byte aligned"
    # Two loads are two mappings; one load's arrays share its mapping.
    d = tf.load(os.path.join(dumped, "dtypes.tgv"))
    assert all(mapped(v) for v in d.values())
    assert not np.shares_memory(a, tf.load(os.path.join(dumped, "big.tgv")))
    copied = tf.load(os.path.join(dumped, "big.tgv"), mmap_arrays=False)
    assert not mapped(copied)


@test
def compressed_file_needs_zstandard():
    path = os.path.join(dumped, "compressed.tgv")
    with open(path, "rb") as f:
        assert struct.unpack_from("<H", f.read(8), 6)[0] & 1, \
            "dump_values did not compress"
    saved, tf.zstandard = tf.zstandard, None
    try:
        raises(lambda: tf.load(path), path, "zstd-compressed",
               "python3-zstandard")
    finally:
        tf.zstandard = saved
    assert tf.zstandard is not None, "python3-zstandard is not installed"
    same(tf.load(path), EXPECTED["compressed"])


# ---- tgraph run --output ----

GRAPH = r"""{"tgraph": 1, "plugins": ["numeric"],
 "tasks": {
  "text": {"fn": "sh", "args": [{"cmd": "printf 'caf\\303\\251\\n'", "text": true}]},
  "raw": {"fn": "sh", "args": ["printf 'a\\377b'"]},
  "ints": {"fn": "range", "args": [3]},
  "parsed": {"fn": "json", "args": ["{\"b\": [1.5, null, true], \"a\": \"x\"}"]},
  "points": {"fn": "num.points", "args": [7, 500, 300]},
  "small": {"fn": "num.points", "args": [7, 2, 2]},
  "dir/pi": {"fn": "mul", "args": [2, 1.5]}
 },
 "outputs": ["text", "raw", "ints", "parsed", "points", "small", "dir/pi"]}
"""


@test
def run_output_lists_files_and_small_values():
    with open(os.path.join(work, "g.json"), "w") as f:
        f.write(GRAPH)
    r = tgraph("run", "-q", "--no-cache", "--output", "out", "g.json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    lines = [__import__("json").loads(l) for l in r.stdout.splitlines()]
    keys = [l["key"] for l in lines]
    assert keys == ["text", "raw", "ints", "parsed", "points", "small",
                    "dir/pi"], keys
    by = {l["key"]: l for l in lines}
    assert by["dir/pi"]["file"] == "out/dir_pi.tgv"
    for l in lines:
        assert l["bytes"] == os.path.getsize(os.path.join(work, l["file"]))
    assert by["points"]["type"] == "ndarray f64 [500, 300]"
    assert "value" not in by["points"], "a 1.2 MB array was printed"
    assert by["text"] == {"key": "text", "file": "out/text.tgv", "bytes": 128,
                          "type": "str of 6 bytes", "value": "caf\u00e9\n"}
    assert by["raw"]["value"] == {"$bytes": "Yf9i"}
    assert by["ints"]["value"] == [0, 1, 2]
    assert by["dir/pi"]["value"] == 3.0
    assert by["small"]["value"]["$ndarray"]["shape"] == [2, 2]
    got = tf.load_listing(r.stdout.splitlines(), base=work)
    assert list(got) == keys
    same(got["text"], "caf\u00e9\n")
    same(got["raw"], b"a\xffb")
    same(got["ints"], [0, 1, 2])
    same(got["parsed"], {"b": [1.5, None, True], "a": "x"})
    same(got["dir/pi"], 3.0)
    assert got["points"].shape == (500, 300) and mapped(got["points"])
    assert got["points"].dtype == np.dtype("<f8")
    assert 0.0 <= got["points"].min() and got["points"].max() < 1.0
    # The listing's inline JSON and the file agree.
    flat = by["small"]["value"]["$ndarray"]["data"]
    assert got["small"].ravel().tolist() == flat
    # Without --output: everything as one JSON object, as before.
    r2 = tgraph("run", "-q", "--no-cache", "g.json")
    assert r2.returncode == 0, r2.stderr
    whole = __import__("json").loads(r2.stdout)
    assert list(whole) == keys
    assert whole["points"]["$ndarray"]["shape"] == [500, 300]
    assert whole["text"] == "caf\u00e9\n"
    # load_dir keys the files by name.
    d = tf.load_dir(os.path.join(work, "out"))
    assert sorted(d) == sorted(["text", "raw", "ints", "parsed", "points",
                                "small", "dir_pi"])
    same(d["dir_pi"], 3.0)


@test
def sh_text_with_bad_utf8_fails_the_task():
    with open(os.path.join(work, "bad.json"), "w") as f:
        f.write(r"""{"tgraph": 1, "tasks": {"t": {"fn": "sh", "args":
            [{"cmd": "printf 'ok\\377'", "text": true}]}}}""")
    r = tgraph("run", "-q", "--no-cache", "--output", "bad", "bad.json")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert "sh: stdout is not valid UTF-8 at byte 2 (of 3)" in r.stderr, \
        r.stderr


# ---- malformed files ----

@test
def truncated_files_say_where():
    good = original("map")
    p = corrupt("short.tgv", good[:10])
    raises(lambda: tf.load(p), p, "shorter than the 64-byte header",
           "at offset 10")
    p = corrupt("cut.tgv", good[:-1])
    raises(lambda: tf.load(p), p, "truncated", "at offset %d"
           % (len(good) - 1))
    p = corrupt("empty.tgv", b"")
    raises(lambda: tf.load(p), p, "at offset 0")
    # Every cut of a file with arrays, mapped or read: an error, never
    # another exception.
    good = original("shapes")
    for n in range(len(good)):
        p = corrupt("cut.tgv", good[:n])
        raises(lambda: tf.load(p), p)
        raises(lambda: tf.load(p, mmap_arrays=False), p)


@test
def wrong_magic_and_version():
    good = bytearray(original("int"))
    bad = bytearray(good)
    bad[0:4] = b"PK\x03\x04"
    p = corrupt("zip.tgv", bytes(bad))
    raises(lambda: tf.load(p), p, "not a tgraph file", "at offset 0")
    bad = bytearray(good)
    bad[4] = 2
    p = corrupt("v2.tgv", bytes(bad))
    raises(lambda: tf.load(p), p, "format version 2", "at offset 4")


@test
def damaged_bytes_fail_the_checksums():
    assert tf.xxhash is not None, "python3-xxhash is not installed"
    good = original("big")
    for at, says in ((20, "header checksum"), (64, "meta section checksum"),
                     (len(good) - 5, None)):
        bad = bytearray(good)
        bad[at] ^= 0x40
        p = corrupt("flip.tgv", bytes(bad))
        if says is None:  # payload: checked on request, as tg_load does
            raises(lambda: tf.load(p, verify=True), p, "payload checksum")
            raises(lambda: tf.load(p, mmap_arrays=False), p,
                   "payload checksum")
        else:
            raises(lambda: tf.load(p), p, says)


@test
def structure_is_checked_without_checksums():
    saved, tf.xxhash = tf.xxhash, None
    try:
        good = original("map")
        bad = bytearray(good)
        bad[64] = 0x0C  # the map's tag
        p = corrupt("tag.tgv", bytes(bad))
        raises(lambda: tf.load(p), p, "unknown tag 0x0c", "at offset 64")
        # A bad dtype number in an array's header.
        good = original("big")
        bad = bytearray(good)
        assert bad[64] == 0x08
        bad[65] = 99
        p = corrupt("dtype.tgv", bytes(bad))
        raises(lambda: tf.load(p), p, "unknown dtype 99", "at offset 65")
        # Random damage anywhere: a value or TgraphFileError, nothing else.
        rnd = random.Random(7)
        for src in ("scalars", "map", "dtypes", "shapes", "int_list"):
            good = original(src)
            for _ in range(300):
                bad = bytearray(good)
                for _ in range(rnd.randint(1, 3)):
                    bad[rnd.randrange(len(bad))] = rnd.randrange(256)
                p = corrupt("rnd.tgv", bytes(bad))
                try:
                    tf.load(p)
                except tf.TgraphFileError as e:
                    assert p in str(e)
    finally:
        tf.xxhash = saved


def main():
    passed = failed = 0
    for t in TESTS:
        try:
            t()
            passed += 1
            print("ok   %s" % t.__name__)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc(file=sys.stdout)
    shutil.rmtree(work, ignore_errors=True)
    print("python: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
