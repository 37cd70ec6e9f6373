//! The suite against the Workers build running in workerd (`wrangler dev`).

fn main() -> std::process::ExitCode {
    gateway_e2e::run_suite(gateway_e2e::runtime::Kind::Workers)
}
