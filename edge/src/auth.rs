//! Client keys: who is calling, and what that caller may do.
//!
//! A caller presents `Authorization: Bearer <key>` (OpenAI SDKs) or `x-api-key: <key>`
//! (Anthropic-style clients). The gateway stores only `sha256(key)`: the YAML's `keys:` map, or
//! KV records under `apikey:<hex>` when `auth.kv_keys` is on. The presented key is hashed and
//! compared with every stored hash in constant time, so timing tells nothing about which keys
//! exist. Every failure is the same 401, whether the key is missing, unknown or revoked.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::config::keys::{parse_hash, validate_key, ClientKey, Known};
#[cfg(test)]
use crate::config::raw::RawKey;

/// Keys the gateway issues start with this, so that a leaked one is easy to spot and scan for.
pub const KEY_PREFIX: &str = "gwk_";

/// `sha256(key)`.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: `Authorization: Bearer ...`, else `x-api-key`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim))
        .filter(|k| !k.is_empty())
}

/// Finds the key whose hash matches, comparing with every stored hash in constant time.
pub fn find<'a>(keys: &'a BTreeMap<String, Arc<ClientKey>>, hash: &[u8; 32]) -> Option<&'a Arc<ClientKey>> {
    let mut found = None;
    for k in keys.values() {
        if bool::from(k.hash.ct_eq(hash)) {
            found = Some(k);
        }
    }
    found
}

/// A new key from 32 random bytes: `gwk_` + 64 hex digits, and its `sha256:` line.
pub fn new_key(random: [u8; 32]) -> (String, String) {
    let key = format!("{KEY_PREFIX}{}", hex::encode(random));
    let hash = format!("sha256:{}", hex::encode(hash_key(&key)));
    (key, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str) -> Arc<ClientKey> {
        let known = Known { models: vec![], routes: vec![], capabilities: vec![] };
        let raw = RawKey { hash: Some(format!("sha256:{}", hex::encode(hash_key(secret)))), ..RawKey::default() };
        Arc::new(validate_key("keys.x", name, &raw, None, &known).expect("valid"))
    }

    #[test]
    fn finds_by_hash_only() {
        let keys: BTreeMap<_, _> = [("a".to_owned(), key("a", "gwk_one")), ("b".to_owned(), key("b", "gwk_two"))].into();
        assert_eq!(find(&keys, &hash_key("gwk_two")).map(|k| k.name.as_str()), Some("b"));
        assert!(find(&keys, &hash_key("gwk_three")).is_none());
    }

    #[test]
    fn bearer_then_x_api_key() {
        let mut h = http::HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", http::HeaderValue::from_static("k2"));
        assert_eq!(presented_key(&h), Some("k2"));
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer k1"));
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h), Some("k2"));
    }

    #[test]
    fn a_raw_key_in_the_hash_field_is_refused_without_echo() {
        let known = Known { models: vec![], routes: vec![], capabilities: vec![] };
        let raw = RawKey { hash: Some("gwk_0123456789".into()), ..RawKey::default() };
        let problems = validate_key("keys.x", "x", &raw, None, &known).expect_err("invalid");
        let text = format!("{problems:?}");
        assert!(!text.contains("gwk_0123456789"), "{text}");
        assert!(text.contains("keys.x.hash"), "{text}");
    }

    #[test]
    fn new_keys_hash_to_their_line() {
        let (key, line) = new_key([7; 32]);
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 4 + 64);
        assert_eq!(parse_hash(&line), Some(hash_key(&key)));
    }
}
