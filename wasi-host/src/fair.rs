//! Fair admission to the classifier: every edge caller (the opaque `caller` id the edge sends,
//! derived from the client key) may hold at most `per_caller` of the running slots and queue
//! places together, so one key flooding the edge cannot fill the host's queue and starve the
//! others. Requests without an id share one anonymous allowance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct CallerShares {
    per_caller: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One caller's place, given back when dropped (after the classification, or on any early
/// return).
pub struct Share {
    shares: Arc<CallerShares>,
    caller: String,
}

impl CallerShares {
    pub fn new(per_caller: usize) -> Arc<Self> {
        Arc::new(Self { per_caller: per_caller.max(1), held: Mutex::new(HashMap::new()) })
    }

    /// A place for `caller`, or `None` when it already holds its share.
    pub fn try_take(self: &Arc<Self>, caller: &str) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = held.entry(caller.to_owned()).or_insert(0);
        if *n >= self.per_caller {
            return None;
        }
        *n += 1;
        Some(Share { shares: Arc::clone(self), caller: caller.to_owned() })
    }

    /// Places `caller` holds now.
    #[cfg(test)]
    pub fn held(&self, caller: &str) -> usize {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(caller).copied().unwrap_or(0)
    }

    /// Callers holding a place now (the map never outgrows the running and waiting requests).
    pub fn callers(&self) -> usize {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

/// The caller id of a classify request: `caller`, at most 64 characters of `[A-Za-z0-9_-]`, or
/// the anonymous id when absent.
pub fn caller_id(request: &serde_json::Value) -> Result<String, &'static str> {
    match request.get("caller") {
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(serde_json::Value::String(s)) if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => Ok(s.clone()),
        Some(_) => Err("`caller` must be 1 to 64 characters of letters, digits, '-' and '_'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_caller_cannot_take_more_than_its_share() {
        let shares = CallerShares::new(2);
        let a1 = shares.try_take("a").expect("first");
        let _a2 = shares.try_take("a").expect("second");
        assert!(shares.try_take("a").is_none(), "a third place for the same caller");
        // Others still get in while `a` is at its limit.
        let _b = shares.try_take("b").expect("another caller");
        let _anonymous = shares.try_take("").expect("the anonymous allowance");
        assert_eq!((shares.held("a"), shares.callers()), (2, 3));
        // A place comes back when its request ends.
        drop(a1);
        assert!(shares.try_take("a").is_some());
    }

    #[test]
    fn finished_callers_leave_the_map() {
        let shares = CallerShares::new(1);
        for i in 0..1000 {
            let _s = shares.try_take(&format!("caller-{i}")).expect("room");
        }
        assert_eq!(shares.callers(), 0);
    }

    #[test]
    fn caller_ids_are_checked() {
        assert_eq!(caller_id(&serde_json::json!({"text": "x"})), Ok(String::new()));
        assert_eq!(caller_id(&serde_json::json!({"caller": "k-3f2a_9"})), Ok("k-3f2a_9".into()));
        for bad in [serde_json::json!(""), serde_json::json!("a b"), serde_json::json!("x".repeat(65)), serde_json::json!(7)] {
            assert!(caller_id(&serde_json::json!({"caller": bad})).is_err(), "{bad}");
        }
    }
}
