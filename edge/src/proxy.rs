//! Sending a routed request: attempts, retries with backoff, `Retry-After`, fallback along the
//! route, and the streaming pump that turns provider events into OpenAI SSE.
//!
//! A stream is committed only after its first translated event arrives, so a stream that fails
//! before its first byte falls back like any other attempt. Once committed, a failure ends the
//! stream with an OpenAI-shaped error event, never silently.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::future::{select, Either, LocalBoxFuture};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::api::embeddings::ParsedEmbeddings;
use crate::api::ParsedChat;
use crate::config::{Config, Model};
use crate::error::{AttemptError, AttemptFailure, GatewayError};
use crate::platform::{ByteStream, Clock, FetchError, Platform, UpstreamResponse};
use crate::providers::{StreamError, StreamTranslator};
use crate::router::Decision;

/// Bytes of an upstream error body we read to find its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Upper bound of a non-streaming upstream response: it is parsed into a JSON value (several
/// times its size in memory) inside a 128 MB isolate. A 16k-token completion is ~64 KB.
const MAX_RESPONSE_BODY: usize = 4 * 1024 * 1024;
/// Upper bound of one upstream SSE event (the decoder buffers an event until its blank line).
const MAX_SSE_EVENT: usize = 1024 * 1024;

pub type SseStream = Pin<Box<dyn Stream<Item = Bytes>>>;

pub enum Output {
    /// The answer as OpenAI's JSON, and the provider's own body when the client is to get that
    /// (an Anthropic model answering `/v1/messages`).
    Json(Value, Option<Bytes>),
    Stream(SseStream),
}

pub struct Served {
    pub model: String,
    pub output: Output,
}

/// What the request asks of a provider.
#[derive(Clone, Copy)]
pub enum Call<'a> {
    Chat(&'a ParsedChat),
    Embeddings(&'a ParsedEmbeddings),
}

impl Call<'_> {
    fn encode(self, model: &Model, key: Option<&str>) -> Result<crate::platform::UpstreamRequest, GatewayError> {
        match self {
            Call::Chat(chat) => model.provider.encode(model, chat, key),
            Call::Embeddings(e) => model.provider.encode_embeddings(model, &e.raw, key),
        }
    }
}

pub struct Outcome {
    pub attempts: u32,
    pub result: Result<Served, GatewayError>,
}

/// Runs `fut` unless `ms` pass first.
pub async fn timeout<C: Clock, F: Future>(clock: &C, ms: u64, fut: F) -> Option<F::Output> {
    let sleep = clock.sleep(ms);
    futures::pin_mut!(fut);
    futures::pin_mut!(sleep);
    match select(fut, sleep).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}

enum Failure {
    /// Try again or move on.
    Attempt(AttemptError),
    /// The provider says the request itself is wrong: answer the client now.
    Terminal(GatewayError),
}

/// Admits an attempt on a model (the gateway's per-model rate limits); an error skips the model.
pub type Gate<'a> = dyn Fn(Arc<Model>) -> LocalBoxFuture<'static, Result<(), AttemptError>> + 'a;

pub async fn serve<P: Platform>(p: &P, config: &Config, decision: &Decision, call: Call<'_>, gate: &Gate<'_>) -> Outcome {
    let deadline = p.now_ms() + config.total_timeout_ms;
    let mut failures: Vec<AttemptFailure> = Vec::new();
    let mut attempts = 0;
    for name in &decision.models {
        let Some(model) = config.models.get(name) else { continue };
        let fail = |e: AttemptError| AttemptFailure { model: name.clone(), error: e };
        let key = match &model.api_key {
            None => None,
            Some(secret) => match p.secret(&secret.0).await.filter(|v| !v.is_empty()) {
                Some(v) => Some(v),
                None => {
                    failures.push(fail(AttemptError::MissingSecret(secret.0.clone())));
                    continue;
                }
            },
        };
        let request = match call.encode(model, key.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                failures.push(fail(AttemptError::Unsupported(e.to_string())));
                continue;
            }
        };
        if let Err(e) = gate(Arc::clone(model)).await {
            failures.push(fail(e));
            continue;
        }
        for retry in 0..=model.attempt.retries {
            let now = p.now_ms();
            if now >= deadline {
                break;
            }
            attempts += 1;
            let upstream = request.clone();
            match attempt(p, model, call, upstream, key.as_deref(), deadline - now).await {
                Ok(output) => return Outcome { attempts, result: Ok(Served { model: name.clone(), output }) },
                Err(Failure::Terminal(e)) => return Outcome { attempts, result: Err(e) },
                Err(Failure::Attempt(e)) => {
                    let wait = backoff(p, model, &e, retry);
                    failures.push(fail(e));
                    let Some(wait) = wait else { break };
                    if retry == model.attempt.retries || p.now_ms() + wait >= deadline {
                        break;
                    }
                    p.sleep(wait).await;
                }
            }
        }
    }
    let result = if !failures.is_empty() && failures.iter().all(|f| matches!(f.error, AttemptError::Unsupported(_))) {
        Err(GatewayError::bad_request(failures[0].error.to_string(), None))
    } else {
        Err(GatewayError::AllAttemptsFailed { route: decision.route.clone(), attempts: failures })
    };
    Outcome { attempts, result }
}

