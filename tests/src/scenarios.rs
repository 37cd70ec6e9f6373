//! The cases every runtime must pass, as a table of (name, async fn). Each takes the shared
//! context: the running gateway, the mock providers, an HTTP client.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::{json, Value};

use crate::mock::Mock;
use crate::runtime::{Runtime, ANTHROPIC_KEY, OPENAI_KEY};

pub struct Ctx {
    pub rt: Runtime,
    pub mock: Mock,
    pub client: reqwest::Client,
    pub classifier: crate::classifier::ClassifierHost,
}

pub type Case = fn(&Ctx) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub fn all() -> Vec<(&'static str, Case)> {
            vec![$((stringify!($name), (|c| Box::pin($name(c))) as Case)),*]
        }
    };
}

cases!(
    health_and_models,
    openai_non_stream,
    openai_stream_with_usage,
    openai_tool_call_stream,
    anthropic_non_stream_translates_system_and_usage,
    anthropic_stream_translates_events,
    anthropic_tool_call_stream_and_non_stream,
    anthropic_tool_result_round_trip,
    keyword_routing_picks_route,
    fallback_on_5xx_after_retry,
    fallback_on_timeout,
    fallback_on_429,
    fallback_on_connection_reset,
    stream_falls_back_before_first_byte,
    stream_failure_midway_ends_with_error_event,
    all_models_failing_is_502,
    a_provider_outside_the_allowed_hosts_is_refused,
    bad_input_gets_openai_errors,
    provider_error_echoing_key_is_redacted,
    missing_secret_is_named,
    kv_config_replacement_and_rejection,
    missing_unknown_and_revoked_keys_get_the_same_401,
    kv_stored_key_authenticates,
    key_allow_lists_give_403,
    rpm_limit_gives_429_with_headers,
    model_rpm_limit_falls_through_then_429,
    budget_holds_under_64_concurrent_requests,
    sensitive_prompt_is_pinned_to_the_local_model,
    sensitive_prompt_fails_closed_when_no_local_model_serves,
    local_only_key_never_reaches_the_cloud,
    audit_record_has_the_request_and_no_pii,
    embedding_tier_routes_by_intent_and_explains,
    confident_keyword_skips_the_embedding,
    unsure_prompt_escalates_to_the_classifier,
    classifier_failures_degrade_and_still_serve,
    route_endpoint_applies_the_key_policy,
    embedding_bad_input_is_bounded,
    model_loads_once_from_platform_files,
    embeddings_are_proxied_fall_back_and_stay_local,
    openai_python_sdk,
    langchain_standard_tests,
    anthropic_python_sdk,
);

/// Cases that change what every other case sees (the serving config), so they run one at a
/// time after the parallel ones.
pub fn after_all() -> Vec<(&'static str, Case)> {
    vec![("the_trained_head_in_the_wasm_matches_native", |c| Box::pin(the_trained_head_in_the_wasm_matches_native(c)))]
}

use crate::clients::*;
use crate::embeddings::*;
use crate::semantic::*;
use crate::tier3::*;
use crate::zero_trust::*;

/// The test key of `name` in `e2e.yaml`.
pub fn test_key(name: &str) -> String {
    format!("gwk_e2e_{name}")
}

pub fn config_yaml(mock: &Mock, extra_model: bool) -> String {
    let mut text = String::from_utf8_lossy(&crate::fixture("e2e.yaml"))
        .replace("{{MOCK}}", &mock.url())
        .replace("{{MOCK_OFFLIST}}", &mock.url().replace("127.0.0.1", "127.0.0.2"));
    while let Some(at) = text.find("{{HASH:") {
        let end = at + text[at..].find("}}").unwrap_or(0);
        let name = text[at + 7..end].to_owned();
        text.replace_range(at..end + 2, &key_hash(&test_key(&name)));
    }
    if extra_model {
        text.replace("models:\n", "models:\n  kv-added: { provider: openai, base_url: \"MOCKURL/openai/v1\" }\n")
            .replace("MOCKURL", &mock.url())
    } else {
        text
    }
}

/// `sha256:<hex>` of a key, as the YAML stores it.
pub fn key_hash(key: &str) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.text).with_context(|| format!("not JSON: {}", self.text))
    }
    pub(crate) fn header(&self, k: &str) -> &str {
        self.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    /// `data:` payloads of an SSE body, in order.
    fn sse(&self) -> Vec<String> {
        self.text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect()
    }
}

