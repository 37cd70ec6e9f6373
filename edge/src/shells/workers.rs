//! Cloudflare Workers shell (wasm32-unknown-unknown, workers-rs): converts the Workers request
//! into the core's and the core's response (buffered or streamed SSE) back. Outbound HTTP is
//! `fetch`; the config store is the KV binding `GATEWAY_KV`; secrets are wrangler secrets (or
//! `.dev.vars` locally) by the names the YAML references.
//!
//! One `Gateway` lives per isolate, so its config cache outlives requests.

// The export glue that `#[event(fetch)]` generates is `unsafe` by nature.
#![allow(unsafe_code)]

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use std::cell::RefCell;

use worker::{durable_object, event, Context, Delay, DurableObject, Env, Fetch, Headers, Method, RequestInit, State};

use crate::gateway::{Body, Gateway};
use crate::models;
use crate::platform::{Clock, FetchError, HttpClient, KeyValue, KvError, Ledger, Log, ModelFiles, Random, Secrets, UpstreamRequest, UpstreamResponse};
use crate::ledger::{LedgerState, Op, Reply};

const KV_BINDING: &str = "GATEWAY_KV";
/// The KV namespace holding the embedding tier's files, chunked (`crate::models`).
const MODELS_BINDING: &str = "MODELS";
/// The Durable Object namespace holding one `LedgerObject` per counted subject.
const LEDGER_BINDING: &str = "LEDGER";

thread_local! {
    static GATEWAY: Rc<Gateway> = Rc::new(Gateway::default());
}

#[derive(Clone)]
struct WorkersPlatform {
    env: Rc<Env>,
}

impl HttpClient for WorkersPlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let connect = |e: worker::Error| FetchError::Connect(e.to_string());
        let headers = Headers::new();
        for (k, v) in &req.headers {
            // A value the platform refuses (e.g. a secret with a newline) is an error, never a panic.
            headers.set(k, v).map_err(|_| FetchError::Connect(format!("invalid value for header {k}")))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(js_sys::Uint8Array::from(&req.body[..]).into()));
        let request = worker::Request::new_with_init(&req.url, &init).map_err(connect)?;
        let mut resp = Fetch::Request(request).send().await.map_err(connect)?;
        let headers = resp.headers().entries().collect();
        let status = resp.status_code();
        let body = resp
            .stream()
            .map_err(connect)?
            .map(|c| c.map(Bytes::from).map_err(|e| FetchError::Body(e.to_string())));
        Ok(UpstreamResponse { status, headers, body: Box::pin(body) })
    }
}

impl Clock for WorkersPlatform {
    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }

    fn sleep(&self, ms: u64) -> impl Future<Output = ()> + 'static {
        Delay::from(Duration::from_millis(ms))
    }
}

impl Random for WorkersPlatform {
    /// `crypto.getRandomValues` (through getrandom's `wasm_js` backend): nonces of signed
    /// tier-3 calls and request ids must not be predictable. It cannot fail in workerd; if the
    /// platform had no CSPRNG the request fails rather than use a weak nonce.
    fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("crypto.getRandomValues is unavailable");
        u64::from_le_bytes(b)
    }
}

impl KeyValue for WorkersPlatform {
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        // Without the binding there is no KV config: the bundled one serves.
        let Ok(kv) = self.env.kv(KV_BINDING) else { return Ok(None) };
        kv.get(key).bytes().await.map_err(|e| KvError(e.to_string()))
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let kv = self.env.kv(KV_BINDING).map_err(|e| KvError(e.to_string()))?;
        let put = kv.put_bytes(key, value).map_err(|e| KvError(e.to_string()))?;
        put.execute().await.map_err(|e| KvError(e.to_string()))
    }
}

impl ModelFiles for WorkersPlatform {
    async fn model_file(&self, name: &str) -> Result<Option<Vec<u8>>, KvError> {
        let kv = self.env.kv(MODELS_BINDING).map_err(|_| KvError(format!("no KV binding {MODELS_BINDING} for the model files (wrangler.toml)")))?;
        let err = |e: worker::kv::KvError| KvError(format!("{MODELS_BINDING}/{name}: {e}"));
        let Some(manifest) = kv.get(name).bytes().await.map_err(err)? else { return Ok(None) };
        let manifest: models::Manifest = serde_json::from_slice(&manifest).map_err(|e| KvError(format!("{MODELS_BINDING}/{name}: bad manifest: {e}")))?;
        let reads = (0..manifest.chunks).map(|i| {
            let key = manifest.chunk_key(name, i);
            let kv = &kv;
            async move { kv.get(&key).bytes().await.map_err(err)?.ok_or_else(|| KvError(format!("{MODELS_BINDING}/{key}: missing chunk"))) }
        });
        let chunks = futures::future::try_join_all(reads).await?;
        models::assemble(name, &manifest, chunks).map(Some).map_err(KvError)
    }
}

