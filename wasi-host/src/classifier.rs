//! `wasi-host classify`: the tier-3 classifier service the edge escalates to.
//!
//! `POST /v1/classify` (signed by the edge, see `gateway-signing`) runs the classifier guest
//! (`wasi-host/guest`, wasm32-wasip1) with the request on stdin; the guest scores the labels with
//! the GGUF model through wasi-nn (`nn.rs`). Bounded: one body limit, `--concurrency` guests at
//! once, `--queue` more waiting (429 beyond), each edge caller at most `--caller-share` of those
//! together (429 beyond: one client key cannot fill the queue), a per-request timeout (504),
//! graceful shutdown.
//! `GET /healthz`, `GET /metrics` (Prometheus text).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use gateway_signing::{NonceCache, Secret, Signed, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use wasmtime::{Config, Engine, InstancePre, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};
use wasmtime_wasi_nn::witx::WasiNnCtx;

use crate::nn::{GgmlBackend, GgufGraph, InstanceRegistry, ModelOptions, Registry};

/// The graph name the guest asks for.
pub const GRAPH: &str = "classifier";
/// `--hint-weight`'s default: how much tier 2's scores count against the model's
/// log-likelihoods when the guest decides by likelihood (its trained head carries its own).
/// First tuned on the dev set; re-measured on the corpus since (`models/router/tier3_cv.py`):
/// the folds chose 20 or 30, within half a point of each other (bench/RESULTS.md).
pub const DEFAULT_HINT_WEIGHT: f32 = 20.0;
/// `--max-text-chars`'s default.
pub const DEFAULT_MAX_TEXT_CHARS: usize = 400;
/// Guest output beyond this is an error (a decision is a few hundred bytes).
const MAX_GUEST_OUTPUT: usize = 256 * 1024;
/// Epoch tick: the guest's deadline is counted in these.
const TICK: Duration = Duration::from_millis(10);

pub struct ClassifyOptions {
    pub listen: SocketAddr,
    pub guest: PathBuf,
    pub model: PathBuf,
    pub model_options: ModelOptions,
    pub settings: GuestSettings,
    pub secret: Secret,
    pub concurrency: usize,
    pub queue: usize,
    /// Running and waiting requests one caller may hold at once (0: half of concurrency + queue).
    pub caller_share: usize,
    pub timeout: Duration,
    pub max_body: usize,
}

/// How the guest classifies (its `settings`; the guest's `Settings` documents each field). Set
/// by the host's operator, never by the edge.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GuestSettings {
    /// Chat template the guest writes (a `classifier_guest::Template` name), or `auto`: the
    /// family of the model's own template (`templates::detect`).
    pub template: String,
    pub max_text_chars: usize,
    pub top_k: usize,
    pub calibrate: bool,
    pub hint_weight: f32,
    /// The guest returns the model's hidden state (`wasi-host features` only; never the service).
    pub features: bool,
    /// The guest decides with its bundled head when the head fits the model and labels.
    pub head: bool,
}

impl Default for GuestSettings {
    fn default() -> Self {
        Self {
            template: AUTO_TEMPLATE.into(),
            max_text_chars: DEFAULT_MAX_TEXT_CHARS,
            top_k: 0,
            calibrate: false,
            hint_weight: DEFAULT_HINT_WEIGHT,
            features: false,
            head: true,
        }
    }
}

impl GuestSettings {
    /// The guest's `settings` object for the graph preloaded as `graph`.
    pub fn to_json(&self, graph: &str) -> Value {
        let mut v = json!(self);
        v["graph"] = json!(graph);
        v
    }
}

/// Runs the guest: one fresh instance per classification (a few hundred µs; the model and its
/// KV cache live in the host and are shared).
pub struct Guest {
    engine: Engine,
    pre: InstancePre<GuestState>,
    registry: Registry,
    settings: Value,
    timeout_ticks: u64,
}

pub struct GuestState {
    wasi: WasiP1Ctx,
    nn: WasiNnCtx,
}

fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

#[derive(Debug)]
pub enum GuestError {
    /// The guest refused the request (400).
    Input(String),
    /// The guest or the model failed (500).
    Failed(String),
    /// Past the deadline (504).
    Timeout,
}

