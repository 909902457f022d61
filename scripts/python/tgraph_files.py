"""tgraph_files: read tgraph's files from Python.

Reads the binary format of docs/format.md (the files tg_dump() and
`tgraph run --output DIR` write) into Python values:

    null -> None        bool -> bool          int -> int
    float -> float      str -> str            bytes -> bytes
    list -> list        map -> dict (insertion order kept)
    ndarray -> numpy.ndarray of the file's dtype and shape

Arrays of an uncompressed file are read-only views of one memory mapping
of the file (numpy.frombuffer over mmap.mmap): loading is O(1) in their
size and the mapping lives as long as any array uses it.

Needs numpy only. Two optional Debian packages add to it:
python3-zstandard reads zstd-compressed files (without it they are
refused with a message saying so), python3-xxhash checks the XXH3
checksums (without it the structure is still checked in full).

    import tgraph_files
    v = tgraph_files.load("out/report.tgv")
    # stdout of `tgraph run --output out g.json`, saved in listing.jsonl:
    outs = tgraph_files.load_listing(open("listing.jsonl"))

Every malformed file raises TgraphFileError naming the file and the byte
offset; nothing is trusted before it is checked against the file's size.
"""

import json
import mmap
import os
import struct
import sys

import numpy as np

try:
    import zstandard
except ImportError:  # compressed files are refused with a clear message
    zstandard = None
try:
    import xxhash
except ImportError:  # checksums are not checked without it
    xxhash = None

__all__ = ["load", "loads", "load_dir", "load_listing", "TgraphFileError",
           "DTYPES"]

MAGIC = b"\x89TGV"
VERSION = 1
HEADER_SIZE = 64
FLAG_ZSTD = 1
DEPTH_MAX = 512
NDIM_MAX = 32
BYTES_INLINE_MAX = 4096

# Dtype numbers of include/tgraph/value.h (never renumbered).
DTYPES = {
    1: np.dtype(np.bool_), 2: np.dtype("<i1"), 3: np.dtype("<i2"),
    4: np.dtype("<i4"), 5: np.dtype("<i8"), 6: np.dtype("<u1"),
    7: np.dtype("<u2"), 8: np.dtype("<u4"), 9: np.dtype("<u8"),
    10: np.dtype("<f4"), 11: np.dtype("<f8"),
}


class TgraphFileError(ValueError):
    """A file that is not a well-formed tgraph file.

    path: the file (or "<bytes>"); offset: the byte offset the problem is
    at, counted from the start of the encoding (None when it concerns the
    whole file)."""

    def __init__(self, path, offset, what):
        self.path, self.offset, self.what = path, offset, what
        where = "" if offset is None else " at offset %d" % offset
        super().__init__("%s: %s%s" % (path, what, where))


def _align64(n):
    return (n + 63) & ~63


