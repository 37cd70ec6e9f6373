//! wasi-host's parts, as a library for the binary (`main.rs`) and the benchmarks.
//!
//! - `serve`, `spin_api`, `outbound`: a wasi:http host for the gateway's Spin component, with
//!   Spin's `allowed_outbound_hosts` enforced; `listen`, the accept loop and shutdown it shares
//!   with `classifier`.
//! - `classifier`, `nn`: the tier-3 classifier service and its wasi-nn backend over llama.cpp
//!   (feature `classifier`, on by default); `llama`, the few llama.cpp calls it makes; `fair`, each
//!   edge caller's share of its queue; `templates`, which chat template a model speaks.

#[cfg(feature = "classifier")]
pub mod classifier;
#[cfg(feature = "classifier")]
mod fair;
#[cfg(feature = "classifier")]
mod llama;
#[cfg(feature = "classifier")]
pub mod nn;
mod listen;
pub mod outbound;
pub mod serve;
pub mod spin_api;
#[cfg(feature = "classifier")]
pub mod templates;
