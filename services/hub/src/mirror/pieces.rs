//! The xorb ranges a fetch reads from the upstream's CAS, asked in pieces on several connections
//! at once and handed on in file order.
//!
//! A distant server gives each connection a rate bounded by its window over the round trip, so
//! the stock client opens several; read one range at a time on one connection, a cold fetch ran
//! at a third of the rate the client got from the same upstream (`UPSTREAM_CONN_MBPS` in
//! `scripts/bench-mirror.sh`). Each piece is read whole before it is handed on, up to
//! `mirror.connections` of [`PIECE_BYTES`] at a time; a [`PieceBudget`] shared by every fetch
//! bounds the pieces held in memory, however many files are fetched at once.
//!
//! An upstream whose fetch URLs are signed for their exact range (a CDN policy) refuses a part of
//! one; the reader then reads each range whole, one at a time, streamed as it arrives.
//!
//! Signed URLs expire (the public hub's within the hour, kaiyuan's after 15 minutes), and a fetch
//! of a large model on a slow link outlasts them: a URL refused once pieces were read is signed
//! again from a fresh reconstruction ([`Signed`]), and the fetch goes on where it was.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::OwnedSemaphorePermit;

use super::retry;
use super::upstream::{Upstream, UpstreamError};

/// Bytes asked in one request.
const PIECE_BYTES: u64 = 4 << 20;

/// How many pieces one fetch reads at once, and the permits, shared by every fetch, without one
/// of which no piece is read: a piece keeps its permit until the fetch has used it, so the
/// mirror holds at most that many pieces whatever number of files it fetches.
#[derive(Clone, Debug)]
pub struct PieceBudget {
    per_fetch: usize,
    permits: Arc<tokio::sync::Semaphore>,
    /// The buffers pieces are read into, as many as permits at most, shared like them.
    buffers: Buffers,
}

impl PieceBudget {
    /// Room for `pieces` pieces (at least one), all of which one fetch may read at once.
    pub fn new(pieces: usize) -> Self {
        let pieces = pieces.max(1);
        PieceBudget {
            per_fetch: pieces,
            permits: Arc::new(tokio::sync::Semaphore::new(pieces)),
            buffers: Buffers::new(pieces),
        }
    }
}

/// Why a range could not be read.
#[derive(Debug)]
pub enum PieceError {
    /// The request failed: unreachable, refused or misdirected.
    Request(UpstreamError),
    /// The answer is not the bytes asked for.
    Body(String),
    /// The connection broke off before the whole answer came.
    BrokeOff(String),
}

/// Asks the upstream for fresh signed URLs of the same ranges, in the same order.
pub type SignAgain =
    Box<dyn Fn() -> BoxFuture<'static, Result<Vec<String>, UpstreamError>> + Send + Sync>;

/// How often one request may have its URL signed again before its refusal stands.
const SIGNINGS: u32 = 2;

/// The signed ranges of one file: the bytes of each (end excluded), and its URL, which is
/// replaced when the upstream refuses the old one as expired.
pub struct Signed {
    bytes: Vec<Range<u64>>,
    /// The URLs, and how many times they were signed again.
    urls: Mutex<(u32, Vec<String>)>,
    /// Held while URLs are signed again: the pieces refused at once get one new signing.
    signing: tokio::sync::Mutex<()>,
    sign_again: SignAgain,
    /// One more than the latest signing a piece was read with (0: none yet). An upstream that
    /// refuses parts refuses the first one; a URL refused after a read with it has expired.
    /// So an upstream that only refuses gets no new signing, and one that lies gets one per
    /// piece it delivered at most.
    read_with: AtomicU32,
}

impl Signed {
    /// `ranges` as the reconstruction named them, with the way to sign them again.
    pub fn new(ranges: Vec<(String, Range<u64>)>, sign_again: SignAgain) -> Self {
        let (urls, bytes) = ranges.into_iter().unzip();
        Signed {
            bytes,
            urls: Mutex::new((0, urls)),
            signing: tokio::sync::Mutex::new(()),
            sign_again,
            read_with: AtomicU32::new(0),
        }
    }

