-- Reads that stay flat as one repository, one branch, one organisation or the blob store grows.

-- Tree listings page through a commit's files in byte order (`COLLATE "C"`, the order of every
-- listing) from a keyset cursor, and list a folder's entries with one probe each. The primary
-- key's `path` has the database's collation, which cannot serve that order on every database.
CREATE INDEX commit_files_path_order ON commit_files (repository_id, commit_id, path COLLATE "C");

-- A namespace's licence report pages through its live repositories by name.
CREATE INDEX repositories_namespace_name_order ON repositories (namespace_id, name)
    WHERE deleted_at IS NULL;

-- The garbage collector asks, for each blob of a batch, whether an upload grant holds it; and
-- expires grants by age.
CREATE INDEX repository_uploads_sha256_idx ON repository_uploads (sha256);
CREATE INDEX repository_uploads_uploaded_at_idx ON repository_uploads (uploaded_at);
