//! A wasi-nn backend for GGUF models (graph encoding `ggml`) over llama.cpp, which wasmtime-wasi-nn
//! does not ship. It does one thing: score label continuations after a prompt, the operation the
//! classifier guest needs, and on request return the model's final hidden state where the answer
//! starts, for a trained head (see `wasi-host/guest/src/main.rs` for the tensor protocol).
//!
//! Scoring costs one `decode` call: the prompt's new tokens go in once for every label's sequence
//! (a token may belong to several sequences), each label's tokens follow in its own sequence, and
//! the log-probability of every label token is read from the logits before it. The KV cache of
//! the previous prompt stays in sequence 0 of the context, so a request that starts the same way
//! (the guest puts the fixed instructions first) only computes what differs.
//!
//! Graphs are preloaded by name (wasi-nn `load_by_name`): the witx ABI of the `wasi-nn` guest
//! crate cannot name the `ggml` encoding, and a guest should not pick host files anyway.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::llama::{self, Batch, Context, ContextParams, Model, Token};
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id, NamedTensor};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Tensor};

/// How a model is run.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// KV cache size in tokens, shared by the prompt and every label's continuation.
    pub context_tokens: u32,
    /// Labels one request may score (one KV sequence each, plus one for the cached prompt).
    pub max_labels: u32,
    pub threads: i32,
    /// Layers offloaded to the GPU (`cuda` builds); 0 keeps the model on the CPU.
    pub gpu_layers: u32,
}

impl Default for ModelOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
        Self { context_tokens: 2048, max_labels: 32, threads, gpu_layers: 0 }
    }
}

fn access(msg: impl std::fmt::Display) -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!("{msg}"))
}

/// llama.cpp's process-wide state, initialised on first use (its logs shown with
/// `WASI_HOST_LLAMA_LOG` set).
fn llama_init() {
    llama::init(std::env::var_os("WASI_HOST_LLAMA_LOG").is_some());
}

/// Weight formats `quantize` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    Q8_0,
    Q4_0,
}

impl std::str::FromStr for Quant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "q8_0" => Ok(Quant::Q8_0),
            "q4_0" => Ok(Quant::Q4_0),
            _ => Err(format!("q8_0 or q4_0, got {s:?}")),
        }
    }
}

/// Rewrites a GGUF model's weights in another format (llama.cpp's `llama_model_quantize`,
/// requantising already-quantised tensors). Used to turn the registry's Q4_1 model into Q8_0:
/// llama.cpp's CPU matrix kernels (llamafile's sgemm, the AVX2/AVX-512 repacks) cover Q8_0 and
/// Q4_0 but not Q4_1, and Q8_0 holds Q4_1's values almost exactly.
pub fn quantize(input: &Path, output: &Path, quant: Quant, threads: i32) -> Result<(), String> {
    llama_init();
    let ftype = match quant {
        Quant::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
        Quant::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
    };
    llama::quantize(input, output, ftype, threads).map_err(|e| format!("{e} (WASI_HOST_LLAMA_LOG=1 shows why)"))
}

/// A GGUF model loaded into memory, with a pool of inference contexts (clones share both).
#[derive(Clone)]
pub struct GgufGraph(Arc<GraphInner>);

struct GraphInner {
    /// Loaded once and kept for the life of the process (contexts borrow it).
    model: &'static Model,
    options: ModelOptions,
    path: PathBuf,
    idle: Mutex<Vec<Slot>>,
    /// llama.cpp must not create two contexts of one model at once.
    creating: Mutex<()>,
}

/// A context and the tokens its sequence 0 holds.
struct Slot {
    ctx: Context<'static>,
    cached: Vec<Token>,
}

impl GgufGraph {
    pub fn load(path: &Path, options: ModelOptions) -> Result<Self, BackendError> {
        llama_init();
        let model = Model::load(path, options.gpu_layers).map_err(|e| access(format!("loading {}: {e}", path.display())))?;
        let model: &'static Model = Box::leak(Box::new(model));
        let inner = GraphInner { model, options, path: path.to_owned(), idle: Mutex::new(Vec::new()), creating: Mutex::new(()) };
        // One context up front: a bad setting fails at start, not on the first request.
        let slot = inner.new_slot()?;
        inner.put(slot);
        Ok(Self(Arc::new(inner)))
    }

