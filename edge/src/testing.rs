//! An in-memory platform for the core's behaviour tests (feature `testing`, and the crate's own
//! unit tests): virtual time, scripted upstreams, key-value store, counters, secrets and captured
//! logs, so the whole request flow (`Gateway::handle`) runs in-process in milliseconds.
//!
//! Time is virtual: [`MemoryPlatform::run`] polls a future and, whenever it cannot progress,
//! moves the clock to the earliest pending timer. A timeout of an hour therefore costs nothing,
//! and an upstream that hangs is told apart from one that is slow by the clock alone. A future
//! that waits on neither a timer nor anything else is a hang: `run` panics and says so.
//!
//! ```
//! use llm_gateway::testing::{MemoryPlatform, Upstream};
//! let p = MemoryPlatform::new();
//! p.on_fetch(|_req| Upstream::json(200, serde_json::json!({"ok": true})).after(250));
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::gateway::{Body, InboundBody, Request, Response};
use crate::platform::{
    Clock, FetchError, HttpClient, KeyValue, KvError, Ledger, Log, ModelFiles, Random, Secrets, UpstreamRequest, UpstreamResponse,
};
use crate::ledger::{self, Op, Reply};

/// What a scripted upstream does with one request.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// The connection fails before a response head (refused, reset, DNS).
    Refuse(String),
    /// No response head, ever.
    Hang,
    /// A response: its head after `delay_ms`, then the body's chunks `chunk_delay_ms` apart; with
    /// `break_after`, the body fails with a read error once that many bytes were sent.
    Answer {
        delay_ms: u64,
        status: u16,
        headers: Vec<(String, String)>,
        chunks: Vec<Bytes>,
        chunk_delay_ms: u64,
        break_after: Option<usize>,
    },
}

impl Upstream {
    pub fn json(status: u16, body: Value) -> Self {
        Self::Answer {
            delay_ms: 0,
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![Bytes::from(body.to_string())],
            chunk_delay_ms: 0,
            break_after: None,
        }
    }

    /// A `text/event-stream` of these `data:` payloads, one chunk per event.
    pub fn sse<I: IntoIterator<Item = S>, S: AsRef<str>>(events: I) -> Self {
        let chunks = events.into_iter().map(|e| Bytes::from(format!("data: {}\n\n", e.as_ref()))).collect();
        Self::Answer {
            delay_ms: 0,
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks,
            chunk_delay_ms: 0,
            break_after: None,
        }
    }

    /// The response head comes after `ms` of virtual time.
    pub fn after(mut self, ms: u64) -> Self {
        if let Self::Answer { delay_ms, .. } = &mut self {
            *delay_ms = ms;
        }
        self
    }

    /// `ms` of virtual time between body chunks.
    pub fn chunk_gap(mut self, ms: u64) -> Self {
        if let Self::Answer { chunk_delay_ms, .. } = &mut self {
            *chunk_delay_ms = ms;
        }
        self
    }

