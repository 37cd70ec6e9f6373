//! `gateway eval`'s figures: accuracy and F1, the confusion matrix, sensitive recall and false
//! positives, share / accuracy / latency per tier, tier 3 on the escalated rows, the cost of the
//! routed mix, the head's cross-validated figures, and the accuracy-against-coverage curve
//! (printed and drawn as SVG).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use llm_gateway::tiers::intents::EmbeddingTierConfig;
use llm_gateway::router::ClassifierAnswer;
use llm_gateway::Config;
use serde_json::{json, Value};

/// What tier 2 said about a row (when it ran).
pub struct Tier2Seen {
    pub capability: String,
    pub confidence: f64,
    pub margin: f64,
    /// The head's detector flagged the prompt (decided `sensitive` whatever the threshold).
    pub sensitive: bool,
    pub scores: Vec<(String, f64)>,
}

pub struct Row {
    pub id: String,
    pub label: String,
    pub alt: Vec<String>,
    /// The gateway's decision without tier 3 (escalated rows: tier 2's best guess, as served
    /// when the classifier host cannot answer).
    pub pred: String,
    /// keyword, embedding, escalated, or policy (residency pinned it).
    pub tier: &'static str,
    pub t2: Option<Tier2Seen>,
    pub keyword_us: f64,
    pub embed_ms: Option<f64>,
    /// Tier 3's answer and the ms it took from the client (escalated rows, `--classifier`).
    pub tier3: Option<(ClassifierAnswer, f64)>,
    pub prompt_tokens: u64,
    /// The PII detector alone flagged the prompt.
    pub pii: bool,
}

impl Row {
    /// With tier 3 where it answered.
    fn final_pred(&self) -> &str {
        match (&self.tier3, self.tier) {
            (Some((a, _)), "escalated") => &a.label,
            _ => &self.pred,
        }
    }
}

fn ok(r: &Row, pred: &str) -> (bool, bool) {
    (pred == r.label, pred == r.label || r.alt.iter().any(|a| a == pred))
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn share(part: usize, all: usize) -> f64 {
    100.0 * part as f64 / all.max(1) as f64
}

pub fn report(rows: &[Row]) {
    let n = rows.len();
    let strict = rows.iter().filter(|r| ok(r, &r.pred).0).count();
    let lenient = rows.iter().filter(|r| ok(r, &r.pred).1).count();
    let mut out = format!(
        "rows {n}  strict {:.3}  lenient {:.3}   (tiers 1-2; escalated rows counted with tier 2's best guess)\n",
        strict as f64 / n.max(1) as f64,
        lenient as f64 / n.max(1) as f64
    );
    let decided: Vec<&Row> = rows.iter().filter(|r| r.tier != "escalated").collect();
    let ds = decided.iter().filter(|r| ok(r, &r.pred).0).count();
    let _ = writeln!(
        out,
        "decided at the edge (tiers 1-2, +policy): {} rows ({:.1} %)  strict {:.3};  escalated: {} rows",
        decided.len(),
        share(decided.len(), n),
        ds as f64 / decided.len().max(1) as f64,
        n - decided.len()
    );
    let _ = writeln!(out, "{:10} {:>6} {:>7} {:>8} {:>12} {:>12}", "tier", "rows", "share", "strict", "p50 ms", "p90 ms");
    let mut tiers: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        tiers.entry(r.tier).or_default().push(r);
    }
    for (t, rs) in &tiers {
        let acc = rs.iter().filter(|r| ok(r, &r.pred).0).count() as f64 / rs.len() as f64;
        // A tier's latency: what the cascade spent on the row (keyword alone, or keyword + embedding).
        let lat: Vec<f64> = rs.iter().map(|r| r.keyword_us / 1e3 + r.embed_ms.unwrap_or(0.0)).collect();
        let _ = writeln!(out, "{t:10} {:>6} {:>6.1}% {acc:>8.3} {:>12.3} {:>12.3}", rs.len(), share(rs.len(), n), pct(&lat, 0.5), pct(&lat, 0.9));
    }
    let kw: Vec<f64> = rows.iter().map(|r| r.keyword_us).collect();
    let em: Vec<f64> = rows.iter().filter_map(|r| r.embed_ms).collect();
    let _ = writeln!(
        out,
        "latency: keyword p50 {:.1} us (p90 {:.1}); embedding + head p50 {:.2} ms (p90 {:.2}, {} rows)",
        pct(&kw, 0.5),
        pct(&kw, 0.9),
        pct(&em, 0.5),
        pct(&em, 0.9),
        em.len()
    );
    out += &per_class(rows, |r| r.pred.as_str());
    let sens: Vec<&Row> = rows.iter().filter(|r| r.label == "sensitive").collect();
    let other: Vec<&Row> = rows.iter().filter(|r| r.label != "sensitive").collect();
    let caught = sens.iter().filter(|r| r.pred == "sensitive").count();
    let false_pos = other.iter().filter(|r| r.pred == "sensitive").count();
    let _ = writeln!(
        out,
        "sensitive recall: {caught}/{} (leaks: {});  false positives: {false_pos}/{} ({:.1} % of non-sensitive rows served locally)",
        sens.len(),
        sens.len() - caught,
        other.len(),
        share(false_pos, other.len())
    );
    for r in sens.iter().filter(|r| r.pred != "sensitive") {
        let _ = writeln!(out, "  leak: {} -> {} ({})", r.id, r.pred, r.tier);
    }
    let pii_fp = other.iter().filter(|r| r.pii).count();
    let _ = writeln!(
        out,
        "PII detector alone: {}/{} sensitive rows, {pii_fp}/{} non-sensitive rows ({:.1} % false positives)",
        sens.iter().filter(|r| r.pii).count(),
        sens.len(),
        other.len(),
        share(pii_fp, other.len())
    );
    for r in other.iter().filter(|r| r.pii) {
        let _ = writeln!(out, "  PII false positive: {}", r.id);
    }
    eprint!("{out}");
}