    pub fn description(&self) -> String {
        format!(
            "{} ({} parameters, {} MB, context {} tokens)",
            self.0.path.display(),
            self.0.model.n_params(),
            self.0.model.size() / 1_000_000,
            self.0.options.context_tokens
        )
    }

    /// The model's own chat template (GGUF `tokenizer.chat_template`), if it has one.
    pub fn chat_template(&self) -> Option<String> {
        self.0.model.chat_template()
    }

    /// Tokens `text` becomes (no special tokens added).
    pub fn count_tokens(&self, text: &str) -> Result<usize, BackendError> {
        Ok(self.0.model.tokenize(text.as_bytes(), false, false).map_err(access)?.len())
    }

    /// Scores `labels` after `prompt` directly, without wasi-nn (benchmarks compare the two);
    /// `hidden` also returns the hidden state the answer starts from.
    pub fn score(&self, prompt: &[u8], labels: &[u8], hidden: bool) -> Result<Outputs, BackendError> {
        let mut slot = self.0.take()?;
        let result = self.0.score(&mut slot, prompt, labels, hidden);
        self.0.finish(slot, result.is_ok());
        result
    }

    /// What identifies the model to a head trained on its hidden states (output 3).
    pub fn info(&self) -> ModelInfo {
        let m = self.0.model;
        ModelInfo { n_params: m.n_params(), n_embd: m.n_embd(), n_vocab: m.n_vocab() }
    }
}

/// The model's shape, as output 3 gives it to the guest (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    pub n_params: u64,
    pub n_embd: usize,
    pub n_vocab: usize,
}

/// One scoring call's results.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Per label, the sum of its tokens' log-probabilities.
    pub scores: Vec<f32>,
    /// Prompt tokens, of which reused from the previous request, compute milliseconds.
    pub stats: [f32; 3],
    /// The final hidden state at the prompt's last token (where the answer starts), when asked.
    pub hidden: Option<Vec<f32>>,
}

impl GraphInner {
    fn new_slot(&self) -> Result<Slot, BackendError> {
        let _guard = self.creating.lock().map_err(|_| access("context lock poisoned"))?;
        let params = ContextParams {
            n_ctx: self.options.context_tokens,
            n_seq_max: self.options.max_labels + 1,
            threads: self.options.threads,
        };
        let ctx = self.model.new_context(&params).map_err(|e| access(format!("creating a context: {e}")))?;
        Ok(Slot { ctx, cached: Vec::new() })
    }

    fn take(&self) -> Result<Slot, BackendError> {
        let slot = self.idle.lock().map_err(|_| access("pool lock poisoned"))?.pop();
        match slot {
            Some(s) => Ok(s),
            None => self.new_slot(),
        }
    }