pub(crate) async fn post(c: &Ctx, body: Value) -> Result<Reply> {
    send(c, c.client.post(format!("{}/v1/chat/completions", c.rt.base)).json(&body)).await
}

pub(crate) async fn send(_c: &Ctx, req: reqwest::RequestBuilder) -> Result<Reply> {
    let r = req.timeout(Duration::from_secs(30)).send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await?;
    Ok(Reply { status, headers, text })
}

pub(crate) fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The tool the recorded OpenAI tool-call stream was made with (the mock replays it for this
/// tool).
fn recorded_weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": crate::mock::RECORDED_TOOL, "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}, "units": {"enum": ["c", "f"]}}}}}])
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

fn content_of(chunks: &[String]) -> Result<String> {
    let mut s = String::new();
    for c in chunks.iter().filter(|c| *c != "[DONE]") {
        let v: Value = serde_json::from_str(c)?;
        if let Some(t) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            s.push_str(t);
        }
    }
    Ok(s)
}

pub(crate) fn expect_served(r: &Reply, model: &str, attempts: &str) -> Result<()> {
    ensure!(r.status == 200, "status {} body {}", r.status, r.text);
    ensure!(r.header("x-gateway-model") == model, "served by {:?}, wanted {model}", r.header("x-gateway-model"));
    ensure!(r.header("x-gateway-attempts") == attempts, "attempts {:?}, wanted {attempts}", r.header("x-gateway-attempts"));
    ensure!(!r.header("x-request-id").is_empty(), "no x-request-id");
    Ok(())
}

async fn health_and_models(c: &Ctx) -> Result<()> {
    let h = send(c, c.client.get(format!("{}/healthz", c.rt.base))).await?;
    ensure!(h.status == 200 && h.json()?["config_source"] == "kv", "{}", h.text);
    let m = send(c, c.client.get(format!("{}/v1/models", c.rt.base))).await?;
    let ids: Vec<String> = m.json()?["data"].as_array().context("data")?.iter().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect();
    for want in ["oa", "an", "general", "auto"] {
        ensure!(ids.iter().any(|i| i == want), "{want} missing from {ids:?}");
    }
    Ok(())
}

async fn openai_non_stream(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "oa", "messages": user("describe the image"), "seed": 7})).await?;
    expect_served(&r, "oa", "1")?;
    ensure!(r.header("x-gateway-tier") == "model");
    let want: Value = serde_json::from_slice(&crate::fixture("openai/chat_completion.json"))?;
    ensure!(r.json()? == want, "body differs from the recorded response: {}", r.text);
    let sent = c.mock.calls("openai").into_iter().find(|x| x.body["seed"] == 7).context("mock not called")?;
    ensure!(sent.body["model"] == "gpt-4o", "upstream model rewritten: {}", sent.body);
    ensure!(sent.headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {OPENAI_KEY}")), "bearer key");
    Ok(())
}

async fn openai_stream_with_usage(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "oa", "messages": user("weather?"), "stream": true, "stream_options": {"include_usage": true}})).await?;
    expect_served(&r, "oa", "1")?;
    ensure!(r.header("content-type").starts_with("text/event-stream"));
    let data = r.sse();
    ensure!(data.last().map(String::as_str) == Some("[DONE]"), "no [DONE]: {data:?}");
    let usage: Value = serde_json::from_str(&data[data.len() - 2])?;
    ensure!(usage["choices"] == json!([]) && usage["usage"]["total_tokens"].is_u64(), "usage chunk: {usage}");
    let fixture = String::from_utf8_lossy(&crate::fixture("openai/chat_text_with_usage_and_DONE.sse")).to_string();
    let want: Vec<String> = fixture.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect();
    ensure!(data == want, "stream differs from the recorded stream");
    Ok(())
}

async fn openai_tool_call_stream(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "oa", "messages": user("weather in Edinburgh"), "stream": true, "tools": recorded_weather_tool(), "tool_choice": "auto"})).await?;
    expect_served(&r, "oa", "1")?;
    let args: String = r.sse().iter().filter(|d| *d != "[DONE]").filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str).map(str::to_owned)).collect();
    let parsed: Value = serde_json::from_str(&args).with_context(|| format!("arguments {args:?}"))?;
    ensure!(parsed["city"] == "Edinburgh", "{parsed}");
    let sent = c.mock.calls("openai").into_iter().rev().find(|x| x.body.get("tools").is_some()).context("mock")?;
    ensure!(sent.body["tool_choice"] == "auto" && sent.body["tools"] == recorded_weather_tool(), "tools passed through");
    Ok(())
}

