//! `wasi-host serve`: an HTTP/1.1 server that runs a wasi:http component (the gateway's Spin
//! build) plus Spin's key-value and variables interfaces (`spin_api`) and read-only component
//! files (`--dir`, Spin's `files`). Bounded concurrency; graceful shutdown on Ctrl-C/SIGTERM.
//!
//! Instances: with `--instance-reuse 1` every request gets a fresh instance, as Spin 3 does for
//! wasi:http 0.2 components. With N > 1 an instance that finished a request cleanly is kept
//! (at most `--idle-instances` of them) and serves up to N requests one after another, so
//! state the guest builds once (the embedding model: tens of MB, hundreds of ms) is reused,
//! as in a Workers isolate. A trapped instance is never reused.

use std::net::SocketAddr;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::{AllowedHosts, Hooks};
use crate::spin_api::{SpinConfig, SpinHost};

/// wasmtime 48 has its own error type; the CLI reports through anyhow.
fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

/// One request's store data.
pub struct RequestState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub spin: Arc<SpinConfig>,
    /// The instance's memory cap (linear memories and tables).
    pub limits: StoreLimits,
    /// Outbound HTTP only to the allowed origins.
    pub hooks: Hooks,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

pub struct ServeOptions {
    pub component: std::path::PathBuf,
    /// Where compiled code of the component is kept between runs (`load_component`).
    pub compile_cache: Option<PathBuf>,
    pub listen: SocketAddr,
    pub spin: SpinConfig,
    pub max_concurrency: usize,
    /// (host directory, guest path) mounted read-only in every instance.
    pub dirs: Vec<(PathBuf, String)>,
    /// Requests one instance may serve (1: a fresh instance per request).
    pub instance_reuse: u32,
    pub idle_instances: usize,
    /// Wall-clock budget of one request in the guest (epoch interruption traps a guest still
    /// running past it; streaming responses included).
    pub deadline: Duration,
    /// Linear memory one instance may grow to.
    pub max_memory_bytes: usize,
    /// Origins the component may send HTTP requests to (Spin's `allowed_outbound_hosts`).
    pub outbound: AllowedHosts,
}

/// Epoch tick of `serve`'s deadline.
const TICK: Duration = Duration::from_millis(100);

struct Server {
    pre: ProxyPre<RequestState>,
    spin: Arc<SpinConfig>,
    permits: Arc<Semaphore>,
    dirs: Vec<(PathBuf, String)>,
    instance_reuse: u32,
    idle_instances: usize,
    deadline_ticks: u64,
    max_memory_bytes: usize,
    outbound: Arc<AllowedHosts>,
    idle: Mutex<Vec<Idle>>,
    /// Signalled when an instance goes back to the pool.
    returned: tokio::sync::Notify,
}

/// How long a request waits for a finishing instance before instantiating a new one.
const REUSE_WAIT: Duration = Duration::from_millis(20);

/// An instance that finished its last request cleanly.
struct Idle {
    store: Store<RequestState>,
    proxy: Proxy,
    served: u32,
}

/// Compiled components a cache directory keeps (the newest; each is tens of MB).
const CACHED_COMPONENTS: usize = 4;