    fn urls(&self) -> std::sync::MutexGuard<'_, (u32, Vec<String>)> {
        self.urls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The URL of range `index`, and which signing it is.
    fn url(&self, index: usize) -> (u32, String) {
        let urls = self.urls();
        (urls.0, urls.1[index].clone())
    }

    /// Notes that a request made with signing `seen` was answered.
    fn read(&self, seen: u32) {
        self.read_with.fetch_max(seen + 1, Ordering::Relaxed);
    }

    fn read_any(&self) -> bool {
        self.read_with.load(Ordering::Relaxed) > 0
    }

    /// Whether a request refused with `error`, made with the URLs of signing `seen` and after
    /// `signings` of its own, is to be made again: with URLs another refused request had signed
    /// meanwhile, or, when its URL expired, with URLs signed again now.
    async fn signed_again(
        &self,
        error: &UpstreamError,
        seen: u32,
        signings: u32,
    ) -> Result<bool, UpstreamError> {
        let expired = matches!(error, UpstreamError::Refused(401 | 403, _));
        if !expired || signings >= SIGNINGS {
            return Ok(false);
        }
        let _one = self.signing.lock().await;
        let current = self.urls().0;
        if current != seen {
            return Ok(true);
        }
        if self.read_with.load(Ordering::Relaxed) <= current {
            // Never answered with these URLs: a refusal, not an expiry.
            return Ok(false);
        }
        tracing::info!("the upstream's signed URLs expired; asking for them again");
        let fresh = (self.sign_again)().await?;
        let mut urls = self.urls();
        if fresh.len() != urls.1.len() {
            return Err(UpstreamError::Malformed(
                "its reconstruction, asked again".into(),
                "it names other ranges than the first time".into(),
            ));
        }
        *urls = (current + 1, fresh);
        Ok(true)
    }
}

/// Reads the signed ranges of one file, in order, part by part: [`RangeReader::begin`] each
/// range, then take its parts with [`RangeReader::next_part`] until it gives `None`.
pub struct RangeReader {
    upstream: Upstream,
    signed: Arc<Signed>,
    /// The ranges not begun yet, by index.
    ranges: VecDeque<usize>,
    mode: Mode,
    current: Current,
    buffers: Buffers,
    /// The permit of the piece last handed on, let go when the next part is asked for.
    held: Option<OwnedSemaphorePermit>,
}

enum Mode {
    /// Pieces of every range, read ahead several at a time.
    Pieces(Pin<Box<dyn Stream<Item = Result<HeldPiece, PieceError>> + Send>>),
    /// Each range whole, one at a time.
    Whole,
}

enum Current {
    /// `left` pieces of range `index` still to come.
    Pieces {
        index: usize,
        left: u64,
    },
    /// The answer to a request for the whole range, `left` bytes of it still to come.
    Whole {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        left: u64,
    },
    None,
}

impl RangeReader {
    /// A reader of the `signed` ranges from `upstream`; pieces ahead of the one the caller waits
    /// for are read meanwhile, each in its own task.
    pub fn new(upstream: &Upstream, signed: Signed) -> Self {
        let budget = upstream.piece_budget();
        let signed = Arc::new(signed);
        let pieces = read_in_pieces(upstream, budget, &signed);
        RangeReader {
            upstream: upstream.clone(),
            ranges: (0..signed.bytes.len()).collect(),
            signed,
            mode: Mode::Pieces(Box::pin(pieces)),
            current: Current::None,
            buffers: budget.buffers.clone(),
            held: None,
        }
    }

    /// Hands back a part [`RangeReader::next_part`] gave, once it was used, so that its buffer
    /// takes a later piece.
    pub fn recycle(&self, part: Bytes) {
        self.buffers.give_back(part);
    }

