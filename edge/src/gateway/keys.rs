//! Which client key a request presents: the YAML's keys, then (with `auth.kv_keys`) KV records,
//! whose answers (found or not) are cached per isolate for `auth.kv_cache_secs`.

use std::collections::HashMap;
use std::sync::Arc;


use crate::auth::{self, ClientKey};
use crate::config::Config;
use crate::error::GatewayError;
use crate::platform::Platform;
use super::chat::Shared;

/// Bound on cached KV key lookups per isolate.
pub(super) const KEY_CACHE_MAX: usize = 10_000;

/// `sha256(key)` -> (expiry ms, the record or `None` for "no such key").
pub(super) type KeyCache = HashMap<[u8; 32], (u64, Option<Arc<ClientKey>>)>;



/// Finds the caller's key in the YAML, then (with `auth.kv_keys`) in KV, caching KV answers.
pub async fn authenticate<P: Platform>(shared: &Shared, p: &P, config: &Config, headers: &http::HeaderMap) -> Result<Arc<ClientKey>, GatewayError> {
    let presented = auth::presented_key(headers).ok_or(GatewayError::Unauthorized)?;
    let hash = auth::hash_key(presented);
    let found = match auth::find(&config.keys, &hash) {
        Some(k) => Some(Arc::clone(k)),
        None if config.auth.kv_keys => kv_key(shared, p, config, hash).await?,
        None => None,
    };
    match found {
        Some(k) if !k.revoked => Ok(k),
        _ => Err(GatewayError::Unauthorized),
    }
}

async fn kv_key<P: Platform>(shared: &Shared, p: &P, config: &Config, hash: [u8; 32]) -> Result<Option<Arc<ClientKey>>, GatewayError> {
    let now = p.now_ms();
    if let Some((expires, k)) = shared.key_cache.borrow().get(&hash) {
        if *expires > now {
            return Ok(k.clone());
        }
    }
    let name = format!("apikey:{}", hex::encode(hash));
    let internal = |detail: String| GatewayError::Internal { request_id: String::new(), detail };
    let bytes = p.kv_get(&name).await.map_err(|e| internal(format!("reading {name}: {e}")))?;
    let key = match bytes {
        None => None,
        Some(b) => {
            let known = auth::Known {
                models: config.models.keys().collect(),
                routes: config.routes.keys().collect(),
                capabilities: config.capabilities.keys().collect(),
            };
            let raw: crate::config::raw::RawKey = serde_yaml::from_slice(&b).map_err(|e| internal(format!("{name}: {e}")))?;
            let key_name = raw.name.clone().ok_or_else(|| internal(format!("{name}: the record has no name")))?;
            let k = auth::validate_key(&format!("kv {name}"), &key_name, &raw, Some(hash), &known).map_err(|problems| {
                let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
                internal(text.join("; "))
            })?;
            Some(Arc::new(k))
        }
    };
    let mut cache = shared.key_cache.borrow_mut();
    if cache.len() >= KEY_CACHE_MAX {
        cache.clear();
    }
    cache.insert(hash, (now + config.auth.kv_cache_secs * 1000, key.clone()));
    Ok(key)
}