async fn anthropic_non_stream_translates_system_and_usage(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "an", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "who are you?"}], "max_tokens": 99, "stop": "END"})).await?;
    expect_served(&r, "an", "1")?;
    let v = r.json()?;
    ensure!(v["object"] == "chat.completion" && v["choices"][0]["message"]["content"] == "Hi! My name is Claude.", "{v}");
    ensure!(v["choices"][0]["finish_reason"] == "stop" && v["usage"]["prompt_tokens"] == 2095 && v["usage"]["completion_tokens"] == 503, "{v}");
    let sent = c.mock.calls("anthropic").into_iter().find(|x| x.body["max_tokens"] == 99).context("mock")?;
    ensure!(sent.path == "/anthropic/v1/messages", "{}", sent.path);
    ensure!(sent.body["system"] == "Be brief." && sent.body["stop_sequences"] == json!(["END"]), "{}", sent.body);
    ensure!(sent.body["messages"] == json!([{"role": "user", "content": [{"type": "text", "text": "who are you?"}]}]), "{}", sent.body);
    ensure!(sent.headers.get("x-api-key").map(String::as_str) == Some(ANTHROPIC_KEY) && sent.headers.contains_key("anthropic-version"));
    ensure!(!sent.headers.contains_key("authorization"), "anthropic gets x-api-key only");
    Ok(())
}

async fn anthropic_stream_translates_events(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "an", "messages": user("hello"), "stream": true, "stream_options": {"include_usage": true}})).await?;
    expect_served(&r, "an", "1")?;
    let data = r.sse();
    ensure!(data.last().map(String::as_str) == Some("[DONE]"), "{data:?}");
    ensure!(content_of(&data)? == "Hello there!", "content {:?}", content_of(&data)?);
    let first: Value = serde_json::from_str(&data[0])?;
    ensure!(first["object"] == "chat.completion.chunk" && first["choices"][0]["delta"]["role"] == "assistant", "{first}");
    let finishes: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str::<Value>(d).ok()).map(|v| v["choices"][0]["finish_reason"].clone()).filter(|f| !f.is_null()).collect();
    ensure!(finishes == vec![json!("stop")], "{finishes:?}");
    let usage: Value = serde_json::from_str(&data[data.len() - 2])?;
    ensure!(usage["choices"] == json!([]) && usage["usage"]["prompt_tokens"] == 11 && usage["usage"]["completion_tokens"] == 6, "{usage}");
    Ok(())
}

async fn anthropic_tool_call_stream_and_non_stream(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "an", "messages": user("weather in Paris"), "stream": true, "tools": weather_tool(), "tool_choice": "required"})).await?;
    expect_served(&r, "an", "1")?;
    let chunks: Vec<Value> = r.sse().iter().filter(|d| *d != "[DONE]").filter_map(|d| serde_json::from_str(d).ok()).collect();
    let calls: Vec<&Value> = chunks.iter().filter_map(|v| v.pointer("/choices/0/delta/tool_calls/0")).collect();
    ensure!(calls.first().is_some_and(|c| c["id"] == "toolu_01NRLabsLyVHZPKxbKvkfSMn" && c["function"]["name"] == "get_weather"), "{calls:?}");
    let args: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    ensure!(serde_json::from_str::<Value>(&args)? == json!({"location": "Paris"}), "{args}");
    ensure!(chunks.iter().any(|v| v["choices"][0]["finish_reason"] == "tool_calls"));
    let sent = c.mock.calls("anthropic").into_iter().rev().find(|x| x.body["stream"] == true && x.body.get("tools").is_some()).context("mock")?;
    ensure!(sent.body["tool_choice"] == json!({"type": "any"}) && sent.body["tools"][0]["input_schema"]["required"] == json!(["location"]), "{}", sent.body);

    let r = post(c, json!({"model": "an", "messages": user("weather in Paris"), "tools": weather_tool()})).await?;
    let v = r.json()?;
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    ensure!(call["type"] == "function" && call["function"]["name"] == "get_weather", "{v}");
    ensure!(serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap_or(""))? == json!({"location": "Paris"}));
    ensure!(v["choices"][0]["finish_reason"] == "tool_calls");
    Ok(())
}

