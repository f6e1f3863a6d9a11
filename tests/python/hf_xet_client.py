"""The default huggingface_hub client (hf_xet installed, no HF_HUB_DISABLE_XET) against a running
kaiyuan (HF_ENDPOINT): uploads go through the hub's Xet CAS, downloads come back through it,
bytes are compared, and the hub's own counters (/metrics) show what deduplication saved.

KY_BIG_MIB sets the size of the large weights file (default 200), KY_REPO the repository
(default alice/xet-model; a copy goes to <KY_REPO>-copy), KY_SEED the random bytes. Exits non-zero on a failed
check and prints "all checks passed" at the end.
"""
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import urllib.request

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download

token = os.environ["KY_TOKEN"]
endpoint = os.environ["HF_ENDPOINT"]
big_mib = int(os.environ.get("KY_BIG_MIB", "200"))
api = HfApi(token=token)
cli = os.path.join(os.path.dirname(os.sys.executable), "hf")
hf_home = os.environ["HF_HOME"]


def digest(data):
    return hashlib.sha256(data).hexdigest()


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def xorb_counters():
    """(xorb uploads received, serialized xorb bytes received) so far."""
    text = urllib.request.urlopen(f"{endpoint}/metrics").read().decode()
    count = int(re.search(r"^kaiyuan_xet_xorbs_received_total (\d+)$", text, re.M).group(1))
    size = int(re.search(r"^kaiyuan_xet_xorb_bytes_received_total (\d+)$", text, re.M).group(1))
    return count, size


def forget_local_xet_cache():
    """The client keeps the shards it uploaded: without them, only the hub can say what it has."""
    shutil.rmtree(os.path.join(hf_home, "xet"), ignore_errors=True)


# A safetensors-like file: a header, then "tensors" of random bytes (incompressible, like
# trained weights), so that only deduplication can spare bytes.
rng = random.Random(int(os.environ.get("KY_SEED", "7")))
big_size = big_mib * 1024 * 1024
header = b'{"__metadata__":{"format":"pt"}}'
big = bytearray(len(header).to_bytes(8, "little") + header)
big += rng.randbytes(big_size - len(big))
content = {
    "README.md": b"---\nlicense: mit\n---\n# Uploaded through Xet\n",
    "config.json": b'{"hidden_size": 2}',
    "model.safetensors": bytes(big),
}

repo = os.environ.get("KY_REPO", "alice/xet-model")
api.create_repo(repo, exist_ok=True)
before = xorb_counters()
with tempfile.TemporaryDirectory() as folder:
    for path, data in content.items():
        with open(os.path.join(folder, path), "wb") as f:
            f.write(data)
    api.upload_folder(folder_path=folder, repo_id=repo, commit_message="Upload through Xet")
    first = xorb_counters()
    assert first[0] > before[0], f"the upload went through the CAS: {before} -> {first}"
    assert first[1] >= big_size * 0.99, f"the CAS received the weights once: {first[1]} bytes"

    # The tree listing advertises Xet for the file the CAS holds.
    listing = urllib.request.Request(f"{endpoint}/api/models/{repo}/tree/main", headers={"Authorization": f"Bearer {token}"})
    entries = {e["path"]: e for e in json.load(urllib.request.urlopen(listing))}
    assert entries["model.safetensors"].get("xetHash"), "xetHash in the listing"
    assert "xetHash" not in entries["config.json"], "small files travel inline, not through Xet"

    # Downloads through the CAS: hf_hub_download, snapshot_download, and the CLI.
    with tempfile.TemporaryDirectory() as cache:
        path = hf_hub_download(repo, "model.safetensors", cache_dir=cache, token=token)
        assert file_digest(path) == digest(content["model.safetensors"]), "hf_hub_download bytes"
    with tempfile.TemporaryDirectory() as cache:
        snap = snapshot_download(repo, cache_dir=cache, token=token)
        for path, data in content.items():
            assert file_digest(os.path.join(snap, path)) == digest(data), path
    with tempfile.TemporaryDirectory() as target:
        done = subprocess.run([cli, "download", repo, "--local-dir", target], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        for path, data in content.items():
            assert file_digest(os.path.join(target, path)) == digest(data), path

    # The same folder again, into another repository, by `hf upload`, with the client's own
    # cache gone: the hub's global-dedupe answer spares every xorb.
    forget_local_xet_cache()
    mirror = f"{repo}-copy"
    api.create_repo(mirror, exist_ok=True)
    done = subprocess.run([cli, "upload", mirror, folder, ".", "--commit-message", "Same bytes"], capture_output=True, text=True, env={**os.environ, "HF_TOKEN": token})
    assert done.returncode == 0, done.stdout + done.stderr
    again = xorb_counters()
    assert again[0] == first[0], f"re-uploading the same folder sent no xorb: {first} -> {again}"
    assert sorted(api.list_repo_files(mirror)) == sorted(content)

# A second version with about 3% of its bytes changed (three tensors rewritten), committed with
# create_commit from bytes: only the changed chunks travel.
forget_local_xet_cache()
changed = bytearray(content["model.safetensors"])
span = big_size * 3 // 100 // 3
for i in range(3):
    at = (i + 1) * big_size // 4
    changed[at : at + span] = rng.randbytes(span)
changed = bytes(changed)
before = xorb_counters()
api.create_commit(repo, operations=[CommitOperationAdd("model.safetensors", changed)], commit_message="Fine-tune three tensors")
after = xorb_counters()
sent = after[1] - before[1]
assert 0 < sent < big_size * 0.15, f"the second version sent {sent} bytes of {big_size}"
print(f"second version: {sent} of {big_size} bytes sent ({100 * sent / big_size:.1f}%)")
with tempfile.TemporaryDirectory() as cache:
    path = hf_hub_download(repo, "model.safetensors", cache_dir=cache, token=token)
    assert file_digest(path) == digest(changed), "the second version's bytes"
    # A byte range of a Xet-stored file through the resolve route (clients without Xet).
    request = urllib.request.Request(f"{endpoint}/{repo}/resolve/main/model.safetensors", headers={"Range": "bytes=1000-1999", "Authorization": f"Bearer {token}"})
    assert urllib.request.urlopen(request).read() == changed[1000:2000], "resolve range"

# upload_file with a path, and a small file that travels inline next to a Xet one.
with tempfile.TemporaryDirectory() as folder:
    extra = os.path.join(folder, "extra.bin")
    with open(extra, "wb") as f:
        f.write(rng.randbytes(12 * 1024 * 1024))
    api.upload_file(path_or_fileobj=extra, path_in_repo="weights/extra.bin", repo_id=repo)
    with tempfile.TemporaryDirectory() as cache:
        path = hf_hub_download(repo, "weights/extra.bin", cache_dir=cache, token=token)
        assert file_digest(path) == file_digest(extra), "upload_file bytes"

print("huggingface_hub through Xet: all checks passed")
