//! A file read from the upstream's Xet CAS, as the Hugging Face client reads it: the file's Xet
//! hash and token route from the resolve headers, a read token, the file's reconstruction, then
//! the xorb ranges it names. The mirror keeps the chunks as they were cut upstream, so it does
//! not cut the bytes again (a tenth of a fetch's CPU), and its Xet hash is the upstream's.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use kaiyuan_xet::MerkleHash;
use serde::Deserialize;

use super::pieces::SignAgain;
use super::retry;
use super::upstream::{Upstream, UpstreamError};

/// Largest reconstruction the mirror reads: a few hundred bytes per term, and a term per xorb
/// of up to 64 MiB, so this covers files far beyond any model's.
const MAX_RECONSTRUCTION_BYTES: usize = 16 << 20;

/// Largest read-token answer the mirror reads (a token, its expiry and a URL).
const MAX_TOKEN_BYTES: usize = 64 << 10;

/// Where the upstream's CAS serves one file from.
#[derive(Debug)]
pub struct XetSource {
    pub hash: MerkleHash,
    cas_url: String,
    token: String,
}

/// A file's reconstruction: its terms in order, and where each xorb's chunk ranges are fetched.
#[derive(Debug, Deserialize)]
pub struct Reconstruction {
    #[serde(default)]
    offset_into_first_range: u64,
    terms: Vec<Term>,
    fetch_info: HashMap<String, Vec<Fetch>>,
}

#[derive(Debug, Deserialize)]
struct Term {
    hash: String,
    unpacked_length: u64,
    range: ChunkRange,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct ChunkRange {
    start: u64,
    end: u64,
}

/// A signed URL for the frames of chunks `range` of a xorb: bytes `url_range` (end included).
#[derive(Debug, Deserialize)]
pub struct Fetch {
    range: ChunkRange,
    url: String,
    url_range: ChunkRange,
}

impl Fetch {
    /// Bytes of the signed range (its end is included).
    pub fn len(&self) -> u64 {
        self.url_range.end - self.url_range.start + 1
    }

    /// The signed URL, and the bytes it reads (end excluded).
    pub fn signed_range(&self) -> (String, Range<u64>) {
        (
            self.url.clone(),
            self.url_range.start..self.url_range.end + 1,
        )
    }
}

/// One term to read: the chunks `wanted` of the upstream's xorb `xorb`, from the frames `fetch`
/// returns, which start with chunk `fetch.range.start`; they should make `unpacked_length` bytes.
#[derive(Debug)]
pub struct TermRead<'a> {
    pub xorb: MerkleHash,
    pub fetch: &'a Fetch,
    pub wanted: Range<u64>,
    pub first: u64,
    pub unpacked_length: u64,
}

impl Reconstruction {
    /// The terms in file order, each with the fetch that covers it; an error names the first
    /// term the upstream gave no way to read.
    pub fn reads(&self) -> Result<Vec<TermRead<'_>>, String> {
        if self.offset_into_first_range != 0 {
            return Err("its reconstruction does not start at the file's first byte".into());
        }
        self.terms
            .iter()
            .enumerate()
            .map(|(i, term)| {
                let fetch = self
                    .fetch_info
                    .get(&term.hash)
                    .and_then(|fetches| {
                        fetches.iter().find(|f| {
                            f.range.start <= term.range.start
                                && term.range.end <= f.range.end
                                && f.url_range.start <= f.url_range.end
                        })
                    })
                    .filter(|_| term.range.start < term.range.end)
                    .ok_or_else(|| format!("term {i} of its reconstruction has no fetch URL"))?;
                let xorb = term
                    .hash
                    .parse()
                    .map_err(|_| format!("term {i} of its reconstruction names no xorb hash"))?;
                Ok(TermRead {
                    xorb,
                    fetch,
                    wanted: term.range.start..term.range.end,
                    first: fetch.range.start,
                    unpacked_length: term.unpacked_length,
                })
            })
            .collect()
    }
}

impl Reconstruction {
    /// The signed URL of each of `ranges` (a xorb and the bytes of it, end excluded), as this
    /// reconstruction names them: the same ranges, signed again, when an earlier one expired.
    pub fn urls_of(&self, ranges: &[(MerkleHash, Range<u64>)]) -> Result<Vec<String>, String> {
        ranges
            .iter()
            .map(|(xorb, bytes)| {
                self.fetch_info
                    .get(&xorb.to_string())
                    .into_iter()
                    .flatten()
                    .find(|fetch| fetch.signed_range().1 == *bytes)
                    .map(|fetch| fetch.url.clone())
                    .ok_or_else(|| format!("it no longer names bytes {bytes:?} of xorb {xorb}"))
            })
            .collect()
    }
}

