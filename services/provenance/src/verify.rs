//! Verifying a model-signing bundle against a model's files: the signature (a registered key
//! or a certificate chain to a trust anchor), the statement, the root digest and the exact set
//! of files.

use serde::Serialize;
use serde_json::Value;

use crate::bundle::{self, Bundle, decode_b64};
use crate::keys::PublicKey;
use crate::manifest::{self, GIT_PATHS, Resource};

/// Media types accepted on input (v0.3, and the older versioned spelling).
const MEDIA_TYPES: &[&str] = &[
    bundle::MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];

/// What signatures are trusted: keys (with a label such as who registered them) and
/// certificate anchors (DER).
#[derive(Default, Clone)]
pub struct Trust {
    pub keys: Vec<(String, PublicKey)>,
    pub anchors: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Verified,
    Invalid,
    Unsigned,
    UnverifiableOffline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Invalid => "invalid",
            Status::Unsigned => "unsigned",
            Status::UnverifiableOffline => "unverifiable-offline",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Signer {
    /// `key` or `certificate`.
    pub kind: String,
    /// `sha256:<hex>` of the signer's DER SubjectPublicKeyInfo.
    pub fingerprint: String,
    pub curve: String,
    /// The registered key's label, or the certificate's subject.
    pub identity: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<Signer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The subject (root) digest the statement signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_digest: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modified: Vec<String>,
    /// Files present but outside the signature (the git metadata the tool always ignores).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unprotected: Vec<String>,
}

impl Verification {
    fn new(status: Status, reason: impl Into<Option<String>>) -> Verification {
        Verification {
            status,
            signer: None,
            reason: reason.into(),
            root_digest: None,
            missing: vec![],
            extra: vec![],
            modified: vec![],
            unprotected: vec![],
        }
    }
    fn invalid(reason: impl Into<String>) -> Verification {
        Verification::new(Status::Invalid, Some(reason.into()))
    }
    pub fn unsigned() -> Verification {
        Verification::new(Status::Unsigned, None)
    }
}

/// Verifies `bundle_bytes` against `files` (every file of the model except the signature
/// itself, with sha256 digests).
pub fn verify(bundle_bytes: &[u8], files: &[Resource], trust: &Trust) -> Verification {
    let bundle: Bundle = match serde_json::from_slice(bundle_bytes) {
        Ok(b) => b,
        Err(e) => return Verification::invalid(format!("not a model-signing bundle: {e}")),
    };
    if !MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
        return Verification::invalid(format!("unknown bundle media type `{}`", bundle.media_type));
    }
    let m = &bundle.verification_material;
    let materials = [
        m.public_key.is_some(),
        m.x509_certificate_chain.is_some(),
        m.certificate.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if materials != 1 {
        return Verification::invalid(
            "the bundle must carry exactly one of publicKey, x509CertificateChain or certificate",
        );
    }
    if m.certificate.is_some() {
        return Verification::new(Status::UnverifiableOffline, Some(
            "a Sigstore keyless bundle (Fulcio certificate and Rekor entry): verifying it needs the Sigstore trusted root (trusted_root.json from Sigstore's TUF repository) and an identity policy (the expected signer identity and OIDC issuer); neither is configured on this hub".to_string(),
        ));
    }
    let Some(envelope) = &bundle.dsse_envelope else {
        return Verification::invalid(
            "the bundle has no DSSE envelope (message signatures are not model-signing bundles)",
        );
    };
    if envelope.payload_type != bundle::PAYLOAD_TYPE {
        return Verification::invalid(format!(
            "payload type `{}` is not in-toto",
            envelope.payload_type
        ));
    }
    let Some(first) = envelope.signatures.first() else {
        return Verification::invalid("the envelope has no signature");
    };
    let (Some(payload), Some(sig)) = (decode_b64(&envelope.payload), decode_b64(&first.sig)) else {
        return Verification::invalid("the envelope's payload or signature is not base64");
    };
    let signed = bundle::pae(&envelope.payload_type, &payload);

    // The signature: a registered key, or a chain to an anchor.
    let signer = if let Some(pk) = &m.public_key {
        match key_signer(pk.hint.as_deref(), &signed, &sig, trust) {
            Ok(s) => s,
            Err(reason) => return Verification::invalid(reason),
        }
    } else {
        let chain = m.x509_certificate_chain.as_ref().expect("one material");
        let mut ders = Vec::new();
        for c in &chain.certificates {
            match decode_b64(&c.raw_bytes) {
                Some(d) => ders.push(d),
                None => return Verification::invalid("a certificate in the chain is not base64"),
            }
        }
        let (key, subject) = match crate::cert::verify_chain(&ders, &trust.anchors) {
            Ok(x) => x,
            Err(reason) => return Verification::invalid(reason),
        };
        if !key.verify(&signed, &sig) {
            return Verification::invalid(
                "bad signature: the statement was not signed by the certificate's key",
            );
        }
        Signer {
            kind: "certificate".into(),
            fingerprint: key.fingerprint(),
            curve: key.curve().into(),
            identity: subject,
        }
    };

    // The statement and its manifest.
    let statement: Value = match serde_json::from_slice(&payload) {
        Ok(v) => v,
        Err(e) => return Verification::invalid(format!("the signed payload is not JSON: {e}")),
    };
    let signed_files = match parse_statement(&statement) {
        Ok(s) => s,
        Err(reason) => return Verification::invalid(reason),
    };
    let mut result = compare(&signed_files, files);
    result.signer = Some(signer);
    result
}

/// Finds the registered key that made the signature. The hint only orders the search.
fn key_signer(
    hint: Option<&str>,
    signed: &[u8],
    sig: &[u8],
    trust: &Trust,
) -> Result<Signer, String> {
    if trust.keys.is_empty() {
        return Err("no public keys are registered to verify key-signed bundles".into());
    }
    let hinted = |k: &PublicKey| hint.is_some_and(|h| h == k.hint() || h == k.der_hint());
    let mut keys: Vec<&(String, PublicKey)> = trust.keys.iter().collect();
    keys.sort_by_key(|(_, k)| !hinted(k));
    for (label, key) in keys {
        if key.verify(signed, sig) {
            return Ok(Signer {
                kind: "key".into(),
                fingerprint: key.fingerprint(),
                curve: key.curve().into(),
                identity: label.clone(),
            });
        }
    }
    if trust.keys.iter().any(|(_, k)| hinted(k)) {
        Err("bad signature: the statement does not match the signature of the registered key it names".into())
    } else {
        Err(format!(
            "unknown key: no registered key made this signature (hint {})",
            hint.unwrap_or("absent")
        ))
    }
}

struct SignedFiles {
    resources: Vec<Resource>,
    ignore_paths: Vec<String>,
    root: String,
}

fn parse_statement(s: &Value) -> Result<SignedFiles, String> {
    if s["_type"] != bundle::STATEMENT_TYPE {
        return Err(format!(
            "statement type {} is not in-toto Statement v1",
            s["_type"]
        ));
    }
    if s["predicateType"] != bundle::PREDICATE_TYPE {
        return Err(format!(
            "predicate type {} is not model signing v1.0",
            s["predicateType"]
        ));
    }
    let subjects = s["subject"]
        .as_array()
        .ok_or("the statement has no subject")?;
    let [subject] = subjects.as_slice() else {
        return Err(format!(
            "the statement must have exactly one subject, not {}",
            subjects.len()
        ));
    };
    let root = subject["digest"]["sha256"]
        .as_str()
        .ok_or("the subject has no sha256 digest")?
        .to_lowercase();
    let predicate = &s["predicate"];
    let serialization = &predicate["serialization"];
    if serialization["method"] != "files" || serialization["hash_type"] != "sha256" {
        return Err(format!(
            "serialization {}/{} is not supported: kaiyuan verifies file-by-file sha256 manifests (the model_signing default)",
            serialization["method"], serialization["hash_type"]
        ));
    }
    let ignore_paths: Vec<String> = serialization["ignore_paths"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let list = predicate["resources"]
        .as_array()
        .ok_or("the predicate has no resources")?;
    let mut resources = Vec::with_capacity(list.len());
    for r in list {
        let name = r["name"].as_str().ok_or("a resource has no name")?;
        manifest::validate_name(name)
            .or_else(|e| if name == "." { Ok(()) } else { Err(e) })
            .map_err(|e| e.0)?;
        if r["algorithm"] != "sha256" {
            return Err(format!(
                "resource {name}: algorithm {} is not sha256",
                r["algorithm"]
            ));
        }
        let digest = r["digest"]
            .as_str()
            .and_then(|d| hex::decode(d).ok())
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .ok_or(format!("resource {name}: digest is not 32 bytes of hex"))?;
        if resources.iter().any(|x: &Resource| x.name == name) {
            return Err(format!("resource {name} is listed twice"));
        }
        resources.push(Resource {
            name: name.to_string(),
            digest,
        });
    }
    if hex::encode(manifest::root_digest(&resources)) != root {
        return Err("the subject digest does not match the listed resources".into());
    }
    Ok(SignedFiles {
        resources,
        ignore_paths,
        root,
    })
}

/// Exact set comparison between what was signed and what is there.
fn compare(signed: &SignedFiles, files: &[Resource]) -> Verification {
    let mut v = Verification::new(Status::Verified, None);
    v.root_digest = Some(signed.root.clone());
    let git: Vec<String> = GIT_PATHS.iter().map(|s| s.to_string()).collect();
    let mut uncovered_ignores = Vec::new();
    for f in files {
        if manifest::is_ignored(&f.name, &signed.ignore_paths) {
            if manifest::is_ignored(&f.name, &git) {
                v.unprotected.push(f.name.clone());
            } else {
                uncovered_ignores.push(f.name.clone());
            }
            continue;
        }
        match signed.resources.iter().find(|r| r.name == f.name) {
            None => v.extra.push(f.name.clone()),
            Some(r) if r.digest != f.digest => v.modified.push(f.name.clone()),
            Some(_) => {}
        }
    }
    for r in &signed.resources {
        if !files.iter().any(|f| f.name == r.name) {
            v.missing.push(r.name.clone());
        }
    }
    let mut problems = Vec::new();
    if !v.modified.is_empty() {
        problems.push(format!("modified: {}", v.modified.join(", ")));
    }
    if !v.missing.is_empty() {
        problems.push(format!("missing: {}", v.missing.join(", ")));
    }
    if !v.extra.is_empty() {
        problems.push(format!("not signed: {}", v.extra.join(", ")));
    }
    if !uncovered_ignores.is_empty() {
        problems.push(format!(
            "the signature's ignore_paths leave these files unprotected: {}",
            uncovered_ignores.join(", ")
        ));
    }
    if !problems.is_empty() {
        v.status = Status::Invalid;
        v.reason = Some(format!(
            "the files do not match the signature ({})",
            problems.join("; ")
        ));
    }
    v
}
