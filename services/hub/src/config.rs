//! Settings: coded defaults, then an optional TOML file, then environment variables, then
//! command-line flags (each layer overrides the one before).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Everything the hub can be told. Each field names the environment variable that overrides it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `KAIYUAN_LISTEN`: address the HTTP server binds.
    pub listen: String,
    /// `KAIYUAN_DATA_DIR`: the embedded PostgreSQL cluster and local object store live here.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: an external PostgreSQL; unset means the embedded cluster under `data_dir`.
    pub database_url: Option<String>,
    /// `KAIYUAN_STORE_URL`: `file:///abs/path` or `s3://bucket/prefix` (S3 reads `AWS_*`);
    /// unset means `file://<data_dir>/objects`.
    pub store_url: Option<String>,
    pub limits: Limits,
    pub downloads: Downloads,
    pub workers: Workers,
    pub gc: Gc,
    pub embedded_postgres: EmbeddedPostgres,
    pub provenance: Provenance,
    pub reviews: Reviews,
    pub verification: Verification,
    pub xet: Xet,
    pub mirror: Mirror,
    pub webhooks: Webhooks,
}

/// Where organisations' webhooks may deliver.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    /// Hosts on private or loopback addresses that webhooks may deliver to, as `host` (any
    /// port) or `host:port`: an internal chat relay, say. Every public address is allowed;
    /// any other address is refused, when the webhook is added and at each delivery.
    pub internal_hosts: Vec<String>,
}

/// Mirror mode: repositories this hub does not hold are fetched from an upstream hub on first
/// use, checked like uploads, and served from here.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mirror {
    /// `KAIYUAN_UPSTREAM` / `serve --upstream`: a Hugging Face-compatible endpoint. Unset: no
    /// mirroring.
    pub upstream: Option<String>,
    /// `KAIYUAN_UPSTREAM_TOKEN`: the token sent upstream (the organisation's identity there).
    pub upstream_token: Option<String>,
    /// Repositories that may be mirrored: `org/*`, `org/name`, or a regular expression between
    /// slashes (`/^org/.+-gguf$/`). Empty: every repository.
    pub allow: Vec<String>,
    /// Repositories never mirrored, in the same forms; deny wins over allow.
    pub deny: Vec<String>,
    /// Longest wait for the upstream's metadata, and for each read of a file's bytes.
    pub timeout_secs: u64,
    /// Connections a file's fetch opens at once to an upstream's CAS, each reading a piece of 4
    /// MiB; also how many pieces the mirror holds in memory at once across all its fetches. A
    /// distant upstream needs about its rate times its round trip in flight: 12 pieces keep
    /// about 500 MB/s going over a 100 ms round trip.
    pub connections: usize,
    /// The organisation whose licence policy decides what the mirror serves: a mirrored
    /// revision its policy denies is refused with the policy's reason. Unset: no licence gate.
    pub policy: Option<String>,
    /// Storage budget of mirrored content, in bytes (0: none). Past it, the least recently read
    /// mirrored repositories that are not pinned lose their content (the next read fetches it
    /// again); files a local commit references are never freed.
    pub budget_bytes: u64,
    /// Mirrored repositories never evicted, in the allow-list forms.
    pub pinned: Vec<String>,
    /// How often `serve` re-syncs mirrored branches with the upstream (0: never; `kaiyuan
    /// mirror sync` does it once).
    pub sync_secs: u64,
    /// How long a client's request waits for a fetch in progress before it is answered 503
    /// "being mirrored and checked, retry" (the fetch goes on). Below huggingface_hub's 10 s
    /// metadata timeout.
    pub wait_secs: u64,
    /// More upstreams (`[[mirror.upstreams]]`), asked in order before `upstream`: a repository
    /// comes from the first whose patterns admit it.
    pub upstreams: Vec<MoreUpstream>,
    /// Hosts on private or loopback addresses that the upstreams may send the mirror to, as
    /// `host` (any port) or `host:port`: an internal upstream's S3 server, say. The upstreams'
    /// own origins are always allowed, and so is any public address; every other address an
    /// upstream names (a redirect, a CAS URL) is refused.
    pub internal_hosts: Vec<String>,
}

/// One more upstream of a mirror, with its own token and patterns (forms as in `allow`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoreUpstream {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

impl Mirror {
    /// Whether any upstream is configured.
    pub fn configured(&self) -> bool {
        self.upstream.is_some() || !self.upstreams.is_empty()
    }
}

