//! The HTTP/1.1 accept loop `serve` and `classify` share: bind, announce the address, serve each
//! connection on its own task until Ctrl-C or SIGTERM, then give the requests in flight a
//! bounded time to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::io::TokioIo;

/// How long shutdown waits for the requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `handle` on `listen` until a shutdown signal, then waits up to [`DRAIN`] until all
/// `permits` (each request in flight holds one) are back. `what` names the requests in the log.
pub(crate) async fn serve_until_shutdown<H, F, B>(listen: SocketAddr, permits: &Semaphore, total: usize, what: &str, handle: H) -> Result<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    // Tests and scripts read this line to learn the port (`--listen 127.0.0.1:0`).
    eprintln!("wasi-host: listening on http://{}", listener.local_addr()?);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = handle(req, peer);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            if let Err(e) = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await {
                eprintln!("wasi-host: connection from {peer}: {e}");
            }
        });
    }
    eprintln!("wasi-host: shutting down; waiting up to {} s for {what} in flight", DRAIN.as_secs());
    let all = u32::try_from(total).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, permits.acquire_many(all)).await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
