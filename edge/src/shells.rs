//! The platform shells: each adapts one platform's request, response and services to the core's
//! (`crate::platform`) and calls `Gateway::handle`. Nothing here is compiled natively.

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub mod workers;

#[cfg(target_os = "wasi")]
pub mod spin;