/// How long to wait before retrying the same model; `None` to move on to the next model.
fn backoff<P: Platform>(p: &P, model: &Model, e: &AttemptError, retry: u32) -> Option<u64> {
    if !e.retryable() {
        return None;
    }
    let policy = &model.attempt;
    if let AttemptError::RateLimited { retry_after_ms: Some(ms) } = e {
        return (*ms <= policy.max_retry_after_ms).then_some(*ms);
    }
    let base = policy.backoff_ms.saturating_mul(1u64 << retry.min(16));
    // Full jitter in [base/2, base].
    let jitter = if base > 1 { p.random_u64() % (base / 2 + 1) } else { 0 };
    Some(base / 2 + jitter)
}

async fn attempt<P: Platform>(
    p: &P,
    model: &Model,
    call: Call<'_>,
    request: crate::platform::UpstreamRequest,
    key: Option<&str>,
    remaining_ms: u64,
) -> Result<Output, Failure> {
    let limit = model.attempt.timeout_ms.min(remaining_ms);
    let resp = match timeout(p, limit, p.fetch(request)).await {
        None => return Err(Failure::Attempt(AttemptError::Timeout(limit))),
        Some(Err(e)) => return Err(Failure::Attempt(AttemptError::Connect(e.to_string()))),
        Some(Ok(r)) => r,
    };
    if !(200..300).contains(&resp.status) {
        return Err(classify_status(p, model, resp, key, limit).await);
    }
    if let Call::Chat(chat) = call {
        if chat.request.stream {
            return open_stream(p, model, chat, resp.body, limit, key).await.map(Output::Stream);
        }
    }
    let body = match timeout(p, limit, read_body(resp.body, MAX_RESPONSE_BODY)).await {
        None => return Err(Failure::Attempt(AttemptError::Timeout(limit))),
        Some(Err(e)) => return Err(Failure::Attempt(AttemptError::Connect(e.to_string()))),
        Some(Ok(b)) => b,
    };
    let (decoded, native) = match call {
        Call::Chat(chat) => (model.provider.decode(chat, &body, p.now_ms() / 1000), native(model, chat).then_some(body)),
        Call::Embeddings(_) => (crate::providers::openai::decode_embeddings(&body), None),
    };
    decoded.map(|v| Output::Json(v, native)).map_err(Failure::Attempt)
}

/// The request came in as Anthropic's and goes to an Anthropic model: the provider's body and
/// events go back as they are.
fn native(model: &Model, chat: &ParsedChat) -> bool {
    chat.anthropic.is_some() && model.provider == crate::config::ProviderKind::Anthropic
}

async fn classify_status<P: Platform>(p: &P, model: &Model, resp: UpstreamResponse, key: Option<&str>, limit: u64) -> Failure {
    let status = resp.status;
    let retry_after_ms = retry_after(&resp);
    match status {
        429 => return Failure::Attempt(AttemptError::RateLimited { retry_after_ms }),
        401 | 403 => return Failure::Attempt(AttemptError::Unauthorized { status }),
        404 => return Failure::Attempt(AttemptError::ModelNotFound { status }),
        408 | 409 | 500..=599 => return Failure::Attempt(AttemptError::Server { status }),
        _ => {}
    }
    let body = timeout(p, limit, read_body(resp.body, MAX_ERROR_BODY)).await.and_then(Result::ok).unwrap_or_default();
    let message = model
        .provider
        .error_message(&body)
        .unwrap_or_else(|| format!("The provider rejected the request with status {status}."));
    Failure::Terminal(GatewayError::UpstreamRejected {
        status: if (400..500).contains(&status) { status } else { 502 },
        model: model.name.clone(),
        message: redact(&message, key),
    })
}

/// Removes a credential from text that came back from a provider.
pub fn redact(text: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if k.len() >= 4 => text.replace(k, "[REDACTED]"),
        _ => text.to_owned(),
    }
}

fn retry_after(resp: &UpstreamResponse) -> Option<u64> {
    if let Some(ms) = resp.header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(ms.max(0.0) as u64);
    }
    let secs = resp.header("retry-after")?.trim().parse::<f64>().ok()?;
    Some((secs.max(0.0) * 1000.0) as u64)
}