impl Default for Mirror {
    fn default() -> Self {
        Self {
            upstream: None,
            upstream_token: None,
            allow: Vec::new(),
            deny: Vec::new(),
            timeout_secs: 30,
            connections: 12,
            policy: None,
            budget_bytes: 0,
            pinned: Vec::new(),
            sync_secs: 3600,
            wait_secs: 8,
            upstreams: Vec::new(),
            internal_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Xet {
    /// Serve the Xet CAS and advertise it to clients (`false`: the token route answers 501 and
    /// clients must upload through LFS).
    pub enabled: bool,
    /// Lifetime of a CAS token, in seconds (clients refresh it 30 s before it expires).
    pub token_secs: u64,
    /// Lifetime of a signed xorb fetch URL in a reconstruction, in seconds.
    pub fetch_url_secs: u64,
}

impl Default for Xet {
    fn default() -> Self {
        Self {
            enabled: true,
            token_secs: 3600,
            fetch_url_secs: 15 * 60,
        }
    }
}

/// Sample-inference verification of ONNX models by this process's workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Verification {
    /// `cpu`, `cuda` or `auto` (CUDA when it initialises, else the CPU); `kaiyuan worker --ep`
    /// overrides it. Only `cuda` workers take jobs that ask for a GPU.
    pub ep: kaiyuan_verifier::Ep,
    /// The ONNX Runtime shared library; `ORT_DYLIB_PATH` overrides it, and unset means the one
    /// `scripts/install-deps.sh` extracts from the `onnxruntime` wheel.
    pub onnxruntime_library: Option<PathBuf>,
    /// The `kaiyuan` executable each model runs under (default: this one).
    pub program: Option<PathBuf>,
    /// Memory limit of each model's process, in MiB.
    pub memory_mib: u64,
    /// Wall-clock and CPU-time limit of each model's process, in seconds.
    pub timeout_secs: u64,
    /// Where a commit's files are written for a run (default: the system temporary folder).
    pub work_dir: Option<PathBuf>,
    /// Values for symbolic input dimensions (`batch`, `sequence`...) when a model card gives
    /// none; the card's `verification.dims` wins.
    pub dims: std::collections::BTreeMap<String, i64>,
}

impl Default for Verification {
    fn default() -> Self {
        Self {
            ep: kaiyuan_verifier::Ep::Cpu,
            onnxruntime_library: None,
            program: None,
            memory_mib: 4096,
            timeout_secs: 300,
            work_dir: None,
            dims: std::collections::BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reviews {
    /// Days after which an unresolved security report may be disclosed.
    pub disclosure_days: u32,
}

impl Default for Reviews {
    fn default() -> Self {
        Self {
            disclosure_days: 90,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Provenance {
    /// Name of the model-signing bundle a commit carries at its root.
    pub signature_file: String,
    /// PEM files of certificate authorities trusted hub-wide for certificate-signed bundles
    /// (namespaces add their own).
    pub trust_anchors: Vec<PathBuf>,
}

impl Default for Provenance {
    fn default() -> Self {
        Self {
            signature_file: "model.sig".into(),
            trust_anchors: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// `KAIYUAN_MAX_FILE_SIZE`: largest single file, in bytes.
    pub max_file_size: u64,
    /// `KAIYUAN_MAX_JSON_BODY`: largest JSON request body (inline file contents included).
    pub max_json_body: usize,
    /// `KAIYUAN_MAX_FILES_PER_COMMIT`: operations and files in one commit.
    pub max_files_per_commit: usize,
    /// LFS objects at least this large are uploaded by Hugging Face clients in parts.
    pub lfs_multipart_threshold: u64,
    /// Size of one such part.
    pub lfs_part_size: u64,
    /// `KAIYUAN_BODY_IDLE_SECS`: longest silence inside a request body before the request is
    /// answered 408 and its connection closed.
    pub body_idle_secs: u64,
    /// `KAIYUAN_BODY_MIN_RATE`: after `body_idle_secs`, a body must have arrived at this average
    /// rate (bytes per second) or the request is answered 408: a trickle cannot hold a connection.
    pub body_min_rate: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Downloads {
    /// `KAIYUAN_PRESIGNED_REDIRECTS`: redirect downloads to short-lived store URLs when the
    /// store can presign (S3).
    pub presigned_redirects: bool,
    /// Lifetime of a presigned URL, in seconds.
    pub presign_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workers {
    /// `KAIYUAN_WORKERS`: job workers that `serve` runs in-process (0 disables them).
    pub in_process: usize,
    /// A claimed job's lease; the heartbeat renews it at a third of this.
    pub lease_secs: u64,
    /// Longest sleep between queue polls when no notification arrives.
    pub poll_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gc {
    /// How often `serve` runs the garbage collector (0 disables it).
    pub interval_secs: u64,
    /// Staging objects older than this are leftovers of a crash.
    pub staging_grace_secs: u64,
    /// Unreferenced blobs are removed only after this long, which must exceed the longest upload.
    pub blob_grace_secs: u64,
    /// A deleted repository's name stays reserved (and its data kept) for this many days.
    pub deleted_repo_grace_days: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedPostgres {
    /// `KAIYUAN_EMBEDDED_PG_PORT`: loopback port of the embedded cluster. Unset: a free port
    /// chosen when the cluster is created and kept in `<data_dir>/postgres.port`, so two hubs
    /// with their own data directories run side by side.
    pub port: Option<u16>,
    /// Directory holding `initdb` and `pg_ctl`; found automatically when unset.
    pub bin_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from(".kaiyuan"),
            database_url: None,
            store_url: None,
            limits: Limits::default(),
            downloads: Downloads::default(),
            workers: Workers::default(),
            gc: Gc::default(),
            embedded_postgres: EmbeddedPostgres::default(),
            provenance: Provenance::default(),
            reviews: Reviews::default(),
            verification: Verification::default(),
            xet: Xet::default(),
            mirror: Mirror::default(),
            webhooks: Webhooks::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_size: 512 * 1024 * 1024 * 1024,
            max_json_body: 32 * 1024 * 1024,
            max_files_per_commit: 25_000,
            lfs_multipart_threshold: 1024 * 1024 * 1024,
            lfs_part_size: 64 * 1024 * 1024,
            body_idle_secs: 30,
            body_min_rate: 4 * 1024,
        }
    }
}

impl Default for Downloads {
    fn default() -> Self {
        Self {
            presigned_redirects: false,
            presign_ttl_secs: 300,
        }
    }
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            in_process: 2,
            lease_secs: 60,
            poll_secs: 5,
        }
    }
}

impl Default for Gc {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            staging_grace_secs: 24 * 3600,
            blob_grace_secs: 7 * 24 * 3600,
            deleted_repo_grace_days: 30,
        }
    }
}

impl Settings {
    /// Defaults, overridden by the TOML file at `path` (if any), then by the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut settings = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Settings::default(),
        };
        settings.apply_env(|name| std::env::var(name).ok())?;
        Ok(settings)
    }

    /// Applies environment overrides; `get` abstracts the environment so tests need not touch it.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parsed<T: std::str::FromStr>(name: &str, value: String) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|e| anyhow::anyhow!("environment variable {name}=`{value}`: {e}"))
        }
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        if let Some(v) = get("KAIYUAN_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("KAIYUAN_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("KAIYUAN_STORE_URL") {
            self.store_url = Some(v);
        }
        if let Some(v) = get("KAIYUAN_MAX_FILE_SIZE") {
            self.limits.max_file_size = parsed("KAIYUAN_MAX_FILE_SIZE", v)?;
        }
        if let Some(v) = get("KAIYUAN_MAX_JSON_BODY") {
            self.limits.max_json_body = parsed("KAIYUAN_MAX_JSON_BODY", v)?;
        }
        if let Some(v) = get("KAIYUAN_MAX_FILES_PER_COMMIT") {
            self.limits.max_files_per_commit = parsed("KAIYUAN_MAX_FILES_PER_COMMIT", v)?;
        }
        if let Some(v) = get("KAIYUAN_EMBEDDED_PG_PORT") {
            self.embedded_postgres.port = Some(parsed("KAIYUAN_EMBEDDED_PG_PORT", v)?);
        }
        if let Some(v) = get("KAIYUAN_BODY_IDLE_SECS") {
            self.limits.body_idle_secs = parsed("KAIYUAN_BODY_IDLE_SECS", v)?;
        }
        if let Some(v) = get("KAIYUAN_BODY_MIN_RATE") {
            self.limits.body_min_rate = parsed("KAIYUAN_BODY_MIN_RATE", v)?;
        }
        if let Some(v) = get("KAIYUAN_PRESIGNED_REDIRECTS") {
            self.downloads.presigned_redirects = parsed("KAIYUAN_PRESIGNED_REDIRECTS", v)?;
        }
        if let Some(v) = get("KAIYUAN_WORKERS") {
            self.workers.in_process = parsed("KAIYUAN_WORKERS", v)?;
        }
        if let Some(v) = get("KAIYUAN_UPSTREAM").filter(|v| !v.is_empty()) {
            self.mirror.upstream = Some(v);
        }
        if let Some(v) = get("KAIYUAN_UPSTREAM_TOKEN").filter(|v| !v.is_empty()) {
            self.mirror.upstream_token = Some(v);
        }
        Ok(())
    }

    /// The object-store URL, defaulting to `objects/` in the data directory.
    pub fn effective_store_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.store_url {
            return Ok(url.clone());
        }
        let dir = self.data_dir.join("objects");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating object store directory {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        Ok(url::Url::from_directory_path(&dir)
            .map_err(|()| anyhow::anyhow!("data directory {} is not absolute", dir.display()))?
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_and_defaults() {
        let mut settings: Settings =
            toml::from_str("listen = \"0.0.0.0:9000\"\n[limits]\nmax_file_size = 10\n").unwrap();
        assert_eq!(settings.listen, "0.0.0.0:9000");
        settings
            .apply_env(|name| match name {
                "KAIYUAN_MAX_FILE_SIZE" => Some("20".into()),
                "DATABASE_URL" => Some("postgres://db/kaiyuan".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(settings.limits.max_file_size, 20);
        assert_eq!(settings.listen, "0.0.0.0:9000");
        assert_eq!(
            settings.database_url.as_deref(),
            Some("postgres://db/kaiyuan")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Settings::default()
            .apply_env(|name| (name == "KAIYUAN_WORKERS").then(|| "many".into()))
            .unwrap_err();
        assert!(err.to_string().contains("KAIYUAN_WORKERS"), "{err}");
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let example = include_str!("../../../kaiyuan.example.toml");
        let settings: Settings = toml::from_str(example).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:8080");
        assert!(settings.webhooks.internal_hosts.is_empty());
        assert!(!settings.mirror.configured());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }
}
