//! The wrapper that settles a stream's usage and writes its audit record when the stream ends.


use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::audit::Record;
use crate::platform::Platform;
use crate::policy::cost;
use super::counters::Finish;


/// Wraps a stream so that, at its end, usage is settled and the audit record written; if the
/// client goes away first, the record is written with `client_closed` (the reservation stays
/// charged).
pub fn audited<P: Platform>(stream: crate::proxy::SseStream, finish: Finish<P>, rec: Record) -> crate::proxy::SseStream {
    struct State<P: Platform> {
        inner: crate::proxy::SseStream,
        finish: Option<Finish<P>>,
        rec: Option<Record>,
        usage: Option<(u64, u64)>,
        text: String,
        broken: bool,
    }
    impl<P: Platform> Drop for State<P> {
        fn drop(&mut self) {
            if let (Some(f), Some(mut rec)) = (self.finish.take(), self.rec.take()) {
                rec.outcome = "client_closed";
                f.p.log(&rec.to_json(f.p.now_ms()));
            }
        }
    }
    let state = State { inner: stream, finish: Some(finish), rec: Some(rec), usage: None, text: String::new(), broken: false };
    let s = futures::stream::unfold(state, |mut st| async move {
        match st.inner.next().await {
            Some(chunk) => {
                observe(&mut st.usage, &mut st.text, &mut st.broken, &chunk, st.finish.as_ref().is_some_and(|f| f.include_prompts));
                Some((chunk, st))
            }
            None => {
                if let (Some(f), Some(mut rec)) = (st.finish.take(), st.rec.take()) {
                    if let Some(u) = st.usage {
                        rec.tokens = Some(u);
                        rec.usage_reported = true;
                    }
                    f.settle(st.usage, true, &mut rec).await;
                    rec.outcome = if st.broken { "stream_error" } else { "completed" };
                    if f.include_prompts {
                        rec.completion = Some(crate::policy::pii::redact(&st.text, &f.config.privacy.pii));
                    }
                    f.p.log(&rec.to_json(f.p.now_ms()));
                }
                None
            }
        }
    });
    Box::pin(s) as std::pin::Pin<Box<dyn Stream<Item = Bytes>>>
}

/// `(input, output)` tokens of an Anthropic `usage` object (cache reads and writes are input).
fn anthropic_usage(u: &Value) -> (u64, u64) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    (n("input_tokens").saturating_add(n("cache_creation_input_tokens")).saturating_add(n("cache_read_input_tokens")), n("output_tokens"))
}

/// Reads one outgoing SSE chunk for usage, completion text and error events.
fn observe(usage: &mut Option<(u64, u64)>, text: &mut String, broken: &mut bool, chunk: &Bytes, keep_text: bool) {
    let Ok(s) = std::str::from_utf8(chunk) else { return };
    for line in s.lines() {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        if v.get("error").is_some() {
            *broken = true;
        }
        // An Anthropic model's own events (passed through to a `/v1/messages` client).
        match v["type"].as_str() {
            Some("message_start") => {
                let u = anthropic_usage(&v["message"]["usage"]);
                *usage = Some((u.0, usage.map_or(u.1, |(_, out)| out.max(u.1))));
            }
            Some("message_delta") => {
                let u = anthropic_usage(&v["usage"]);
                let input = usage.map_or(u.0, |(i, _)| i.max(u.0));
                *usage = Some((input, u.1));
            }
            Some("content_block_delta") if keep_text && text.len() < 64 * 1024 => {
                text.push_str(v["delta"]["text"].as_str().unwrap_or_default());
            }
            _ => {}
        }
        if let Some(u) = v.get("usage").and_then(cost::usage_tokens) {
            *usage = Some(u);
        }
        if keep_text && text.len() < 64 * 1024 {
            if let Some(t) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                text.push_str(t);
            }
        }
    }
}
