//! The tier-3 classifier host as a real process (`wasi-host classify` with the real guest and
//! the real SmolLM2 model), and a signing client for tests that talk to it directly.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// The key the edge and the host share in the tests.
pub const SECRET: &str = "test-classifier-secret-0123456789abcdef";

pub struct ClassifierHost {
    pub base: String,
    pub logs: Arc<Mutex<String>>,
    _child: Child,
}

fn env_path(name: &str) -> Result<std::path::PathBuf> {
    let p = std::path::PathBuf::from(std::env::var(name).with_context(|| format!("{name} is not set: run ./scripts/test"))?);
    anyhow::ensure!(p.exists(), "{name}={} does not exist: run ./scripts/test (it builds and fetches it)", p.display());
    Ok(p)
}

impl ClassifierHost {
    pub async fn start(extra: &[&str]) -> Result<Self> {
        let mut child = Command::new(env_path("WASI_HOST_BIN")?)
            .args(["classify", "--listen", "127.0.0.1:0", "--threads", "2"])
            .arg("--guest")
            .arg(env_path("GATEWAY_CLASSIFIER_GUEST")?)
            .arg("--model")
            .arg(env_path("GATEWAY_CLASSIFIER_MODEL")?)
            .args(extra)
            .env("CLASSIFIER_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting wasi-host classify")?;
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        crate::runtime::capture(child.stdout.take().context("stdout")?, logs.clone(), None);
        crate::runtime::capture(child.stderr.take().context("stderr")?, logs.clone(), Some(tx));
        let addr = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .ok()
            .flatten()
            .with_context(|| format!("wasi-host classify did not start; its log:\n{}", logs.lock().map(|l| l.clone()).unwrap_or_default()))?;
        Ok(Self { base: format!("http://{addr}"), logs, _child: child })
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The label set of the test config's capabilities, as the edge sends it.
pub fn labels() -> Value {
    json!([
        {"name": "code", "description": "Writing, reviewing and debugging code"},
        {"name": "translation", "description": "Translating text between languages"},
        {"name": "general", "description": "Everyday questions and chat"},
    ])
}

/// A signed request: (headers, body, nonce).
pub type Signed = (Vec<(String, String)>, Vec<u8>, String);

/// Signs `body` as the edge does.
pub fn signed(secret: &str, body: &Value, now: u64, nonce: [u8; 16]) -> Result<Signed> {
    let secret = gateway_signing::Secret::new(secret).map_err(anyhow::Error::msg)?;
    let body = serde_json::to_vec(body)?;
    let s = gateway_signing::sign_request(&secret, "POST", "/v1/classify", now, nonce, &body);
    let headers = vec![
        (gateway_signing::TIMESTAMP_HEADER.to_owned(), s.timestamp),
        (gateway_signing::NONCE_HEADER.to_owned(), s.nonce.clone()),
        (gateway_signing::SIGNATURE_HEADER.to_owned(), s.signature),
    ];
    Ok((headers, body, s.nonce))
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn fresh_nonce() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    n[8..].copy_from_slice(&(std::process::id() as u64 ^ now()).to_le_bytes());
    n
}

/// Sends a request (signed with `secret`), returns (status, response signature, body).
pub async fn post(client: &reqwest::Client, base: &str, headers: &[(String, String)], body: Vec<u8>) -> Result<(u16, Option<String>, Vec<u8>)> {
    let mut req = client.post(format!("{base}/v1/classify")).header("content-type", "application/json").body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let sig = r.headers().get(gateway_signing::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((status, sig, r.bytes().await?.to_vec()))
}
