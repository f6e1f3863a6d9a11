//! The upstream hub as the mirror sees it: a revision's metadata and its files' bytes, through
//! the Hugging Face API that both the public hub and kaiyuan serve. Every call is bounded: a
//! connect timeout, and a timeout on each read, so an unreachable or stalled upstream fails
//! fast instead of hanging a client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::retry::{self, QuietUntil};
use crate::db::types::Gated;
use crate::outbound::{self, Destinations, GuardedResolver};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream hub {0} cannot be reached: {1}")]
    Unreachable(String, String),
    #[error("the upstream hub has no `{0}` at revision `{1}` (or does not let this hub see it)")]
    NotFound(String, String),
    #[error("the upstream hub answered {0} for {1}")]
    Refused(u16, String),
    #[error("the upstream hub named an address this hub does not reach: {0}")]
    Misdirected(String),
    #[error("the upstream hub's answer to {0} is unusable: {1}")]
    Malformed(String, String),
    /// A "not now" (429, 5xx) that outlasted the mirror's retries or its patience.
    #[error("the upstream hub {origin} is busy or rate-limiting this mirror (it answered {status}{})", asked(*.wait))]
    Busy {
        origin: String,
        status: u16,
        /// How long it asked the mirror to wait, if it said.
        wait: Option<Duration>,
    },
}

fn asked(wait: Option<Duration>) -> String {
    wait.map(|w| format!(" and asked for {} s before the next request", w.as_secs()))
        .unwrap_or_default()
}

/// Largest revision listing the mirror reads: an entry is a few hundred bytes, so this admits
/// repositories of over a hundred thousand files. A longer answer is refused, not held.
const MAX_LISTING_BYTES: usize = 64 << 20;

/// One file of an upstream revision, as its model-info listing describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamFile {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    /// The git blob id (sha1 of `blob <size>\0<bytes>`): the only digest the public hub gives
    /// for files outside LFS.
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<UpstreamLfs>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamLfs {
    pub sha256: String,
    pub size: u64,
}

/// An upstream revision: its commit id and files.
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamRevision {
    pub sha: String,
    #[serde(default)]
    pub private: bool,
    /// Whether downloads upstream need an accepted access request (`auto` or `manual`); the
    /// hub answers `false` for a model that is not gated.
    #[serde(default, deserialize_with = "gating")]
    pub gated: Option<Gated>,
    #[serde(default)]
    pub siblings: Vec<UpstreamFile>,
}

impl UpstreamRevision {
    /// What the mirror relies on in a listing: a commit id it can record and name in URLs, and
    /// file paths a commit here may hold (no `..`, no control characters: a client writes the
    /// files under these names).
    fn check(&self) -> Result<(), String> {
        let hex = self.sha.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || !matches!(self.sha.len(), 40 | 64) {
            let shown: String = self
                .sha
                .chars()
                .take(80)
                .flat_map(char::escape_debug)
                .collect();
            return Err(format!(
                "its commit id `{shown}` is not 40 or 64 hexadecimal characters"
            ));
        }
        for file in &self.siblings {
            crate::paths::RepoPath::parse(&file.rfilename).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// `gated` as the Hugging Face API writes it: `false`, `"auto"` or `"manual"`. Any other
/// truthy value is read as `manual`, the stricter gate.
fn gating<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Gated>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null | serde_json::Value::Bool(false) => None,
        serde_json::Value::String(mode) if mode == "auto" => Some(Gated::Auto),
        serde_json::Value::String(mode) if mode == "false" || mode == "none" => None,
        _ => Some(Gated::Manual),
    })
}

/// An HTTP client for one upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: String,
    token: Option<String>,
    pub(super) http: reqwest::Client,
    /// The same, without following redirects: the Hugging Face hub puts a file's Xet headers
    /// on the redirect its resolve route answers with.
    pub(super) probe: reqwest::Client,
    /// Where the URLs the upstream names may lead.
    destinations: Arc<Destinations>,
    /// Until when the upstream asked not to be asked (a rate limit's reset).
    quiet: Arc<QuietUntil>,
    /// The pieces of Xet ranges a fetch reads at once, and all fetches hold.
    budget: super::pieces::PieceBudget,
}

