//! Rate limits and budgets through the platform's counters: reserve before the provider is
//! called, settle to the reported usage, release on failure, fail closed when counters are
//! unreadable, exact under interleaved requests.

use serde_json::{json, Value};

use super::support::*;
use crate::testing::{request, Upstream};

#[track_caller]
fn assert_error(r: &crate::testing::Received, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], code, "{}", r.body);
}

/// The mock's 1117 prompt + 46 completion tokens cost $0.0032525 at oa's prices; the `budget`
/// key's daily budget is exactly ten of those. The prompt is long enough for the gateway's
/// estimate to cover the reported prompt tokens; max_tokens covers the completion.
fn budget_body() -> Value {
    json!({"model": "oa", "max_tokens": 46, "messages": user(&"word ".repeat(1150))})
}

#[test]
fn the_budget_holds_under_64_interleaved_requests() {
    let (p, gw) = setup();
    // Each answer takes 50 ms of virtual time, so all 64 have reserved before any settles.
    p.on_fetch(|req| provider(req).after(50));
    let reqs = (0..64).map(|_| request(http::Method::POST, "/v1/chat/completions", Some(&key("budget")), &budget_body())).collect();
    let replies = p.send_all(&gw, reqs);
    let served: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    for r in &replies {
        match r.status {
            200 => assert_eq!(r.header("x-gateway-cost-usd"), Some("0.0032525")),
            _ => assert_error(r, 429, "insufficient_quota"),
        }
    }
    assert!(!served.is_empty() && served.len() <= 10, "{} served on a budget for 10", served.len());
    assert_eq!(p.fetches().len(), served.len(), "a refused request never reaches the provider");

    // After settling, what is left is spent by later requests. Each request reserves its
    // estimate (above the reported cost), so the tenth fits only if the rest covers that: the
    // day ends with no more than ten served, and with as many as one day's budget buys one by one.
    let total = served.len() + served_until_refused(&p, &gw);
    let (fresh, fresh_gw) = setup();
    let one_by_one = served_until_refused(&fresh, &fresh_gw);
    assert!((9..=10).contains(&one_by_one), "{one_by_one}");
    assert_eq!(total, one_by_one, "concurrency neither lost nor overspent budget");

    // The next day the budget is back.
    p.advance(24 * 3600 * 1000);
    assert_eq!(chat(&p, &gw, "budget", budget_body()).status, 200);
}

#[test]
fn a_failed_request_releases_its_reservation() {
    let (p, gw) = setup();
    p.on_fetch(|_| Upstream::json(500, json!({"error": {"message": "down"}})));
    for _ in 0..30 {
        let r = chat(&p, &gw, "budget", budget_body());
        assert_eq!(r.status, 502, "{}", r.body);
    }
    // Thirty failures spent nothing: as many requests fit as on an untouched budget.
    p.on_fetch(provider);
    let (fresh, fresh_gw) = setup();
    assert_eq!(served_until_refused(&p, &gw), served_until_refused(&fresh, &fresh_gw));
}

/// Sends the budget request until it is refused; how many were served.
fn served_until_refused(p: &crate::testing::MemoryPlatform, gw: &crate::Gateway) -> usize {
    for served in 0..20 {
        let r = chat(p, gw, "budget", budget_body());
        if r.status != 200 {
            assert_error(&r, 429, "insufficient_quota");
            return served;
        }
    }
    panic!("20 requests served on a budget for 10");
}

#[test]
fn the_request_rate_limit_counts_down_then_refuses_with_retry_after() {
    let (p, gw) = setup();
    for left in ["2", "1", "0"] {
        let r = chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")}));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some(left));
    }
    let r = chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")}));
    assert_error(&r, 429, "rate_limit_exceeded");
    let wait: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&wait), "retry-after {wait}");
    // The window slides: after a minute the key is served again.
    p.advance(60_000);
    assert_eq!(chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")})).status, 200);
}

#[test]
fn a_models_own_limit_refuses_before_the_provider_is_called() {
    let (p, gw) = setup();
    for _ in 0..2 {
        assert_eq!(chat(&p, &gw, "main", json!({"model": "capped", "messages": user("hi")})).status, 200);
    }
    let r = chat(&p, &gw, "main", json!({"model": "capped", "messages": user("hi")}));
    assert_error(&r, 429, "upstream_rate_limited");
    assert_eq!(p.fetches().len(), 2);
}