async fn anthropic_tool_result_round_trip(c: &Ctx) -> Result<()> {
    let messages = json!([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"},
    ]);
    let r = post(c, json!({"model": "an", "messages": messages, "tools": weather_tool(), "metadata_probe": 1})).await?;
    expect_served(&r, "an", "1")?;
    let sent = c.mock.calls("anthropic").into_iter().rev().find(|x| x.body["messages"].as_array().is_some_and(|m| m.len() == 3)).context("mock")?;
    let m = &sent.body["messages"];
    ensure!(m[1]["content"][0] == json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}), "{m}");
    ensure!(m[2]["role"] == "user" && m[2]["content"][0] == json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"}), "{m}");
    Ok(())
}

async fn keyword_routing_picks_route(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "auto", "messages": user("Why is this SQL query slow?")})).await?;
    expect_served(&r, "an", "1")?;
    ensure!(r.header("x-gateway-tier") == "keyword" && r.header("x-gateway-route") == "code" && r.header("x-gateway-capability") == "code");
    ensure!(r.header("x-gateway-confidence") == "1.000", "{}", r.header("x-gateway-confidence"));
    let r = post(c, json!({"model": "auto", "messages": user("Give me tips for sleeping better")})).await?;
    // No keyword: tier 2 is sure it is general chat (an intent example).
    expect_served(&r, "oa", "1")?;
    ensure!(r.header("x-gateway-tier") == "embedding" && r.header("x-gateway-route") == "general", "{:?}", r.headers);
    let r = post(c, json!({"model": "code", "messages": user("hi")})).await?;
    ensure!(r.header("x-gateway-tier") == "route" && r.header("x-gateway-model") == "an");
    Ok(())
}

async fn fallback_on_5xx_after_retry(c: &Ctx) -> Result<()> {
    let before = c.mock.calls("status-500").len();
    let r = post(c, json!({"model": "fallback-5xx", "messages": user("hi")})).await?;
    expect_served(&r, "oa", "3")?;
    ensure!(c.mock.calls("status-500").len() >= before + 2, "broken model tried twice (one retry)");
    Ok(())
}

async fn fallback_on_timeout(c: &Ctx) -> Result<()> {
    let t = Instant::now();
    let r = post(c, json!({"model": "fallback-timeout", "messages": user("hi")})).await?;
    expect_served(&r, "oa", "2")?;
    ensure!(t.elapsed() < Duration::from_secs(10), "timeout not enforced: {:?}", t.elapsed());
    Ok(())
}

async fn fallback_on_429(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "fallback-429", "messages": user("hi")})).await?;
    expect_served(&r, "oa", "3")
}

async fn fallback_on_connection_reset(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "fallback-reset", "messages": user("hi")})).await?;
    expect_served(&r, "oa", "2")
}

async fn stream_falls_back_before_first_byte(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "fallback-stream", "messages": user("hi"), "stream": true})).await?;
    expect_served(&r, "oa", "3")?;
    ensure!(r.sse().last().map(String::as_str) == Some("[DONE]"));
    Ok(())
}

async fn stream_failure_midway_ends_with_error_event(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "midstream", "messages": user("hi"), "stream": true})).await?;
    ensure!(r.status == 200, "{}", r.text);
    let data = r.sse();
    ensure!(data.len() >= 2, "{data:?}");
    ensure!(!data.iter().any(|d| d == "[DONE]"), "a broken stream must not end with [DONE]");
    let last: Value = serde_json::from_str(data.last().context("no events")?)?;
    ensure!(last["error"]["code"] == "stream_interrupted" && last["error"]["message"].is_string(), "{last}");
    ensure!(content_of(&data[..data.len() - 1])?.starts_with("I'm"), "content before the error is delivered");
    Ok(())
}

async fn all_models_failing_is_502(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "dead", "messages": user("hi")})).await?;
    ensure!(r.status == 502, "{} {}", r.status, r.text);
    let v = r.json()?;
    ensure!(v["error"]["code"] == "upstream_unavailable" && v["error"]["type"] == "upstream_error", "{v}");
    ensure!(v["error"]["message"].as_str().is_some_and(|m| m.contains("broken2: server error (500)")), "{v}");
    ensure!(r.header("x-gateway-attempts") == "1");
    Ok(())
}

/// A provider host outside spin.toml's `allowed_outbound_hosts`: the Spin host refuses the
/// request before any connection, as Spin does, and the gateway answers a clear 502 naming the
/// denial. workerd has no such list (Workers has no outbound allow-list): nothing listens there,
/// so it is a 502 too, from the failed connection.
async fn a_provider_outside_the_allowed_hosts_is_refused(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "offlist", "messages": user("hi")})).await?;
    ensure!(r.status == 502, "{} {}", r.status, r.text);
    let v = r.json()?;
    ensure!(v["error"]["code"] == "upstream_unavailable", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default().to_ascii_lowercase();
    if c.rt.kind == crate::runtime::Kind::Spin {
        ensure!(message.contains("offlist") && message.contains("denied"), "the Spin build must name the denial: {v}");
    }
    Ok(())
}

