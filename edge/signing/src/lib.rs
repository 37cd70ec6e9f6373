//! Signed, replay-protected requests between the edge and wasi-host (tier 3), both directions.
//!
//! Request: the edge sends
//! - `x-gateway-timestamp`: Unix seconds,
//! - `x-gateway-nonce`: 32 hex digits, never reused,
//! - `x-gateway-signature`: `v1=` + hex HMAC-SHA256(secret, [`request_message`]),
//!
//! where the message binds the method, path, timestamp, nonce and the body's SHA-256. The host
//! accepts a timestamp within [`WINDOW_SECS`] of its clock and each nonce once within that
//! window ([`NonceCache`]), so a captured request cannot be replayed or altered.
//!
//! Response: the host signs its status and body together with the request's nonce
//! ([`response_message`]), so the edge knows the answer came from a host holding the secret and
//! belongs to this request.

use std::collections::{HashMap, VecDeque};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const TIMESTAMP_HEADER: &str = "x-gateway-timestamp";
pub const NONCE_HEADER: &str = "x-gateway-nonce";
pub const SIGNATURE_HEADER: &str = "x-gateway-signature";
/// How far a request's timestamp may be from the verifier's clock, either way.
pub const WINDOW_SECS: u64 = 60;
/// Secrets shorter than this are refused (HMAC keys should carry at least 128 bits).
pub const MIN_SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A header is missing or malformed.
    Malformed(&'static str),
    /// The timestamp is outside the window.
    Stale,
    /// The signature does not match.
    BadSignature,
    /// The nonce was seen within the window.
    Replayed,
    /// The nonce cache is full (too many requests within the window).
    Busy,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Malformed(what) => write!(f, "malformed or missing {what}"),
            Error::Stale => write!(f, "timestamp outside the {WINDOW_SECS} s window"),
            Error::BadSignature => write!(f, "signature does not match"),
            Error::Replayed => write!(f, "nonce already used"),
            Error::Busy => write!(f, "replay cache full"),
        }
    }
}

impl std::error::Error for Error {}