    fn put(&self, slot: Slot) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(slot);
        }
    }

    /// Returns a slot to the pool; after a failure its cache is emptied first.
    fn finish(&self, mut slot: Slot, ok: bool) {
        if !ok {
            slot.ctx.clear();
            slot.cached.clear();
        }
        self.put(slot);
    }

    fn score(&self, slot: &mut Slot, prompt: &[u8], labels: &[u8], want_hidden: bool) -> Result<Outputs, BackendError> {
        let started = Instant::now();
        let model = self.model;
        let tokens = model.tokenize(prompt, true, true).map_err(access)?;
        if tokens.is_empty() {
            return Err(access("the prompt is empty"));
        }
        let labels = std::str::from_utf8(labels).map_err(|_| access("labels are not UTF-8"))?;
        let label_tokens = labels.split('\n').map(|l| model.tokenize(l.as_bytes(), false, false)).collect::<Result<Vec<_>, _>>().map_err(access)?;
        let n_labels = label_tokens.len();
        if n_labels == 0 || n_labels > self.options.max_labels as usize {
            return Err(access(format!("1 to {} labels can be scored, got {n_labels}", self.options.max_labels)));
        }
        if let Some(i) = label_tokens.iter().position(Vec::is_empty) {
            return Err(access(format!("label {i} is empty")));
        }
        let label_total: usize = label_tokens.iter().map(Vec::len).sum();
        if tokens.len() + label_total > self.options.context_tokens as usize {
            return Err(access(format!(
                "the prompt ({} tokens) and labels ({label_total}) exceed the context of {} tokens",
                tokens.len(),
                self.options.context_tokens
            )));
        }

        // Reuse the cached prefix, keeping at least one token to decode (its logits are needed).
        let common = slot.cached.iter().zip(&tokens).take_while(|(a, b)| a == b).count().min(tokens.len() - 1);
        let ctx = &mut slot.ctx;
        let trimmed = ctx.remove(Some(0), common as u32);
        let common = if trimmed { common } else { 0 };
        if common == 0 {
            ctx.clear();
        }
        slot.cached.clear();
        let seqs: Vec<i32> = (0..=n_labels as i32).collect();
        for &s in &seqs[1..] {
            ctx.remove(Some(s), 0);
            ctx.copy(0, s);
        }

        let new = &tokens[common..];
        let mut batch = Batch::new(new.len() + label_total, seqs.len()).map_err(access)?;
        let add = |batch: &mut Batch, t: Token, pos: usize, seq: &[i32], logits: bool| batch.add(t, pos, seq, logits).map_err(access);
        for (i, &t) in new.iter().enumerate() {
            add(&mut batch, t, common + i, &seqs, i + 1 == new.len())?;
        }
        let last_prompt = new.len() - 1;
        // Batch index of the logits that predict each label's j-th token.
        let mut predictors: Vec<Vec<usize>> = Vec::with_capacity(n_labels);
        let mut index = new.len();
        for (li, lt) in label_tokens.iter().enumerate() {
            let mut p = vec![last_prompt];
            for (j, &t) in lt.iter().enumerate() {
                let has_next = j + 1 < lt.len();
                add(&mut batch, t, tokens.len() + j, &seqs[li + 1..li + 2], has_next)?;
                if has_next {
                    p.push(index);
                }
                index += 1;
            }
            predictors.push(p);
        }
        ctx.set_hidden(want_hidden);
        ctx.decode(&batch).map_err(|e| access(format!("decode: llama.cpp returned {e}")))?;
        let hidden = if want_hidden {
            let h = ctx.hidden(last_prompt).ok_or_else(|| access("llama.cpp returned no hidden state"))?.to_vec();
            if h.iter().any(|v| !v.is_finite()) {
                return Err(access("the hidden state is not finite"));
            }
            Some(h)
        } else {
            None
        };
        ctx.set_hidden(false);

        let mut scores = Vec::with_capacity(n_labels);
        for (lt, p) in label_tokens.iter().zip(&predictors) {
            let mut sum = 0f32;
            for (&t, &at) in lt.iter().zip(p) {
                let logits = ctx.logits(at).ok_or_else(|| access(format!("no logits at batch entry {at}")))?;
                sum += log_prob(logits, t);
            }
            scores.push(sum);
        }
        for &s in &seqs[1..] {
            ctx.remove(Some(s), 0);
        }
        slot.cached = tokens.clone();
        let stats = [tokens.len() as f32, common as f32, started.elapsed().as_secs_f32() * 1000.0];
        Ok(Outputs { scores, stats, hidden })
    }
}

/// log softmax(logits)[token], computed stably.
fn log_prob(logits: &[f32], token: Token) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let t = usize::try_from(token).unwrap_or(usize::MAX);
    logits.get(t).map_or(f32::NEG_INFINITY, |l| l - max - sum.ln())
}

impl BackendGraph for GgufGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let exec = GgufExecution { graph: self.0.clone(), prompt: None, labels: None, hidden: false, outputs: None };
        Ok(ExecutionContext::from(Box::new(exec) as Box<dyn BackendExecutionContext>))
    }
}

struct GgufExecution {
    graph: Arc<GraphInner>,
    prompt: Option<Vec<u8>>,
    labels: Option<Vec<u8>>,
    /// Input 2: whether output 2 (the hidden state) is wanted.
    hidden: bool,
    outputs: Option<Outputs>,
}