#[test]
fn unreadable_counters_fail_closed() {
    let (p, gw) = setup();
    p.fail_ledger(true);
    let r = chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")}));
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(p.fetches().is_empty(), "nothing is spent while the counters cannot be read");
    assert!(!r.body.contains("scripted outage"), "the store's detail stays in the log: {}", r.body);

    p.fail_ledger(false);
    p.set_ledger_text("key:rpm3", "{not json");
    let r = chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")}));
    assert_eq!(r.status, 500, "corrupt counters deny: {}", r.body);
    assert!(p.fetches().is_empty());
}

#[test]
fn spend_never_passes_the_budget_under_64_interleaved_requests_of_random_sizes() {
    let (p, gw) = setup();
    // The provider reports whatever usage it likes, sometimes more than the request allowed: a
    // completion past max_tokens must not be billed past what was reserved.
    p.on_fetch(|req| {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let cap = body["max_completion_tokens"].as_u64().or(body["max_tokens"].as_u64()).unwrap_or(100);
        let seed = req.body.len() as u64;
        let completion = if seed.is_multiple_of(3) { cap * 4 } else { cap / 2 + seed % 7 };
        let prompt = seed / 3;
        let mut v: Value = serde_json::from_str(CHAT_COMPLETION).unwrap_or_default();
        v["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
        Upstream::json(200, v).after(10 + seed % 40)
    });
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let reqs = (0..64)
        .map(|_| {
            let words = 50 + (next() % 2000) as usize;
            let max_tokens = 16 + next() % 400;
            let body = json!({"model": "oa", "max_tokens": max_tokens, "messages": user(&"word ".repeat(words))});
            request(http::Method::POST, "/v1/chat/completions", Some(&key("budget")), &body)
        })
        .collect();
    let replies = p.send_all(&gw, reqs);
    let served = replies.iter().filter(|r| r.status == 200).count();
    assert!(served > 0 && served < 64, "{served} served: the budget should bind");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_error(r, 429, "insufficient_quota");
    }
    let state: crate::ledger::LedgerState = serde_json::from_str(&p.ledger_text("key:budget").unwrap_or_default()).unwrap_or_default();
    let budget = crate::config::usd_to_nanos(0.032525);
    assert!(state.day_spent <= budget, "spent {} of {budget} nano-dollars", state.day_spent);
    assert!(state.day_spent > 0);
}

#[test]
fn a_key_over_its_request_rate_costs_no_routing_work() {
    let (p, gw) = setup();
    // An unsure prompt escalates to the classifier host; each call there is work on our side.
    let unsure = json!({"model": "auto", "messages": user("my loop never ends, what did I do wrong")});
    for _ in 0..3 {
        assert_eq!(chat(&p, &gw, "rpm3", unsure.clone()).status, 200);
    }
    let classify_calls = || p.fetched_urls().iter().filter(|u| u.ends_with("/v1/classify")).count();
    assert_eq!(classify_calls(), 3);
    let r = chat(&p, &gw, "rpm3", unsure);
    assert_error(&r, 429, "rate_limit_exceeded");
    assert_eq!(classify_calls(), 3, "the refused request was classified first");
}

#[test]
fn the_route_endpoint_counts_against_the_key_request_rate() {
    let (p, gw) = setup();
    let body = json!({"model": "auto", "messages": user("Why is this SQL query slow?")});
    for left in ["2", "1"] {
        let r = p.send(&gw, request(http::Method::POST, "/v1/route", Some(&key("rpm3")), &body));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some(left));
    }
    assert_eq!(chat(&p, &gw, "rpm3", body.clone()).status, 200);
    let r = p.send(&gw, request(http::Method::POST, "/v1/route", Some(&key("rpm3")), &body));
    assert_error(&r, 429, "rate_limit_exceeded");
    assert_error(&chat(&p, &gw, "rpm3", body), 429, "rate_limit_exceeded");
}

#[test]
fn a_request_no_provider_could_serve_is_refunded_to_the_request_rate() {
    let (p, gw) = setup();
    p.on_fetch(|_| Upstream::json(500, json!({"error": {"message": "down"}})));
    for _ in 0..5 {
        assert_eq!(chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")})).status, 502);
    }
    p.on_fetch(provider);
    for _ in 0..3 {
        assert_eq!(chat(&p, &gw, "rpm3", json!({"model": "oa", "messages": user("hi")})).status, 200);
    }
}
