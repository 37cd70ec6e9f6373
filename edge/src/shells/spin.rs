//! Fermyon Spin shell (wasm32-wasip2 component, spin-sdk): converts Spin's wasi:http request
//! into the core's, and the core's response (buffered or streamed SSE) back. Outbound HTTP is
//! wasi:http; the config store is the Spin key-value store `default`; secrets are Spin
//! variables (the YAML's `secret:OPENAI_API_KEY` reads variable `openai_api_key`).
//!
//! Spin starts a fresh instance per request, so the gateway (and its config cache) is built per
//! request: the KV config is read on every request.

// The export glue that `#[http_component]` generates is `unsafe` by nature.
#![allow(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use spin_executor::CancelOnDropToken;
use spin_sdk::http::{Fields, IncomingRequest, IncomingResponse, Method, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::key_value::{Error as KvErr, Store};
use wasi::clocks::{monotonic_clock, wall_clock};

use crate::gateway::{Body, Gateway};
use crate::platform::{Clock, FetchError, HttpClient, KeyValue, KvError, Ledger, Log, ModelFiles, Random, Secrets, UpstreamRequest, UpstreamResponse};
use crate::ledger::{self, Op, Reply, Swap};

#[derive(Clone, Copy)]
struct SpinPlatform;

impl HttpClient for SpinPlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let mut builder = spin_sdk::http::Request::builder();
        builder.method(Method::Post).uri(req.url.as_str());
        for (k, v) in &req.headers {
            builder.header(k.as_str(), v.as_str());
        }
        // The body is buffered: say its length, or it goes chunked, which some servers refuse.
        builder.header("content-length", req.body.len().to_string());
        let request = builder.body(req.body.to_vec()).build();
        let resp: IncomingResponse =
            spin_sdk::http::send(request).await.map_err(|e| FetchError::Connect(e.to_string()))?;
        let headers = resp
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let status = resp.status();
        let chunks = resp.take_body_stream();
        // Dropping the IncomingResponse cancels the request: the stream keeps it alive.
        let body = chunks.map(move |c| {
            let _keep_alive = &resp;
            c.map(Bytes::from).map_err(|e| FetchError::Body(format!("{e:?}")))
        });
        Ok(UpstreamResponse { status, headers, body: Box::pin(body) })
    }
}

/// A timer on wasi's monotonic clock, woken by Spin's executor.
struct Sleep {
    deadline_ns: u64,
    _token: Option<CancelOnDropToken>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if monotonic_clock::now() >= self.deadline_ns {
            return Poll::Ready(());
        }
        let pollable = monotonic_clock::subscribe_instant(self.deadline_ns);
        self._token = Some(spin_executor::push_waker_and_get_token(pollable, cx.waker().clone()).into());
        Poll::Pending
    }
}

impl Clock for SpinPlatform {
    fn now_ms(&self) -> u64 {
        let t = wall_clock::now();
        t.seconds * 1000 + u64::from(t.nanoseconds / 1_000_000)
    }

    fn sleep(&self, ms: u64) -> impl Future<Output = ()> + 'static {
        Sleep { deadline_ns: monotonic_clock::now().saturating_add(ms.saturating_mul(1_000_000)), _token: None }
    }
}

impl Random for SpinPlatform {
    fn random_u64(&self) -> u64 {
        wasi::random::random::get_random_u64()
    }
}

impl KeyValue for SpinPlatform {
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match Store::open_default() {
            Ok(store) => store.get(key).map_err(|e| KvError(e.to_string())),
            // No `default` store granted to this component: there is no KV config.
            Err(KvErr::NoSuchStore | KvErr::AccessDenied) => Ok(None),
            Err(e) => Err(KvError(e.to_string())),
        }
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let store = Store::open_default().map_err(|e| KvError(e.to_string()))?;
        store.set(key, value).map_err(|e| KvError(e.to_string()))
    }
}

/// Where `spin.toml` mounts the model files (`files = [{ source = "models/minilm", destination = "/models" }]`).
const MODELS_DIR: &str = "/models";

impl ModelFiles for SpinPlatform {
    async fn model_file(&self, name: &str) -> Result<Option<Vec<u8>>, KvError> {
        match std::fs::read(format!("{MODELS_DIR}/{name}")) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KvError(format!("{MODELS_DIR}/{name}: {e}"))),
        }
    }
}

/// Counters in the key-value store `default` (key `ledger:<subject>`), updated by the core's
/// compare-and-swap loop through `wasi:keyvalue/atomics`: exact across concurrent requests as far
/// as the store's CAS is (one Spin process with the SQLite store; every node with Redis).
impl Ledger for SpinPlatform {
    async fn ledger(&self, subject: &str, op: &Op) -> Result<Reply, KvError> {
        use spin_sdk::wit::wasi::keyvalue::{atomics, store};
        let kv = |e: store::Error| format!("{e:?}");
        let bucket = store::open("default").map_err(|e| KvError(kv(e)))?;
        let key = format!("ledger:{subject}");
        let cas = atomics::Cas::new(&bucket, &key).map_err(|e| KvError(kv(e)))?;
        let current = |cas: &atomics::Cas| cas.current().map_err(kv);
        let swap = |cas, new: Vec<u8>| match atomics::swap(cas, &new) {
            Ok(()) => Ok(Swap::Done),
            Err(atomics::CasError::CasFailed(again)) => Ok(Swap::Conflict(again)),
            Err(atomics::CasError::StoreError(e)) => Err(kv(e)),
        };
        ledger::apply_with_cas(&key, self.now_ms(), op, cas, current, swap).map_err(KvError)
    }
}

impl Secrets for SpinPlatform {
    async fn secret(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(&name.to_ascii_lowercase()).ok()
    }
}

impl Log for SpinPlatform {
    fn log(&self, record: &serde_json::Value) {
        // One write per record, so that concurrent instances' lines do not interleave.
        use std::io::Write;
        let line = format!("{record}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

thread_local! {
    /// One per instance, like a Workers isolate's: the config cache, the key cache and the loaded
    /// embedding model outlive a request when the runtime reuses the instance (wasi-host does;
    /// Spin 3 instantiates per request, so there it lives for one request).
    static GATEWAY: std::rc::Rc<Gateway> = std::rc::Rc::new(Gateway::default());
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let method = req.method().to_string();
    let path = req.path_with_query().unwrap_or_default();
    let headers = req.headers().entries();
    let body = req.into_body_stream().map(|c| c.map(Bytes::from).map_err(|e| FetchError::Body(format!("{e:?}"))));
    let gateway = GATEWAY.with(std::rc::Rc::clone);
    let resp = gateway.serve(&SpinPlatform, &method, path, headers, Box::pin(body)).await;

    let list: Vec<(String, Vec<u8>)> = resp.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    let fields = Fields::from_list(&list).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(resp.status).is_err() {
        let _ = outgoing.set_status_code(500);
    }
    let mut sink = outgoing.take_body();
    out.set(outgoing);
    match resp.body {
        Body::Full(b) => {
            let _ = sink.send(b.to_vec()).await;
        }
        Body::Stream(mut s) => {
            while let Some(chunk) = s.next().await {
                if sink.send(chunk.to_vec()).await.is_err() {
                    break; // the client went away
                }
            }
        }
    }
}
