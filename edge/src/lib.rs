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
//! - `router`: the cascade that picks a route over the tiers' verdicts.
//! - `tiers`: the classifiers themselves: `tiers::keyword` is tier 1, `tiers::embed` (the MiniLM
//!   model in tract), `tiers::head` (the trained head) and `tiers::intents` (the YAML's examples)
//!   tier 2.
//! - `models`: how the model files are chunked into Workers KV.
//! - `policy`: the key's allow-lists, data residency (`policy::pii`), cost caps; `policy::cost`
//!   the token and price arithmetic.
//! - `ledger`: the rate-limit and budget state machine the platforms' counters apply.
//! - `audit`: the one structured record per request.
//! - `proxy`: attempts, retries, `Retry-After`, fallback, the SSE pump.
//! - `providers`: encode/decode per provider, no I/O (`openai`, `anthropic`).
//! - `platform`: the traits where platforms differ.
//! - `shells`: the two thin shells, `shells/workers.rs` (Cloudflare Workers) and
//!   `shells/spin.rs` (Fermyon Spin).
//! - `error`: one error type, who is to blame, OpenAI-shaped JSON.
//! - `testing` (feature `testing`): the in-memory platform the behaviour tests run on.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod gateway;
pub mod ledger;
pub mod models;
pub mod platform;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod router;
pub mod shells;
pub mod tiers;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::Config;
pub use gateway::Gateway;