impl Guest {
    /// Compiles the guest and serves `graph` to it under the name the guest asks for.
    pub fn new(guest: &std::path::Path, graph: GgufGraph, settings: Value, timeout: Duration) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true).wasm_gc(false).gc_support(false);
        let engine = Engine::new(&config).map_err(wt)?;
        let module = Module::from_file(&engine, guest).map_err(wt).with_context(|| format!("compiling {}", guest.display()))?;
        let mut linker: Linker<GuestState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut GuestState| &mut s.wasi).map_err(wt)?;
        wasmtime_wasi_nn::witx::add_to_linker(&mut linker, |s: &mut GuestState| &mut s.nn).map_err(wt)?;
        let pre = linker.instantiate_pre(&module).map_err(wt)?;
        let registry = Registry::new([(GRAPH.to_owned(), graph)]);
        let ticker = engine.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(TICK);
            ticker.increment_epoch();
        });
        let timeout_ticks = (timeout.as_millis() / TICK.as_millis()).max(1) as u64;
        Ok(Self { engine, pre, registry, settings, timeout_ticks })
    }

    /// Classifies one request (the edge's JSON, without settings: the host adds its own).
    pub fn classify(&self, mut request: Value) -> Result<Value, GuestError> {
        let obj = request.as_object_mut().ok_or_else(|| GuestError::Input("the body must be a JSON object".into()))?;
        obj.insert("settings".into(), self.settings.clone());
        let input = serde_json::to_vec(&request).map_err(|e| GuestError::Failed(e.to_string()))?;
        let stdout = MemoryOutputPipe::new(MAX_GUEST_OUTPUT);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input))
            .stdout(stdout.clone())
            .inherit_stderr()
            .args(&["classifier"])
            .build_p1();
        let nn = WasiNnCtx::new([wasmtime_wasi_nn::Backend::from(GgmlBackend)], wasmtime_wasi_nn::Registry::from(InstanceRegistry::from(&self.registry)));
        let mut store = Store::new(&self.engine, GuestState { wasi, nn });
        store.set_epoch_deadline(self.timeout_ticks);
        let run = |store: &mut Store<GuestState>| -> wasmtime::Result<()> {
            let instance = self.pre.instantiate(&mut *store)?;
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            start.call(&mut *store, ())
        };
        match run(&mut store) {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|x| x.0 == 0) => {}
            Err(e) if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => return Err(GuestError::Timeout),
            Err(e) => return Err(GuestError::Failed(format!("the classifier guest failed: {e:?}"))),
        }
        drop(store);
        let out = stdout.contents();
        let v: Value = serde_json::from_slice(&out).map_err(|e| GuestError::Failed(format!("the guest wrote no decision ({e})")))?;
        match v["error"]["type"].as_str() {
            None => Ok(v),
            Some("invalid_request") => Err(GuestError::Input(v["error"]["message"].as_str().unwrap_or("invalid request").to_owned())),
            Some(_) => Err(GuestError::Failed(v["error"]["message"].as_str().unwrap_or("the classifier failed").to_owned())),
        }
    }


}

/// Request outcomes counted in `/metrics`.
#[derive(Clone, Copy)]
enum Outcome {
    Ok = 0,
    BadRequest,
    Unauthorized,
    Replayed,
    Busy,
    Timeout,
    Error,
    NotFound,
}

const OUTCOMES: [&str; 8] = ["ok", "bad_request", "unauthorized", "replayed", "busy", "timeout", "error", "not_found"];
const BUCKETS_MS: [u64; 12] = [5, 10, 25, 50, 100, 150, 250, 400, 600, 1000, 2500, 5000];

#[derive(Default)]
struct Metrics {
    outcomes: [AtomicU64; 8],
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_us: AtomicU64,
    waiting: AtomicUsize,
    running: AtomicUsize,
}

