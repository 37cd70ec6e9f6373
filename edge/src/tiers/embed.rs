//! all-MiniLM-L6-v2 sentence embeddings with tract-onnx and `tokenizers`, in-process (native,
//! Workers wasm, Spin wasm alike).
//!
//! The model bytes arrive from the platform (Spin component files, Workers KV); `Embedder::load`
//! rewrites the ONNX graph before tract sees it:
//! - int8 weights stored as `W_q -> Cast -> Mul(W_scale)` are folded to f32 once, at load
//!   (tract would otherwise dequantise them on every call);
//! - the word-embedding `Gather` is cut out of the graph and done here, from the table kept in
//!   its stored precision (int8 with a per-row scale: 11.7 MB instead of 47 MB of f32). This is
//!   what keeps a Worker isolate well inside its 128 MB.
//!
//! Then: tokenize (to at most `max_tokens`, see below), run, mean-pool, L2-normalise, as
//! sentence-transformers does for this model.
//!
//! A prompt longer than `max_tokens` keeps its first tokens and, with `tail_tokens > 0`, its last
//! `tail_tokens` as well: `[CLS] head.. tail [SEP]`. Pasted text followed by the request ("..
//! Summarize the above") then still shows the request. models/router/train.py embeds the corpus
//! the same way.

use std::collections::HashSet;
use std::sync::Arc;

use tokenizers::Tokenizer;
use tract_onnx::pb::{self, tensor_proto::DataType};
use tract_onnx::prelude::*;

/// Bytes of text given to the tokenizer at most, per token of `max_tokens`: bounds the time a
/// 100 KB prompt can take while never cutting a prompt below `max_tokens` tokens of ordinary text.
const BYTES_PER_TOKEN_BOUND: usize = 32;

/// The graph input that replaces the word-embedding lookup.
const EMBEDS_INPUT: &str = "inputs_embeds";

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model: {0}")]
    Model(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("embedding inference: {0}")]
    Run(String),
}

/// The word-embedding table, in the precision the model file stores it.
enum Table {
    F32(Vec<f32>),
    /// Row-major int8 values and one scale per row.
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

pub struct Embedder {
    plan: Arc<TypedRunnableModel>,
    tokenizer: Tokenizer,
    table: Table,
    vocab: usize,
    dim: usize,
    max_tokens: usize,
    tail_tokens: usize,
    /// The special tokens the tokenizer puts before and after a sequence (`[CLS]`, `[SEP]`).
    specials: (Vec<u32>, Vec<u32>),
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dim", &self.dim).field("vocab", &self.vocab).field("max_tokens", &self.max_tokens).finish()
    }
}

/// One embedding and how many tokens produced it.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub vector: Vec<f32>,
    pub tokens: usize,
}

impl Embedder {
    /// Builds the embedder from an ONNX file (fp32, or weight-only int8) and a `tokenizer.json`.
    ///
    /// Takes the file by value and frees each copy of the weights as soon as the next exists:
    /// wasm linear memory never shrinks, so the peak during load is what an isolate keeps.
    pub fn load(model: Vec<u8>, tokenizer: &[u8], max_tokens: usize) -> Result<Self, EmbedError> {
        let model_err = |e: TractError| EmbedError::Model(format!("{e:#}"));
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut &model[..]).map_err(model_err)?;
        drop(model);
        let graph = proto.graph.as_mut().ok_or_else(|| EmbedError::Model("no graph in the ONNX file".into()))?;
        let (table, vocab, dim) = cut_word_embeddings(graph)?;
        fold_int8_weights(graph)?;

        let mut model = onnx.model_for_proto_model(&proto).map_err(model_err)?;
        drop(proto);
        // The graph's own symbols: a fresh one would not unify with its inner shapes.
        let batch = model.symbols.sym("batch");
        let sequence = model.symbols.sym("sequence");
        let names: Vec<String> = model.input_outlets().map_err(model_err)?.iter().map(|o| model.node(o.node).name.clone()).collect();
        let expected = ["input_ids", "attention_mask", "token_type_ids", EMBEDS_INPUT];
        if names.len() != expected.len() || !expected.iter().all(|e| names.iter().any(|n| n == e)) {
            return Err(EmbedError::Model(format!(
                "unexpected model inputs {names:?} (a BERT sentence encoder has input_ids, attention_mask, token_type_ids)"
            )));
        }
        for (i, name) in names.iter().enumerate() {
            let fact = if name == EMBEDS_INPUT {
                f32::fact([batch.to_dim(), sequence.to_dim(), dim.to_dim()]).into()
            } else {
                i64::fact([batch.to_dim(), sequence.to_dim()]).into()
            };
            model.set_input_fact(i, fact).map_err(model_err)?;
        }
        let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(model_err)?;