impl Upstream {
    /// A client of the hub at `base`, sending `token`; each read waits at most `timeout_secs`,
    /// every request, redirect included, goes only where `destinations` admits, and the pieces
    /// of its Xet files are read within `budget`.
    pub fn new(
        base: &str,
        token: Option<String>,
        timeout_secs: u64,
        destinations: Arc<Destinations>,
        budget: super::pieces::PieceBudget,
    ) -> Option<Self> {
        let base = base.trim_end_matches('/').to_string();
        kaiyuan_storage::install_crypto_provider();
        let client = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(timeout_secs))
                .user_agent("kaiyuan-mirror")
                .dns_resolver(GuardedResolver(destinations.clone()))
        };
        Some(Self {
            base,
            token,
            http: client()
                .redirect(outbound::redirects(destinations.clone()))
                .build()
                .ok()?,
            probe: client()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()?,
            destinations,
            quiet: Arc::default(),
            budget,
        })
    }

    pub(super) fn piece_budget(&self) -> &super::pieces::PieceBudget {
        &self.budget
    }

    /// Whether the mirror may send a request to `url`, a URL the upstream named.
    pub(super) fn check(&self, url: &str) -> Result<(), UpstreamError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| UpstreamError::Misdirected(format!("{url} is not a URL: {e}")))?;
        self.destinations
            .check(&parsed)
            .map_err(UpstreamError::Misdirected)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(super) fn resolve_url(&self, repo: &str, commit: &str, path: &str) -> String {
        let encoded: String = path
            .split('/')
            .map(|segment| {
                url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("/");
        format!("{}/{repo}/resolve/{commit}/{encoded}", self.base)
    }

    /// GETs `url` (with the organisation's token): the response, or unreachable.
    async fn get(&self, url: &str) -> Result<reqwest::Response, UpstreamError> {
        self.send_patiently(|| self.authorized(self.http.get(url)))
            .await
    }

    /// Sends the request `build` makes; a "not now" answer is asked again (see
    /// [`Upstream::wait_before_retry`]). An unreachable upstream is not, so that offline mode
    /// answers within the connect timeout.
    pub(super) async fn send_patiently(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut attempt = 1;
        loop {
            self.not_asked_to_wait()?;
            let response = build().send().await.map_err(|e| self.unreachable(e))?;
            match self.wait_before_retry(&response, attempt)? {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Ok(response),
            }
            attempt += 1;
        }
    }

    /// Refuses to send anything while the upstream's asked-for wait lasts.
    pub(super) fn not_asked_to_wait(&self) -> Result<(), UpstreamError> {
        match self.quiet.left() {
            Some(left) => Err(UpstreamError::Busy {
                origin: self.base.clone(),
                status: 429,
                wait: Some(left),
            }),
            None => Ok(()),
        }
    }

    /// For an answer to the API that says "not now": the wait before try `attempt + 1`. An
    /// answer that asks for longer than [`retry::PATIENCE`], or the last try's, is [`Busy`];
    /// any other answer is the caller's. A rate limit's wait holds every request to this
    /// upstream until it is over.
    ///
    /// [`Busy`]: UpstreamError::Busy
    fn wait_before_retry(
        &self,
        response: &reqwest::Response,
        attempt: u32,
    ) -> Result<Option<Duration>, UpstreamError> {
        let status = response.status().as_u16();
        if !retry::transient(status) {
            return Ok(None);
        }
        let asked = retry::asked_wait(response.headers());
        if let Some(wait) = asked.filter(|_| matches!(status, 429 | 503)) {
            self.quiet.hold_for(wait);
        }
        if attempt >= retry::ATTEMPTS || asked.is_some_and(|wait| wait > retry::PATIENCE) {
            return Err(UpstreamError::Busy {
                origin: self.base.clone(),
                status,
                wait: asked,
            });
        }
        tracing::info!(
            status,
            attempt,
            "the upstream answered \"not now\"; asking again"
        );
        Ok(Some(asked.unwrap_or_else(|| retry::backoff(attempt))))
    }

    /// `request` with the organisation's token, if one is configured.
    pub(super) fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The error of a request that failed: a refused destination, or an unreachable upstream
    /// with the innermost cause (reqwest's own message names only the URL).
    pub(super) fn unreachable(&self, e: reqwest::Error) -> UpstreamError {
        if let Some(refused) = outbound::misdirected(&e) {
            return UpstreamError::Misdirected(refused.0.clone());
        }
        let message = outbound::describe(&e);
        UpstreamError::Unreachable(self.base.clone(), message)
    }

    /// The body of `response` (an answer to `url`) as JSON, read up to `limit` bytes: an
    /// upstream that sends more is refused before the hub holds it all.
    pub(super) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
        url: &str,
        limit: usize,
    ) -> Result<T, UpstreamError> {
        let too_long = || UpstreamError::Malformed(url.into(), format!("it is over {limit} bytes"));
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_long());
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(piece) = stream.next().await {
            body.extend_from_slice(&piece.map_err(|e| self.unreachable(e))?);
            if body.len() > limit {
                return Err(too_long());
            }
        }
        serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Malformed(url.into(), e.to_string()))
    }

    /// The files of `repo` at `revision` (a branch, tag or commit id), with their digests.
    pub async fn revision(
        &self,
        repo: &str,
        revision: &str,
    ) -> Result<UpstreamRevision, UpstreamError> {
        let encoded: String = url::form_urlencoded::byte_serialize(revision.as_bytes()).collect();
        let url = format!(
            "{}/api/models/{repo}/revision/{encoded}?blobs=true",
            self.base
        );
        let response = self.get(&url).await?;
        match response.status().as_u16() {
            200 => {
                let listed: UpstreamRevision = self.json(response, &url, MAX_LISTING_BYTES).await?;
                listed
                    .check()
                    .map_err(|why| UpstreamError::Malformed(url, why))?;
                Ok(listed)
            }
            401 | 403 | 404 => Err(UpstreamError::NotFound(repo.into(), revision.into())),
            status => Err(UpstreamError::Refused(status, url)),
        }
    }

    /// The bytes of one file at a commit from byte `from` on, as a stream: read on from where
    /// a broken-off download stopped. A `206` must start at `from`; an upstream that ignores
    /// the range (a `200` is allowed to) has the bytes before it skipped.
    pub async fn file(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
        from: u64,
    ) -> Result<BoxStream<'static, reqwest::Result<Bytes>>, UpstreamError> {
        let url = self.resolve_url(repo, commit, path);
        let response = self
            .send_patiently(|| {
                let request = self.authorized(self.http.get(&url));
                match from {
                    0 => request,
                    from => request.header(reqwest::header::RANGE, format!("bytes={from}-")),
                }
            })
            .await?;
        match response.status().as_u16() {
            200 => Ok(skip(response.bytes_stream(), from)),
            206 if from > 0 => {
                let start = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                match start {
                    Some(start) if start == from => Ok(response.bytes_stream().boxed()),
                    _ => Err(UpstreamError::Malformed(
                        url,
                        format!("asked to read on from byte {from}, it answered another range"),
                    )),
                }
            }
            status => Err(UpstreamError::Refused(status, url)),
        }
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/SIZE` header.
fn content_range_start(value: &str) -> Option<u64> {
    let (first, _) = value.strip_prefix("bytes ")?.split_once('-')?;
    first.trim().parse().ok()
}

/// `body` without its first `n` bytes.
fn skip(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    n: u64,
) -> BoxStream<'static, reqwest::Result<Bytes>> {
    let mut left = n;
    body.filter_map(move |part| {
        let kept = match part {
            Ok(mut bytes) if left > 0 => {
                let dropped = left.min(bytes.len() as u64);
                left -= dropped;
                let rest = bytes.split_off(dropped as usize);
                (!rest.is_empty()).then_some(Ok(rest))
            }
            other => Some(other),
        };
        std::future::ready(kept)
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gating_as_the_hugging_face_api_writes_it() {
        let gated = |v: serde_json::Value| {
            serde_json::from_value::<UpstreamRevision>(serde_json::json!({"sha": "a", "gated": v}))
                .unwrap()
                .gated
        };
        assert_eq!(gated(serde_json::json!(false)), None);
        assert_eq!(gated(serde_json::json!(null)), None);
        assert_eq!(gated(serde_json::json!("auto")), Some(Gated::Auto));
        assert_eq!(gated(serde_json::json!("manual")), Some(Gated::Manual));
        assert_eq!(
            gated(serde_json::json!(true)),
            Some(Gated::Manual),
            "unknown: the stricter gate"
        );
        let absent: UpstreamRevision = serde_json::from_str(r#"{"sha": "a"}"#).unwrap();
        assert_eq!(absent.gated, None);
    }

    #[test]
    fn a_range_answer_names_where_it_starts() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes x-2/3"), None);
    }

    #[tokio::test]
    async fn a_body_that_starts_over_is_read_on_from_where_it_stopped() {
        let parts = || ["abc", "defg", "", "hij"].map(|p| Ok::<_, reqwest::Error>(Bytes::from(p)));
        for (n, rest) in [
            (0, "abcdefghij"),
            (2, "cdefghij"),
            (3, "defghij"),
            (7, "hij"),
        ] {
            let body = skip(futures_util::stream::iter(parts()), n);
            let read: Vec<Bytes> = body.map(Result::unwrap).collect().await;
            assert_eq!(read.concat(), rest.as_bytes(), "skipping {n}");
        }
        let past: Vec<_> = skip(futures_util::stream::iter(parts()), 20)
            .collect()
            .await;
        assert!(past.is_empty());
    }
}