/// Precision, recall, F1 per label and the confusion matrix (rows: gold, columns: predicted).
fn per_class(rows: &[Row], pred: impl Fn(&Row) -> &str) -> String {
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).chain(rows.iter().map(&pred)).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut out = format!("{:18} {:>6} {:>6} {:>6} {:>5}\n", "label", "P", "R", "F1", "n");
    for l in &labels {
        let tp = rows.iter().filter(|r| r.label == *l && pred(r) == *l).count() as f64;
        let fp = rows.iter().filter(|r| r.label != *l && pred(r) == *l).count() as f64;
        let fn_ = rows.iter().filter(|r| r.label == *l && pred(r) != *l).count() as f64;
        let p = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let rc = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
        let f1 = if p + rc > 0.0 { 2.0 * p * rc / (p + rc) } else { 0.0 };
        let _ = writeln!(out, "{l:18} {p:6.3} {rc:6.3} {f1:6.3} {:5}", tp + fn_);
    }
    let short = |l: &str| l.chars().take(5).collect::<String>();
    let _ = write!(out, "confusion (gold \\ predicted)\n{:18}", "");
    for l in &labels {
        let _ = write!(out, "{:>6}", short(l));
    }
    out.push('\n');
    for g in &labels {
        let _ = write!(out, "{g:18}");
        for p in &labels {
            let c = rows.iter().filter(|r| r.label == *g && pred(r) == *p).count();
            let _ = write!(out, "{:>6}", if c == 0 { ".".to_owned() } else { c.to_string() });
        }
        out.push('\n');
    }
    out
}

/// The cascade with tier 3: escalated rows take the classifier's label.
pub fn report_tier3(rows: &[Row]) {
    let n = rows.len() as f64;
    let strict = rows.iter().filter(|r| ok(r, r.final_pred()).0).count() as f64;
    let lenient = rows.iter().filter(|r| ok(r, r.final_pred()).1).count() as f64;
    let esc: Vec<&Row> = rows.iter().filter(|r| r.tier == "escalated").collect();
    let t3_ok = esc.iter().filter(|r| ok(r, r.final_pred()).0).count();
    let t2_ok = esc.iter().filter(|r| ok(r, &r.pred).0).count();
    let client: Vec<f64> = esc.iter().filter_map(|r| r.tier3.as_ref().map(|(_, ms)| *ms)).collect();
    let host: Vec<f64> = esc.iter().filter_map(|r| r.tier3.as_ref().map(|(a, _)| a.latency_ms)).collect();
    eprintln!(
        "with tier 3: rows {}  strict {:.3}  lenient {:.3}\n  escalated rows {}: classifier strict {:.3} ({t3_ok}) vs tier-2 best guess {:.3} ({t2_ok})\n  classifier latency: host p50 {:.1} ms (p90 {:.1}); from the client p50 {:.1} ms (p90 {:.1})",
        rows.len(),
        strict / n,
        lenient / n,
        esc.len(),
        t3_ok as f64 / esc.len().max(1) as f64,
        t2_ok as f64 / esc.len().max(1) as f64,
        pct(&host, 0.5),
        pct(&host, 0.9),
        pct(&client, 0.5),
        pct(&client, 0.9),
    );
    eprint!("{}", per_class(rows, Row::final_pred));
}

