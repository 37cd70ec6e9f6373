//! The suite against the Spin component running in `wasi-host serve`.

fn main() -> std::process::ExitCode {
    gateway_e2e::run_suite(gateway_e2e::runtime::Kind::Spin)
}
