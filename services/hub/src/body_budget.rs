//! A time budget for every request body. actix-web bounds the time to read a request's head but
//! not its body, so a client that stops sending (or sends a byte a second) would hold its
//! connection and every buffer behind it forever. Each body is wrapped in a stream that fails
//! with `TimedOut` after `idle` without a byte, or once, after that first `idle` period, less than
//! `min_rate` bytes per second on average have arrived. Handlers see an ordinary payload error,
//! answer, and the connection (whose body was not read to the end) is closed.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub idle: Duration,
    /// Bytes per second, averaged from the start of the body.
    pub min_rate: u64,
}

impl Budget {
    /// When the body, having `received` bytes since `started`, runs out of time: the end of the
    /// idle period, or the moment its average rate would fall below `min_rate`.
    fn deadline(&self, started: Instant, last: Instant, received: u64) -> Instant {
        let idle_end = last + self.idle;
        if self.min_rate == 0 {
            return idle_end;
        }
        let earned = self.idle + Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        idle_end.min(started + earned)
    }
}

/// The message every timed-out body carries (and the error mapping recognises).
pub const TIMED_OUT: &str = "the request body arrived too slowly";

struct Budgeted {
    inner: Payload,
    budget: Budget,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl Stream for Budgeted {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                let now = Instant::now();
                let deadline = self.budget.deadline(self.started, now, self.received);
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.done = matches!(other, None | Some(Err(_)));
                Poll::Ready(other)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    let secs = self.started.elapsed().as_secs();
                    let message = format!(
                        "{TIMED_OUT}: {} bytes in {secs} s (a body must not pause for {} s and must average {} bytes/s)",
                        self.received,
                        self.budget.idle.as_secs(),
                        self.budget.min_rate
                    );
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        message,
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Wraps `payload` in the budget.
pub fn wrap(payload: Payload, budget: Budget) -> Payload {
    let now = Instant::now();
    let stream = Budgeted {
        inner: payload,
        budget,
        started: now,
        received: 0,
        timer: Box::pin(tokio::time::sleep_until(budget.deadline(now, now, 0))),
        done: false,
    };
    Payload::from(Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>)
}

/// Whether a payload error is a spent budget.
pub fn is_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// The answer to a body that failed while being read: 408 `body-timeout` when its budget ran out
/// (extractors wrap the payload error, so its message is what is left to recognise), otherwise
/// what the caller makes of the failure.
pub fn failed(message: String, otherwise: impl FnOnce(String) -> ApiError) -> ApiError {
    if message.contains(TIMED_OUT) {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "body-timeout", message)
    } else {
        otherwise(message)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn budget() -> Budget {
        Budget {
            idle: Duration::from_millis(200),
            min_rate: 1000,
        }
    }

    fn body_from(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Payload {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, PayloadError>(b), rx))
        });
        Payload::from(Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>)
    }

    #[tokio::test]
    async fn a_silent_body_times_out_after_the_idle_period() {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let started = std::time::Instant::now();
        let mut body = wrap(body_from(rx), budget());
        let err = body.next().await.unwrap().unwrap_err();
        assert!(is_timeout(&err), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(body.next().await.is_none(), "nothing after the timeout");
    }

    #[tokio::test]
    async fn a_trickle_times_out_although_it_never_pauses_for_long() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            // One byte every 50 ms (20 B/s) never trips the 200 ms idle limit.
            while tx.send(Bytes::from_static(b"x")).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut body = wrap(body_from(rx), budget());
        let mut received = 0;
        let err = loop {
            match body.next().await.unwrap() {
                Ok(chunk) => received += chunk.len(),
                Err(e) => break e,
            }
        };
        assert!(is_timeout(&err), "{err}");
        assert!(received < 20, "stopped early, after {received} bytes");
    }

    #[tokio::test]
    async fn a_steady_body_arrives_whole() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            for _ in 0..10 {
                tx.send(Bytes::from(vec![0u8; 1000])).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut body = wrap(body_from(rx), budget());
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.unwrap().len();
        }
        assert_eq!(received, 10_000);
    }
}
