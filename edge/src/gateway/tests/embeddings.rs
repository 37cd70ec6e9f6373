//! `POST /v1/embeddings`: the named embedding model or route, with the chat path's keys,
//! allow-lists, residency, limits, budgets, fallback and audit.

use serde_json::{json, Value};

use super::support::*;
use crate::testing::{request, MemoryPlatform, Received};
use crate::Gateway;

fn embed(p: &MemoryPlatform, gw: &Gateway, key_name: &str, body: Value) -> Received {
    p.send(gw, request(http::Method::POST, "/v1/embeddings", Some(&key(key_name)), &body))
}

#[track_caller]
fn assert_error(r: &Received, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], code, "{}", r.body);
}

#[test]
fn an_embedding_model_serves_with_its_key_and_settles_to_the_reported_usage() {
    let (p, gw) = setup();
    let r = embed(&p, &gw, "main", json!({"model": "emb", "input": ["The food was delicious", "and the waiter..."], "dimensions": 8}));
    assert_served(&r, "emb", 1);
    assert_eq!(r.header("x-gateway-tier"), Some("model"));
    assert_eq!(r.json(), serde_json::from_str::<Value>(EMBEDDINGS).unwrap_or_default(), "the provider's answer, as it came");
    // The provider reported 8 prompt tokens: 8 x $0.02 per million.
    assert_eq!(r.header("x-gateway-cost-usd"), Some("0.00000016"));
    let sent = &p.fetches()[0];
    assert_eq!(sent.request.url, "http://127.0.0.1:9/embed/v1/embeddings");
    assert_eq!(sent.body_json(), json!({"model": "text-embedding-3-small", "input": ["The food was delicious", "and the waiter..."], "dimensions": 8}));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(sent.header("content-length"), None, "the platform adds the length; the core sends no hop header");
    let rec = audit_records(&p).pop().unwrap_or_default();
    assert_eq!(rec["path"], "/v1/embeddings", "{rec}");
    assert_eq!(rec["model"], "emb", "{rec}");
    assert_eq!(rec["key"], "main", "{rec}");
    assert_eq!(rec["prompt"], "The food was delicious\nand the waiter...", "{rec}");
    assert!(!rec.to_string().contains(OPENAI_KEY));
}

#[test]
fn an_embedding_route_retries_and_falls_back_in_order() {
    let (p, gw) = setup();
    let r = embed(&p, &gw, "main", json!({"model": "embed", "input": "hello"}));
    assert_served(&r, "emb", 2);
    assert_eq!(r.header("x-gateway-tier"), Some("route"));
    assert_eq!(p.fetched_urls(), ["http://127.0.0.1:9/status-500/v1/embeddings", "http://127.0.0.1:9/embed/v1/embeddings"]);
}

#[test]
fn chat_models_chat_routes_and_the_router_get_a_400_that_names_them() {
    let (p, gw) = setup();
    let cases = [
        ("an", "`an` is an Anthropic chat model, and Anthropic has no embeddings API."),
        ("oa", "`oa` is a chat model."),
        ("code", "Route `code` holds chat models (Anthropic among them"),
        ("general", "Route `general` holds chat models."),
        ("auto", "`auto` is the router, which routes chat requests."),
    ];
    for (model, says) in cases {
        let r = embed(&p, &gw, "main", json!({"model": model, "input": "hello"}));
        assert_error(&r, 400, "model_not_embedding");
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(says), "{model}: {message}");
        assert!(message.contains("embed, embed-any, embed-capped, emb,"), "lists what there is: {message}");
        assert_eq!(r.json()["error"]["param"], "model");
    }
    let r = embed(&p, &gw, "main", json!({"model": "text-embedding-3-large", "input": "hello"}));
    assert_error(&r, 404, "model_not_found");
    // And the other way round.
    let r = chat(&p, &gw, "main", json!({"model": "emb", "messages": user("hi")}));
    assert_error(&r, 400, "model_not_chat");
    assert!(p.fetches().is_empty(), "no provider was called");
}