    /// Starts the next range.
    pub async fn begin(&mut self) -> Result<(), PieceError> {
        let Some(index) = self.ranges.pop_front() else {
            return Err(PieceError::Body("a range was never read".into()));
        };
        self.start(index).await
    }

    async fn start(&mut self, index: usize) -> Result<(), PieceError> {
        let bytes = self.signed.bytes[index].clone();
        self.current = match self.mode {
            Mode::Pieces(_) => Current::Pieces {
                left: piece_count(bytes.end - bytes.start),
                index,
            },
            Mode::Whole => {
                let mut signings = 0;
                let response = loop {
                    let (seen, url) = self.signed.url(index);
                    match self.upstream.xorb_range(&url, bytes.clone()).await {
                        Ok(response) => {
                            self.signed.read(seen);
                            break response;
                        }
                        Err(e) => match self.signed.signed_again(&e, seen, signings).await {
                            Ok(true) => signings += 1,
                            Ok(false) => return Err(PieceError::Request(e)),
                            Err(e) => return Err(PieceError::Request(e)),
                        },
                    }
                };
                Current::Whole {
                    body: response.bytes_stream().boxed(),
                    left: bytes.end - bytes.start,
                }
            }
        };
        Ok(())
    }

    /// The next bytes of the current range, in order; `None` once it was read whole.
    pub async fn next_part(&mut self) -> Option<Result<Bytes, PieceError>> {
        // The caller is done with the part it was given last.
        self.held = None;
        loop {
            match &mut self.current {
                Current::None => return None,
                Current::Whole { body, left } => {
                    return match body.next().await {
                        Some(Ok(part)) if part.len() as u64 > *left => {
                            Some(Err(PieceError::Body(MORE_THAN_THE_RANGE.into())))
                        }
                        Some(Ok(part)) => {
                            *left -= part.len() as u64;
                            Some(Ok(part))
                        }
                        Some(Err(e)) => Some(Err(broke_off(&e))),
                        None if *left > 0 => Some(Err(PieceError::BrokeOff(format!(
                            "the download broke off {left} bytes before the end of a range"
                        )))),
                        None => None,
                    };
                }
                Current::Pieces { index, left } => {
                    if *left == 0 {
                        return None;
                    }
                    let Mode::Pieces(pieces) = &mut self.mode else {
                        unreachable!("pieces are read in the pieces mode");
                    };
                    match pieces.next().await {
                        Some(Ok((piece, permit))) => {
                            *left -= 1;
                            self.held = permit;
                            return Some(Ok(piece));
                        }
                        Some(Err(PieceError::Request(UpstreamError::Refused(
                            400 | 403 | 416,
                            _,
                        )))) if !self.signed.read_any() => {
                            let index = *index;
                            // The host only: the URL's query is a credential while it lasts.
                            let host = url::Url::parse(&self.signed.url(index).1)
                                .map(|u| u.origin().ascii_serialization())
                                .unwrap_or_default();
                            tracing::info!(
                                host,
                                "the upstream's CAS refuses parts of its signed ranges; reading each whole, one at a time"
                            );
                            self.mode = Mode::Whole;
                            if let Err(e) = self.start(index).await {
                                return Some(Err(e));
                            }
                        }
                        Some(Err(e)) => return Some(Err(e)),
                        None => {
                            return Some(Err(PieceError::Body("a range was never read".into())));
                        }
                    }
                }
            }
        }
    }
}

const MORE_THAN_THE_RANGE: &str = "the upstream's CAS sent more than the range it named";

fn broke_off(e: &reqwest::Error) -> PieceError {
    let why = format!("the download broke off: {e}");
    match e.is_timeout() {
        // Silent past the read timeout: asking again would only multiply it.
        true => PieceError::Body(why),
        false => PieceError::BrokeOff(why),
    }
}

