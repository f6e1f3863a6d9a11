//! Publisher signatures on commits (OpenSSF model-signing bundles verified against the
//! namespace's keys and anchors) and the hub's own attestations of commits.

use futures_util::StreamExt;
use kaiyuan_provenance::bundle;
use kaiyuan_provenance::keys::{PrivateKey, PublicKey};
use kaiyuan_provenance::manifest::{GIT_PATHS, Resource, is_ignored};
use kaiyuan_provenance::verify::{Trust, Verification, verify};
use kaiyuan_storage::BlobStore;
use rand::Rng;
use sqlx::PgConnection;

use crate::config::Settings;
use crate::db;
use crate::db::repos::Repo;
use crate::domain::Error;

/// A bundle is a few KiB; anything much larger is not one.
const MAX_BUNDLE: u64 = 4 << 20;

/// Keys and anchors the namespace registered, plus the hub-wide anchors.
pub async fn trust_for(
    conn: &mut PgConnection,
    settings: &Settings,
    namespace_id: i64,
) -> Result<Trust, Error> {
    let mut trust = Trust::default();
    for row in db::provenance::keys(conn, namespace_id, false).await? {
        match row.kind {
            crate::db::types::KeyKind::Key => {
                if let Ok(k) = PublicKey::from_pem(&row.pem) {
                    trust.keys.push((row.name.clone(), k));
                }
            }
            crate::db::types::KeyKind::Anchor => {
                if let Ok(certs) = kaiyuan_provenance::cert::certificates_from_pem(&row.pem) {
                    trust.anchors.extend(certs);
                }
            }
        }
    }
    for path in &settings.provenance.trust_anchors {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| Error::Internal(format!("trust anchor {}: {e}", path.display())))?;
        trust.anchors.extend(
            kaiyuan_provenance::cert::certificates_from_pem(&pem)
                .map_err(|e| Error::Internal(format!("trust anchor {}: {e}", path.display())))?,
        );
    }
    Ok(trust)
}

/// Verifies the commit's signature bundle (if any) against its other files. The files'
/// digests are the stored blobs' sha256, so nothing is re-hashed.
pub async fn verify_commit(
    conn: &mut PgConnection,
    store: &BlobStore,
    settings: &Settings,
    repo: &Repo,
    commit: &str,
) -> Result<Verification, Error> {
    let name = &settings.provenance.signature_file;
    let files = db::commits::files(conn, repo.id, commit).await?;
    let Some(sig) = files.iter().find(|f| &f.path == name) else {
        return Ok(Verification::unsigned());
    };
    if sig.size as u64 > MAX_BUNDLE {
        let mut v = Verification::unsigned();
        v.status = kaiyuan_provenance::verify::Status::Invalid;
        v.reason = Some(format!(
            "{name} is {} bytes, too large to be a signature bundle",
            sig.size
        ));
        return Ok(v);
    }
    let mut stream = store.read(&sig.sha256, 0..sig.size as u64).await?;
    let mut bytes = Vec::with_capacity(sig.size as usize);
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    let mut resources = Vec::with_capacity(files.len());
    for f in files.iter().filter(|f| &f.path != name) {
        resources.push(Resource {
            name: f.path.clone(),
            digest: *f.sha256.as_bytes(),
        });
    }
    let trust = trust_for(conn, settings, repo.namespace_id).await?;
    Ok(verify(&bytes, &resources, &trust))
}

/// The newest attestation key, created on first use.
pub async fn attestation_key(conn: &mut PgConnection) -> Result<(PrivateKey, String), Error> {
    let current = db::provenance::attestation_keys(conn)
        .await?
        .into_iter()
        .rev()
        .find(|k| k.retired_at.is_none());
    if let Some(row) = current {
        let key = PrivateKey::from_pem(&row.private_pem)
            .map_err(|e| Error::Internal(format!("attestation key: {e}")))?;
        return Ok((key, row.fingerprint));
    }
    rotate_attestation_key(conn).await
}

/// Creates a new attestation key and retires the others; returns it and its fingerprint.
pub async fn rotate_attestation_key(
    conn: &mut PgConnection,
) -> Result<(PrivateKey, String), Error> {
    let key = loop {
        let secret: [u8; 32] = rand::rng().random();
        if let Ok(k) = PrivateKey::p256_from_bytes(&secret) {
            break k;
        }
    };
    let public = key.public_key();
    let fingerprint = public.fingerprint();
    db::provenance::add_attestation_key(conn, &key.to_pkcs8_pem(), &public.to_pem(), &fingerprint)
        .await?;
    Ok((key, fingerprint))
}

/// The hub's signed statement of a commit's files (git metadata left out, as the
/// model_signing tool does when it verifies a download), with kaiyuan's findings inside the
/// signed predicate.
pub async fn attestation(
    conn: &mut PgConnection,
    repo: &Repo,
    commit: &str,
    kaiyuan: serde_json::Value,
) -> Result<Vec<u8>, Error> {
    let git: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    let mut resources = Vec::new();
    for f in db::commits::files(conn, repo.id, commit).await? {
        if !is_ignored(&f.path, &git) {
            resources.push(Resource {
                name: f.path.clone(),
                digest: *f.sha256.as_bytes(),
            });
        }
    }
    kaiyuan_provenance::manifest::sort(&mut resources);
    let statement = bundle::statement(&repo.name, &resources, &[], Some(("kaiyuan", kaiyuan)));
    let (key, _) = attestation_key(conn).await?;
    Ok(bundle::sign(&statement, &key, None))
}
