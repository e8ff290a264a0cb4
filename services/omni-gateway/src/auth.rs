//! Who may call, and how often: bearer tokens compared in constant time, and a token bucket
//! per token. Runs in front of every route — the gateway's and the mounted routers' — except
//! the public ones (`/openapi.json`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::input::ACCESS_TOKEN;

/// Requests a token may make: `burst` at once, refilled at `per_second`.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    /// Generous for a desktop or a CRM connector, tight enough to stop a runaway loop.
    fn default() -> RateLimit {
        RateLimit {
            per_second: 200.0,
            burst: 400,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// The tokens (as digests) and their buckets.
#[derive(Debug)]
pub struct Guard {
    digests: Vec<[u8; 32]>,
    limit: RateLimit,
    buckets: Mutex<Vec<Bucket>>,
    public: &'static [&'static str],
}

impl Guard {
    pub fn new(tokens: Vec<String>, limit: RateLimit, public: &'static [&'static str]) -> Guard {
        let full = Bucket {
            tokens: f64::from(limit.burst),
            refilled: Instant::now(),
        };
        Guard {
            buckets: Mutex::new(vec![full; tokens.len()]),
            digests: tokens.iter().map(|t| digest(t)).collect(),
            limit,
            public,
        }
    }

    /// Which configured token this is. Digests of equal length are compared, every one and
    /// each in constant time, so the answer's timing tells nothing about how much of a token,
    /// or of its length, was right.
    fn caller(&self, presented: &str) -> Option<usize> {
        let presented = digest(presented);
        let mut found = None;
        for (i, token) in self.digests.iter().enumerate() {
            if bool::from(token.ct_eq(&presented)) {
                found = Some(i);
            }
        }
        found
    }

    /// Takes one request from the caller's bucket, or says how long until one is there.
    fn take(&self, caller: usize, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = &mut buckets[caller];
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.limit.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `Authorization: Bearer <token>`, else the `access_token` query parameter (RFC 6750 §2.3:
/// browsers' EventSource cannot set headers).
fn presented(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(request.uri()).ok()?;
    params
        .into_iter()
        .find(|(name, _)| name == ACCESS_TOKEN)
        .map(|(_, token)| token)
}

pub async fn authorize(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if guard.public.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Some(token) = presented(&request) else {
        return ApiError::unauthorized(
            "send 'Authorization: Bearer <token>' (or ?access_token=<token>)",
        )
        .into_response();
    };
    let Some(caller) = guard.caller(&token) else {
        return ApiError::unauthorized("the token is not valid").into_response();
    };
    match guard.take(caller, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::rate_limited(wait.as_secs_f64().ceil() as u64).into_response(),
    }
}

/// A fresh random API token: 32 bytes from the operating system, as hex.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills_at_its_rate() {
        let guard = Guard::new(
            vec!["a".into(), "b".into()],
            RateLimit {
                per_second: 2.0,
                burst: 2,
            },
            &[],
        );
        let t0 = Instant::now();
        assert_eq!(guard.take(0, t0), Ok(()));
        assert_eq!(guard.take(0, t0), Ok(()));
        let wait = guard.take(0, t0).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(guard.take(1, t0), Ok(()), "each token has its own bucket");
        assert_eq!(guard.take(0, t0 + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn only_a_whole_configured_token_is_a_caller() {
        let guard = Guard::new(
            vec!["secret".into(), "other".into()],
            RateLimit::default(),
            &[],
        );
        assert_eq!(guard.caller("other"), Some(1));
        assert_eq!(guard.caller("secre"), None);
        assert_eq!(guard.caller("secrets"), None);
        assert_eq!(guard.caller(""), None);
    }

    #[test]
    fn generated_tokens_are_long_and_differ() {
        let a = generate_token().expect("a token");
        let b = generate_token().expect("a token");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
