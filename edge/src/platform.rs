//! The seams where platforms differ: HTTP fetch, clock, randomness, key-value, secrets, shared
//! counters, logs.
//!
//! Each trait is a couple of methods. Futures are not `Send`: Workers futures are
//! single-threaded. The Workers and Spin shells (`shells/workers.rs`, `shells/spin.rs`)
//! implement them; `crate::testing::MemoryPlatform` implements them in memory for the tests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A response body arriving in chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, FetchError>>>>;

/// A request to a provider. Its headers hold credentials: `Debug` never prints them.
#[derive(Clone)]
pub struct UpstreamRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("UpstreamRequest")
            .field("url", &self.url)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ByteStream,
}

impl UpstreamResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Connect(String),
    #[error("body read failed: {0}")]
    Body(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key-value store: {0}")]
pub struct KvError(pub String);

/// POSTs to providers. Resolves when the response head arrives; the body streams after.
pub trait HttpClient {
    fn fetch(&self, req: UpstreamRequest) -> impl Future<Output = Result<UpstreamResponse, FetchError>>;
}

/// Wall-clock time and timers. `std::time::Instant` panics on wasm32-unknown-unknown.
pub trait Clock {
    fn now_ms(&self) -> u64;
    fn sleep(&self, ms: u64) -> impl Future<Output = ()> + 'static;
}

/// Randomness for request ids and backoff jitter (not for keys).
pub trait Random {
    fn random_u64(&self) -> u64;
}

/// The platform's key-value store (Workers KV binding, Spin key-value store).
pub trait KeyValue {
    fn kv_get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, KvError>>;
    fn kv_set(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<(), KvError>>;
}

/// Read-only files the embedding tier loads once per isolate: Spin component files (`/models`),
/// a Workers KV namespace (`MODELS`, large files in chunks). `Ok(None)` when absent.
pub trait ModelFiles {
    fn model_file(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, KvError>>;
}

/// Provider keys by the names the YAML references (wrangler secrets, Spin variables, env).
pub trait Secrets {
    fn secret(&self, name: &str) -> impl Future<Output = Option<String>>;
}

/// Rate-limit and budget counters shared by every instance: a Durable Object per subject on
/// Workers, compare-and-swap on the key-value store on Spin. Applies `op` atomically.
pub trait Ledger {
    fn ledger(&self, subject: &str, op: &crate::ledger::Op) -> impl Future<Output = Result<crate::ledger::Reply, KvError>>;
}

/// One structured JSON line to the platform's log (Workers logs, Spin/host stderr).
pub trait Log {
    fn log(&self, record: &serde_json::Value);
}

/// Everything the core needs from a platform. Cheap to clone; lives as long as the request.
pub trait Platform: HttpClient + Clock + Random + KeyValue + ModelFiles + Secrets + Ledger + Log + Clone + 'static {}

impl<T: HttpClient + Clock + Random + KeyValue + ModelFiles + Secrets + Ledger + Log + Clone + 'static> Platform for T {}