pub(crate) async fn read_body(mut body: ByteStream, limit: usize) -> Result<Bytes, FetchError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Err(FetchError::Body(format!("response larger than {limit} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Ends the stream with an error once an event grows past `max` bytes without its closing blank
/// line, so a provider cannot make the decoder buffer without bound.
fn bounded_events(body: ByteStream, max: usize) -> ByteStream {
    let mut since_boundary = 0usize;
    let mut newline = false;
    let mut failed = false;
    Box::pin(body.map(move |chunk| {
        let chunk = chunk?;
        if failed {
            return Err(FetchError::Body("stream already failed".into()));
        }
        for &b in chunk.iter() {
            match b {
                b'\n' if newline => since_boundary = 0,
                b'\n' => newline = true,
                b'\r' => {}
                _ => newline = false,
            }
            since_boundary += 1;
        }
        if since_boundary > max {
            failed = true;
            return Err(FetchError::Body(format!("an event of the provider's stream is larger than {max} bytes")));
        }
        Ok(chunk)
    }))
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<FetchError>>>>>;

struct Pump<C> {
    events: Events,
    translator: StreamTranslator,
    clock: C,
    idle_ms: u64,
    pending: VecDeque<Bytes>,
    finished: bool,
    /// The provider key used for this stream, scrubbed from any error text.
    key: Option<String>,
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The OpenAI-shaped error event that ends a broken stream.
pub fn error_event(message: &str) -> Bytes {
    let v = json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": "stream_interrupted"}});
    sse(&v.to_string())
}

impl<C: Clock> Pump<C> {
    /// Reads upstream events until one produces output (or the stream ends). `Err` carries
    /// the reason the stream broke.
    async fn step(&mut self) -> Result<(), String> {
        let next = timeout(&self.clock, self.idle_ms, self.events.next()).await;
        match next {
            None => Err(format!("no data from the provider for {} ms", self.idle_ms)),
            Some(None) => {
                self.finished = true;
                if self.translator.complete() {
                    self.pending.push_back(sse("[DONE]"));
                    Ok(())
                } else {
                    Err("the provider closed the stream before it finished".into())
                }
            }
            Some(Some(Err(e))) => Err(format!("reading the provider's stream failed: {e}")),
            Some(Some(Ok(event))) => match self.translator.on_event(&event) {
                Err(StreamError::Upstream(m)) => Err(format!("the provider reported an error: {m}")),
                Err(e @ StreamError::Malformed(_)) => Err(e.to_string()),
                Ok(t) => {
                    self.pending.extend(t.data.iter().map(|d| sse(d)));
                    self.pending.extend(t.native.map(Bytes::from));
                    if t.done {
                        self.pending.push_back(sse("[DONE]"));
                        self.finished = true;
                    }
                    Ok(())
                }
            },
        }
    }
}

async fn open_stream<P: Platform>(
    p: &P,
    model: &Model,
    chat: &ParsedChat,
    body: ByteStream,
    limit: u64,
    key: Option<&str>,
) -> Result<SseStream, Failure> {
    let mut pump = Pump {
        events: Box::pin(bounded_events(body, MAX_SSE_EVENT).eventsource()),
        translator: model.provider.stream_translator(chat, p.now_ms() / 1000),
        clock: p.clone(),
        idle_ms: limit,
        pending: VecDeque::new(),
        finished: false,
        key: key.map(str::to_owned),
    };
    // Before the first byte goes out, any failure is an attempt failure (fallback applies).
    while pump.pending.is_empty() {
        if pump.finished {
            return Err(Failure::Attempt(AttemptError::EmptyStream));
        }
        pump.step().await.map_err(|m| Failure::Attempt(AttemptError::StreamFailed(redact(&m, key))))?;
    }
    pump.idle_ms = model.attempt.stream_idle_timeout_ms;
    let stream = futures::stream::unfold(pump, |mut pump| async move {
        loop {
            if let Some(b) = pump.pending.pop_front() {
                return Some((b, pump));
            }
            if pump.finished {
                return None;
            }
            if let Err(message) = pump.step().await {
                pump.finished = true;
                pump.pending.push_back(error_event(&redact(&message, pump.key.as_deref())));
            }
        }
    });
    Ok(Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: Vec<&'static [u8]>, max: usize) -> Vec<Result<Bytes, FetchError>> {
        let body: ByteStream = Box::pin(futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))));
        futures::executor::block_on(bounded_events(body, max).collect())
    }

    #[test]
    fn an_event_past_the_bound_ends_the_stream() {
        let ok = collect(vec![b"data: 1234\n\n", b"data: 56", b"78\r\n\r\ndata: x\n\n"], 16);
        assert!(ok.iter().all(Result::is_ok), "events under the bound pass, across chunks and CRLF");
        let out = collect(vec![b"data: 1234\n", b"data: 5678\n", b"data: 9012\n", b"data: x\n\n"], 16);
        assert!(matches!(&out[1], Err(FetchError::Body(m)) if m.contains("larger than 16 bytes")), "{out:?}");
        assert!(out[2..].iter().all(Result::is_err), "nothing after the failure");
    }
}
