//! The xorb ranges a fetch reads from the upstream's CAS, asked in pieces on several connections
//! at once and handed on in file order.
//!
//! A distant server gives each connection a rate bounded by its window over the round trip, so
//! the stock client opens several; read one range at a time on one connection, a cold fetch ran
//! at a third of the rate the client got from the same upstream (`UPSTREAM_CONN_MBPS` in
//! `scripts/bench-mirror.sh`). Each piece is read whole before it is handed on, at most
//! [`IN_FLIGHT`] of [`PIECE_BYTES`] at a time, so memory stays bounded whatever the file.

use std::ops::Range;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::upstream::{Upstream, UpstreamError};

/// Bytes asked in one request.
const PIECE_BYTES: u64 = 8 << 20;

/// Requests in flight at once (each on its own connection).
const IN_FLIGHT: usize = 4;

/// Why a piece could not be read.
#[derive(Debug)]
pub enum PieceError {
    /// The request failed: unreachable, refused or misdirected.
    Request(UpstreamError),
    /// The answer is not the piece asked for: cut short, or longer.
    Body(String),
}

/// How many pieces a range of `len` bytes is read in.
pub fn piece_count(len: u64) -> u64 {
    len.div_ceil(PIECE_BYTES)
}

/// Bytes `range` (end excluded) of the signed URL `url`, split into pieces.
fn split(url: &str, range: Range<u64>) -> impl Iterator<Item = (String, Range<u64>)> + '_ {
    range
        .clone()
        .step_by(PIECE_BYTES as usize)
        .map(move |start| (url.to_string(), start..(start + PIECE_BYTES).min(range.end)))
}

/// Reads `ranges` (signed URLs, each with the bytes to read, end excluded) from `upstream`:
/// for each range in order, its [`piece_count`] pieces in order. Pieces ahead of the one the
/// caller waits for are read meanwhile, each in its own task; dropping the stream stops them.
pub fn read_in_pieces(
    upstream: &Upstream,
    ranges: &[(String, Range<u64>)],
) -> impl Stream<Item = Result<Vec<Bytes>, PieceError>> + Send + 'static {
    let pieces: Vec<(String, Range<u64>)> = ranges
        .iter()
        .flat_map(|(url, range)| split(url, range.clone()))
        .collect();
    let upstream = upstream.clone();
    stream::iter(pieces)
        .map(move |(url, bytes)| {
            let upstream = upstream.clone();
            Piece(tokio::spawn(async move {
                upstream.xorb_piece(&url, bytes).await
            }))
        })
        .buffered(IN_FLIGHT)
}

/// A piece being read; its task is stopped when the fetch no longer wants it.
struct Piece(tokio::task::JoinHandle<Result<Vec<Bytes>, PieceError>>);

impl Future for Piece {
    type Output = Result<Vec<Bytes>, PieceError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|joined| {
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
        let pieces: Vec<_> = split("u", 5..5 + 2 * PIECE_BYTES + 3)
            .map(|(_, r)| r)
            .collect();
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
        assert_eq!(split("u", 9..10).count(), 1);
        assert_eq!(piece_count(1), 1);
    }
}
