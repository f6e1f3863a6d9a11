//! Content-addressed blob storage over [`object_store`].
//!
//! Every blob lives at `blobs/sha256/<aa>/<bb>/<hex>` under the store's prefix, so identical bytes
//! are stored once whichever repository they belong to. Uploads stream into a staging object while
//! the sha256 is computed in the same pass; only a complete upload whose digest and size match what
//! the client declared is promoted to its content address. Nothing half-written is ever reachable
//! through a content key.
//!
//! Two backends are supported: the local filesystem (`file:///abs/path`) and S3-compatible stores
//! (`s3://bucket/prefix`, configured by the usual `AWS_*` environment variables, with
//! `AWS_ENDPOINT` / `AWS_ALLOW_HTTP` for self-hosted servers).

mod chunked;
mod digest;
mod parts;
mod read;
mod seekable;
mod upload;
mod xet;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt};

pub use chunked::{ChunkedBlob, ChunkedUpload};
pub use digest::{Sha256Digest, Sha256ParseError};
pub use read::ByteStream;
pub use seekable::{RangeReader, ReadSeek};
pub use upload::{Expected, StoredBlob, Upload, UploadError};
pub use xet::{Recipe, RecipeChunk, RecipeReader, Recipes, StagedXorb, XorbUpload};

/// Errors of the storage layer that are not about a client's upload.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported object-store URL `{0}`: use file:///absolute/path or s3://bucket[/prefix]"
    )]
    UnsupportedUrl(String),
    #[error("blob {0} is not in the store")]
    NotFound(Sha256Digest),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("local store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

/// The backend behind a [`BlobStore`], kept so that backend-specific fast paths stay explicit.
#[derive(Debug, Clone)]
enum Backend {
    /// Local filesystem rooted at the directory (the object_store prefix).
    Local { root: PathBuf },
    /// An S3-compatible store, which can presign URLs.
    S3 { s3: Arc<AmazonS3> },
}

/// A content-addressed blob store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    /// Key prefix inside the bucket (empty for the local backend, whose root is the prefix).
    prefix: String,
    /// The process whose uploads stage under `staging/<owner>/`, so that the collector can
    /// remove a dead process's leftovers at once instead of after the age-based grace period.
    staging_owner: Option<Arc<str>>,
    /// Recipes of the files stored as Xet reconstructions (see [`xet`]).
    recipes: Option<Arc<dyn Recipes>>,
    /// The runtime the store was opened on (the hub's multi-threaded one), where uploads hash
    /// their bytes. An actix worker runs a single-threaded runtime: a task spawned there from a
    /// request shares the thread that receives the bytes, and hashing could not use a second core.
    background: Option<tokio::runtime::Handle>,
}

