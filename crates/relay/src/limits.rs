//! Limits a peer can hit: request rate per connection and request body size.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use backchannel_wire::ApiError;

/// A token bucket: `rate` tokens a second, at most `burst` saved up. Time comes in as a value.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self { rate: f64::from(rate), burst: f64::from(burst), tokens: f64::from(burst), last: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reads a request body of at most `limit` bytes. A declared length over the limit is refused
/// before any of the body is read; an undeclared one is cut off as soon as it passes the limit.
/// A body that has not arrived whole within `timeout` is refused, so a client trickling it
/// cannot hold a connection slot for ever.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    (limit, timeout): (usize, Duration),
    what: &str,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("{what} is at most {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await.map_err(|_| {
        ApiError::BadRequest(format!("{what} did not arrive within {} s", timeout.as_secs_f64()))
    })?;
    read.map_err(|err| {
        let over =
            std::error::Error::source(&err).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over { too_large() } else { ApiError::BadRequest(format!("could not read the {what}")) }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(50)));
        assert!(b.try_take(t0 + Duration::from_millis(110)));
        assert!(!b.try_take(t0 + Duration::from_millis(110)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.try_take(later)));
        assert!(!b.try_take(later));
    }

    #[tokio::test]
    async fn declared_oversize_is_refused_unread() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "100".parse().unwrap());
        let err = read_body(&headers, Body::from(vec![0u8; 100]), (10, T), "a send batch").await.unwrap_err();
        assert_eq!(err, ApiError::TooLarge("a send batch is at most 10 bytes".into()));
    }

    #[tokio::test]
    async fn undeclared_oversize_is_cut_off() {
        let err = read_body(&HeaderMap::new(), Body::from(vec![0u8; 100]), (10, T), "x").await.unwrap_err();
        assert!(matches!(err, ApiError::TooLarge(_)));
        let ok = read_body(&HeaderMap::new(), Body::from(vec![1u8; 10]), (10, T), "x").await.unwrap();
        assert_eq!(ok.len(), 10);
    }
}
