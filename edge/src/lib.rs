//! LLM-Gateway: one OpenAI-compatible endpoint in front of every model, as an edge function.
//!
//! A tour, in the order a request travels:
//! - `gateway`: the HTTP surface (`/v1/chat/completions`, `/v1/route`, `/v1/models`, `/healthz`),
//!   body limits, error rendering; `gateway/chat.rs` is the zero-trust request flow,
//!   `gateway/semantic.rs` the embedding model's lifetime in an isolate.
//! - `auth`: client keys (hashed), presented as Bearer or `x-api-key`.
//! - `config`: the one YAML file, parsed then validated into `Config`; `config::store` swaps in a
//!   KV copy at run time.
//! - `api`: OpenAI request types (typed view + the caller's JSON, passed through).
//! - `router`: the cascade that picks a route; `router::keyword` is tier 1, `router::embed` (the
//!   MiniLM model in tract) and `router::intents` (cosine against the YAML's examples) tier 2.
//! - `models`: how the model files are chunked into Workers KV.
//! - `policy`: the key's allow-lists, data residency (`policy::pii`), cost caps; `policy::ledger`
//!   is the rate-limit and budget state machine, `policy::cost` the token and price arithmetic.
//! - `audit`: the one structured record per request.
//! - `proxy`: attempts, retries, `Retry-After`, fallback, the SSE pump.
//! - `providers`: encode/decode per provider, no I/O (`openai`, `anthropic`).
//! - `platform`: the traits where platforms differ, and the two thin shells:
//!   `platform/workers.rs` (Cloudflare Workers) and `platform/spin.rs` (Fermyon Spin).
//! - `error`: one error type, who is to blame, OpenAI-shaped JSON.
//! - `testing` (feature `testing`): the in-memory platform the behaviour tests run on.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod gateway;
pub mod models;
pub mod platform;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod router;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::Config;
pub use gateway::Gateway;