class _Reader:
    """Decodes the meta section; arrays and large bytes from the payload."""

    def __init__(self, path, meta, payload, payload_len):
        self.path, self.meta, self.payload = path, meta, payload
        self.payload_len = payload_len
        self.pos = 0

    def fail(self, what, at=None):
        raise TgraphFileError(self.path, HEADER_SIZE + (self.pos if at is None
                                                        else at), what)

    def byte(self):
        if self.pos >= len(self.meta):
            self.fail("the value ends early")
        b = self.meta[self.pos]
        self.pos += 1
        return b

    def varint(self):
        start, n, shift = self.pos, 0, 0
        for i in range(10):
            b = self.byte()
            if i == 9 and b > 1:
                self.fail("varint overflows 64 bits", start)
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                if b == 0 and i > 0:
                    self.fail("varint is not minimal", start)
                return n
        self.fail("varint longer than 10 bytes", start)

    def zigzag(self):
        u = self.varint()
        return (u >> 1) ^ -(u & 1)

    def take(self, n, what):
        if n > len(self.meta) - self.pos:
            self.fail("%s of %d bytes runs past the meta section" % (what, n))
        s = bytes(self.meta[self.pos:self.pos + n])
        self.pos += n
        return s

    def text(self, n, what):
        start = self.pos
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail("%s is not valid UTF-8" % what, start + e.start)

    def payload_item(self, off, size, what, at):
        if off % 64 != 0:
            self.fail("%s payload offset %d is not a multiple of 64"
                      % (what, off), at)
        if off > self.payload_len or size > self.payload_len - off:
            self.fail("%s of %d bytes at payload offset %d runs past the "
                      "payload (%d bytes)" % (what, size, off,
                                              self.payload_len), at)

    def count(self, per_item, what):
        at = self.pos
        n = self.varint()
        if n > (len(self.meta) - self.pos) // per_item:
            self.fail("%s of %d items cannot fit in the bytes left" % (what, n),
                      at)
        return n

    def value(self, depth):
        at = self.pos
        tag = self.byte()
        if tag == 0x00:
            return None
        if tag in (0x01, 0x02):
            return tag == 0x02
        if tag == 0x03:
            return self.zigzag()
        if tag == 0x04:
            return struct.unpack("<d", self.take(8, "float"))[0]
        if tag == 0x05:
            return self.text(self.varint(), "str")
        if tag == 0x06:
            return self.take(self.varint(), "bytes")
        if tag == 0x07:
            n, off = self.varint(), self.varint()
            self.payload_item(off, n, "bytes", at)
            return bytes(self.payload[off:off + n])
        if tag == 0x08:
            return self.ndarray(at)
        if tag in (0x09, 0x0A, 0x0B) and depth >= DEPTH_MAX:
            self.fail("lists and maps nested deeper than %d" % DEPTH_MAX, at)
        if tag == 0x09:
            n = self.count(1, "list")
            items = []
            for _ in range(n):  # a loop, not a comprehension: one frame a level
                items.append(self.value(depth + 1))
            return items
        if tag == 0x0A:
            n = self.count(1, "int-list")
            return [self.zigzag() for _ in range(n)]
        if tag == 0x0B:
            n = self.count(2, "map")
            out = {}
            for _ in range(n):
                kat = self.pos
                key = self.text(self.varint(), "map key")
                if key in out:
                    self.fail("duplicate map key %r" % key, kat)
                out[key] = self.value(depth + 1)
            return out
        self.fail("unknown tag 0x%02x" % tag, at)

    def ndarray(self, at):
        code = self.byte()
        if code not in DTYPES:
            self.fail("unknown dtype %d" % code, self.pos - 1)
        dt = DTYPES[code]
        ndim = self.byte()
        if ndim > NDIM_MAX:
            self.fail("ndim %d is above %d" % (ndim, NDIM_MAX), self.pos - 1)
        shape, size = [], 1
        for _ in range(ndim):
            d = self.varint()
            if d > 2**63 - 1:
                self.fail("dimension %d is above 2^63-1" % d)
            shape.append(d)
            size *= d
        nbytes = size * dt.itemsize
        if nbytes > 2**63 - 1:
            self.fail("array of %d bytes is too large" % nbytes, at)
        off = self.varint()
        if nbytes == 0:
            if off != 0:
                self.fail("an empty array has payload offset %d, not 0" % off,
                          at)
            try:
                return np.zeros(shape, dtype=dt)
            except ValueError as e:  # numpy's own limits on dimensions
                self.fail("empty array of shape %s: %s" % (shape, e), at)
        self.payload_item(off, nbytes, "array", at)
        arr = np.frombuffer(self.payload, dtype=dt, count=size, offset=off)
        if dt == np.bool_ and np.any(arr.view(np.uint8) > 1):
            self.fail("bool array holds a byte other than 0 or 1", at)
        return arr.reshape(shape)


def _xxh3(data):
    return xxhash.xxh3_64_intdigest(data)


def _check_header(path, buf):
    if len(buf) < HEADER_SIZE:
        raise TgraphFileError(path, len(buf), "%d bytes: shorter than the "
                              "64-byte header" % len(buf))
    head = bytes(buf[:HEADER_SIZE])
    if head[:4] != MAGIC:
        raise TgraphFileError(path, 0, "not a tgraph file (magic %s, not "
                              "89 54 47 56)" % head[:4].hex(" "))
    version, flags, meta_len, payload_len, stored_len, meta_hash, \
        payload_hash, header_hash, reserved = struct.unpack_from(
            "<HHQQQQQQQ", head, 4)
    if version != VERSION:
        raise TgraphFileError(path, 4, "format version %d; this reader "
                              "knows version %d" % (version, VERSION))
    if xxhash is not None and _xxh3(head[:48]) != header_hash:
        raise TgraphFileError(path, 48, "header checksum mismatch")
    if flags & ~FLAG_ZSTD:
        raise TgraphFileError(path, 6, "unknown flags 0x%04x" % flags)
    if reserved != 0:
        raise TgraphFileError(path, 56, "reserved field is not 0")
    if meta_len < 1:
        raise TgraphFileError(path, 8, "empty meta section")
    if stored_len != len(buf) - HEADER_SIZE:
        raise TgraphFileError(path, len(buf), "the header says %d bytes "
                              "follow it, the file has %d (truncated or "
                              "extended)" % (stored_len, len(buf) - HEADER_SIZE))
    return flags, meta_len, payload_len, stored_len, meta_hash, payload_hash


