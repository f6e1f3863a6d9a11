//! When the mirror asks its upstream again, and when it leaves it alone.
//!
//! A fetch of a large model makes thousands of requests across the internet; one that fails for
//! a moment (a reset connection, a 502 from a load balancer, a 503 while a node restarts) should
//! cost that request again, not the whole fetch. An upstream that rate-limits the organisation's
//! shared identity says how long to wait (the public hub's `RateLimit` header, or `Retry-After`);
//! the mirror waits that long when it is short, and otherwise stops asking until then, so its
//! clients' retries do not spend the identity's next window.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// Tries of one request, the first included.
pub const ATTEMPTS: u32 = 4;

/// The longest wait the mirror sits out inside a fetch; an upstream that asks for more is left
/// alone until then, and the mirror's clients are told when to come back.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The wait before try `attempt` (1 for the first retry) when the upstream named none.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.saturating_sub(1).min(4))
}

/// Statuses that say "not now" rather than "no": the same request may succeed later.
pub fn transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// How long the upstream asked to be left alone: the reset of an exhausted `RateLimit`
/// (`"api";r=0;t=55`, the IETF draft the public hub and huggingface_hub follow), else
/// `Retry-After` in seconds (the date form is not used by hubs and is ignored).
pub fn asked_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(reset) = text("ratelimit").and_then(exhausted_reset) {
        return Some(Duration::from_secs(reset));
    }
    let seconds = text("retry-after")?.trim();
    seconds.parse::<u64>().ok().map(Duration::from_secs)
}

/// `t` of a `RateLimit` value whose `r` (requests remaining) is 0.
fn exhausted_reset(value: &str) -> Option<u64> {
    let mut remaining = None;
    let mut reset = None;
    for parameter in value.split(';').skip(1) {
        let (key, number) = parameter.split_once('=')?;
        let number = number.trim().parse::<u64>().ok();
        match key.trim() {
            "r" => remaining = number,
            "t" => reset = number,
            _ => {}
        }
    }
    (remaining? == 0).then_some(reset?)
}

/// Until when an upstream asked not to be asked (shared by every fetch from it).
#[derive(Debug, Default)]
pub struct QuietUntil(std::sync::Mutex<Option<Instant>>);

impl QuietUntil {
    /// What is left of the wait the upstream asked for, if any.
    pub fn left(&self) -> Option<Duration> {
        let until = (*self.0.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(Instant::now())
    }

    /// Records that the upstream asked for `wait`; a longer wait asked earlier stands.
    pub fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none_or(|earlier| earlier < until) {
            *held = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_wait_asked_for_by_rate_limit_or_retry_after() {
        let limited = headers(&[
            ("ratelimit", "\"api\";r=0;t=55"),
            ("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300"),
            ("retry-after", "7"),
        ]);
        assert_eq!(asked_wait(&limited), Some(Duration::from_secs(55)));
        // Requests left: the reset is no wait; Retry-After still counts.
        let left = headers(&[("ratelimit", "\"api\";r=3;t=55"), ("retry-after", "7")]);
        assert_eq!(asked_wait(&left), Some(Duration::from_secs(7)));
        assert_eq!(
            asked_wait(&headers(&[("ratelimit", "\"resolvers\" ; r = 0 ; t = 9")])),
            Some(Duration::from_secs(9))
        );
        assert_eq!(
            asked_wait(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(asked_wait(&headers(&[("ratelimit", "garbage")])), None);
        assert_eq!(asked_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_from_a_quarter_second_and_stops_growing() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_millis(1000));
        assert_eq!(backoff(40), Duration::from_millis(4000));
    }

    #[test]
    fn a_longer_wait_asked_earlier_stands() {
        let quiet = QuietUntil::default();
        assert_eq!(quiet.left(), None);
        quiet.hold_for(Duration::from_secs(60));
        quiet.hold_for(Duration::from_secs(1));
        assert!(quiet.left().unwrap() > Duration::from_secs(58));
    }
}
