//! A time budget for every request body. actix-web bounds the time to read a request's head but
//! not its body, so a client that stops sending (or sends a byte a second) would hold its
//! connection and every buffer behind it forever. Each body is wrapped in a stream that fails
//! after `idle` without a byte, or once, after that first `idle` period, less than `min_rate`
//! bytes per second on average have arrived. The handler sees an ordinary payload error and
//! answers; the middleware, told through [`BodyWatch`], turns that answer into 408
//! `body-timeout`. And whenever an answer leaves before its request's body ended (a timeout, or
//! a handler that refused the request unread), the connection is closed: actix-http would
//! otherwise go on draining a chunked body, with no time limit, to keep the connection alive.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::error_code as code;

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

/// What became of a request's body: whether it ran out of time (with what to tell the client),
/// and whether it was read to its end. It also shares the connection's payload, so that the
/// answer can keep it from being seen as dropped (see [`BodyWatch::close_unread`]).
#[derive(Clone)]
pub struct BodyWatch {
    spent: Arc<OnceLock<String>>,
    ended: Arc<AtomicBool>,
    payload: Rc<RefCell<Payload>>,
}

impl BodyWatch {
    pub fn message(&self) -> Option<&str> {
        self.spent.get().map(String::as_str)
    }

    /// Whether the body was read to its end.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// The answer, made to close its connection when the body did not end: it says
    /// `Connection: close`, and it holds the request's payload until it is sent, because
    /// actix-http drains (without a time limit) a chunked body whose payload was dropped, but
    /// closes the connection at once when an answer leaves with the payload still held.
    pub fn close_unread(self, response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
        if self.ended() {
            return response;
        }
        let mut response = response;
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        let payload = self.payload;
        response
            .map_body(|_, body| HoldingPayload {
                body,
                _payload: payload,
            })
            .map_into_boxed_body()
    }

    /// The answer for a request whose body ran out of time.
    pub fn error(&self) -> Option<ApiError> {
        self.message().map(|m| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                code::BODY_TIMEOUT,
                m.to_string(),
            )
        })
    }
}

/// An answer's body that keeps the request's payload alive until it has been sent.
struct HoldingPayload {
    body: BoxBody,
    _payload: Rc<RefCell<Payload>>,
}

impl MessageBody for HoldingPayload {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

struct Budgeted {
    inner: Rc<RefCell<Payload>>,
    budget: Budget,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    done: bool,
    watch: BodyWatch,
}

impl Stream for Budgeted {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut *self.inner.borrow_mut()).poll_next(cx);
        match next {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                let now = Instant::now();
                let deadline = self.budget.deadline(self.started, now, self.received);
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.done = matches!(other, None | Some(Err(_)));
                if other.is_none() {
                    self.watch.ended.store(true, Ordering::Relaxed);
                }
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
                    let _ = self.watch.spent.set(message.clone());
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

/// Wraps `payload` in the budget; the watch tells afterwards what became of it.
pub fn wrap(payload: Payload, budget: Budget) -> (Payload, BodyWatch) {
    let now = Instant::now();
    let payload = Rc::new(RefCell::new(payload));
    let watch = BodyWatch {
        spent: Arc::default(),
        ended: Arc::default(),
        payload: payload.clone(),
    };
    let stream = Budgeted {
        inner: payload,
        budget,
        started: now,
        received: 0,
        timer: Box::pin(tokio::time::sleep_until(budget.deadline(now, now, 0))),
        done: false,
        watch: watch.clone(),
    };
    let boxed = Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;
    (Payload::from(boxed), watch)
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
        assert!(!spent.ended());
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
        assert!(spent.ended());
    }
}
