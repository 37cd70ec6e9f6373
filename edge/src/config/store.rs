//! Which config serves a request: a KV copy when one is present and valid, else the bundled one.
//!
//! The KV key `config` is read at most every `server.config_refresh_secs` (every request on
//! platforms that start a fresh instance per request, like Spin). A new value is validated
//! before use: an invalid one is refused and logged once, and the last good config keeps
//! serving. Accepted configs are copied to `config.last-good`, so the last good config survives
//! instance restarts too. Deleting `config` returns to the bundled config.
//!
//! A KV config is also refused when it binds a secret to a host the deployment does not allow
//! (`config::secrets`): writing KV must not be enough to send a provider key elsewhere.

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::Config;
use super::secrets::{self, DEPLOYMENT_BINDINGS};
use crate::platform::{Clock, KeyValue, Log, Secrets};

pub const KV_KEY: &str = "config";
pub const KV_LAST_GOOD_KEY: &str = "config.last-good";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Bundled,
    Kv,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Bundled => "bundled",
            Source::Kv => "kv",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    kv: Option<Arc<Config>>,
    /// Digest of the last KV value seen, accepted or not: unchanged values are not re-parsed.
    seen_digest: Option<String>,
    last_check_ms: Option<u64>,
    restored: bool,
}

#[derive(Debug)]
pub struct ConfigStore {
    bundled: Result<Arc<Config>, String>,
    state: RefCell<State>,
}

impl ConfigStore {
    pub fn new(bundled_yaml: &str) -> Self {
        let bundled = Config::from_yaml(bundled_yaml).map(Arc::new).map_err(|e| e.to_string());
        Self { bundled, state: RefCell::new(State::default()) }
    }

    /// The config to serve this request with. `Err` only when neither KV nor the bundled
    /// config is valid (the message is for logs, not for clients).
    pub async fn current<P: KeyValue + Clock + Log + Secrets>(&self, p: &P) -> Result<(Arc<Config>, Source), String> {
        let now = p.now_ms();
        let due = {
            let st = self.state.borrow();
            let active = st.kv.as_ref().or(self.bundled.as_ref().ok());
            let every_ms = active.map_or(0, |c| c.server.config_refresh_secs * 1000);
            st.last_check_ms.is_none_or(|t| now.saturating_sub(t) >= every_ms)
        };
        if due {
            self.refresh(p, now).await;
        }
        let st = self.state.borrow();
        match (&st.kv, &self.bundled) {
            (Some(c), _) => Ok((c.clone(), Source::Kv)),
            (None, Ok(c)) => Ok((c.clone(), Source::Bundled)),
            (None, Err(e)) => Err(format!("bundled config is invalid and KV holds no valid config: {e}")),
        }
    }

    async fn refresh<P: KeyValue + Log + Secrets>(&self, p: &P, now: u64) {
        let got = p.kv_get(KV_KEY).await;
        let restore = !self.state.borrow().restored;
        self.state.borrow_mut().last_check_ms = Some(now);
        let bytes = match got {
            Ok(Some(b)) => b,
            Ok(None) => {
                let mut st = self.state.borrow_mut();
                if st.kv.take().is_some() {
                    p.log(&json!({"event": "config_reverted", "source": "bundled"}));
                }
                st.seen_digest = None;
                return;
            }
            Err(e) => {
                p.log(&json!({"event": "config_kv_error", "level": "error", "error": e.to_string()}));
                return;
            }
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if self.state.borrow().seen_digest.as_deref() == Some(digest.as_str()) {
            return;
        }
        self.state.borrow_mut().seen_digest = Some(digest.clone());
        match self.parse_allowed(p, &bytes).await {
            Ok(cfg) => {
                p.log(&json!({"event": "config_loaded", "source": "kv", "digest": digest}));
                let unchanged_last_good = matches!(p.kv_get(KV_LAST_GOOD_KEY).await, Ok(Some(ref b)) if *b == bytes);
                if !unchanged_last_good {
                    if let Err(e) = p.kv_set(KV_LAST_GOOD_KEY, &bytes).await {
                        p.log(&json!({"event": "config_kv_error", "level": "error", "error": e.to_string()}));
                    }
                }
                let mut st = self.state.borrow_mut();
                st.kv = Some(Arc::new(cfg));
                st.restored = true;
            }
            Err(problems) => {
                p.log(&json!({"event": "config_rejected", "level": "error", "source": "kv", "digest": digest,
                    "problems": problems, "serving": if self.state.borrow().kv.is_some() { "last good KV config" } else { "last good config" }}));
                if restore && self.state.borrow().kv.is_none() {
                    self.restore_last_good(p).await;
                }
            }
        }
    }

    /// After an instance (re)start that finds an invalid `config`, serve `config.last-good`.
    async fn restore_last_good<P: KeyValue + Log + Secrets>(&self, p: &P) {
        self.state.borrow_mut().restored = true;
        if let Ok(Some(bytes)) = p.kv_get(KV_LAST_GOOD_KEY).await {
            if let Ok(cfg) = self.parse_allowed(p, &bytes).await {
                p.log(&json!({"event": "config_loaded", "source": "kv-last-good", "digest": cfg.digest}));
                self.state.borrow_mut().kv = Some(Arc::new(cfg));
            }
        }
    }
}

impl ConfigStore {
    /// Parses a KV config and checks its secret bindings against the deployment's.
    async fn parse_allowed<P: Secrets + Log>(&self, p: &P, bytes: &[u8]) -> Result<Config, String> {
        let cfg = parse(bytes)?;
        let platform = p.secret(DEPLOYMENT_BINDINGS).await;
        let bundled = self.bundled.as_ref().ok().map(|c| &c.secret_hosts);
        let (deployment, problem) = secrets::deployment_bindings(bundled, platform.as_deref());
        if let Some(problem) = problem {
            p.log(&json!({"event": "config_kv_error", "level": "error", "error": problem}));
        }
        let widened = secrets::widenings(&cfg.secret_hosts, &deployment);
        if widened.is_empty() {
            Ok(cfg)
        } else {
            Err(super::ConfigError { problems: widened }.to_string())
        }
    }
}

fn parse(bytes: &[u8]) -> Result<Config, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "config is not UTF-8".to_owned())?;
    Config::from_yaml(text).map_err(|e| e.to_string())
}
