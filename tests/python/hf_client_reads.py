"""Drives the real huggingface_hub client against a running kaiyuan (HF_ENDPOINT) and checks
every read path: whoami, model info, listings, refs, commits, paths info, downloads by branch,
tag and commit, snapshots, model search, repository creation, and the exceptions for missing
and private repositories, revisions and files. Exits non-zero on the first failed check.

Environment: HF_ENDPOINT, KY_TOKEN (alice), KY_OTHER_TOKEN (bob), KY_COMMIT (main of
alice/tiny), KY_FILES (JSON path -> sha256 of alice/tiny at main).
"""
import hashlib
import json
import os
import tempfile
import urllib.request

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

token, other = os.environ["KY_TOKEN"], os.environ["KY_OTHER_TOKEN"]
commit = os.environ["KY_COMMIT"]
files = json.loads(os.environ["KY_FILES"])
api = HfApi(token=token)
anon = HfApi(token=False)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def raises(exc, fn):
    try:
        fn()
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}")


assert api.whoami()["name"] == "alice"

info = api.model_info("alice/tiny", files_metadata=True)
assert info.sha == commit, (info.sha, commit)
assert sorted(s.rfilename for s in info.siblings) == sorted(files)
for s in info.siblings:
    assert s.lfs.sha256 == files[s.rfilename], s
assert info.card_data is not None and info.card_data.license == "apache-2.0", info.card_data
assert api.model_info("alice/tiny", revision="v1").sha == commit

assert sorted(api.list_repo_files("alice/tiny")) == sorted(files)
tree = list(api.list_repo_tree("alice/tiny", recursive=True))
assert {e.path for e in tree if e.__class__.__name__ == "RepoFile"} == set(files)
top = {e.path for e in api.list_repo_tree("alice/tiny")}
assert "weights" in top and "weights/model.safetensors" not in top, top
assert {e.path for e in api.list_repo_tree("alice/tiny", path_in_repo="weights")} == {"weights/model.safetensors", "weights/extra"}

refs = api.list_repo_refs("alice/tiny")
assert [b.name for b in refs.branches] == ["main"] and [t.name for t in refs.tags] == ["v1"]
history = api.list_repo_commits("alice/tiny")
assert history[0].commit_id == commit and history[-1].title == "Initial commit"

paths = api.get_paths_info("alice/tiny", ["config.json", "weights", "missing.bin"])
assert sorted(p.path for p in paths) == ["config.json", "weights"]
assert api.file_exists("alice/tiny", "config.json") and not api.file_exists("alice/tiny", "missing.bin")
assert api.repo_exists("alice/tiny") and not api.repo_exists("alice/nope")

with tempfile.TemporaryDirectory() as cache:
    for rev in ["main", "v1", commit]:
        path = hf_hub_download("alice/tiny", "weights/model.safetensors", revision=rev, cache_dir=cache, token=token)
        assert sha256(path) == files["weights/model.safetensors"]
    snap = snapshot_download("alice/tiny", cache_dir=cache, token=token)
    for name, digest in files.items():
        assert sha256(os.path.join(snap, name)) == digest, name
    raises(RevisionNotFoundError, lambda: hf_hub_download("alice/tiny", "config.json", revision="nope", cache_dir=cache, token=token))
    raises(EntryNotFoundError, lambda: hf_hub_download("alice/tiny", "missing.bin", cache_dir=cache, token=token))
    raises(RepositoryNotFoundError, lambda: hf_hub_download("alice/nope", "config.json", cache_dir=cache, token=token))

# An interrupted download resumes with a Range request. 0.x clients resume across runs from
# `<blob>.incomplete`; its first bytes are deliberately wrong here, so the result shows whether
# the client asked only for the rest.
import huggingface_hub

if huggingface_hub.__version__.startswith("0."):
    name = "weights/extra/big.bin"
    etag = files[name]
    with tempfile.TemporaryDirectory() as cache:
        blobs = os.path.join(cache, "models--alice--tiny", "blobs")
        os.makedirs(blobs)
        done = 1024 * 1024
        with open(os.path.join(blobs, etag + ".incomplete"), "wb") as f:
            f.write(bytes(done))
        path = hf_hub_download("alice/tiny", name, cache_dir=cache, token=token)
        with open(path, "rb") as f:
            data = f.read()
        assert data[:done] == bytes(done), "the partial bytes were kept"
        with tempfile.TemporaryDirectory() as fresh:
            full = hf_hub_download("alice/tiny", name, cache_dir=fresh, token=token)
            with open(full, "rb") as f:
                assert data[done:] == f.read()[done:], "only the rest was fetched, with a Range request"

# A private repository is invisible to other users and to anonymous callers, everywhere.
assert api.model_info("alice/secret").id == "alice/secret"
for client in (HfApi(token=other), anon):
    raises(RepositoryNotFoundError, lambda: client.model_info("alice/secret"))
    raises(RepositoryNotFoundError, lambda: client.list_repo_files("alice/secret"))
    assert "alice/secret" not in {m.id for m in client.list_models(author="alice")}
with tempfile.TemporaryDirectory() as cache:
    raises(RepositoryNotFoundError, lambda: hf_hub_download("alice/secret", "config.json", cache_dir=cache, token=other))
assert {m.id for m in api.list_models(author="alice")} >= {"alice/tiny", "alice/secret"}
assert [m.id for m in api.list_models(search="tiny")] == ["alice/tiny"]
assert [m.id for m in api.list_models(filter="license:apache-2.0")] == ["alice/tiny"]

# A quarantined file: the scan's findings reach the user verbatim.
with tempfile.TemporaryDirectory() as cache:
    try:
        hf_hub_download("alice/evil", "evil.pkl", cache_dir=cache, token=token)
        raise AssertionError("a quarantined file must not download")
    except HfHubHTTPError as e:
        assert "quarantined" in str(e) and "posix.system" in str(e), str(e)

# A gated repository: visible, but files need an accepted access request.
def native(method, path, token):
    req = urllib.request.Request(os.environ["HF_ENDPOINT"] + path, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, data=b'{"status": "accepted"}' if method == "PUT" else b"")
    with urllib.request.urlopen(req) as res:
        return json.loads(res.read())

bob_api = HfApi(token=other)
assert bob_api.model_info("alice/gated").gated == "manual"
assert bob_api.repo_exists("alice/gated")
with tempfile.TemporaryDirectory() as cache:
    for tok in (other, False):
        raises(GatedRepoError, lambda: hf_hub_download("alice/gated", "weights.bin", cache_dir=cache, token=tok))
    assert native("POST", "/api/v1/repos/alice/gated/access-request", other)["status"] == "pending"
    raises(GatedRepoError, lambda: hf_hub_download("alice/gated", "weights.bin", cache_dir=cache, token=other))
    native("PUT", "/api/v1/repos/alice/gated/access-requests/bob", token)
    path = hf_hub_download("alice/gated", "weights.bin", cache_dir=cache, token=other)
    assert open(path, "rb").read() == b"gated weights"
    # The owner never needed a request.
    hf_hub_download("alice/gated", "weights.bin", cache_dir=cache, token=token, force_download=True)

url = api.create_repo("alice/created")
assert str(url).endswith("/alice/created"), url
again = api.create_repo("alice/created", exist_ok=True)
assert str(again).endswith("/alice/created")
api.create_repo("created-private", private=True)
assert api.model_info("alice/created-private").private
raises(RepositoryNotFoundError, lambda: HfApi(token=other).model_info("alice/created-private"))
print("huggingface_hub read paths: all checks passed")
