"""Downloads one file with whatever huggingface_hub this interpreter has (a Xet-stored file with
the 0.x line, with Xet or under HF_HUB_DISABLE_XET=1 through resolve; a file through a mirror
still fetching it) and checks its sha256 and size (KY_REPO, KY_PATH, KY_SHA256, KY_SIZE,
KY_TOKEN and KY_REVISION optional)."""
import hashlib
import os
import tempfile

from huggingface_hub import hf_hub_download

with tempfile.TemporaryDirectory() as cache:
    path = hf_hub_download(os.environ["KY_REPO"], os.environ["KY_PATH"], cache_dir=cache, revision=os.environ.get("KY_REVISION") or None,
                           token=os.environ.get("KY_TOKEN") or None)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == os.environ["KY_SHA256"], "bytes differ"
    assert os.path.getsize(path) == int(os.environ["KY_SIZE"]), "size differs"
print(f"download (HF_HUB_DISABLE_XET={os.environ.get('HF_HUB_DISABLE_XET', '')}): all checks passed")