/// Assumed completion length for the cost view (the rows carry prompts, not answers).
const OUTPUT_TOKENS: u64 = 400;

/// What the routed mix would cost at the config's prices (each row served by its route's first
/// model; prompt tokens as the budgets estimate them, 400 output tokens each) against sending
/// every row to the most expensive model.
pub fn cost(config: &Config, rows: &[Row]) {
    let cost_of = |model: &str, r: &Row| -> f64 {
        config.models.get(model).map_or(0.0, |m| {
            (r.prompt_tokens as f64 * m.price.input_micros_per_mtok as f64 + OUTPUT_TOKENS as f64 * m.price.output_micros_per_mtok as f64) / 1e12
        })
    };
    let Some((top, _)) = config.models.iter().max_by_key(|(_, m)| (m.price.output_micros_per_mtok, m.price.input_micros_per_mtok)) else { return };
    let mut routed = 0.0;
    let mut by_model: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        let route = config.capabilities.get(r.final_pred()).map_or(config.router.default_route.as_str(), |c| c.route.as_str());
        let model = config.routes.get(route).and_then(|rt| rt.models.first()).cloned().unwrap_or_default();
        routed += cost_of(&model, r);
        *by_model.entry(model).or_default() += 1;
    }
    let always: f64 = rows.iter().map(|r| cost_of(top, r)).sum();
    let mix: Vec<String> = by_model.iter().map(|(m, c)| format!("{m} {c}")).collect();
    eprintln!(
        "cost at the config's prices ({} output tokens a row): routed ${routed:.4} vs always {top} ${always:.4} ({:.1} %); served by: {}",
        OUTPUT_TOKENS,
        100.0 * routed / always.max(1e-12),
        mix.join(", ")
    );
}

/// The head's training figures (models/router/train.py's report), when present.
pub fn training(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("head: no training report at {}", path.display());
        return;
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else { return };
    eprintln!(
        "head (trained on corpus {}…, {} rows): {}-fold cross-validated accuracy {}, ECE {} -> {} calibrated (T = {}); sensitive threshold {}: recall {} false-positive rate {} (cross-validated)",
        v["corpus_sha256"].as_str().unwrap_or("?").get(..12).unwrap_or("?"),
        v["rows"],
        v["cv_folds"],
        v["cv_accuracy"],
        v["ece_raw"],
        v["ece_calibrated"],
        v["temperature"],
        v["sensitive"]["threshold"],
        v["sensitive"]["cv_recall"],
        v["sensitive"]["cv_false_positive_rate"],
    );
}

/// One point of the accuracy-against-coverage curve.
pub struct Point {
    pub threshold: f64,
    /// Share of rows decided at the edge (keyword, residency, detector, or tier 2 >= threshold).
    pub edge_share: f64,
    pub edge_accuracy: f64,
    /// All rows, escalated ones with tier 3's answer where it ran, else tier 2's best guess.
    pub overall: f64,
}