impl Upstream {
    /// Fresh signed URLs for `ranges` of the file `hash` at `path`: a new read token (the old
    /// one may have expired with them) and a new reconstruction.
    pub async fn sign_again(
        &self,
        (repo, commit, path): (&str, &str, &str),
        hash: MerkleHash,
        ranges: &[(MerkleHash, Range<u64>)],
    ) -> Result<Vec<String>, UpstreamError> {
        let what = || format!("the reconstruction of {repo}/{path}, asked again");
        let source = self
            .xet_source(repo, commit, path)
            .await
            .filter(|source| source.hash == hash)
            .ok_or_else(|| {
                UpstreamError::Malformed(what(), "it no longer serves the file through Xet".into())
            })?;
        let plan = self.reconstruction(&source).await?;
        plan.urls_of(ranges)
            .map_err(|why| UpstreamError::Malformed(what(), why))
    }

    /// How a fetch of the file `hash` at `at` (repository, commit, path) gets fresh URLs for its
    /// `ranges` when the old ones expired: [`Upstream::sign_again`].
    pub fn signer(
        &self,
        at: (&str, &str, &str),
        hash: MerkleHash,
        ranges: Vec<(MerkleHash, Range<u64>)>,
    ) -> SignAgain {
        let upstream = self.clone();
        let at = Arc::new((at.0.to_string(), at.1.to_string(), at.2.to_string()));
        let ranges = Arc::new(ranges);
        Box::new(move || {
            let (upstream, at, ranges) = (upstream.clone(), at.clone(), ranges.clone());
            Box::pin(async move {
                let (repo, commit, path) = &*at;
                upstream
                    .sign_again((repo, commit, path), hash, &ranges)
                    .await
            })
        })
    }

    /// The Xet source of a file, when the upstream serves it through a CAS (its resolve
    /// headers name a Xet hash and a token route); `None` otherwise, or when asking fails,
    /// and the file is then read through resolve.
    pub async fn xet_source(&self, repo: &str, commit: &str, path: &str) -> Option<XetSource> {
        // An upstream that asked for a wait gets no request; resolve then says why.
        self.not_asked_to_wait().ok()?;
        let url = self.resolve_url(repo, commit, path);
        let head = self.authorized(self.probe.head(&url)).send().await.ok()?;
        let header = |name: &str| head.headers().get(name).and_then(|v| v.to_str().ok());
        let hash: MerkleHash = header("x-xet-hash")?.parse().ok()?;
        let token_url = header("link").and_then(xet_auth_link)?;
        // The organisation's token goes to the upstream itself, never to a host a header names.
        if !same_origin(&token_url, self.base()) {
            tracing::info!(
                repo,
                path,
                token_url,
                "the upstream's xet-auth link leaves its origin; reading through resolve"
            );
            return None;
        }
        let response = self
            .authorized(self.http.get(&token_url))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            tracing::debug!(repo, path, status = %response.status(), "no xet read token; reading through resolve");
            return None;
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Token {
            access_token: String,
            cas_url: String,
        }
        let token: Token = self
            .json(response, &token_url, MAX_TOKEN_BYTES)
            .await
            .ok()?;
        if let Err(e) = self.check(&token.cas_url) {
            tracing::warn!(repo, path, error = %e, "the upstream's CAS is refused; reading through resolve");
            return None;
        }
        Some(XetSource {
            hash,
            cas_url: token.cas_url.trim_end_matches('/').to_string(),
            token: token.access_token,
        })
    }

    /// The reconstruction of the whole file, read up to [`MAX_RECONSTRUCTION_BYTES`].
    pub async fn reconstruction(
        &self,
        source: &XetSource,
    ) -> Result<Reconstruction, UpstreamError> {
        let url = format!("{}/v1/reconstructions/{}", source.cas_url, source.hash);
        let response = self
            .send_patiently(|| self.http.get(&url).bearer_auth(&source.token))
            .await?;
        if !response.status().is_success() {
            return Err(UpstreamError::Refused(response.status().as_u16(), url));
        }
        self.json(response, &url, MAX_RECONSTRUCTION_BYTES).await
    }

