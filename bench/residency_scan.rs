//! What the data-residency scan costs per request (criterion): `policy::sensitivity`, which
//! reads every string a request would send upstream for personal data and `local_only`
//! keywords, on chat bodies of 1 KB, 64 KB and just under 1 MiB (the bundled
//! `privacy.max_scan_bytes`: more text than that is not scanned and counts as sensitive). Two
//! kinds of text: prose, and digit-dense text (tables, logs, IDs), where the card, phone, SSN and
//! IBAN rules have the most candidates to check.
//!
//! Run: `cargo bench -p llm-gateway --no-default-features --bench residency_scan --profile host`
//! (the scan needs no embedding tier, so tract is not compiled).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use llm_gateway::api::ParsedChat;
use llm_gateway::policy;
use llm_gateway::Config;

const PROSE: &str = "The committee met on Tuesday to review the quarterly figures, the hiring plan and the \
    office move; most of the discussion was about the new supplier contract and when to sign it. ";
const DIGITS: &str = "2024-03-17 14:02:11 order 88213 qty 4 @ 19.99 total 79.96 ref 4471-0093-2210 \
    host 10.2.14.7 port 8443 status 200 bytes 51234 ms 38.4 batch 0007 line 00041; ";

/// A chat body of about `bytes` of `unit` text, as 8 KB user and assistant turns.
fn body(unit: &str, bytes: usize) -> Vec<u8> {
    let turn = unit.repeat(8192 / unit.len() + 1);
    let mut messages = Vec::new();
    let mut size = 0;
    while size < bytes {
        let text = &turn[..turn.len().min(bytes - size).max(1)];
        let role = if messages.len() % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": text}));
        size += text.len();
    }
    serde_json::to_vec(&serde_json::json!({"model": "auto", "messages": messages})).expect("json")
}

fn scan(c: &mut Criterion) {
    let config = Config::bundled().expect("bundled config");
    let mut g = c.benchmark_group("residency scan");
    g.measurement_time(Duration::from_secs(6)).sample_size(20);
    for (kind, unit) in [("prose", PROSE), ("digits", DIGITS)] {
        // The largest: just under the limit, which also counts the messages' `role` strings.
        for bytes in [1 << 10, 64 << 10, config.privacy.max_scan_bytes - 1024] {
            let chat = ParsedChat::from_slice(&body(unit, bytes)).expect("a valid body");
            let s = policy::sensitivity(&config, &chat);
            assert!(!s.unscanned, "{kind} {bytes}: within max_scan_bytes, so scanned");
            g.throughput(Throughput::Bytes(bytes as u64));
            g.bench_with_input(BenchmarkId::new(kind, bytes), &chat, |b, chat| b.iter(|| black_box(policy::sensitivity(&config, black_box(chat)))));
        }
    }
    // The two halves of the scan, on 64 KB of prose: the PII detector and the keyword automaton.
    let prose = PROSE.repeat((64 << 10) / PROSE.len());
    g.throughput(Throughput::Bytes(prose.len() as u64));
    g.bench_function("pii::detect alone, prose 64 KB", |b| b.iter(|| black_box(policy::pii::detect(black_box(&prose), &config.privacy.pii))));
    g.bench_function("local_only keywords alone, prose 64 KB", |b| b.iter(|| black_box(config.router.keyword.capabilities_in(black_box(&prose)))));
    g.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