        let mut tokenizer = Tokenizer::from_bytes(tokenizer).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let specials = special_tokens(&tokenizer)?;
        if max_tokens <= specials.0.len() + specials.1.len() {
            return Err(EmbedError::Tokenizer(format!("max_tokens {max_tokens} leaves no room for text")));
        }
        Ok(Self { plan, tokenizer, table, vocab, dim, max_tokens, tail_tokens: 0, specials })
    }

    /// Keep the last `n` tokens of a prompt longer than `max_tokens` too (at most half of it).
    pub fn with_tail_tokens(mut self, n: usize) -> Self {
        self.tail_tokens = n.min(self.max_tokens / 2);
        self
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokens `text` becomes (after truncation), without running the model.
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.encode(text)?.0.len())
    }

    /// The token ids the model sees for `text`, special tokens included.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        Ok(self.encode(text)?.0)
    }

    fn encode(&self, text: &str) -> Result<(Vec<u32>, Vec<u32>), EmbedError> {
        let (prefix, suffix) = &self.specials;
        let room = self.max_tokens - prefix.len() - suffix.len();
        let head = clip(text, self.max_tokens.saturating_mul(BYTES_PER_TOKEN_BOUND));
        let mut body = self.tokens_of(head)?;
        if body.len() > room || head.len() < text.len() {
            let tail = if self.tail_tokens == 0 {
                Vec::new()
            } else {
                let mut t = self.tokens_of(clip_tail(text, self.tail_tokens.saturating_mul(BYTES_PER_TOKEN_BOUND)))?;
                t.split_off(t.len().saturating_sub(self.tail_tokens))
            };
            body.truncate(room.saturating_sub(tail.len()));
            body.extend(tail);
        }
        let ids: Vec<u32> = prefix.iter().chain(&body).chain(suffix).copied().collect();
        let mask = vec![1; ids.len()];
        Ok((ids, mask))
    }

    fn tokens_of(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        Ok(self.tokenizer.encode(text, false).map_err(|e| EmbedError::Tokenizer(e.to_string()))?.get_ids().to_vec())
    }

    /// The L2-normalised mean-pooled sentence embedding.
    pub fn embed(&self, text: &str) -> Result<Embedding, EmbedError> {
        let (ids, mask) = self.encode(text)?;
        let n = ids.len();
        let mut embeds = vec![0f32; n * self.dim];
        for (row, &id) in embeds.chunks_exact_mut(self.dim).zip(&ids) {
            self.lookup(id as usize, row)?;
        }
        let shape = [1, n];
        let as_i64 = |v: &[u32]| -> Result<Tensor, EmbedError> {
            Tensor::from_shape(&shape, &v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>()).map_err(run_err)
        };
        let mut inputs: TVec<TValue> = TVec::new();
        for outlet in self.plan.model().input_outlets().map_err(run_err)? {
            let t = match self.plan.model().node(outlet.node).name.as_str() {
                "input_ids" => as_i64(&ids)?,
                "attention_mask" => as_i64(&mask)?,
                "token_type_ids" => as_i64(&vec![0; n])?,
                _ => Tensor::from_shape(&[1, n, self.dim], &embeds).map_err(run_err)?,
            };
            inputs.push(t.into());
        }
        let out = self.plan.run(inputs).map_err(run_err)?;
        let hidden = out.first().ok_or_else(|| EmbedError::Run("model returned nothing".into()))?;
        let view = hidden.try_as_plain_ram().map_err(run_err)?;
        let hidden = view.as_slice::<f32>().map_err(run_err)?;
        if hidden.len() != n * self.dim {
            return Err(EmbedError::Run(format!("output has {} values, expected {}", hidden.len(), n * self.dim)));
        }
        let mut pooled = vec![0f32; self.dim];
        let mut weight = 0f32;
        for (row, &m) in hidden.chunks_exact(self.dim).zip(&mask) {
            if m == 0 {
                continue;
            }
            weight += 1.0;
            for (p, x) in pooled.iter_mut().zip(row) {
                *p += x;
            }
        }
        let weight = weight.max(1e-9);
        pooled.iter_mut().for_each(|p| *p /= weight);
        normalize(&mut pooled);
        Ok(Embedding { vector: pooled, tokens: n })
    }

    fn lookup(&self, id: usize, out: &mut [f32]) -> Result<(), EmbedError> {
        if id >= self.vocab {
            return Err(EmbedError::Run(format!("token id {id} outside the vocabulary of {}", self.vocab)));
        }
        let span = id * self.dim..(id + 1) * self.dim;
        match &self.table {
            Table::F32(t) => out.copy_from_slice(&t[span]),
            Table::Int8 { values, scales } => {
                let s = scales[id];
                for (o, &q) in out.iter_mut().zip(&values[span]) {
                    *o = f32::from(q) * s;
                }
            }
        }
        Ok(())
    }
}