/// A shared secret, checked for length; its `Debug` does not print it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("the shared secret must be at least {MIN_SECRET_LEN} characters"));
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    fn sign(&self, message: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(message);
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Constant-time check of a `v1=<hex>` signature.
    fn verify(&self, message: &[u8], signature: &str) -> Result<(), Error> {
        let hex_sig = signature.strip_prefix("v1=").ok_or(Error::Malformed(SIGNATURE_HEADER))?;
        let bytes = hex::decode(hex_sig).map_err(|_| Error::Malformed(SIGNATURE_HEADER))?;
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(&bytes).map_err(|_| Error::BadSignature)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

pub fn request_message(method: &str, path: &str, timestamp: u64, nonce: &str, body: &[u8]) -> Vec<u8> {
    format!("LLMGW1-REQUEST\n{}\n{path}\n{timestamp}\n{nonce}\n{}", method.to_ascii_uppercase(), hex::encode(Sha256::digest(body)))
        .into_bytes()
}

pub fn response_message(nonce: &str, status: u16, body: &[u8]) -> Vec<u8> {
    format!("LLMGW1-RESPONSE\n{nonce}\n{status}\n{}", hex::encode(Sha256::digest(body))).into_bytes()
}

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

/// Signs a request. `nonce` must be 16 random bytes, fresh for each request.
pub fn sign_request(secret: &Secret, method: &str, path: &str, now: u64, nonce: [u8; 16], body: &[u8]) -> Signed {
    let nonce = hex::encode(nonce);
    let signature = secret.sign(&request_message(method, path, now, &nonce, body));
    Signed { timestamp: now.to_string(), nonce, signature }
}

/// Checks a request's headers (the nonce is not recorded: see [`NonceCache::check_and_insert`]).
pub fn verify_request(secret: &Secret, method: &str, path: &str, now: u64, headers: &Signed, body: &[u8]) -> Result<u64, Error> {
    let ts: u64 = headers.timestamp.parse().map_err(|_| Error::Malformed(TIMESTAMP_HEADER))?;
    let nonce_ok = headers.nonce.len() == 32 && headers.nonce.bytes().all(|b| b.is_ascii_hexdigit());
    if !nonce_ok {
        return Err(Error::Malformed(NONCE_HEADER));
    }
    if ts.abs_diff(now) > WINDOW_SECS {
        return Err(Error::Stale);
    }
    secret.verify(&request_message(method, path, ts, &headers.nonce, body), &headers.signature)?;
    Ok(ts)
}

pub fn sign_response(secret: &Secret, nonce: &str, status: u16, body: &[u8]) -> String {
    secret.sign(&response_message(nonce, status, body))
}

pub fn verify_response(secret: &Secret, nonce: &str, status: u16, body: &[u8], signature: &str) -> Result<(), Error> {
    secret.verify(&response_message(nonce, status, body), signature)
}

/// Nonces seen within the window, bounded in size.
pub struct NonceCache {
    seen: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
    capacity: usize,
}

impl NonceCache {
    pub fn new(capacity: usize) -> Self {
        Self { seen: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records a verified request's nonce; `Replayed` if it was seen. Entries older than twice the
    /// window are dropped first (a request with the same nonce would be stale by then).
    pub fn check_and_insert(&mut self, nonce: &str, timestamp: u64, now: u64) -> Result<(), Error> {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_sub(*t) <= 2 * WINDOW_SECS {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.seen.remove(&n);
            }
        }
        if self.seen.contains_key(nonce) {
            return Err(Error::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Error::Busy);
        }
        let at = timestamp.max(now);
        self.seen.insert(nonce.to_owned(), at);
        self.order.push_back((at, nonce.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let s = secret();
        let body = br#"{"text":"hi"}"#;
        let h = sign_request(&s, "POST", "/v1/classify", 1_000, [7; 16], body);
        assert_eq!(verify_request(&s, "POST", "/v1/classify", 1_030, &h, body), Ok(1_000));
        assert_eq!(verify_request(&s, "POST", "/v1/classify", 1_000, &h, b"{}"), Err(Error::BadSignature));
        assert_eq!(verify_request(&s, "POST", "/v1/other", 1_000, &h, body), Err(Error::BadSignature));
        assert_eq!(verify_request(&s, "GET", "/v1/classify", 1_000, &h, body), Err(Error::BadSignature));
        let other = Secret::new("another secret that is long enough!!").unwrap();
        assert_eq!(verify_request(&other, "POST", "/v1/classify", 1_000, &h, body), Err(Error::BadSignature));
        let mut forged = h.clone();
        forged.timestamp = "1001".into();
        assert_eq!(verify_request(&s, "POST", "/v1/classify", 1_000, &forged, body), Err(Error::BadSignature));
        let mut nonce = h.clone();
        nonce.nonce = hex::encode([8u8; 16]);
        assert_eq!(verify_request(&s, "POST", "/v1/classify", 1_000, &nonce, body), Err(Error::BadSignature));
    }

    #[test]
    fn stale_and_malformed_requests_are_refused() {
        let s = secret();
        let h = sign_request(&s, "POST", "/p", 1_000, [1; 16], b"");
        assert_eq!(verify_request(&s, "POST", "/p", 1_061, &h, b""), Err(Error::Stale));
        assert_eq!(verify_request(&s, "POST", "/p", 939, &h, b""), Err(Error::Stale));
        assert_eq!(verify_request(&s, "POST", "/p", 940, &h, b""), Ok(1_000));
        for (ts, nonce, sig) in [("x", h.nonce.as_str(), h.signature.as_str()), ("1000", "abc", h.signature.as_str()), ("1000", h.nonce.as_str(), "v2=00"), ("1000", h.nonce.as_str(), "v1=zz")] {
            let m = Signed { timestamp: ts.into(), nonce: nonce.into(), signature: sig.into() };
            assert!(matches!(verify_request(&s, "POST", "/p", 1_000, &m, b""), Err(Error::Malformed(_))), "{m:?}");
        }
    }

    #[test]
    fn nonces_are_accepted_once_and_expire() {
        let mut c = NonceCache::new(2);
        c.check_and_insert("a", 100, 100).unwrap();
        assert_eq!(c.check_and_insert("a", 100, 150), Err(Error::Replayed));
        c.check_and_insert("b", 100, 100).unwrap();
        assert_eq!(c.check_and_insert("c", 100, 100), Err(Error::Busy));
        // Past twice the window the old entries go, and the cache has room again.
        c.check_and_insert("c", 300, 300).unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn responses_are_bound_to_the_request_nonce() {
        let s = secret();
        let sig = sign_response(&s, "n1", 200, b"{}");
        assert_eq!(verify_response(&s, "n1", 200, b"{}", &sig), Ok(()));
        assert_eq!(verify_response(&s, "n2", 200, b"{}", &sig), Err(Error::BadSignature));
        assert_eq!(verify_response(&s, "n1", 500, b"{}", &sig), Err(Error::BadSignature));
        assert_eq!(verify_response(&s, "n1", 200, b"[]", &sig), Err(Error::BadSignature));
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert!(Secret::new("short").is_err());
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }
}
