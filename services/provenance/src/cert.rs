//! Certificate mode: the bundle's chain (leaf first) validated against trust anchors with
//! rustls-webpki, for code signing, at the leaf's notBefore (as the model-signing tool does:
//! a signature stays valid after its certificate expires).

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::der::{Decode, Encode};

use crate::keys::PublicKey;

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER-encoded OID value.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// The leaf's key and subject when the chain leads to one of `anchors` (DER certificates).
pub fn verify_chain(chain: &[Vec<u8>], anchors: &[Vec<u8>]) -> Result<(PublicKey, String), String> {
    let leaf_der = chain.first().ok_or("the certificate chain is empty")?;
    let leaf =
        x509_cert::Certificate::from_der(leaf_der).map_err(|e| format!("leaf certificate: {e}"))?;
    let not_before = leaf
        .tbs_certificate()
        .validity()
        .not_before
        .to_unix_duration();
    let subject = leaf.tbs_certificate().subject().to_string();
    let spki = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("leaf key: {e}"))?;
    let key = PublicKey::from_spki_der(&spki).map_err(|e| e.0)?;

    let anchor_ders: Vec<CertificateDer> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    let trust: Vec<_> = anchor_ders
        .iter()
        .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
        .collect();
    if trust.is_empty() {
        return Err("no trust anchors are configured for certificate-signed bundles".into());
    }
    let intermediates: Vec<CertificateDer> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_cert = CertificateDer::from(leaf_der.as_slice());
    let end_entity = webpki::EndEntityCert::try_from(&leaf_cert)
        .map_err(|e| format!("leaf certificate: {e}"))?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust,
            &intermediates,
            UnixTime::since_unix_epoch(not_before),
            webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
            None,
            None,
        )
        .map_err(|e| {
            format!("the certificate chain does not lead to a trusted anchor for code signing: {e}")
        })?;
    Ok((key, subject))
}

/// DER certificates from a PEM file with one or more `CERTIFICATE` blocks.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use x509_cert::der::DecodePem;
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let end = rest[start..]
            .find(end_marker)
            .ok_or("unterminated CERTIFICATE block")?
            + start
            + end_marker.len();
        let cert = x509_cert::Certificate::from_pem(&rest[start..end])
            .map_err(|e| format!("certificate: {e}"))?;
        out.push(cert.to_der().map_err(|e| format!("certificate: {e}"))?);
        rest = &rest[end..];
    }
    if out.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(out)
}
