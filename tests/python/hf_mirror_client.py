"""The stock huggingface_hub client with HF_ENDPOINT at a kaiyuan mirror: snapshot_download,
hf_hub_download by branch, tag and the upstream's commit id, and model_info. KY_REPO names the
repository, KY_FILES the expected sha256 of each file (JSON), KY_REVISIONS the revisions to ask
for (JSON: revision -> {path: sha256}), KY_LICENSE (optional) the licence model_info must give.
Exits non-zero on a failed check."""
import hashlib
import json
import os
import tempfile

from huggingface_hub import HfApi, hf_hub_download, snapshot_download

repo = os.environ["KY_REPO"]
files = json.loads(os.environ["KY_FILES"])
revisions = json.loads(os.environ["KY_REVISIONS"])


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


with tempfile.TemporaryDirectory() as cache:
    snap = snapshot_download(repo, cache_dir=cache)
    for path, sha in files.items():
        assert digest(os.path.join(snap, path)) == sha, path
for revision, expected in revisions.items():
    for path, sha in expected.items():
        with tempfile.TemporaryDirectory() as cache:
            got = hf_hub_download(repo, path, revision=revision, cache_dir=cache)
            assert digest(got) == sha, f"{path}@{revision}"
info = HfApi().model_info(repo, files_metadata=True)
assert sorted(s.rfilename for s in info.siblings) == sorted(files), info.siblings
# The card's licence, as the upstream states it, is the mirrored model's.
if os.environ.get("KY_LICENSE"):
    assert info.card_data is not None and info.card_data.license == os.environ["KY_LICENSE"], info.card_data
    assert f"license:{os.environ['KY_LICENSE']}" in info.tags, info.tags
print("mirror client: all checks passed")