fn run_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Run(e.to_string())
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}


/// The first `max` bytes of `text`, cut at a char boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last `max` bytes of `text`, cut at a char boundary.
fn clip_tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The ids the tokenizer's post-processor adds before and after a sequence: the difference
/// between encoding a word with and without special tokens.
fn special_tokens(tokenizer: &Tokenizer) -> Result<(Vec<u32>, Vec<u32>), EmbedError> {
    let err = |e: tokenizers::Error| EmbedError::Tokenizer(e.to_string());
    let with = tokenizer.encode("a", true).map_err(err)?.get_ids().to_vec();
    let without = tokenizer.encode("a", false).map_err(err)?.get_ids().to_vec();
    let at = (0..=with.len().saturating_sub(without.len()))
        .find(|&i| with[i..].starts_with(&without))
        .ok_or_else(|| EmbedError::Tokenizer("cannot tell the special tokens from the text".into()))?;
    Ok((with[..at].to_vec(), with[at + without.len()..].to_vec()))
}

fn initializer<'a>(graph: &'a pb::GraphProto, name: &str) -> Option<&'a pb::TensorProto> {
    graph.initializer.iter().find(|t| t.name == name)
}

fn f32s(t: &pb::TensorProto) -> Result<Vec<f32>, EmbedError> {
    if t.data_type != DataType::Float as i32 {
        return Err(EmbedError::Model(format!("{}: expected float data", t.name)));
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    Ok(t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn i8s(t: &pb::TensorProto) -> Result<Vec<i8>, EmbedError> {
    if t.data_type != DataType::Int8 as i32 {
        return Err(EmbedError::Model(format!("{}: expected int8 data", t.name)));
    }
    if !t.int32_data.is_empty() {
        // Out-of-range values cannot occur in a valid int8 tensor; clamp rather than wrap.
        return Ok(t.int32_data.iter().map(|&x| x.clamp(-128, 127) as i8).collect());
    }
    Ok(t.raw_data.iter().map(|&b| b as i8).collect())
}

/// If `name` is `Mul(Cast(int8 initializer), f32 scale initializer)`, the two nodes' indices, the
/// int8 tensor and the scale tensor.
fn dequant_source<'a>(graph: &'a pb::GraphProto, name: &str) -> Option<(usize, usize, &'a pb::TensorProto, &'a pb::TensorProto)> {
    let mul = graph.node.iter().position(|n| n.op_type == "Mul" && n.output.first().is_some_and(|o| o == name))?;
    let m = &graph.node[mul];
    let cast = graph.node.iter().position(|n| n.op_type == "Cast" && m.input.first() == n.output.first())?;
    let q = initializer(graph, graph.node[cast].input.first()?)?;
    let scale = initializer(graph, m.input.get(1)?)?;
    (q.data_type == DataType::Int8 as i32).then_some((mul, cast, q, scale))
}

/// Removes the `Gather(word_embeddings, input_ids)` node, makes its output a new graph input
/// (`inputs_embeds`), and returns the table, vocabulary size and width.
fn cut_word_embeddings(graph: &mut pb::GraphProto) -> Result<(Table, usize, usize), EmbedError> {
    let gather = graph
        .node
        .iter()
        .position(|n| n.op_type == "Gather" && n.input.get(1).is_some_and(|i| i == "input_ids"))
        .ok_or_else(|| EmbedError::Model("no Gather over input_ids (word embeddings) in the graph".into()))?;
    let table_name = graph.node[gather].input[0].clone();
    let out_name = graph.node[gather].output.first().cloned().unwrap_or_default();
    let (table, dims, mut dead) = if let Some(t) = initializer(graph, &table_name) {
        (Table::F32(f32s(t)?), t.dims.clone(), vec![gather])
    } else if let Some((mul, cast, q, scale)) = dequant_source(graph, &table_name) {
        let values = i8s(q)?;
        let scales = f32s(scale)?;
        if q.dims.len() != 2 || scales.len() as i64 != q.dims[0] {
            return Err(EmbedError::Model("word embeddings: expected one scale per row".into()));
        }
        (Table::Int8 { values, scales }, q.dims.clone(), vec![gather, mul, cast])
    } else {
        return Err(EmbedError::Model(format!("word embeddings {table_name}: not an initializer")));
    };
    let [vocab, dim] = dims[..] else {
        return Err(EmbedError::Model(format!("word embeddings {table_name}: expected 2 dims, got {dims:?}")));
    };
    let (vocab, dim) = (usize::try_from(vocab).unwrap_or(0), usize::try_from(dim).unwrap_or(0));
    dead.sort_unstable();
    for i in dead.into_iter().rev() {
        graph.node.remove(i);
    }
    // `[batch, sequence, dim]` f32; tract fixes batch to 1 (`set_input_fact`).
    let dims = ["batch", "sequence"]
        .into_iter()
        .map(|p| pb::tensor_shape_proto::dimension::Value::DimParam(p.into()))
        .chain([pb::tensor_shape_proto::dimension::Value::DimValue(dim as i64)])
        .map(|v| pb::tensor_shape_proto::Dimension { value: Some(v), ..Default::default() })
        .collect();
    let tensor = pb::type_proto::Tensor { elem_type: DataType::Float as i32, shape: Some(pb::TensorShapeProto { dim: dims }) };
    let r#type = pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() };
    graph.input.push(pb::ValueInfoProto { name: EMBEDS_INPUT.into(), r#type: Some(r#type), ..Default::default() });
    for i in graph.node.iter_mut().flat_map(|n| n.input.iter_mut()) {
        if *i == out_name {
            *i = EMBEDS_INPUT.into();
        }
    }
    drop_unused_initializers(graph);
    Ok((table, vocab, dim))
}

/// Replaces every `Mul(Cast(int8 W_q), W_scale)` by an f32 initializer named like the Mul's output.
fn fold_int8_weights(graph: &mut pb::GraphProto) -> Result<(), EmbedError> {
    let mut folded = Vec::new();
    let mut dead = Vec::new();
    for n in &graph.node {
        if n.op_type != "Mul" {
            continue;
        }
        let Some(out) = n.output.first() else { continue };
        let Some((mul, cast, q, scale)) = dequant_source(graph, out) else { continue };
        let scales = f32s(scale)?;
        let raw = dequantize(q, &scales, &scale.dims)
            .ok_or_else(|| EmbedError::Model(format!("{}: scale shape {:?} does not broadcast over {:?}", q.name, scale.dims, q.dims)))?;
        folded.push(pb::TensorProto { name: out.clone(), dims: q.dims.clone(), data_type: DataType::Float as i32, raw_data: raw, ..pb::TensorProto::default() });
        dead.push(mul);
        dead.push(cast);
    }
    dead.sort_unstable();
    dead.dedup();
    for i in dead.into_iter().rev() {
        graph.node.remove(i);
    }
    graph.initializer.extend(folded);
    drop_unused_initializers(graph);
    Ok(())
}

/// `q * scales` as little-endian f32 bytes, for a 1-D or 2-D int8 tensor with per-row
/// (`[rows, 1]`), per-column (`[1, cols]` or `[cols]`) or scalar scales. One tight loop per row:
/// this runs over ~10 M weights at every cold start.
fn dequantize(q: &pb::TensorProto, scales: &[f32], scale_dims: &[i64]) -> Option<Vec<u8>> {
    let (rows, cols) = match q.dims[..] {
        [r, c] => (usize::try_from(r).ok()?, usize::try_from(c).ok()?),
        [c] => (1, usize::try_from(c).ok()?),
        _ => return None,
    };
    let values: Vec<i8> = if q.int32_data.is_empty() {
        q.raw_data.iter().map(|&b| b as i8).collect()
    } else {
        q.int32_data.iter().map(|&x| x.clamp(-128, 127) as i8).collect()
    };
    if values.len() != rows * cols || cols == 0 {
        return None;
    }
    let per_row = rows != 1 && scales.len() == rows && scale_dims.first().copied() == Some(rows as i64);
    let per_col = scales.len() == cols;
    if !(per_row || per_col || scales.len() == 1) {
        return None;
    }
    let mut out = vec![0u8; values.len() * 4];
    for (r, (src, dst)) in values.chunks_exact(cols).zip(out.chunks_exact_mut(cols * 4)).enumerate() {
        for (c, (&v, d)) in src.iter().zip(dst.chunks_exact_mut(4)).enumerate() {
            let s = if per_row { scales[r] } else if per_col { scales[c] } else { scales[0] };
            d.copy_from_slice(&(f32::from(v) * s).to_le_bytes());
        }
    }
    Some(out)
}

fn drop_unused_initializers(graph: &mut pb::GraphProto) {
    let used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.iter().cloned()).chain(graph.output.iter().map(|o| o.name.clone())).collect();
    graph.initializer.retain(|t| used.contains(&t.name));
}
