//! Client keys as configured (the YAML's `keys:` and the KV records under `apikey:<hex>`) and
//! their validation. Presenting, hashing and finding a key is `auth`.

use super::raw::RawKey;
use super::{usd_to_nanos, Problem};

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

