//! The gateway's behaviour, in-process on the in-memory platform (`crate::testing`): retries,
//! backoff, `Retry-After` and fallback; reserve/settle under interleaved requests; the KV config
//! store; tier-3 escalation and its failures; the audit record; `/v1/embeddings`; `/v1/messages`. Virtual time makes timeouts free,
//! so these run in milliseconds. The runtime suites (`tests/`) prove the shells and platforms.

mod support;

mod audit;
mod config_store;
mod embeddings;
mod escalation;
mod ledger;
mod messages;
mod proxy;
mod requests;