    /// The body fails (connection reset) after `bytes` bytes.
    pub fn break_after(mut self, bytes: usize) -> Self {
        if let Self::Answer { break_after, .. } = &mut self {
            *break_after = Some(bytes);
        }
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Self::Answer { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// One upstream request as sent.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub at_ms: u64,
    pub request: UpstreamRequest,
}

impl Fetched {
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.request.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Script = Box<dyn FnMut(&UpstreamRequest) -> Upstream>;

#[derive(Default)]
struct Timers {
    /// deadline → wakers of the sleeps due then.
    due: BTreeMap<u64, Vec<Waker>>,
}

struct Inner {
    now_ms: Cell<u64>,
    timers: RefCell<Timers>,
    next_random: Cell<u64>,
    script: RefCell<Option<Script>>,
    requests: RefCell<Vec<Fetched>>,
    kv: RefCell<HashMap<String, Vec<u8>>>,
    kv_fails: Cell<bool>,
    ledger: RefCell<HashMap<String, String>>,
    ledger_fails: Cell<bool>,
    secrets: RefCell<HashMap<String, String>>,
    files: RefCell<HashMap<String, Vec<u8>>>,
    logs: RefCell<Vec<Value>>,
}

/// The in-memory platform. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct MemoryPlatform {
    inner: Rc<Inner>,
}

impl Default for MemoryPlatform {
    fn default() -> Self {
        Self::new()
    }
}

/// 2026-01-01T00:00:00Z: virtual time starts on a fixed day, so daily budgets are deterministic.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

impl MemoryPlatform {
    pub fn new() -> Self {
        Self {
            inner: Rc::new(Inner {
                now_ms: Cell::new(EPOCH_MS),
                timers: RefCell::default(),
                next_random: Cell::new(0x9e37_79b9_7f4a_7c15),
                script: RefCell::new(None),
                requests: RefCell::default(),
                kv: RefCell::default(),
                kv_fails: Cell::new(false),
                ledger: RefCell::default(),
                ledger_fails: Cell::new(false),
                secrets: RefCell::default(),
                files: RefCell::default(),
                logs: RefCell::default(),
            }),
        }
    }

    /// How upstreams answer, from each request (URL, headers, body). Without a script every
    /// fetch is refused.
    pub fn on_fetch(&self, script: impl FnMut(&UpstreamRequest) -> Upstream + 'static) {
        *self.inner.script.borrow_mut() = Some(Box::new(script));
    }

    /// Every upstream request so far, in order, with the virtual time it was sent.
    pub fn fetches(&self) -> Vec<Fetched> {
        self.inner.requests.borrow().clone()
    }

    /// The URLs of every upstream request so far, in order.
    pub fn fetched_urls(&self) -> Vec<String> {
        self.inner.requests.borrow().iter().map(|f| f.request.url.clone()).collect()
    }

    pub fn set_secret(&self, name: &str, value: &str) {
        self.inner.secrets.borrow_mut().insert(name.into(), value.into());
    }

    pub fn kv_put(&self, key: &str, value: &[u8]) {
        self.inner.kv.borrow_mut().insert(key.into(), value.to_vec());
    }

    pub fn kv_delete(&self, key: &str) {
        self.inner.kv.borrow_mut().remove(key);
    }

    pub fn kv_read(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.kv.borrow().get(key).cloned()
    }

    /// Makes every key-value read and write fail (an outage of the store).
    pub fn fail_kv(&self, fail: bool) {
        self.inner.kv_fails.set(fail);
    }

    /// Makes every counter update fail (the Durable Object or the CAS store is down).
    pub fn fail_ledger(&self, fail: bool) {
        self.inner.ledger_fails.set(fail);
    }

    /// The stored counters of `subject` (what the platform would persist), if any.
    pub fn ledger_text(&self, subject: &str) -> Option<String> {
        self.inner.ledger.borrow().get(subject).cloned()
    }

    /// Overwrites the stored counters of `subject` (e.g. with a corrupt value).
    pub fn set_ledger_text(&self, subject: &str, text: &str) {
        self.inner.ledger.borrow_mut().insert(subject.into(), text.into());
    }

    pub fn add_model_file(&self, name: &str, bytes: Vec<u8>) {
        self.inner.files.borrow_mut().insert(name.into(), bytes);
    }

    /// Every log record so far.
    pub fn logs(&self) -> Vec<Value> {
        self.inner.logs.borrow().clone()
    }

    /// Moves virtual time forward, waking the timers that fall due.
    pub fn advance(&self, ms: u64) {
        self.set_now(self.inner.now_ms.get() + ms);
    }

    fn set_now(&self, now: u64) {
        self.inner.now_ms.set(now);
        let mut timers = self.inner.timers.borrow_mut();
        let later = timers.due.split_off(&(now + 1));
        let due = std::mem::replace(&mut timers.due, later);
        drop(timers);
        for waker in due.into_values().flatten() {
            waker.wake();
        }
    }

    /// Runs `fut` to completion on this thread in virtual time: whenever nothing can progress,
    /// the clock jumps to the next timer. Panics when the future waits on nothing at all (a hang).
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        loop {
            flag.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            if flag.0.load(Ordering::SeqCst) {
                continue;
            }
            let next = self.inner.timers.borrow().due.keys().next().copied();
            match next {
                Some(at) => self.set_now(at.max(self.inner.now_ms.get())),
                None => panic!("the future waits on no timer and nothing woke it: it would hang"),
            }
        }
    }

    /// Runs `req` through `gateway` and reads the whole response body (a stream to its end).
    pub fn send(&self, gateway: &crate::Gateway, req: Request) -> Received {
        self.run(async {
            let resp = gateway.handle(self, req).await;
            Received::read(resp).await
        })
    }

    /// Runs many requests concurrently (interleaved at every await) and reads each response.
    pub fn send_all(&self, gateway: &crate::Gateway, reqs: Vec<Request>) -> Vec<Received> {
        self.run(futures::future::join_all(reqs.into_iter().map(|req| async move {
            let resp = gateway.handle(self, req).await;
            Received::read(resp).await
        })))
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether the body was a stream.
    pub streamed: bool,
}

impl Received {
    pub async fn read(resp: Response) -> Self {
        let (body, streamed) = match resp.body {
            Body::Full(b) => (b.to_vec(), false),
            Body::Stream(s) => (s.collect::<Vec<Bytes>>().await.concat(), true),
        };
        Self { status: resp.status, headers: resp.headers, body: String::from_utf8_lossy(&body).into_owned(), streamed }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn events(&self) -> Vec<String> {
        self.body.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect()
    }
}

/// A request with a JSON body and optional bearer key.
pub fn request(method: http::Method, path: &str, key: Option<&str>, body: &Value) -> Request {
    let mut headers = http::HeaderMap::new();
    if let Some(k) = key {
        if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {k}")) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
    }
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    let bytes = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
    Request { method, path: path.into(), headers, body: body_of(bytes) }
}

/// The events of an SSE text (named or not), as the decoder the proxy uses yields them: for
/// replaying recorded streams through a translator.
pub fn sse_events(text: &str) -> Vec<eventsource_stream::Event> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let mut ev = eventsource_stream::Event { event: String::new(), data: String::new(), id: String::new(), retry: None };
            for line in b.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    ev.event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    ev.data = d.to_owned();
                }
            }
            ev
        })
        .collect()
}