/// Compiles the component, or with a cache directory loads the code an earlier run compiled
/// from the same bytes with the same engine settings (and stores it after compiling). Says which.
fn load_component(engine: &Engine, path: &Path, cache: Option<&Path>) -> Result<(Component, &'static str)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let Some(dir) = cache else { return Ok((Component::new(engine, &bytes).map_err(wt)?, "compiled")) };
    let mut settings = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let file = dir.join(format!("{}-{:016x}.cwasm", hex::encode(Sha256::digest(&bytes)), settings.finish()));
    if file.is_file() {
        #[allow(unsafe_code)]
        // SAFETY: wasmtime runs a deserialised file's machine code as is. Files in the cache are
        // written by this function only, from `Component::serialize` of the same engine settings
        // (the name carries both hashes, and wasmtime refuses a file from another version or
        // configuration); the directory must be as trusted as the host binary (`--help` says so).
        match unsafe { Component::deserialize_file(engine, &file) } {
            Ok(component) => return Ok((component, "loaded the cached compilation of")),
            Err(e) => eprintln!("wasi-host: ignoring {}: {e}", file.display()),
        }
    }
    let component = Component::new(engine, &bytes).map_err(wt)?;
    let stored = component.serialize().map_err(wt).and_then(|code| {
        std::fs::create_dir_all(dir)?;
        let partial = file.with_extension("partial");
        std::fs::write(&partial, code)?;
        std::fs::rename(&partial, &file)?;
        Ok(())
    });
    match stored {
        Ok(()) => prune(dir),
        Err(e) => eprintln!("wasi-host: could not store compiled code in {}: {e:#}", dir.display()),
    }
    Ok((component, "compiled"))
}

/// Removes all but the newest `CACHED_COMPONENTS` compiled components.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|p| Some((std::fs::metadata(&p).and_then(|m| m.modified()).ok()?, p)))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, old) in files.into_iter().skip(CACHED_COMPONENTS) {
        let _ = std::fs::remove_file(old);
    }
}

pub async fn run(opts: ServeOptions) -> Result<()> {
    let mut config = Config::new();
    // The gateway component needs no GC proposal; this build carries no collector.
    config.wasm_gc(false).gc_support(false).epoch_interruption(true);
    let engine = Engine::new(&config).map_err(wt)?;
    let ticker = engine.weak();
    std::thread::spawn(move || loop {
        std::thread::sleep(TICK);
        match ticker.upgrade() {
            Some(e) => e.increment_epoch(),
            None => break,
        }
    });
    let started = std::time::Instant::now();
    let (component, how) = load_component(&engine, &opts.component, opts.compile_cache.as_deref())
        .with_context(|| format!("loading component {}", opts.component.display()))?;
    let mut linker: Linker<RequestState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wt)?;
    SpinHost::add_to_linker::<RequestState, HasSelf<RequestState>>(&mut linker, |s| s).map_err(wt)?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component).map_err(wt)?).map_err(wt)?;
    eprintln!("wasi-host: {how} {} in {} ms", opts.component.display(), started.elapsed().as_millis());

    let server = Arc::new(Server {
        pre,
        spin: Arc::new(opts.spin),
        permits: Arc::new(Semaphore::new(opts.max_concurrency)),
        dirs: opts.dirs,
        instance_reuse: opts.instance_reuse.max(1),
        idle_instances: opts.idle_instances,
        deadline_ticks: u64::try_from(opts.deadline.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX).max(1),
        max_memory_bytes: opts.max_memory_bytes,
        outbound: Arc::new(opts.outbound),
        idle: Mutex::new(Vec::new()),
        returned: tokio::sync::Notify::new(),
    });
    let permits = server.permits.clone();
    crate::listen::serve_until_shutdown(opts.listen, &permits, opts.max_concurrency, "requests", move |req, _peer| {
        let server = server.clone();
        async move {
            // A failed instance (a trap: the deadline, the memory cap) answers 500 and is
            // logged, rather than dropping the connection.
            server.handle(req).await.unwrap_or_else(|e| {
                eprintln!("wasi-host: request failed: {e:#}");
                instance_failed()
            })
        }
    })
    .await
}

/// The OpenAI-shaped 500 for a request whose instance failed.
fn instance_failed() -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = r#"{"error":{"message":"The gateway instance failed while serving this request (see the host's log).","type":"server_error","param":null,"code":"instance_failed"}}"#;
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed_unsync());
    *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

