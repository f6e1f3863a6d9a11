//! The Sigstore bundle (v0.3) that carries a DSSE envelope with an in-toto statement whose
//! predicate is model-signing's manifest. Parsing is lenient (unknown fields are ignored);
//! what we produce is exactly what the strict Python reader accepts.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::manifest::{Resource, root_digest};

pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default)]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default)]
    pub message_signature: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default)]
    pub public_key: Option<PublicKeyRef>,
    #[serde(default)]
    pub x509_certificate_chain: Option<CertificateChain>,
    #[serde(default)]
    pub certificate: Option<RawBytes>,
    #[serde(default)]
    pub tlog_entries: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PublicKeyRef {
    #[serde(default)]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CertificateChain {
    pub certificates: Vec<RawBytes>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    pub raw_bytes: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvelopeSignature {
    pub sig: String,
    #[serde(default)]
    pub keyid: Option<String>,
}

/// Base64 as DSSE verifiers must accept it: standard or URL-safe, padded or not.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s.trim()).ok())
}

/// DSSE's pre-authentication encoding: the exact bytes that are signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The statement for a manifest, with optional extra predicate fields (signed, ignored by
/// the Python tool).
/// `also_ignored` lists paths outside the signature besides the git defaults (the signature
/// file itself when it lies inside the model folder), recorded so verifiers skip them too.
pub fn statement(
    model_name: &str,
    resources: &[Resource],
    also_ignored: &[String],
    extra: Option<(&str, Value)>,
) -> Value {
    let mut ignore_paths: Vec<String> = crate::manifest::GIT_PATHS
        .iter()
        .map(|s| s.to_string())
        .collect();
    ignore_paths.extend(also_ignored.iter().cloned());
    let mut predicate = json!({
        "serialization": {
            "method": "files",
            "hash_type": "sha256",
            "allow_symlinks": false,
            "ignore_paths": ignore_paths,
        },
        "resources": resources.iter().map(|r| json!({"name": r.name, "algorithm": "sha256", "digest": hex::encode(r.digest)})).collect::<Vec<_>>(),
    });
    if let Some((key, value)) = extra {
        predicate[key] = value;
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": hex::encode(root_digest(resources))}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    })
}

/// Signs a statement into a bundle with a key (`publicKey.hint`) or a certificate chain
/// (leaf first, DER).
pub fn sign(
    statement: &Value,
    key: &crate::keys::PrivateKey,
    chain: Option<&[Vec<u8>]>,
) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = serde_json::to_vec(statement).expect("statement serialises");
    let signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    let material = match chain {
        Some(certs) => {
            json!({"x509CertificateChain": {"certificates": certs.iter().map(|c| json!({"rawBytes": b64.encode(c)})).collect::<Vec<_>>()}, "tlogEntries": []})
        }
        None => json!({"publicKey": {"hint": key.public_key().hint()}, "tlogEntries": []}),
    };
    let bundle = json!({
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": b64.encode(&payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": b64.encode(signature), "keyid": ""}],
        },
    });
    serde_json::to_vec(&bundle).expect("bundle serialises")
}

/// What a report says about a bundle that was produced, for callers that store it.
#[derive(Debug, Clone, Serialize)]
pub struct Produced {
    pub root_digest: String,
    pub files: usize,
}