impl Metrics {
    fn record(&self, outcome: Outcome, elapsed: Duration) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Ok) {
            let ms = elapsed.as_millis() as u64;
            for (b, limit) in self.buckets.iter().zip(BUCKETS_MS) {
                if ms <= limit {
                    b.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            self.sum_us.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        }
    }

    fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "# HELP classifier_requests_total Classification requests by outcome.");
        let _ = writeln!(s, "# TYPE classifier_requests_total counter");
        for (name, n) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(s, "classifier_requests_total{{outcome=\"{name}\"}} {}", n.load(Ordering::Relaxed));
        }
        let _ = writeln!(s, "# HELP classifier_request_duration_seconds Time to classify (queue wait included), successful requests.");
        let _ = writeln!(s, "# TYPE classifier_request_duration_seconds histogram");
        for (limit, b) in BUCKETS_MS.iter().zip(&self.buckets) {
            let _ = writeln!(s, "classifier_request_duration_seconds_bucket{{le=\"{}\"}} {}", *limit as f64 / 1000.0, b.load(Ordering::Relaxed));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(s, "classifier_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "classifier_request_duration_seconds_sum {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(s, "classifier_request_duration_seconds_count {count}");
        let _ = writeln!(s, "# HELP classifier_queue_depth Requests waiting for a classifier slot.");
        let _ = writeln!(s, "# TYPE classifier_queue_depth gauge");
        let _ = writeln!(s, "classifier_queue_depth {}", self.waiting.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP classifier_in_flight Classifications running.");
        let _ = writeln!(s, "# TYPE classifier_in_flight gauge");
        let _ = writeln!(s, "classifier_in_flight {}", self.running.load(Ordering::Relaxed));
        s
    }
}

struct Service {
    guest: Arc<Guest>,
    secret: Secret,
    nonces: Mutex<NonceCache>,
    permits: Arc<Semaphore>,
    queue: usize,
    shares: Arc<crate::fair::CallerShares>,
    timeout: Duration,
    max_body: usize,
    metrics: Arc<Metrics>,
    model: String,
}

type Response = hyper::Response<Full<Bytes>>;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn log(event: &str, fields: Value) {
    let mut v = json!({"event": event, "ts": now_secs()});
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    eprintln!("{v}");
}

fn error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": {"message": message, "type": kind, "code": status.as_u16()}}))
}

/// `--template`'s value that asks for the model's own template family.
pub const AUTO_TEMPLATE: &str = "auto";

/// The template the guest writes: `requested`, or with `auto` the family of the model's own
/// template. An explicit family that differs from the model's is kept, with a warning (the
/// operator may know better, e.g. a base model without a template).
pub fn resolve_template(requested: &str, model_template: Option<&str>) -> Result<String> {
    let detected = model_template.and_then(crate::templates::detect);
    if requested != AUTO_TEMPLATE {
        if classifier_guest::Template::from_name(requested).is_none() {
            anyhow::bail!("--template: auto or one of {}, got {requested:?}", template_names());
        }
        if let Some((name, _)) = detected.filter(|(name, _)| *name != requested) {
            eprintln!("wasi-host: warning: --template {requested}, but the model's own template is written as {name}");
        }
        return Ok(requested.to_owned());
    }
    match (detected, model_template) {
        (Some((name, _)), _) => Ok(name.to_owned()),
        (None, None) => anyhow::bail!("--template auto: the model has no chat template (tokenizer.chat_template); pass one of {}", template_names()),
        (None, Some(_)) => anyhow::bail!(
            "--template auto: the model's chat template is none of the known families; pass one of {} (plain for no template)",
            template_names()
        ),
    }
}

fn template_names() -> String {
    classifier_guest::Template::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// `wasi-host features`: the guest's own prompt for each row of a JSONL file, through the model
/// once, written as one JSON line per row: `id`, the hidden state the answer starts from
/// (`hidden`), and the label likelihoods alone (`probabilities`, no hint). What a head over the
/// model's hidden state is trained on (`models/router/tier3_cv.py`).
pub struct FeaturesOptions {
    pub guest: PathBuf,
    pub model: PathBuf,
    pub model_options: ModelOptions,
    pub settings: GuestSettings,
    /// The labels as the edge sends them (`[{"name", "description"}]`, in the edge's order).
    pub labels: Value,
    pub input: PathBuf,
    pub output: PathBuf,
}

pub fn features(opts: FeaturesOptions) -> Result<()> {
    use std::io::BufRead as _;
    let mut settings = GuestSettings { features: true, hint_weight: 0.0, ..opts.settings.clone() };
    let graph = GgufGraph::load(&opts.model, opts.model_options.clone()).map_err(|e| anyhow::anyhow!("{e}: {:?}", std::error::Error::source(&e)))?;
    eprintln!("wasi-host: features of {}", graph.description());
    let info = graph.info();
    settings.template = resolve_template(&settings.template, graph.chat_template().as_deref())?;
    let guest = Guest::new(&opts.guest, graph, settings.to_json(GRAPH), Duration::from_secs(600))?;
    let input = std::fs::File::open(&opts.input).with_context(|| format!("reading {}", opts.input.display()))?;
    let rows: Vec<String> = std::io::BufReader::new(input).lines().collect::<std::io::Result<_>>()?;
    // Written beside the output and renamed at the end: a failed run leaves nothing behind.
    let partial = opts.output.with_extension("partial");
    let result = write_features(&guest, &opts, &rows, &partial, info);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result?;
    std::fs::rename(&partial, &opts.output).with_context(|| format!("renaming {} to {}", partial.display(), opts.output.display()))
}

fn write_features(guest: &Guest, opts: &FeaturesOptions, rows: &[String], partial: &std::path::Path, info: crate::nn::ModelInfo) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(partial).with_context(|| format!("writing {}", partial.display()))?);
    let started = Instant::now();
    for (i, line) in rows.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).with_context(|| format!("{} line {}", opts.input.display(), i + 1))?;
        let text = row["text"].as_str().or_else(|| row["prompt"].as_str());
        let text = text.with_context(|| format!("{} line {}: no \"text\" or \"prompt\"", opts.input.display(), i + 1))?;
        let decision = guest
            .classify(json!({"text": text, "labels": opts.labels}))
            .map_err(|e| anyhow::anyhow!("{} line {}: {e:?}", opts.input.display(), i + 1))?;
        let probabilities: serde_json::Map<String, Value> = decision["probabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["label"].as_str()?.to_owned(), p["probability"].clone())))
            .collect();
        let line = json!({"id": row["id"], "hidden": decision["hidden"], "probabilities": probabilities, "prompt_tokens": decision["prompt_tokens"], "model": info});
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        if (i + 1) % 200 == 0 || i + 1 == rows.len() {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("wasi-host: features {}/{} ({:.0} ms a row)", i + 1, rows.len(), secs * 1000.0 / (i + 1) as f64);
        }
    }
    out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?.sync_all()?;
    Ok(())
}