fn f32_tensor(values: &[f32]) -> Tensor {
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Tensor::new(vec![values.len() as u32], TensorType::Fp32, data)
}

impl BackendExecutionContext for GgufExecution {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        if tensor.ty != TensorType::U8 {
            return Err(BackendError::UnsupportedTensorType(format!("{:?} (inputs are U8 UTF-8 text)", tensor.ty)));
        }
        match id.index() {
            Some(0) => self.prompt = Some(tensor.data.clone()),
            Some(1) => self.labels = Some(tensor.data.clone()),
            Some(2) => self.hidden = tensor.data.iter().any(|&b| b != 0),
            _ => return Err(access(format!("no input {id:?}: 0 is the prompt, 1 the labels, 2 asks for the hidden state"))),
        }
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let out = self.outputs.as_ref().ok_or_else(|| access("compute has not run"))?;
        match id.index() {
            Some(0) => Ok(f32_tensor(&out.scores)),
            Some(1) => Ok(f32_tensor(&out.stats)),
            Some(2) => out.hidden.as_deref().map(f32_tensor).ok_or_else(|| access("output 2 (the hidden state) needs input 2 set to 1")),
            Some(3) => {
                let info = serde_json::to_vec(&GgufGraph(self.graph.clone()).info()).map_err(access)?;
                Ok(Tensor::new(vec![info.len() as u32], TensorType::U8, info))
            }
            _ => Err(access(format!("no output {id:?}: 0 is the label scores, 1 the stats, 2 the hidden state, 3 the model's shape"))),
        }
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        if inputs.is_some() {
            return Err(access("the ggml backend takes indexed inputs (set_input), not named ones"));
        }
        let prompt = self.prompt.as_deref().ok_or_else(|| access("input 0 (prompt) is not set"))?;
        let labels = self.labels.as_deref().ok_or_else(|| access("input 1 (labels) is not set"))?;
        let mut slot = self.graph.take()?;
        let result = self.graph.score(&mut slot, prompt, labels, self.hidden);
        self.graph.finish(slot, result.is_ok());
        self.outputs = Some(result?);
        Ok(None)
    }
}

/// The `ggml` backend: graphs are loaded by the host at start and reached by name.
#[derive(Default)]
pub struct GgmlBackend;

impl BackendInner for GgmlBackend {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Ggml
    }

    fn load(&mut self, _: &[&[u8]], _: ExecutionTarget) -> Result<Graph, BackendError> {
        Err(access("ggml graphs are preloaded by wasi-host: use load_by_name"))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// Graphs by name, shared by every guest instance.
#[derive(Clone, Default)]
pub struct Registry(Arc<std::collections::HashMap<String, Graph>>);

impl Registry {
    pub fn new(graphs: impl IntoIterator<Item = (String, GgufGraph)>) -> Self {
        Self(Arc::new(
            graphs.into_iter().map(|(n, g)| (n, Graph::from(Box::new(g) as Box<dyn BackendGraph>))).collect(),
        ))
    }
}

/// What one guest instance sees: the shared graphs, and mutable access wasi-nn asks for (a
/// per-instance clone of the handles).
pub struct InstanceRegistry(std::collections::HashMap<String, Graph>);

impl From<&Registry> for InstanceRegistry {
    fn from(r: &Registry) -> Self {
        Self(r.0.as_ref().clone())
    }
}

impl GraphRegistry for InstanceRegistry {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }
    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.0.get_mut(name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantize_refuses_a_file_that_is_not_gguf_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("wasi-host-quantize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("not-a-model.gguf");
        std::fs::write(&input, b"GGUF? no, just text").unwrap();
        let output = dir.join("out.gguf");
        let err = quantize(&input, &output, Quant::Q8_0, 1).unwrap_err();
        assert!(err.contains("llama.cpp returned"), "{err}");
        assert!(!output.exists());
        assert_eq!("Q4_0".parse::<Quant>(), Ok(Quant::Q4_0));
        assert!("q4_1".parse::<Quant>().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