/// An inbound body of one chunk.
pub fn body_of(bytes: Bytes) -> InboundBody {
    Box::pin(futures::stream::iter([Ok(bytes)]))
}

impl HttpClient for MemoryPlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let answer = match self.inner.script.borrow_mut().as_mut() {
            Some(script) => script(&req),
            None => Upstream::Refuse("no upstream is scripted".into()),
        };
        self.inner.requests.borrow_mut().push(Fetched { at_ms: self.now_ms(), request: req });
        match answer {
            Upstream::Refuse(why) => Err(FetchError::Connect(why)),
            Upstream::Hang => futures::future::pending().await,
            Upstream::Answer { delay_ms, status, headers, chunks, chunk_delay_ms, break_after } => {
                if delay_ms > 0 {
                    self.sleep(delay_ms).await;
                }
                let clock = self.clone();
                let body = futures::stream::iter(chunks).then(move |c| {
                    let clock = clock.clone();
                    async move {
                        if chunk_delay_ms > 0 {
                            clock.sleep(chunk_delay_ms).await;
                        }
                        c
                    }
                });
                Ok(UpstreamResponse { status, headers, body: Box::pin(Breaking { inner: Box::pin(body), sent: 0, limit: break_after, done: false }) })
            }
        }
    }
}

/// A body that fails once `limit` bytes were sent (the chunk that crosses it is cut there).
struct Breaking {
    inner: Pin<Box<dyn Stream<Item = Bytes>>>,
    sent: usize,
    limit: Option<usize>,
    done: bool,
}