#[test]
fn personal_data_and_token_ids_go_only_to_local_models() {
    let (p, gw) = setup();
    let card = json!({"model": "embed-any", "input": ["fine", "my card is 4111 1111 1111 1111"]});
    let r = embed(&p, &gw, "main", card.clone());
    assert_served(&r, "emb-local", 1);
    assert_eq!(p.fetched_urls(), ["http://127.0.0.1:9/embed/local/v1/embeddings"]);
    let rec = audit_records(&p).pop().unwrap_or_default();
    assert_eq!(rec["sensitive"], json!(["card"]), "{rec}");
    assert!(!rec.to_string().contains("4111 1111"), "the audit copy is redacted: {rec}");

    // Naming a cloud model fails closed.
    let r = embed(&p, &gw, "main", json!({"model": "emb", "input": "call me on +44 20 7946 0958"}));
    assert_error(&r, 403, "data_residency");
    // Token ids cannot be scanned: they count as sensitive.
    let r = embed(&p, &gw, "main", json!({"model": "emb", "input": [[1212, 318], [257]]}));
    assert_error(&r, 403, "data_residency");
    assert!(r.body.contains("token ids"), "{}", r.body);
    assert_eq!(p.fetches().len(), 1, "nothing left for a cloud model");
    let r = embed(&p, &gw, "main", json!({"model": "embed-any", "input": [1212, 318, 257]}));
    assert_served(&r, "emb-local", 1);
}

#[test]
fn the_keys_policy_applies() {
    let (p, gw) = setup();
    let r = embed(&p, &gw, "localonly", json!({"model": "emb", "input": "hello"}));
    assert_error(&r, 403, "data_residency");
    let r = embed(&p, &gw, "localonly", json!({"model": "embed-any", "input": "hello"}));
    assert_served(&r, "emb-local", 1);
    let r = embed(&p, &gw, "embonly", json!({"model": "emb", "input": "hello"}));
    assert_error(&r, 403, "model_not_allowed");
    let r = embed(&p, &gw, "embonly", json!({"model": "emb-local", "input": "hello"}));
    assert_served(&r, "emb-local", 1);
    let r = p.send(&gw, request(http::Method::POST, "/v1/embeddings", None, &json!({"model": "emb", "input": "hello"})));
    assert_error(&r, 401, "invalid_api_key");
    let r = p.send(&gw, request(http::Method::GET, "/v1/embeddings", Some(&key("main")), &Value::Null));
    assert_error(&r, 405, "method_not_allowed");
    let r = embed(&p, &gw, "main", json!({"model": "emb"}));
    assert_error(&r, 400, "invalid_request");
    assert_eq!(r.json()["error"]["param"], "input");
}

#[test]
fn the_budget_is_reserved_before_the_provider_is_called() {
    let (p, gw) = setup();
    // 1,000 words reserve 1,000 tokens: $0.00002 each against a budget of $0.0001, so at most
    // five are in flight; each settles to the reported 8 tokens.
    p.on_fetch(|req| provider(req).after(50));
    let body = json!({"model": "emb", "input": "word ".repeat(1000)});
    let reqs = (0..10).map(|_| request(http::Method::POST, "/v1/embeddings", Some(&key("embbudget")), &body)).collect();
    let replies = p.send_all(&gw, reqs);
    let served = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(served, 5, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_error(r, 429, "insufficient_quota");
    }
    assert_eq!(p.fetches().len(), 5, "a refused request never reaches the provider");
    // Settled to 8 tokens each, the rest of the budget serves more.
    assert_eq!(embed(&p, &gw, "embbudget", body).status, 200);
}

#[test]
fn a_models_own_rate_limit_moves_the_route_on() {
    let (p, gw) = setup();
    let first = embed(&p, &gw, "main", json!({"model": "embed-capped", "input": "a"}));
    assert_served(&first, "emb-capped", 1);
    let second = embed(&p, &gw, "main", json!({"model": "embed-capped", "input": "b"}));
    assert_served(&second, "emb", 1);
}
