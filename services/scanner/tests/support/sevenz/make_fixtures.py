"""Writes the 7z fixtures of tests/sevenz.rs with py7zr (see README.md).

Run: python make_fixtures.py OUTDIR   (py7zr 1.1.4; the .7z files are committed, so the tests
do not need py7zr). Each archive holds a few small members built here: a pickle that calls
os.system with a harmless marker, a clean pickle and a clean safetensors file.
"""

import io
import os
import pathlib
import pickle
import struct
import sys
import tempfile
import zipfile

import py7zr

OUT = pathlib.Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)

# GLOBAL os system, a marker string, TUPLE1, REDUCE: what pickle.loads would run.
MARKER = "echo kaiyuan-7z-marker"
EVIL_PKL = b"\x80\x02cos\nsystem\n\x8c" + bytes([len(MARKER)]) + MARKER.encode() + b"\x85R."
CLEAN_PKL = pickle.dumps({"lr": 0.001, "epochs": 3, "name": "tiny"}, protocol=4)
_header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
_header += b" " * (-len(_header) % 8)
CLEAN_ST = struct.pack("<Q", len(_header)) + _header + struct.pack("<2f", 1.0, 2.0)
# x86-like bytes (CALL/JMP rel32 opcodes) so that the BCJ filter really rewrites something.
CODE = bytes(
    b for i in range(64) for b in (0x55, 0xE8, i, 0x10, 0x00, 0x00, 0x90, 0xE9, 0x20, i, 0xFF, 0xFF)
)

LZMA2 = [{"id": py7zr.FILTER_LZMA2, "preset": 7}]
LZMA = [{"id": py7zr.FILTER_LZMA, "preset": 7}]
COPY = [{"id": py7zr.FILTER_COPY}]
BCJ = [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_LZMA2, "preset": 7}]
PPMD = [{"id": py7zr.FILTER_PPMD, "order": 6, "mem": 16}]
DEFLATE = [{"id": py7zr.FILTER_DEFLATE}]


def write(name, members, filters=None, encoded_header=True, **kwargs):
    """members: (arcname, bytes) pairs; arcname passes py7zr's path check unless private."""
    path = OUT / name
    with py7zr.SevenZipFile(path, "w", filters=filters, **kwargs) as z:
        if not encoded_header:
            z.set_encoded_header_mode(False)
        for arcname, data in members:
            # `_writestr` is py7zr's writer without its arcname check (for `../evil`).
            z._writestr(data, arcname)
    print(name, path.stat().st_size)


write("default.7z", [("evil.pkl", EVIL_PKL), ("clean.pkl", CLEAN_PKL), ("model.safetensors", CLEAN_ST)])
write(
    "lzma2.7z",
    [("evil.pkl", EVIL_PKL), ("clean.pkl", CLEAN_PKL), ("model.safetensors", CLEAN_ST)],
    filters=LZMA2,
)
write("lzma.7z", [("evil.pkl", EVIL_PKL), ("model.safetensors", CLEAN_ST)], filters=LZMA)
write(
    "copy.7z",
    [("evil.pkl", EVIL_PKL), ("model.safetensors", CLEAN_ST)],
    filters=COPY,
    encoded_header=False,
)
write("bcj.7z", [("code.bin", CODE), ("evil.pkl", EVIL_PKL)], filters=BCJ)
write("aes.7z", [("evil.pkl", EVIL_PKL)], password="kaiyuan")
write("aes_header.7z", [("evil.pkl", EVIL_PKL)], password="kaiyuan", header_encryption=True)
write("ppmd.7z", [("evil.pkl", EVIL_PKL)], filters=PPMD)
write("deflate.7z", [("evil.pkl", EVIL_PKL)], filters=DEFLATE)
write("traversal.7z", [("../evil", CLEAN_PKL), ("ok.pkl", CLEAN_PKL)])
write("bomb.7z", [("zeros.bin", bytes(4 << 20))])
write("empty.7z", [])

# A directory, an empty file and clean members, from files on disk.
with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp) / "weights"
    root.mkdir()
    (root / "empty.txt").write_bytes(b"")
    (root / "model.safetensors").write_bytes(CLEAN_ST)
    (root / "config.pkl").write_bytes(CLEAN_PKL)
    os.symlink("/etc/passwd", pathlib.Path(tmp) / "link")
    with py7zr.SevenZipFile(OUT / "clean.7z", "w") as z:
        z.writeall(root, "weights")
    print("clean.7z", (OUT / "clean.7z").stat().st_size)
    with py7zr.SevenZipFile(OUT / "symlink.7z", "w") as z:
        z.write(pathlib.Path(tmp) / "link", "link")
    print("symlink.7z", (OUT / "symlink.7z").stat().st_size)

# A 7z inside a zip (Python's zipfile) inside a 7z.
inner7z = io.BytesIO()
with py7zr.SevenZipFile(inner7z, "w") as z:
    z.writestr(EVIL_PKL, "evil.pkl")
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("deep/inner.7z", inner7z.getvalue())
write("nested.7z", [("inner.zip", inner.getvalue())])