impl Stream for Breaking {
    type Item = Result<Bytes, FetchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(limit) = self.limit {
            if self.sent >= limit {
                self.done = true;
                return Poll::Ready(Some(Err(FetchError::Body("connection reset by the scripted upstream".into()))));
            }
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(mut chunk)) => {
                if let Some(limit) = self.limit {
                    let room = limit - self.sent;
                    if chunk.len() > room {
                        chunk.truncate(room);
                    }
                }
                self.sent += chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A virtual-time sleep: ready once the clock reaches its deadline.
struct Sleep {
    platform: MemoryPlatform,
    deadline: u64,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.platform.inner.now_ms.get() >= self.deadline {
            return Poll::Ready(());
        }
        self.platform.inner.timers.borrow_mut().due.entry(self.deadline).or_default().push(cx.waker().clone());
        Poll::Pending
    }
}

impl Clock for MemoryPlatform {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms.get()
    }

    fn sleep(&self, ms: u64) -> impl Future<Output = ()> + 'static {
        Sleep { platform: self.clone(), deadline: self.inner.now_ms.get().saturating_add(ms) }
    }
}

impl Random for MemoryPlatform {
    /// splitmix64: deterministic, distinct values.
    fn random_u64(&self) -> u64 {
        let x = self.inner.next_random.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.inner.next_random.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl KeyValue for MemoryPlatform {
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if self.inner.kv_fails.get() {
            return Err(KvError("scripted outage".into()));
        }
        Ok(self.inner.kv.borrow().get(key).cloned())
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if self.inner.kv_fails.get() {
            return Err(KvError("scripted outage".into()));
        }
        self.inner.kv.borrow_mut().insert(key.into(), value.to_vec());
        Ok(())
    }
}

impl ModelFiles for MemoryPlatform {
    async fn model_file(&self, name: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.inner.files.borrow().get(name).cloned())
    }
}

impl Secrets for MemoryPlatform {
    async fn secret(&self, name: &str) -> Option<String> {
        self.inner.secrets.borrow().get(name).cloned()
    }
}

/// Counters stored as the platforms store them (the JSON of `LedgerState`), each update one
/// `ledger::apply_stored` step, atomic as the Durable Object's and the CAS loop's are.
impl Ledger for MemoryPlatform {
    async fn ledger(&self, subject: &str, op: &Op) -> Result<Reply, KvError> {
        if self.inner.ledger_fails.get() {
            return Err(KvError("scripted outage".into()));
        }
        let mut stored = self.inner.ledger.borrow_mut();
        let (reply, json) = ledger::apply_stored(stored.get(subject).map(String::as_bytes), self.now_ms(), op)
            .map_err(|e| KvError(format!("ledger:{subject}: {e}")))?;
        stored.insert(subject.into(), String::from_utf8_lossy(&json).into_owned());
        Ok(reply)
    }
}

impl Log for MemoryPlatform {
    fn log(&self, record: &Value) {
        self.inner.logs.borrow_mut().push(record.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "it would hang")]
    fn a_future_that_waits_on_nothing_is_reported_as_a_hang() {
        MemoryPlatform::new().run(futures::future::pending::<()>());
    }

    #[test]
    fn timers_fire_in_deadline_order_in_virtual_time() {
        let p = MemoryPlatform::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        let task = |ms: u64| {
            let (p, order) = (p.clone(), Rc::clone(&order));
            async move {
                p.sleep(ms).await;
                order.borrow_mut().push((ms, p.now_ms() - EPOCH_MS));
            }
        };
        p.run(futures::future::join3(task(3_600_000), task(5), task(700)));
        assert_eq!(*order.borrow(), [(5, 5), (700, 700), (3_600_000, 3_600_000)]);
    }

    #[test]
    fn a_body_breaks_after_the_given_bytes() {
        let p = MemoryPlatform::new();
        p.on_fetch(|_| Upstream::sse(["one", "two"]).break_after(12));
        let req = UpstreamRequest { url: "http://127.0.0.1:9/x".into(), headers: Vec::new(), body: Bytes::new() };
        let chunks = p.run(async {
            let resp = p.fetch(req).await.unwrap_or_else(|e| panic!("{e}"));
            resp.body.collect::<Vec<_>>().await
        });
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        assert_eq!(chunks[0].as_ref().ok().map(|b| b.len()), Some(11), "data: one\\n\\n");
        assert_eq!(chunks[1].as_ref().ok().map(|b| b.as_ref()), Some(&b"d"[..]), "cut at byte 12");
        assert!(chunks[2].is_err());
    }
}