/// How many pieces a range of `len` bytes is read in.
fn piece_count(len: u64) -> u64 {
    len.div_ceil(PIECE_BYTES)
}

/// Bytes `range` (end excluded) of a signed range, split into pieces.
fn split(range: Range<u64>) -> impl Iterator<Item = Range<u64>> {
    range
        .clone()
        .step_by(PIECE_BYTES as usize)
        .map(move |start| start..(start + PIECE_BYTES).min(range.end))
}

/// A piece's bytes and its permit of the [`PieceBudget`] (`None` only if the budget was closed,
/// which it never is).
type HeldPiece = (Bytes, Option<OwnedSemaphorePermit>);

/// The pieces of the `signed` ranges, in order, read up to the budget's `per_fetch` at a time;
/// dropping the stream stops the reads. Permits are taken in the pieces' order, so a fetch's
/// first piece not handed on always holds one: fetches that share the budget never wait on
/// each other for good.
fn read_in_pieces(
    upstream: &Upstream,
    budget: &PieceBudget,
    signed: &Arc<Signed>,
) -> impl Stream<Item = Result<HeldPiece, PieceError>> + Send + 'static {
    let pieces: Vec<(usize, Range<u64>)> = signed
        .bytes
        .iter()
        .enumerate()
        .flat_map(|(index, range)| split(range.clone()).map(move |piece| (index, piece)))
        .collect();
    let (upstream, signed) = (upstream.clone(), signed.clone());
    let (permits, buffers) = (budget.permits.clone(), budget.buffers.clone());
    stream::iter(pieces)
        .then(move |piece| {
            let permits = permits.clone();
            async move { (piece, permits.acquire_owned().await.ok()) }
        })
        .map(move |((index, bytes), permit)| {
            let (upstream, signed, buffer) = (upstream.clone(), signed.clone(), buffers.take());
            let read = Piece(tokio::spawn(async move {
                read_piece(&upstream, &signed, index, bytes, buffer).await
            }));
            async move { read.await.map(|piece| (piece, permit)) }
        })
        .buffered(budget.per_fetch)
}