pub async fn run(opts: ClassifyOptions) -> Result<()> {
    let model = opts.model.file_name().map_or_else(|| "classifier".to_owned(), |n| n.to_string_lossy().into_owned());
    let (guest, model_options, timeout) = (opts.guest.clone(), opts.model_options.clone(), opts.timeout);
    let (model_path, mut settings) = (opts.model.clone(), opts.settings.clone());
    let started = Instant::now();
    let guest = tokio::task::spawn_blocking(move || {
        let graph = GgufGraph::load(&model_path, model_options).map_err(|e| anyhow::anyhow!("{e}: {:?}", std::error::Error::source(&e)))?;
        eprintln!("wasi-host: classifier model {}", graph.description());
        settings.template = resolve_template(&settings.template, graph.chat_template().as_deref())?;
        eprintln!("wasi-host: classifier chat template {}", settings.template);
        Guest::new(&guest, graph, settings.to_json(GRAPH), timeout)
    })
    .await??;
    eprintln!("wasi-host: classifier ready in {} ms", started.elapsed().as_millis());
    let service = Arc::new(Service {
        guest: Arc::new(guest),
        secret: opts.secret,
        nonces: Mutex::new(NonceCache::new(1_000_000)),
        permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
        queue: opts.queue,
        shares: crate::fair::CallerShares::new(if opts.caller_share > 0 { opts.caller_share } else { (opts.concurrency.max(1) + opts.queue).div_ceil(2) }),
        timeout: opts.timeout,
        max_body: opts.max_body,
        metrics: Arc::new(Metrics::default()),
        model,
    });
    let permits = service.permits.clone();
    crate::listen::serve_until_shutdown(opts.listen, &permits, opts.concurrency.max(1), "classifications", move |req, peer| {
        let service = service.clone();
        async move { service.handle(req, peer).await }
    })
    .await
}