    /// The answer to a request for bytes `bytes` (end excluded) of a signed fetch URL: a whole
    /// signed range, or a piece of one. The URL is signed: it gets the range, and no
    /// credentials.
    pub async fn xorb_range(
        &self,
        url: &str,
        bytes: Range<u64>,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.check(url)?;
        let range = format!("bytes={}-{}", bytes.start, bytes.end - 1);
        let response = self
            .http
            .get(url)
            .header(reqwest::header::RANGE, range)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        // Named without its query: the signature is a credential while it lasts.
        let parsed = url::Url::parse(url).ok();
        let origin = parsed.as_ref().map(|u| u.origin().ascii_serialization());
        let origin = origin.unwrap_or_default();
        match response.status().as_u16() {
            200 | 206 => Ok(response),
            status if retry::transient(status) => Err(UpstreamError::Busy {
                origin,
                status,
                wait: retry::asked_wait(response.headers()),
            }),
            status => {
                let path = parsed.as_ref().map(url::Url::path).unwrap_or_default();
                Err(UpstreamError::Refused(status, format!("{origin}{path}")))
            }
        }
    }
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// The URL of the `rel="xet-auth"` link of a `Link` header.
fn xet_auth_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"xet-auth\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xet_auth_link_among_others() {
        let link = "<https://hub/api/models/a/b/xet-read-token/c>; rel=\"xet-auth\"";
        assert_eq!(
            xet_auth_link(link).as_deref(),
            Some("https://hub/api/models/a/b/xet-read-token/c")
        );
        let many = "<https://x/next>; rel=\"next\", <https://hub/t>; rel=\"xet-auth\"";
        assert_eq!(xet_auth_link(many).as_deref(), Some("https://hub/t"));
        assert_eq!(xet_auth_link("<https://x/next>; rel=\"next\""), None);
    }

    #[test]
    fn the_token_goes_only_to_the_upstreams_origin() {
        let base = "https://huggingface.co";
        assert!(same_origin(
            "https://huggingface.co/api/models/a/b/xet-read-token/c",
            base
        ));
        assert!(!same_origin(
            "https://evil.example/api/models/a/b/xet-read-token/c",
            base
        ));
        assert!(
            !same_origin("http://huggingface.co/t", base),
            "not over plain HTTP"
        );
        assert!(!same_origin("https://huggingface.co:8443/t", base));
        assert!(!same_origin("not a url", base));
    }

    fn plan(json: serde_json::Value) -> Reconstruction {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_term_needs_a_fetch_that_covers_it() {
        let x = "ab".repeat(32);
        let fetch = |start, end| serde_json::json!({"range": {"start": start, "end": end}, "url": "u", "url_range": {"start": 0, "end": 99}});
        let good = plan(serde_json::json!({
            "terms": [{"hash": x, "unpacked_length": 5, "range": {"start": 2, "end": 4}}],
            "fetch_info": {x.clone(): [fetch(0, 1), fetch(1, 4)]},
        }));
        let reads = good.reads().unwrap();
        assert_eq!((reads[0].first, reads[0].wanted.clone()), (1, 2..4));
        assert_eq!(reads[0].xorb.to_string(), x);
        let uncovered = plan(serde_json::json!({
            "terms": [{"hash": x, "unpacked_length": 5, "range": {"start": 2, "end": 6}}],
            "fetch_info": {x.clone(): [fetch(0, 4)]},
        }));
        assert!(uncovered.reads().unwrap_err().contains("term 0"));
        let unnamed = plan(serde_json::json!({
            "terms": [{"hash": "x", "unpacked_length": 5, "range": {"start": 0, "end": 1}}],
            "fetch_info": {"x": [fetch(0, 4)]},
        }));
        assert!(unnamed.reads().unwrap_err().contains("no xorb hash"));
        let offset = plan(serde_json::json!({
            "offset_into_first_range": 3, "terms": [], "fetch_info": {},
        }));
        assert!(offset.reads().is_err());
    }

    #[test]
    fn ranges_signed_again_are_found_by_xorb_and_bytes() {
        let (x, y) = ("ab".repeat(32), "cd".repeat(32));
        let fetch = |url: &str, start: u64, end: u64| serde_json::json!({"range": {"start": 0, "end": 1}, "url": url, "url_range": {"start": start, "end": end}});
        let again = plan(serde_json::json!({
            "terms": [],
            "fetch_info": {x.clone(): [fetch("x1", 0, 99), fetch("x2", 100, 199)], y.clone(): [fetch("y1", 0, 9)]},
        }));
        let key = |h: &str, r: Range<u64>| (h.parse::<MerkleHash>().unwrap(), r);
        let asked = [key(&y, 0..10), key(&x, 100..200), key(&x, 0..100)];
        assert_eq!(again.urls_of(&asked).unwrap(), ["y1", "x2", "x1"]);
        let gone = again.urls_of(&[key(&x, 0..50)]).unwrap_err();
        assert!(gone.contains("no longer names"), "{gone}");
    }
}
