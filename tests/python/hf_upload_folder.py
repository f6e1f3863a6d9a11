"""Uploads the folder KY_FOLDER to the model KY_REPO with the default huggingface_hub client
(hf_xet installed, so large files go through the hub's Xet CAS), token KY_TOKEN, against
HF_ENDPOINT. Prints "all checks passed" when the upload's commit lists every file."""
import os

from huggingface_hub import HfApi

api = HfApi(token=os.environ["KY_TOKEN"])
folder, repo = os.environ["KY_FOLDER"], os.environ["KY_REPO"]
api.upload_folder(folder_path=folder, repo_id=repo, commit_message="Upload through Xet")
listed = set(api.list_repo_files(repo))
for name in os.listdir(folder):
    assert name in listed, f"{name} missing from {sorted(listed)}"
print("all checks passed")