impl Server {
    fn new_store(&self) -> Result<Store<RequestState>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (host, guest) in &self.dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(wt)
                .with_context(|| format!("mounting {} at {guest}", host.display()))?;
        }
        let limits = StoreLimitsBuilder::new().memory_size(self.max_memory_bytes).trap_on_grow_failure(true).build();
        let mut store = Store::new(
            self.pre.engine(),
            RequestState {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                spin: self.spin.clone(),
                limits,
                hooks: Hooks(self.outbound.clone()),
            },
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        Ok(store)
    }

    fn take_idle(&self) -> Option<Idle> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, idle: Idle) {
        if let Ok(mut pool) = self.idle.lock() {
            if pool.len() < self.idle_instances {
                pool.push(idle);
            }
        }
        self.returned.notify_one();
    }

    /// An idle instance, waiting briefly for one that is finishing its last request (its
    /// response is already with the client) before paying for a new instance.
    async fn reuse(&self) -> Option<Idle> {
        if self.instance_reuse <= 1 {
            return None;
        }
        if let Some(i) = self.take_idle() {
            return Some(i);
        }
        let _ = tokio::time::timeout(REUSE_WAIT, self.returned.notified()).await;
        self.take_idle()
    }

    async fn handle(self: Arc<Self>, req: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<HyperOutgoingBody>> {
        let permit = self.permits.clone().acquire_owned().await?;
        let (mut store, proxy, served) = match self.reuse().await {
            Some(i) => (i.store, Some(i.proxy), i.served),
            None => (self.new_store()?, None, 0),
        };
        // Each request gets the whole deadline, also in a reused instance.
        store.set_epoch_deadline(self.deadline_ticks);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req).map_err(wt)?;
        let out = store.data_mut().http().new_response_outparam(sender).map_err(wt)?;
        let server = self.clone();
        // The instance keeps running after the head is sent, to stream the body.
        let task = tokio::task::spawn(async move {
            let _permit = permit;
            let proxy = match proxy {
                Some(p) => p,
                None => server.pre.instantiate_async(&mut store).await.map_err(wt)?,
            };
            proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await.map_err(wt)?;
            if served + 1 < server.instance_reuse {
                server.put_idle(Idle { store, proxy, served: served + 1 });
            }
            Ok::<(), anyhow::Error>(())
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(anyhow::anyhow!("the component failed: {e:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("the component never set a response"),
                Ok(Err(e)) => Err(e.context("the component failed before responding")),
                Err(e) => Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn compiled_code_is_cached_and_a_bad_cache_file_is_recompiled() {
        let dir = std::env::temp_dir().join(format!("wasi-host-compile-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The smallest valid component: the preamble of component-model binary version 0x0d.
        let wasm = dir.join("empty.wasm");
        std::fs::write(&wasm, b"\0asm\x0d\0\x01\0").unwrap();
        let engine = Engine::default();
        let how = |cache: Option<&Path>| load_component(&engine, &wasm, cache).unwrap().1;
        let cache = dir.join("cache");
        assert_eq!(how(None), "compiled");
        assert!(!cache.exists(), "no cache directory unless asked for");
        assert_eq!(how(Some(&cache)), "compiled");
        assert_eq!(how(Some(&cache)), "loaded the cached compilation of");
        let cached: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(cached.len(), 1);
        // A damaged file is not run: it is compiled again and replaced.
        std::fs::write(&cached[0], b"not machine code").unwrap();
        assert_eq!(how(Some(&cache)), "compiled");
        assert_eq!(how(Some(&cache)), "loaded the cached compilation of");
        // Other components' code is pruned to the newest few.
        for i in 0..CACHED_COMPONENTS + 2 {
            std::fs::write(cache.join(format!("old{i}.cwasm")), b"x").unwrap();
            let old = std::fs::File::options().write(true).open(cache.join(format!("old{i}.cwasm"))).unwrap();
            old.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64)).unwrap();
        }
        std::fs::remove_file(&cached[0]).unwrap();
        assert_eq!(how(Some(&cache)), "compiled");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), CACHED_COMPONENTS);
        assert!(cached[0].exists(), "the newest is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