/// One piece of range `index`, read whole into `piece` (an empty buffer): the connection's own
/// buffers are let go as it arrives, so what a piece holds is its bytes. A piece whose
/// connection broke off, or that the upstream answered "not now", is asked again (a fetch of
/// many gigabytes should not be lost to one reset connection), and one whose URL expired is
/// asked again with a new one; anything else fails the fetch.
async fn read_piece(
    upstream: &Upstream,
    signed: &Signed,
    index: usize,
    bytes: Range<u64>,
    mut piece: BytesMut,
) -> Result<Bytes, PieceError> {
    let (mut attempt, mut signings) = (1, 0);
    loop {
        piece.clear();
        let (seen, url) = signed.url(index);
        let error = match read_piece_once(upstream, &url, bytes.clone(), &mut piece).await {
            Ok(()) => {
                signed.read(seen);
                return Ok(piece.freeze());
            }
            Err(error) => error,
        };
        if let PieceError::Request(refused) = &error {
            match signed.signed_again(refused, seen, signings).await {
                Ok(true) => {
                    signings += 1;
                    continue;
                }
                Ok(false) => {}
                Err(e) => return Err(PieceError::Request(e)),
            }
        }
        let Some(wait) = retry_wait(&error, attempt) else {
            return Err(error);
        };
        tracing::debug!(attempt, ?wait, "a piece is asked for again");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// The wait before asking again for a piece that failed with `error` on try `attempt`, if it
/// may pass and tries are left. An unreachable CAS (refused, or silent past the read timeout) is
/// not asked again: that would only multiply the timeout.
fn retry_wait(error: &PieceError, attempt: u32) -> Option<Duration> {
    if attempt >= retry::ATTEMPTS {
        return None;
    }
    match error {
        PieceError::BrokeOff(_) => Some(retry::backoff(attempt)),
        PieceError::Request(UpstreamError::Busy { wait, .. }) => match *wait {
            Some(wait) if wait > retry::PATIENCE => None,
            Some(wait) => Some(wait),
            None => Some(retry::backoff(attempt)),
        },
        _ => None,
    }
}

async fn read_piece_once(
    upstream: &Upstream,
    url: &str,
    bytes: Range<u64>,
    piece: &mut BytesMut,
) -> Result<(), PieceError> {
    let response = upstream
        .xorb_range(url, bytes.clone())
        .await
        .map_err(PieceError::Request)?;
    let wanted = (bytes.end - bytes.start) as usize;
    piece.reserve(wanted);
    let mut body = response.bytes_stream();
    while let Some(part) = body.next().await {
        let part = part.map_err(|e| broke_off(&e))?;
        // An upstream that goes on past the range it signed is not read to its end.
        if piece.len() + part.len() > wanted {
            return Err(PieceError::Body(MORE_THAN_THE_RANGE.into()));
        }
        piece.extend_from_slice(&part);
    }
    if piece.len() < wanted {
        return Err(PieceError::BrokeOff(format!(
            "the download broke off after {} of {wanted} bytes of a range",
            piece.len()
        )));
    }
    Ok(())
}

/// The buffers pieces are read into, used again once a fetch is done with them: the bytes of
/// every fetch pass through the same few buffers, so their memory is those buffers whatever the
/// files and whatever the number of threads (a buffer allocated on one thread and freed on
/// another is kept by each thread's allocator arena, and fresh memory costs page faults).
#[derive(Clone, Debug)]
struct Buffers {
    kept: Arc<Mutex<Vec<BytesMut>>>,
    /// How many are in use at most (the budget's pieces).
    most: usize,
}

impl Buffers {
    fn new(most: usize) -> Self {
        Buffers {
            kept: Arc::default(),
            most,
        }
    }

    /// An empty buffer: one used before, or a new one.
    fn take(&self) -> BytesMut {
        self.kept()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(PIECE_BYTES as usize))
    }

    /// Keeps `piece`'s buffer for a later piece, if nothing else holds it and fewer than the
    /// buffers in use at most are kept.
    fn give_back(&self, piece: Bytes) {
        if let Ok(mut buffer) = piece.try_into_mut()
            && buffer.capacity() >= PIECE_BYTES as usize
        {
            buffer.clear();
            let mut kept = self.kept();
            if kept.len() < self.most {
                kept.push(buffer);
            }
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<BytesMut>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A piece being read; its task is stopped when the fetch no longer wants it.
struct Piece(tokio::task::JoinHandle<Result<Bytes, PieceError>>);

impl Future for Piece {
    type Output = Result<Bytes, PieceError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| Err(PieceError::Body(format!("the read stopped: {e}"))))
        })
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_pieces_that_cover_them_exactly() {
        let pieces: Vec<_> = split(5..5 + 2 * PIECE_BYTES + 3).collect();
        assert_eq!(
            pieces,
            [
                5..5 + PIECE_BYTES,
                5 + PIECE_BYTES..5 + 2 * PIECE_BYTES,
                5 + 2 * PIECE_BYTES..5 + 2 * PIECE_BYTES + 3
            ]
        );
        assert_eq!(piece_count(2 * PIECE_BYTES + 3), 3);
        assert_eq!(piece_count(PIECE_BYTES), 1);
        assert_eq!(split(9..10).count(), 1);
        assert_eq!(piece_count(1), 1);
    }

    #[test]
    fn a_piece_is_asked_again_only_for_what_may_pass() {
        let secs = Duration::from_secs;
        let busy = |wait| {
            PieceError::Request(UpstreamError::Busy {
                origin: "https://cas".into(),
                status: 429,
                wait,
            })
        };
        let broke = || PieceError::BrokeOff("reset".into());
        assert_eq!(retry_wait(&broke(), 1), Some(retry::backoff(1)));
        assert_eq!(retry_wait(&busy(None), 2), Some(retry::backoff(2)));
        assert_eq!(retry_wait(&busy(Some(secs(2))), 1), Some(secs(2)));
        assert_eq!(retry_wait(&busy(Some(secs(60))), 1), None, "past patience");
        assert_eq!(retry_wait(&broke(), retry::ATTEMPTS), None, "the last try");
        let never = [
            PieceError::Body(MORE_THAN_THE_RANGE.into()),
            PieceError::Request(UpstreamError::Refused(403, "https://cas/f".into())),
            PieceError::Request(UpstreamError::Unreachable("u".into(), "timed out".into())),
        ];
        for error in never {
            assert_eq!(retry_wait(&error, 1), None, "{error:?}");
        }
    }

    #[test]
    fn every_fetch_reads_into_the_budgets_few_buffers() {
        let budget = PieceBudget::new(2);
        let (one, other) = (budget.buffers.clone(), budget.clone().buffers);
        let mut taken: Vec<BytesMut> = (0..3).map(|_| one.take()).collect();
        let at: Vec<*const u8> = taken.iter().map(|b| b.as_ptr()).collect();
        for mut buffer in taken.drain(..) {
            buffer.extend_from_slice(b"piece");
            one.give_back(buffer.freeze());
        }
        assert_eq!(
            one.kept().len(),
            2,
            "no more are kept than the budget's pieces"
        );
        let again = other.take();
        assert!(
            at.contains(&again.as_ptr()),
            "another fetch reads into a buffer the first gave back"
        );
    }

    #[test]
    fn a_buffer_is_used_again_once_nothing_else_holds_it() {
        let buffers = Buffers::new(2);
        let mut buffer = buffers.take();
        buffer.extend_from_slice(b"piece");
        let at = buffer.as_ptr();
        let piece = buffer.freeze();
        let elsewhere = piece.clone();
        buffers.give_back(piece);
        assert!(buffers.kept().is_empty(), "it was still held elsewhere");
        buffers.give_back(elsewhere);
        let again = buffers.take();
        assert_eq!((again.as_ptr(), again.len()), (at, 0));
        assert!(again.capacity() >= PIECE_BYTES as usize);
        // A part that is not a piece buffer (a connection's own) is not kept.
        buffers.give_back(Bytes::from_static(b"part"));
        assert!(buffers.kept().is_empty());
    }

    #[tokio::test]
    async fn urls_are_signed_again_only_once_they_were_answered() {
        let calls = Arc::new(AtomicU32::new(0));
        let count = calls.clone();
        let signed = Signed::new(
            vec![("u0".into(), 0..10), ("v0".into(), 10..20)],
            Box::new(move || {
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                Box::pin(async move { Ok(vec![format!("u{n}"), format!("v{n}")]) })
            }),
        );
        let refused = UpstreamError::Refused(403, "https://cas/f".into());
        let again = |seen, signings| signed.signed_again(&refused, seen, signings);
        assert!(!again(0, 0).await.unwrap(), "never answered: a refusal");
        signed.read(0);
        assert!(again(0, 0).await.unwrap());
        assert_eq!(signed.url(1), (1, "v1".into()));
        assert!(
            again(0, 0).await.unwrap(),
            "signed meanwhile: use the new URLs"
        );
        assert!(
            !again(1, 0).await.unwrap(),
            "the new URLs were never answered"
        );
        signed.read(1);
        assert!(
            !again(1, SIGNINGS).await.unwrap(),
            "this request's signings are spent"
        );
        let missing = UpstreamError::Refused(404, "https://cas/f".into());
        assert!(!signed.signed_again(&missing, 1, 0).await.unwrap());
        assert!(again(1, 1).await.unwrap());
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(signed.url(0), (2, "u2".into()));
    }
}
