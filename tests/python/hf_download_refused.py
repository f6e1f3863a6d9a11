"""Checks that the stock client, at its default settings (Xet where the hub offers it), cannot
download a file the hub refuses, and that its error carries the hub's reason (KY_REPO, KY_PATH,
KY_REVISION, KY_REASON)."""
import os
import tempfile

from huggingface_hub import hf_hub_download, snapshot_download

repo, path, revision, reason = (os.environ[k] for k in ("KY_REPO", "KY_PATH", "KY_REVISION", "KY_REASON"))


def refused(download):
    with tempfile.TemporaryDirectory() as cache:
        try:
            download(cache)
        except Exception as e:  # the client's own exception type varies with its version
            message = f"{type(e).__name__}: {e}"
            assert reason in message, f"the error does not give the hub's reason: {message}"
            files = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs]
            assert not any(f.endswith(path) for f in files), f"refused bytes reached the cache: {files}"
            return message
        raise AssertionError("the download succeeded")


print(refused(lambda cache: hf_hub_download(repo, path, revision=revision, cache_dir=cache)))
print(refused(lambda cache: snapshot_download(repo, revision=revision, cache_dir=cache)))
print("refused download: all checks passed")
