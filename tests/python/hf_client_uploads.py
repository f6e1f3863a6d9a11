"""Publishes with the real huggingface_hub client to a running kaiyuan (HF_ENDPOINT), downloads
back and compares bytes. KY_MODE=lfs runs with HF_HUB_DISABLE_XET=1 and a file above the
regular-upload threshold (LFS batch + basic transfer); KY_MODE=default uses a default client
(Xet installed) with files small enough to travel inline. Exits non-zero on a failed check.
"""
import hashlib
import os
import subprocess
import tempfile

from huggingface_hub import CommitOperationDelete, HfApi, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

mode = os.environ["KY_MODE"]
token = os.environ["KY_TOKEN"]
api = HfApi(token=token)
repo = f"alice/upload-{mode}"
api.create_repo(repo, exist_ok=True)


def digest(data):
    return hashlib.sha256(data).hexdigest()


header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
content = {
    "README.md": b"---\nlicense: mit\n---\n# Uploaded with huggingface_hub\n",
    "config.json": b'{"hidden_size": 2}',
    "model.safetensors": len(header).to_bytes(8, "little") + header + bytes(8),
    "sub/nested.txt": b"nested\n",
    # A minimal ONNX ModelProto: ir_version 8, producer "kaiyuan", an empty graph.
    "model.onnx": bytes([0x08, 0x08, 0x12, 0x07]) + b"kaiyuan" + bytes([0x3A, 0x06, 0x12, 0x04]) + b"main",
    "weights/big.bin": os.urandom(12 * 1024 * 1024 if mode == "lfs" else 1024 * 1024),
}
with tempfile.TemporaryDirectory() as folder:
    for path, data in content.items():
        os.makedirs(os.path.dirname(os.path.join(folder, path)) or folder, exist_ok=True)
        with open(os.path.join(folder, path), "wb") as f:
            f.write(data)
    api.upload_folder(folder_path=folder, repo_id=repo, commit_message="Upload model")

assert sorted(api.list_repo_files(repo)) == sorted(content), api.list_repo_files(repo)
with tempfile.TemporaryDirectory() as cache:
    snap = snapshot_download(repo, cache_dir=cache, token=token)
    for path, data in content.items():
        with open(os.path.join(snap, path), "rb") as f:
            assert digest(f.read()) == digest(data), path

# The CLI downloads the same bytes.
cli = os.path.join(os.path.dirname(os.sys.executable), "hf")
with tempfile.TemporaryDirectory() as target:
    subprocess.run([cli, "download", repo, "--local-dir", target], check=True, capture_output=True)
    for path, data in content.items():
        with open(os.path.join(target, path), "rb") as f:
            assert digest(f.read()) == digest(data), path

# The same bytes again under another name: deduplicated, nothing is re-sent (checked server-side).
api.upload_file(path_or_fileobj=content["weights/big.bin"], path_in_repo="weights/again.bin", repo_id=repo)
assert "weights/again.bin" in api.list_repo_files(repo)

# `hf upload` publishes a folder too.
with tempfile.TemporaryDirectory() as folder:
    with open(os.path.join(folder, "cli.txt"), "wb") as f:
        f.write(b"from the CLI\n")
    done = subprocess.run([cli, "upload", repo, folder, ".", "--commit-message", "CLI upload"], capture_output=True, text=True, env={**os.environ, "HF_TOKEN": token})
    assert done.returncode == 0, done.stdout + done.stderr
assert "cli.txt" in api.list_repo_files(repo)
api.delete_file("cli.txt", repo_id=repo)
api.delete_file("weights/again.bin", repo_id=repo)

# Replace one file, delete one, delete a folder; a stale parent is refused.
head = api.model_info(repo).sha
info = api.upload_file(path_or_fileobj=b"changed\n", path_in_repo="config.json", repo_id=repo, parent_commit=head)
assert info.oid != head and len(info.oid) == 40
try:
    api.upload_file(path_or_fileobj=b"stale\n", path_in_repo="stale.txt", repo_id=repo, parent_commit=head)
    raise AssertionError("a stale parent commit must be refused")
except HfHubHTTPError:
    pass
# A copy inside the repository sends no bytes again (the LFS source becomes a reference).
from huggingface_hub import CommitOperationCopy

api.create_commit(repo, operations=[CommitOperationCopy("model.safetensors", "copies/model.safetensors")], commit_message="copy")
assert "copies/model.safetensors" in api.list_repo_files(repo)
api.delete_file("copies/model.safetensors", repo_id=repo)
api.delete_file("sub/nested.txt", repo_id=repo)
api.create_commit(repo, operations=[CommitOperationDelete("weights/")], commit_message="drop weights")
assert sorted(api.list_repo_files(repo)) == ["README.md", "config.json", "model.onnx", "model.safetensors"], api.list_repo_files(repo)
try:
    api.delete_file("no-such-file.txt", repo_id=repo)
    raise AssertionError("deleting a missing file must fail")
except EntryNotFoundError:
    pass
print(f"huggingface_hub uploads ({mode}): all checks passed")
