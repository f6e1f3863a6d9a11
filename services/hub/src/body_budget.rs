//! A time budget for every request body. actix-web bounds the time to read a request's head but
//! not its body, so a client that stops sending (or sends a byte a second) would hold its
//! connection and every buffer behind it forever. Each body is wrapped in a stream that fails
//! after `idle` without a byte, or once, after that first `idle` period, less than `min_rate`
//! bytes per second on average have arrived. The handler sees an ordinary payload error and
//! answers; the middleware, told through [`Spent`], turns that answer into 408 `body-timeout`;
//! the connection, whose body was not read to the end, is closed.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
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

/// Set when a body ran out of time, with what to tell the client.
#[derive(Debug, Clone, Default)]
pub struct Spent(Arc<OnceLock<String>>);

impl Spent {
    pub fn message(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// The answer for a request whose body ran out of time.
    pub fn error(&self) -> Option<ApiError> {
        self.message()
            .map(|m| ApiError::new(StatusCode::REQUEST_TIMEOUT, "body-timeout", m.to_string()))
    }
}

struct Budgeted {
    inner: Payload,
    budget: Budget,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    done: bool,
    spent: Spent,
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
                        "the request body arrived too slowly: {} bytes in {secs} s (a body may not pause for {} s, and must average {} bytes/s after that)",
                        self.received,
                        self.budget.idle.as_secs(),
                        self.budget.min_rate
                    );
                    let _ = self.spent.0.set(message.clone());
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

/// Wraps `payload` in the budget; `Spent` tells afterwards whether it ran out.
pub fn wrap(payload: Payload, budget: Budget) -> (Payload, Spent) {
    let now = Instant::now();
    let spent = Spent::default();
    let stream = Budgeted {
        inner: payload,
        budget,
        started: now,
        received: 0,
        timer: Box::pin(tokio::time::sleep_until(budget.deadline(now, now, 0))),
        done: false,
        spent: spent.clone(),
    };
    let boxed = Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;
    (Payload::from(boxed), spent)
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
        let (mut body, spent) = wrap(body_from(rx), budget());
        assert!(spent.message().is_none());
        body.next().await.unwrap().unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(body.next().await.is_none(), "nothing after the timeout");
        let error = spent.error().expect("the budget is spent");
        assert_eq!((error.status.as_u16(), error.code), (408, "body-timeout"));
        assert!(error.message.contains("0 bytes"), "{}", error.message);
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
        let (mut body, spent) = wrap(body_from(rx), budget());
        let mut received = 0;
        while let Ok(chunk) = body.next().await.unwrap() {
            received += chunk.len();
        }
        assert!(spent.message().is_some());
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
        let (mut body, spent) = wrap(body_from(rx), budget());
        let mut received = 0;
        while let Some(chunk) = body.next().await {
            received += chunk.unwrap().len();
        }
        assert_eq!(received, 10_000);
        assert!(spent.message().is_none());
    }
}
