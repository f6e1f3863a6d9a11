"""The stock huggingface_hub client's listings as first calls to a kaiyuan mirror that holds
nothing yet: list_repo_commits at a tag (KY_TAG), then list_repo_refs, then the newest commit
listed, downloaded by its id (KY_PATH, KY_SHA256: the file at the tag). Then HfFileSystem (the
fsspec interface) on a second repository the mirror holds nothing of (KY_FS_REPO, with the
same file at its main branch): ls, then a read of part of the file. Exits non-zero on a failed
check."""
import hashlib
import os
import tempfile

from huggingface_hub import HfApi, HfFileSystem, hf_hub_download

repo, tag, path = os.environ["KY_REPO"], os.environ["KY_TAG"], os.environ["KY_PATH"]
api = HfApi()
commits = api.list_repo_commits(repo, revision=tag)
assert commits, "no commits listed"
assert commits[0].title.startswith("Mirrored from"), commits[0]
refs = api.list_repo_refs(repo)
branches = {b.name: b.target_commit for b in refs.branches}
assert "main" in branches and tag in branches, refs
assert branches[tag] == commits[0].commit_id, (branches, commits[0])
with tempfile.TemporaryDirectory() as cache:
    got = hf_hub_download(repo, path, revision=commits[0].commit_id, cache_dir=cache)
    with open(got, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == os.environ["KY_SHA256"], path
fs_repo = os.environ["KY_FS_REPO"]
fs = HfFileSystem()
listed = {os.path.basename(e["name"]): e["size"] for e in fs.ls(fs_repo, detail=True)}
assert path in listed, listed
with fs.open(f"{fs_repo}/{path}", "rb") as f:
    f.seek(1)
    part = f.read(4)
with tempfile.TemporaryDirectory() as cache:
    whole = open(hf_hub_download(fs_repo, path, cache_dir=cache), "rb").read()
assert part == whole[1:5] and listed[path] == len(whole), (part, whole[:8], listed)
print("mirror listings: all checks passed")