impl Service {
    async fn handle(self: Arc<Self>, req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr) -> Response {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let (outcome, status, body, nonce) = match (method.clone(), path.as_str()) {
            (Method::GET, "/healthz") => (Outcome::Ok, StatusCode::OK, json!({"status": "ok", "model": self.model, "callers": self.shares.callers()}), None),
            (Method::GET, "/metrics") => {
                let text = self.metrics.render();
                return hyper::Response::builder()
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(text)))
                    .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())));
            }
            (Method::POST, "/v1/classify") => {
                let (outcome, (status, body), nonce) = self.classify(req, peer).await;
                (outcome, status, body, nonce)
            }
            (_, "/healthz" | "/metrics" | "/v1/classify") => {
                let (s, b) = error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method not allowed");
                (Outcome::BadRequest, s, b, None)
            }
            _ => {
                let (s, b) = error(StatusCode::NOT_FOUND, "invalid_request_error", "not found");
                (Outcome::NotFound, s, b, None)
            }
        };
        if path == "/v1/classify" {
            self.metrics.record(outcome, started.elapsed());
        }
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let mut resp = hyper::Response::builder().status(status).header("content-type", "application/json");
        if let Some(n) = nonce {
            resp = resp.header(SIGNATURE_HEADER, gateway_signing::sign_response(&self.secret, &n, status.as_u16(), &bytes));
        }
        resp.body(Full::new(bytes)).unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
    }

    /// Returns the outcome, the response, and the request's nonce once it is authenticated (the
    /// response is then signed).
    async fn classify(&self, req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr) -> (Outcome, (StatusCode, Value), Option<String>) {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let signed = Signed { timestamp: header(TIMESTAMP_HEADER), nonce: header(NONCE_HEADER), signature: header(SIGNATURE_HEADER) };
        let path = req.uri().path().to_owned();
        let body = match Limited::new(req.into_body(), self.max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let too_big = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                let (status, msg) = if too_big {
                    (StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {} bytes", self.max_body))
                } else {
                    (StatusCode::BAD_REQUEST, "the body could not be read".to_owned())
                };
                return (Outcome::BadRequest, error(status, "invalid_request_error", &msg), None);
            }
        };
        let now = now_secs();
        let verified = gateway_signing::verify_request(&self.secret, "POST", &path, now, &signed, &body).and_then(|ts| {
            let mut nonces = self.nonces.lock().map_err(|_| gateway_signing::Error::Busy)?;
            nonces.check_and_insert(&signed.nonce, ts, now)
        });
        if let Err(e) = verified {
            let outcome = if e == gateway_signing::Error::Replayed { Outcome::Replayed } else { Outcome::Unauthorized };
            log("classify_auth_failed", json!({"peer": peer.ip().to_string(), "reason": e.to_string()}));
            return (outcome, error(StatusCode::UNAUTHORIZED, "authentication_error", "the request is not signed correctly, is stale, or was replayed"), None);
        }
        let nonce = Some(signed.nonce);
        let mut request: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("the body is not JSON: {e}")), nonce),
        };
        let caller = match crate::fair::caller_id(&request) {
            Ok(c) => c,
            Err(m) => return (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, "invalid_request_error", m), nonce),
        };
        // The caller id is the host's business, not the guest's.
        if let Some(o) = request.as_object_mut() {
            o.remove("caller");
        }
        if request.get("settings").is_some() {
            return (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, "invalid_request_error", "settings are the host's, not the caller's"), nonce);
        }

        // Admission: the caller's share first (one key cannot fill the queue), then at most
        // `queue` waiting behind the running ones.
        let Some(share) = self.shares.try_take(&caller) else {
            return (Outcome::Busy, error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "this caller holds its share of the classifier queue"), nonce);
        };
        if self.permits.available_permits() == 0 && self.metrics.waiting.load(Ordering::Relaxed) >= self.queue {
            return (Outcome::Busy, error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "the classifier queue is full"), nonce);
        }
        let started = Instant::now();
        self.metrics.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned()).await;
        self.metrics.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = match permit {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return (Outcome::Error, error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "shutting down"), nonce),
            Err(_) => return (Outcome::Timeout, error(StatusCode::GATEWAY_TIMEOUT, "timeout", "timed out waiting for a classifier slot"), nonce),
        };
        let guest = self.guest.clone();
        let metrics = self.metrics.clone();
        metrics.running.fetch_add(1, Ordering::Relaxed);
        // The permit moves into the task: a classification that outlives its deadline still holds
        // its slot (and counts as in flight) until the model finishes, so both stay true.
        let task = tokio::task::spawn_blocking(move || {
            let (_permit, _share) = (permit, share);
            let out = guest.classify(request);
            metrics.running.fetch_sub(1, Ordering::Relaxed);
            out
        });
        let result = tokio::time::timeout(self.timeout.saturating_sub(started.elapsed()), task).await;
        match result {
            Ok(Ok(Ok(mut decision))) => {
                decision["model"] = json!(self.model);
                decision["latency_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
                (Outcome::Ok, (StatusCode::OK, decision), nonce)
            }
            Ok(Ok(Err(GuestError::Input(m)))) => (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, "invalid_request_error", &m), nonce),
            Ok(Ok(Err(GuestError::Timeout))) | Err(_) => {
                (Outcome::Timeout, error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the classification took too long"), nonce)
            }
            Ok(Ok(Err(GuestError::Failed(m)))) => {
                log("classify_failed", json!({"error": m}));
                (Outcome::Error, error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the classifier failed"), nonce)
            }
            Ok(Err(e)) => {
                log("classify_failed", json!({"error": e.to_string()}));
                (Outcome::Error, error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the classifier failed"), nonce)
            }
        }
    }
}
