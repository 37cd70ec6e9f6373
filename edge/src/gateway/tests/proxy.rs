//! Attempts, retries with backoff, `Retry-After`, timeouts and fallback, before and after the
//! first stream byte.

use serde_json::{json, Value};

use super::support::*;
use crate::testing::Upstream;

#[test]
fn openai_non_stream_replays_the_recorded_response_with_the_provider_key() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "oa", "messages": user("describe the image"), "seed": 7}));
    assert_served(&r, "oa", 1);
    assert_eq!(r.header("x-gateway-tier"), Some("model"));
    assert_eq!(r.json(), serde_json::from_str::<Value>(CHAT_COMPLETION).unwrap_or_default());
    let sent = &p.fetches()[0];
    assert_eq!(sent.request.url, "http://127.0.0.1:9/openai/v1/chat/completions");
    assert_eq!(sent.body_json()["model"], "gpt-4o");
    assert_eq!(sent.body_json()["seed"], 7);
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
}

#[test]
fn a_5xx_is_retried_once_after_a_backoff_then_the_route_falls_back() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "fallback-5xx", "messages": user("hi")}));
    assert_served(&r, "oa", 3);
    let f = p.fetches();
    let urls: Vec<&str> = f.iter().map(|f| f.request.url.as_str()).collect();
    assert_eq!(urls, ["http://127.0.0.1:9/status-500/v1/chat/completions", "http://127.0.0.1:9/status-500/v1/chat/completions", "http://127.0.0.1:9/openai/v1/chat/completions"]);
    // backoff_ms 20, full jitter in [10, 20].
    let wait = f[1].at_ms - f[0].at_ms;
    assert!((10..=20).contains(&wait), "waited {wait} ms before the retry");
    assert_eq!(f[2].at_ms, f[1].at_ms, "fallback to the next model is immediate");
}

#[test]
fn a_hanging_model_times_out_at_its_timeout_and_falls_back() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "fallback-timeout", "messages": user("hi")}));
    assert_served(&r, "oa", 2);
    let f = p.fetches();
    assert_eq!(f[1].at_ms - f[0].at_ms, 700, "slow's timeout_ms");
}

/// The `fallback-429` route, its first model answering 429 with this `Retry-After`.
fn limited_with_retry_after(secs: &'static str) -> (crate::testing::MemoryPlatform, crate::Gateway) {
    let (p, gw) = setup();
    p.on_fetch(move |req| {
        if req.url.contains("status-429") {
            Upstream::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", secs)
        } else {
            provider(req)
        }
    });
    (p, gw)
}

#[test]
fn retry_after_is_honoured_up_to_its_cap() {
    let (p, gw) = limited_with_retry_after("1");
    let r = chat(&p, &gw, "main", json!({"model": "fallback-429", "messages": user("hi")}));
    assert_served(&r, "oa", 3);
    let f = p.fetches();
    assert_eq!(f[1].at_ms - f[0].at_ms, 1000, "Retry-After: 1 is waited exactly");

    // Past max_retry_after_ms (1000) the model is not retried: the route moves on at once.
    let (p, gw) = limited_with_retry_after("30");
    let r = chat(&p, &gw, "main", json!({"model": "fallback-429", "messages": user("hi")}));
    assert_served(&r, "oa", 2);
    let f = p.fetches();
    assert_eq!(f[1].at_ms, f[0].at_ms);
}

#[test]
fn a_connection_reset_falls_back() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "fallback-reset", "messages": user("hi")}));
    assert_served(&r, "oa", 2);
}

#[test]
fn the_total_timeout_bounds_the_whole_route() {
    let (p, gw) = setup();
    // Every model hangs: 20 s of total_timeout_ms, not 5 s per attempt times every retry.
    p.on_fetch(|_| Upstream::Hang);
    let started = crate::platform::Clock::now_ms(&p);
    let r = chat(&p, &gw, "main", json!({"model": "code", "messages": user("hi")}));
    assert_eq!(r.status, 504, "{}", r.body);
    let took = crate::platform::Clock::now_ms(&p) - started;
    assert!(took <= 20_000, "took {took} ms of a 20 s budget");
    assert_eq!(r.json()["error"]["code"], "upstream_timeout", "{}", r.body);
}

#[test]
fn a_stream_falls_back_before_its_first_byte() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "fallback-stream", "messages": user("hi"), "stream": true}));
    assert_served(&r, "oa", 3);
    assert!(r.streamed);
    let want: Vec<String> = CHAT_SSE.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect();
    assert_eq!(r.events(), want);
}

#[test]
fn a_stream_that_breaks_midway_ends_with_an_error_event() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "midstream", "messages": user("hi"), "stream": true}));
    assert_eq!(r.status, 200);
    let events = r.events();
    assert!(events.len() >= 3, "{events:?}");
    let last: Value = serde_json::from_str(events.last().map_or("", String::as_str)).unwrap_or_default();
    assert!(last["error"]["message"].is_string(), "last event {last}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "a broken stream is not presented as complete");
    assert_eq!(audit_records(&p)[0]["outcome"], "stream_error", "{:?}", audit_records(&p));
}

#[test]
fn a_stream_that_goes_quiet_is_cut_at_the_idle_timeout() {
    let (p, gw) = setup();
    p.on_fetch(|req| if req.url.contains("/openai/") { recorded_sse(CHAT_SSE).chunk_gap(6_000) } else { provider(req) });
    let r = chat(&p, &gw, "main", json!({"model": "oa", "messages": user("hi"), "stream": true}));
    // The first event never comes within stream_idle_timeout_ms (5 s): the attempt fails before
    // the stream is committed, so the client gets an error status, not a hung connection.
    assert_ne!(r.status, 200, "{}", r.body);
    assert!(r.json()["error"]["message"].is_string(), "{}", r.body);
}

#[test]
fn every_model_failing_is_one_502_naming_each_attempt() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "dead", "messages": user("hi")}));
    assert_eq!(r.status, 502, "{}", r.body);
    let e = &r.json()["error"];
    assert!(e["message"].as_str().is_some_and(|m| m.contains("broken2")), "{e}");
    assert_eq!(e["type"], "upstream_error", "{e}");
}

#[test]
fn a_missing_provider_secret_is_named_and_never_sent_empty() {
    let (p, gw) = setup();
    let p2 = p.clone();
    p2.set_secret("OPENAI_API_KEY", "");
    let r = chat(&p, &gw, "main", json!({"model": "oa", "messages": user("hi")}));
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("OPENAI_API_KEY"), "{}", r.body);
    assert!(p.fetches().is_empty(), "no request goes out without its key");
}

#[test]
fn a_provider_error_echoing_the_key_is_redacted_everywhere() {
    let (p, gw) = setup();
    p.on_fetch(|req| {
        let auth = req.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap_or_default();
        Upstream::json(400, json!({"error": {"message": format!("Incorrect API key provided: {auth}"), "type": "invalid_request_error"}}))
    });
    let r = chat(&p, &gw, "main", json!({"model": "oa", "messages": user("hi")}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains(OPENAI_KEY), "{}", r.body);
    for line in p.logs() {
        assert!(!line.to_string().contains(OPENAI_KEY), "{line}");
    }
}