def _decompress(path, buf, body_len):
    if zstandard is None:
        raise TgraphFileError(path, None, "the file is zstd-compressed and "
                              "the zstandard module is missing: install "
                              "python3-zstandard (Debian) or `pip install "
                              "zstandard`, or write the file uncompressed")
    if body_len > 64 << 30 or body_len > 32768 * (len(buf) - HEADER_SIZE):
        raise TgraphFileError(path, 16, "declared body of %d bytes is beyond "
                              "what the compressed data can hold" % body_len)
    frame = bytes(buf[HEADER_SIZE:])
    try:
        size = zstandard.frame_content_size(frame)
        if size != body_len:
            raise TgraphFileError(path, HEADER_SIZE, "the zstd frame holds "
                                  "%d bytes, the header says %d"
                                  % (size, body_len))
        body = zstandard.ZstdDecompressor().decompress(
            frame, max_output_size=body_len)
    except zstandard.ZstdError as e:
        raise TgraphFileError(path, HEADER_SIZE, "bad zstd frame: %s" % e)
    if len(body) != body_len:
        raise TgraphFileError(path, HEADER_SIZE, "the zstd frame holds %d "
                              "bytes, the header says %d" % (len(body),
                                                             body_len))
    return memoryview(body)


def loads(buf, path="<bytes>", verify=True):
    """Decode one encoding held in buf (bytes, bytearray, mmap, memoryview).

    Arrays point into buf (or into the decompressed body) without copying.
    verify: check the payload checksum too (needs python3-xxhash; the
    header and meta checksums are always checked when it is installed)."""
    buf = memoryview(buf).cast("B")
    flags, meta_len, payload_len, stored_len, meta_hash, payload_hash = \
        _check_header(path, buf)
    padded = _align64(meta_len)
    if padded + payload_len < padded:
        raise TgraphFileError(path, 16, "section sizes overflow")
    if flags & FLAG_ZSTD:
        body = _decompress(path, buf, padded + payload_len)
    else:
        if stored_len != padded + payload_len:
            raise TgraphFileError(path, 24, "stored length %d is not the "
                                  "padded meta (%d) plus the payload (%d)"
                                  % (stored_len, padded, payload_len))
        body = buf[HEADER_SIZE:]
    meta = body[:meta_len]
    payload = body[padded:padded + payload_len]
    if xxhash is not None and _xxh3(meta) != meta_hash:
        raise TgraphFileError(path, HEADER_SIZE, "meta section checksum "
                              "mismatch")
    if any(body[meta_len:padded]):
        raise TgraphFileError(path, HEADER_SIZE + meta_len, "padding after "
                              "the meta section is not zero")
    if verify and xxhash is not None and _xxh3(payload) != payload_hash:
        raise TgraphFileError(path, HEADER_SIZE + padded, "payload checksum "
                              "mismatch")
    r = _Reader(path, meta, payload, payload_len)
    v = r.value(0)
    if r.pos != meta_len:
        r.fail("the value ends before the meta section does (%d of %d bytes)"
               % (r.pos, meta_len))
    return v


def load(path, mmap_arrays=True, verify=False):
    """Load the file at path (written by tg_dump or `tgraph run --output`).

    With mmap_arrays (the default) an uncompressed file is mapped and its
    arrays are read-only views of the mapping (zero copy); otherwise the
    file is read into memory. verify: also check the payload checksum,
    which reads every byte (always done when not mapping)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not mmap_arrays or size == 0:
            return loads(f.read(), path, True)
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return loads(mm, path, verify)
    except BaseException:
        try:
            mm.close()  # fails while a view exists; then the GC unmaps it
        except BufferError:
            pass
        raise


def load_dir(directory):
    """Every DIR/NAME.tgv in directory as {NAME: value}, sorted by name."""
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".tgv"):
            out[name[:-4]] = load(os.path.join(directory, name))
    return out


def load_listing(lines, base="."):
    """The outputs of `tgraph run --output DIR`, from the lines it printed
    (an iterable of str, e.g. an open file or text.splitlines()).

    Returns {key: value}, each value loaded from the file its line names
    (relative to base, the directory tgraph ran in): the file is
    authoritative, the "value" on a line is JSON, which loses what JSON
    cannot spell (arrays' dtypes, bytes).
    """
    out = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key, file = rec["key"], rec["file"]
        except (ValueError, KeyError, TypeError) as e:
            raise TgraphFileError("<listing>", None, "line %d is not a "
                                  "listing line of tgraph run --output: %s"
                                  % (n, e))
        out[key] = load(os.path.join(base, file))
    return out


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print("%s: %r" % (p, load(p)))