/// Make rustls use the `ring` provider; idempotent. Called before any TLS client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl BlobStore {
    /// Opens a store from a URL: `file:///absolute/dir` or `s3://bucket[/prefix]`.
    ///
    /// S3 credentials, region and endpoint come from the `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
    /// `AWS_ALLOW_HTTP`), as object_store's `AmazonS3Builder::from_env` reads them.
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        let parsed = url::Url::parse(url).map_err(|_| StorageError::UnsupportedUrl(url.into()))?;
        match parsed.scheme() {
            "file" => {
                let root = parsed
                    .to_file_path()
                    .map_err(|_| StorageError::UnsupportedUrl(url.into()))?;
                Self::local(root)
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| StorageError::UnsupportedUrl(url.into()))?;
                install_crypto_provider();
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()?;
                let prefix = parsed.path().trim_matches('/').to_string();
                Ok(Self::s3(s3, prefix))
            }
            _ => Err(StorageError::UnsupportedUrl(url.into())),
        }
    }

    /// A store on the local filesystem under `root` (created if missing). Writes are fsynced so
    /// that a blob reported as stored survives a crash.
    pub fn local(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let fs = LocalFileSystem::new_with_prefix(&root)?.with_fsync(true);
        Ok(Self {
            store: Arc::new(fs),
            backend: Backend::Local { root },
            prefix: String::new(),
            staging_owner: None,
            recipes: None,
            background: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// A store on an already-configured S3 client, with keys under `prefix`.
    pub fn s3(s3: AmazonS3, prefix: impl Into<String>) -> Self {
        let s3 = Arc::new(s3);
        Self {
            store: s3.clone(),
            backend: Backend::S3 { s3 },
            prefix: prefix.into(),
            staging_owner: None,
            recipes: None,
            background: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// A human-readable description of the backend, for logs and `/readyz`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local { root } => format!("file://{}", root.display()),
            Backend::S3 { .. } => format!("{} (prefix `{}`)", self.store, self.prefix),
        }
    }

    /// Whether this backend can hand out presigned download URLs.
    pub fn can_presign(&self) -> bool {
        matches!(self.backend, Backend::S3 { .. })
    }

    fn key(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn blob_key(&self, digest: &Sha256Digest) -> Path {
        let hex = digest.to_hex();
        self.key(&format!("blobs/sha256/{}/{}/{hex}", &hex[..2], &hex[2..4]))
    }

    fn staging_prefix(&self) -> Path {
        self.key("staging")
    }

    /// The same store, with this process's uploads staged under `staging/<owner>/` (`owner`: a
    /// process id of `[A-Za-z0-9-]`, registered where the collector can tell whether it lives).
    pub fn with_staging_owner(mut self, owner: &str) -> Self {
        self.staging_owner = Some(owner.into());
        self
    }

    /// Where a new upload stages its bytes.
    fn staging_key(&self, name: &str) -> Path {
        match &self.staging_owner {
            Some(owner) => self.key(&format!("staging/{owner}/{name}")),
            None => self.key(&format!("staging/{name}")),
        }
    }

    /// Size of the stored blob (a plain object or a Xet reconstruction), or `None` when the
    /// store holds neither.
    pub async fn blob_size(&self, digest: &Sha256Digest) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => {
                Ok(self.recipe_for(digest).await?.map(|r| r.size()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a streaming upload. See [`Upload`].
    pub async fn begin_upload(&self, expected: Expected) -> Result<Upload, StorageError> {
        Upload::begin(self.clone(), expected).await
    }

    /// Streams `range` (or the whole blob) of a stored blob.
    pub async fn read(
        &self,
        digest: &Sha256Digest,
        range: std::ops::Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        match read::read_range(self, digest, range.clone()).await {
            Err(StorageError::NotFound(_)) => match self.recipe_for(digest).await? {
                Some(recipe) => Ok(self.read_recipe(recipe, range)),
                None => Err(StorageError::NotFound(*digest)),
            },
            other => other,
        }
    }

    /// Blocking random access to a stored blob of `len` bytes, for parsers such as the scanner.
    /// Call from a blocking thread (`spawn_blocking`): S3 reads block on the runtime.
    pub fn open_blocking(
        &self,
        digest: &Sha256Digest,
        len: u64,
    ) -> Result<Box<dyn ReadSeek>, StorageError> {
        let key = self.blob_key(digest);
        let runtime = || {
            tokio::runtime::Handle::try_current()
                .map_err(|e| StorageError::Io(std::io::Error::other(e)))
        };
        let plain = match &self.backend {
            Backend::Local { root } => std::fs::File::open(root.join(key.as_ref())).is_ok(),
            Backend::S3 { .. } => runtime()?.block_on(self.store.head(&key)).is_ok(),
        };
        if !plain {
            let runtime = runtime()?;
            return match runtime.block_on(self.recipe_for(digest))? {
                Some(recipe) => Ok(Box::new(RecipeReader::new(self.clone(), recipe, runtime))),
                None => Err(StorageError::NotFound(*digest)),
            };
        }
        match &self.backend {
            Backend::Local { root } => Ok(Box::new(std::fs::File::open(root.join(key.as_ref()))?)),
            Backend::S3 { .. } => Ok(Box::new(RangeReader::new(
                self.store.clone(),
                key,
                len,
                runtime()?,
            ))),
        }
    }

    /// A short-lived URL that lets anyone holding it GET the blob, where the backend supports it.
    pub async fn presigned_get(
        &self,
        digest: &Sha256Digest,
        expires_in: Duration,
    ) -> Result<Option<url::Url>, StorageError> {
        match &self.backend {
            Backend::S3 { s3 } => Ok(Some(
                s3.signed_url(reqwest::Method::GET, &self.blob_key(digest), expires_in)
                    .await?,
            )),
            Backend::Local { .. } => Ok(None),
        }
    }

    /// Deletes a blob; deleting a missing blob is not an error.
    pub async fn delete_blob(&self, digest: &Sha256Digest) -> Result<(), StorageError> {
        match self.store.delete(&self.blob_key(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes staging objects older than `min_age`: leftovers of uploads interrupted by a crash
    /// between completion and promotion, and (local backend) half-written temporary files.
    /// Returns how many were removed.
    pub async fn collect_staging(&self, min_age: Duration) -> Result<usize, StorageError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let mut removed = self
            .remove_staging(|meta| meta.last_modified < cutoff)
            .await?;
        if let Backend::Local { root } = &self.backend {
            let staging = root.join("staging");
            removed += collect_local_partials(&staging, min_age)?;
            for entry in std::fs::read_dir(&staging).into_iter().flatten() {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    removed += collect_local_partials(&entry.path(), min_age)?;
                }
            }
        }
        Ok(removed)
    }

    /// Removes, whatever their age, the staging objects of owners that `is_live` says are gone:
    /// the leftovers of a process killed in the middle of uploads. Returns how many were removed.
    pub async fn collect_dead_staging(
        &self,
        is_live: impl Fn(&str) -> bool,
    ) -> Result<usize, StorageError> {
        let depth = self.staging_prefix().parts().count();
        let mut removed = self
            .remove_staging(|meta| {
                let parts: Vec<_> = meta.location.parts().skip(depth).collect();
                // `staging/<owner>/<name>`; older keys `staging/<name>` have no owner.
                parts.len() == 2 && !is_live(parts[0].as_ref())
            })
            .await?;
        if let Backend::Local { root } = &self.backend {
            for entry in std::fs::read_dir(root.join("staging"))
                .into_iter()
                .flatten()
            {
                let entry = entry?;
                let owner = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type()?.is_dir() && !is_live(&owner) {
                    removed += collect_local_partials(&entry.path(), Duration::ZERO)?;
                    // Empty now unless an upload raced in; then the next pass takes it.
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        Ok(removed)
    }

    /// Deletes the staging objects `doomed` picks; returns how many.
    async fn remove_staging(
        &self,
        doomed: impl Fn(&object_store::ObjectMeta) -> bool,
    ) -> Result<usize, StorageError> {
        let picked: Vec<Path> = self
            .store
            .list(Some(&self.staging_prefix()))
            .try_filter(|meta| std::future::ready(doomed(meta)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut removed = 0;
        for location in picked {
            match self.store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    /// Checks that the store answers (used by `/readyz`).
    pub async fn check_reachable(&self) -> Result<(), StorageError> {
        let mut listing = self.store.list(Some(&self.key("blobs")));
        listing.try_next().await?;
        Ok(())
    }
}

/// object_store's local backend writes multipart uploads to hidden `<key>#<n>` files that its
/// listing skips; a crash leaves them behind, so they are swept by age here.
fn collect_local_partials(dir: &std::path::Path, min_age: Duration) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let is_partial = entry.file_name().to_string_lossy().contains('#');
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if is_partial && age >= min_age {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