async fn bad_input_gets_openai_errors(c: &Ctx) -> Result<()> {
    let url = format!("{}/v1/chat/completions", c.rt.base);
    let raw = |body: Vec<u8>| c.client.post(&url).header("content-type", "application/json").body(body);
    let cases: Vec<(reqwest::RequestBuilder, u16, Option<&str>)> = vec![
        (raw(b"{\"model\": \"auto\", ".to_vec()), 400, None),
        (raw(vec![0xff, 0xfe, 0x00, 0x81]), 400, None),
        (raw(b"[1,2,3]".to_vec()), 400, None),
        (raw(br#"{"model":"auto"}"#.to_vec()), 400, Some("messages")),
        (raw(br#"{"model":"auto","messages":[]}"#.to_vec()), 400, Some("messages")),
        (raw(br#"{"model":"auto","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#.to_vec()), 400, Some("temperature")),
        (raw(br#"{"model":"gpt4o","messages":[{"role":"user","content":"x"}]}"#.to_vec()), 404, Some("model")),
        (raw(format!(r#"{{"model":"auto","messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(70_000)).into_bytes()), 413, None),
        (c.client.get(&url), 405, None),
        (c.client.get(format!("{}/v2/nothing", c.rt.base)), 404, None),
    ];
    for (i, (req, status, param)) in cases.into_iter().enumerate() {
        let r = send(c, req).await?;
        ensure!(r.status == status, "case {i}: status {} (wanted {status}): {}", r.status, r.text);
        let v = r.json()?;
        ensure!(v["error"]["message"].is_string() && v["error"]["type"].is_string() && v["error"].get("code").is_some(), "case {i}: {v}");
        if let Some(p) = param {
            ensure!(v["error"]["param"] == p, "case {i}: param {} (wanted {p})", v["error"]["param"]);
        }
    }
    Ok(())
}

async fn provider_error_echoing_key_is_redacted(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "leaky", "messages": user("hi")})).await?;
    ensure!(r.status == 400, "{} {}", r.status, r.text);
    ensure!(!r.text.contains(OPENAI_KEY), "the provider key leaked into the response: {}", r.text);
    ensure!(r.text.contains("[REDACTED]"), "{}", r.text);
    Ok(())
}

async fn missing_secret_is_named(c: &Ctx) -> Result<()> {
    let r = post(c, json!({"model": "nokey", "messages": user("hi")})).await?;
    ensure!(r.status == 502 && r.text.contains("secret MISSING_KEY is not set"), "{} {}", r.status, r.text);
    ensure!(r.header("x-gateway-attempts") == "0");
    Ok(())
}

async fn models_ids(c: &Ctx) -> Result<Vec<String>> {
    let m = send(c, c.client.get(format!("{}/v1/models", c.rt.base))).await?;
    Ok(m.json()?["data"].as_array().context("data")?.iter().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect())
}

async fn kv_config_replacement_and_rejection(c: &Ctx) -> Result<()> {
    c.rt.kv_put("config", config_yaml(&c.mock, true).as_bytes()).await?;
    let t = Instant::now();
    while !models_ids(c).await?.iter().any(|m| m == "kv-added") {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("new KV config not picked up in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every instance re-reads within `config_refresh_secs` (1 s in the test config); the one
    // that answered may not be the one that serves next.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = post(c, json!({"model": "kv-added", "messages": user("hi")})).await?;
    expect_served(&r, "kv-added", "1")?;
    // An invalid config is refused: the last good one keeps serving.
    c.rt.kv_put("config", b"models: {oops: {provider: nope}}\n").await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ensure!(models_ids(c).await?.iter().any(|m| m == "kv-added"), "invalid config replaced the last good one");
    let h = send(c, c.client.get(format!("{}/healthz", c.rt.base))).await?;
    ensure!(h.json()?["config_source"] == "kv");
    let t = Instant::now();
    while !c.rt.log_text().contains("config_rejected") {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the rejected config was not logged");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.rt.kv_put("config", config_yaml(&c.mock, false).as_bytes()).await?;
    Ok(())
}