pub fn curve(rows: &[Row]) -> Vec<Point> {
    let mut out = String::from("min_confidence  decided at edge  strict(edge)  strict(all)\n");
    let mut points = Vec::new();
    for step in 0..=20 {
        let t = f64::from(step) / 20.0;
        let (mut decided, mut right, mut all_right) = (0usize, 0usize, 0usize);
        for r in rows {
            let at_edge = match &r.t2 {
                _ if r.tier == "keyword" || r.tier == "policy" => true,
                Some(s) => s.sensitive || s.confidence >= t,
                None => true,
            };
            let pred = match (&r.t2, at_edge) {
                (_, true) if r.tier == "keyword" || r.tier == "policy" => r.pred.as_str(),
                (Some(s), true) => s.capability.as_str(),
                (_, true) => r.pred.as_str(),
                (_, false) => r.tier3.as_ref().map_or(r.t2.as_ref().map_or(r.pred.as_str(), |s| s.capability.as_str()), |(a, _)| a.label.as_str()),
            };
            let good = pred == r.label;
            decided += usize::from(at_edge);
            right += usize::from(at_edge && good);
            all_right += usize::from(good);
        }
        let p = Point { threshold: t, edge_share: decided as f64 / rows.len().max(1) as f64, edge_accuracy: right as f64 / decided.max(1) as f64, overall: all_right as f64 / rows.len().max(1) as f64 };
        let _ = writeln!(out, "  {t:.2}           {:5.1} %          {:.3}         {:.3}", 100.0 * p.edge_share, p.edge_accuracy, p.overall);
        points.push(p);
    }
    eprint!("{out}");
    points
}

/// Accuracy against the share decided at the edge, one point per threshold.
pub fn svg(points: &[Point], cfg: &EmbeddingTierConfig) -> String {
    let (w, h, m) = (640.0, 420.0, 56.0);
    let x = |v: f64| m + v * (w - 2.0 * m);
    let y = |v: f64| h - m - v * (h - 2.0 * m);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    for i in 0..=10 {
        let v = f64::from(i) / 10.0;
        let _ = writeln!(s, "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>", x(v), y(0.0), x(v), y(1.0), x(0.0), y(v), x(1.0), y(v));
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v:.1}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>", x(v), y(0.0) + 16.0, x(0.0) - 6.0, y(v) + 4.0);
    }
    let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">share of requests decided at the edge (tiers 1-2)</text>", w / 2.0, h - 14.0);
    let _ = writeln!(s, "<text transform=\"translate(16,{:.1}) rotate(-90)\" text-anchor=\"middle\">strict accuracy</text>", h / 2.0);
    let _ = writeln!(s, "<text x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">Accuracy against edge coverage, min_confidence 0 to 1</text>", w / 2.0);
    for (series, color, f) in [("edge-decided rows", "#1f77b4", (|p: &Point| p.edge_accuracy) as fn(&Point) -> f64), ("all rows (escalated: tier 3 or tier-2 guess)", "#d62728", |p: &Point| p.overall)] {
        let pts: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.edge_share), y(f(p)))).collect();
        let _ = writeln!(s, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>", pts.join(" "));
        for p in points {
            let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"><title>min_confidence {:.2}: {:.1} % at the edge, {:.3}</title></circle>", x(p.edge_share), y(f(p)), p.threshold, 100.0 * p.edge_share, f(p));
        }
        let ly = if color == "#1f77b4" { 44.0 } else { 62.0 };
        let _ = writeln!(s, "<line x1=\"{:.1}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{series}</text>", x(0.02), x(0.08), x(0.09), ly + 4.0);
    }
    if let Some(p) = points.iter().min_by(|a, b| (a.threshold - cfg.min_confidence).abs().total_cmp(&(b.threshold - cfg.min_confidence).abs())) {
        let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"none\" stroke=\"black\"/><text x=\"{:.1}\" y=\"{:.1}\">configured {:.2}</text>", x(p.edge_share), y(p.edge_accuracy), x(p.edge_share) + 8.0, y(p.edge_accuracy) - 8.0, cfg.min_confidence);
    }
    s + "</svg>\n"
}

/// One line of the predictions file `../shared/eval/score.py` reads (id, label), with the tier
/// and scores for offline analysis.
pub fn prediction_line(r: &Row) -> String {
    let tier = if r.tier == "escalated" && r.tier3.is_some() { "classifier" } else { r.tier };
    let scores = |v: &[(String, f64)]| v.iter().map(|(l, s)| (l.clone(), json!(s))).collect::<serde_json::Map<_, _>>();
    let mut row = json!({"id": r.id, "label": r.final_pred(), "tier": tier});
    if let Some(t2) = &r.t2 {
        row["tier2_scores"] = Value::Object(scores(&t2.scores));
        row["tier2_margin"] = json!(t2.margin);
    }
    if let Some((a, _)) = &r.tier3 {
        row["tier3_probabilities"] = Value::Object(scores(&a.probabilities));
    }
    row.to_string() + "\n"
}
