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

use crate::config::raw::RawKey;
use crate::config::{usd_to_nanos, Problem};

/// Keys the gateway issues start with this, so that a leaked one is easy to spot and scan for.
pub const KEY_PREFIX: &str = "gwk_";

/// What one client key may do. `None` in an allow-list means "no restriction".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub name: String,
    pub owner: Option<String>,
    pub hash: [u8; 32],
    pub models: Option<Vec<String>>,
    pub routes: Option<Vec<String>>,
    pub capabilities: Option<Vec<String>>,
    /// Nano-dollars.
    pub max_cost_per_request: Option<u64>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Nano-dollars per UTC day / calendar month.
    pub budget_day: Option<u64>,
    pub budget_month: Option<u64>,
    /// May prompts leave for cloud providers?
    pub allow_cloud: bool,
    pub revoked: bool,
}

impl ClientKey {
    pub fn may_use_model(&self, model: &str) -> bool {
        allowed(&self.models, model)
    }

    pub fn may_use_route(&self, route: &str) -> bool {
        allowed(&self.routes, route)
    }

    pub fn may_use_capability(&self, capability: &str) -> bool {
        allowed(&self.capabilities, capability)
    }
}

fn allowed(list: &Option<Vec<String>>, name: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|x| x == "*" || x == name))
}

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

/// Known names a key's allow-lists may refer to.
pub struct Known<'a> {
    pub models: Vec<&'a String>,
    pub routes: Vec<&'a String>,
    pub capabilities: Vec<&'a String>,
}

/// Validates one key record. `at` is its path (`keys.alice` or `kv apikey:<hex>`); `hash` comes
/// from the record (YAML) or from its KV key name.
pub fn validate_key(at: &str, name: &str, raw: &RawKey, hash: Option<[u8; 32]>, known: &Known<'_>) -> Result<ClientKey, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut push = |field: &str, message: String| {
        let path = if field.is_empty() { at.to_owned() } else { format!("{at}.{field}") };
        problems.push(Problem { path, message });
    };
    let hash = match (hash, raw.hash.as_deref()) {
        (Some(h), _) => Some(h),
        (None, None) => {
            push("hash", "required: sha256:<64 hex digits> of the key (`gateway keys create` prints it)".into());
            None
        }
        (None, Some(h)) => match parse_hash(h) {
            Some(h) => Some(h),
            // Never echo the value: it may be the key itself pasted by mistake.
            None => {
                push("hash", "must be sha256:<64 hex digits>; a raw key must never be written in the YAML".into());
                None
            }
        },
    };
    for (field, list, names, what) in [
        ("models", &raw.models, &known.models, "model"),
        ("routes", &raw.routes, &known.routes, "route"),
        ("capabilities", &raw.capabilities, &known.capabilities, "capability"),
    ] {
        for (i, n) in list.iter().flatten().enumerate() {
            if n != "*" && !names.contains(&n) {
                let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
                push(&format!("{field}[{i}]"), format!("unknown {what} \"{n}\" (known: {})", names.join(", ")));
            }
        }
    }
    let mut usd = |field: &str, v: Option<f64>| -> Option<u64> {
        let v = v?;
        if !(v.is_finite() && v > 0.0 && v < 1e9) {
            push(field, "must be a positive amount of USD".into());
            return None;
        }
        Some(usd_to_nanos(v))
    };
    let max_cost_per_request = usd("max_cost_usd_per_request", raw.max_cost_usd_per_request);
    let budget_day = usd("budget_usd_per_day", raw.budget_usd_per_day);
    let budget_month = usd("budget_usd_per_month", raw.budget_usd_per_month);
    for (field, v) in [("rpm", raw.rpm), ("tpm", raw.tpm)] {
        if v == Some(0) {
            push(field, "must be greater than 0 (revoke the key instead)".into());
        }
    }
    match hash {
        Some(hash) if problems.is_empty() => Ok(ClientKey {
            name: name.to_owned(),
            owner: raw.owner.clone(),
            hash,
            models: raw.models.clone(),
            routes: raw.routes.clone(),
            capabilities: raw.capabilities.clone(),
            max_cost_per_request,
            rpm: raw.rpm,
            tpm: raw.tpm,
            budget_day,
            budget_month,
            allow_cloud: raw.allow_cloud.unwrap_or(true),
            revoked: raw.revoked.unwrap_or(false),
        }),
        _ => Err(problems),
    }
}

/// `sha256:<64 hex>` to bytes.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
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