/// One Durable Object per subject (`key:NAME`, `model:NAME`): Cloudflare runs each object in
/// one place, one event at a time, so every isolate sees the same exact counters.
impl Ledger for WorkersPlatform {
    async fn ledger(&self, subject: &str, op: &Op) -> Result<Reply, KvError> {
        let err = |e: worker::Error| KvError(format!("ledger {subject}: {e}"));
        let stub = self.env.durable_object(LEDGER_BINDING).and_then(|ns| ns.id_from_name(subject)?.get_stub()).map_err(err)?;
        let body = serde_json::to_string(op).map_err(|e| KvError(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = worker::Request::new_with_init("https://ledger.internal/apply", &init).map_err(err)?;
        let mut resp = stub.fetch_with_request(req).await.map_err(err)?;
        let text = resp.text().await.map_err(err)?;
        if resp.status_code() != 200 {
            return Err(KvError(format!("ledger {subject}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| KvError(format!("ledger {subject}: {e}")))
    }
}

/// The counters of one subject. State is kept in memory and written through to storage (as
/// JSON: it holds 128-bit numbers); each `fetch` applies one op without awaiting anything in
/// between reading and updating the state, so concurrent requests cannot interleave.
#[durable_object]
pub struct LedgerObject {
    state: State,
    cache: RefCell<Option<LedgerState>>,
}

impl DurableObject for LedgerObject {
    fn new(state: State, _env: Env) -> Self {
        Self { state, cache: RefCell::new(None) }
    }

    async fn fetch(&self, mut req: worker::Request) -> worker::Result<worker::Response> {
        let op: Op = match serde_json::from_str(&req.text().await?) {
            Ok(op) => op,
            Err(e) => return worker::Response::error(format!("bad ledger op: {e}"), 400),
        };
        if self.cache.borrow().is_none() {
            let stored: Option<String> = self.state.storage().get("state").await?;
            // Corrupt counters deny (the edge answers 500 and logs), never reset to zero.
            let loaded = match LedgerState::load(stored.as_deref()) {
                Ok(s) => s,
                Err(e) => return worker::Response::error(format!("ledger: {e}"), 500),
            };
            // Another event may have loaded it while we awaited storage.
            self.cache.borrow_mut().get_or_insert(loaded);
        }
        // One core step, with no await between reading and updating the state, so concurrent
        // events cannot interleave.
        let (reply, json) = {
            let mut cache = self.cache.borrow_mut();
            let state = cache.get_or_insert_with(LedgerState::default);
            state.step(worker::Date::now().as_millis(), &op).map_err(worker::Error::RustError)?
        };
        let json = String::from_utf8_lossy(&json).into_owned();
        self.state.storage().put("state", json).await?;
        worker::Response::from_json(&reply)
    }
}

impl Secrets for WorkersPlatform {
    async fn secret(&self, name: &str) -> Option<String> {
        self.env.secret(name).ok().map(|s| s.to_string())
    }
}

impl Log for WorkersPlatform {
    fn log(&self, record: &serde_json::Value) {
        worker::console_log!("{record}");
    }
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(mut req: worker::Request, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    let method = req.method().to_string();
    let path = req.url().map(|u| u.path().to_owned()).unwrap_or_else(|_| req.path());
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let body: crate::gateway::InboundBody = match req.stream() {
        Ok(s) => Box::pin(s.map(|c| c.map(Bytes::from).map_err(|e| FetchError::Body(e.to_string())))),
        Err(_) => Box::pin(futures::stream::empty()),
    };
    let platform = WorkersPlatform { env: Rc::new(env) };
    let gateway = GATEWAY.with(Rc::clone);
    let resp = gateway.serve(&platform, &method, path, headers, body).await;

    let out_headers = Headers::new();
    for (k, v) in &resp.headers {
        out_headers.append(k, v)?;
    }
    let response = match resp.body {
        Body::Full(b) => worker::Response::from_bytes(b.to_vec())?,
        Body::Stream(s) => worker::Response::from_stream(s.map(|b| Ok::<Vec<u8>, worker::Error>(b.to_vec())))?,
    };
    Ok(response.with_status(resp.status).with_headers(out_headers))
}
