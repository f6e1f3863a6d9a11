"""The stock huggingface_hub client's listings as first calls to a kaiyuan mirror that holds
nothing yet: list_repo_commits at a tag (KY_TAG), then list_repo_refs, then the newest commit
listed, downloaded by its id (KY_PATH, KY_SHA256: the file at the tag). Exits non-zero on a
failed check."""
import hashlib
import os
import tempfile

from huggingface_hub import HfApi, hf_hub_download

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
print("mirror listings: all checks passed")
