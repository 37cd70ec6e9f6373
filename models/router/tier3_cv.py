"""Measures tier 3 on the corpus, where tier 2 would escalate, so its blend weight is chosen on
training data rather than on the validation set. Offline; CI never runs it.

    # 1. out-of-fold tier-2 probabilities (train.py --oof), then pick the rows tier 2 leaves unsure
    python models/router/tier3_cv.py select --oof oof.jsonl --corpus models/corpus/corpus.jsonl \
        --out escalated.jsonl [--n 300]
    # 2. the classifier alone on them: a host started with --hint-weight 0, and a config that
    #    escalates every prompt the keyword tier does not decide (min_confidence 1.0)
    gateway eval --config escalate-all.yaml --data escalated.jsonl --classifier URL --out t3.jsonl
    # 3. tier 2 alone, the model alone, and their product at each weight
    python models/router/tier3_cv.py score --oof oof.jsonl --pred t3.jsonl [--report tier3.json]

A head on the classifier LLM's own hidden state (`wasi-host features`: the final hidden state
where the guest's prompt asks for the answer) is measured against the label likelihood the same
way:

    # 4. the labels as the edge sends them, the rows to embed (every escalated row and a
    #    stratified sample of the rest), their hidden states
    python models/router/tier3_cv.py labels --out labels.json
    python models/router/tier3_cv.py sample --oof oof.jsonl --corpus models/corpus/corpus.jsonl \
        --out rows.jsonl [--per-label 400]
    wasi-host features --guest classifier.wasm --model SmolLM2-135M-Instruct.Q8_0.gguf \
        --labels labels.json --input rows.jsonl --output features.jsonl
    # 5. the head, cross-validated: every model of a fold is trained without that fold's rows,
    #    and the escalated rows are scored out of fold, alone and blended with tier 2
    python models/router/tier3_cv.py head --oof oof.jsonl --features features.jsonl \
        --corpus models/corpus/corpus.jsonl [--out models/router/tier3-head.json] [--report r.json]

A row is escalated when its out-of-fold top probability is below the bundled config's
min_confidence and the sensitive detector did not pin it (pinned prompts never reach tier 3).
The blend is the guest's (wasi-host/guest/src/classify.rs, `add_hint`): each label's
log-probability under the model plus W x its tier-2 probability, where labels outside tier 2's
top five take the lowest of the five; W is chosen by 5-fold cross-validation over these rows
(pick W on four folds, score the fifth), so the reported accuracy is not the tuned one.

Nothing here reads the validation set.
"""
import argparse
import hashlib
import json
import os
import random
import sys

import numpy as np
import yaml

SEED = 20261203
WEIGHTS = [0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0, 1e6]


def load_oof(path):
    return {r["id"]: r for r in (json.loads(l) for l in open(path, encoding="utf-8"))}


def select(args):
    oof = load_oof(args.oof)
    head = json.load(open(args.head))
    threshold = head["sensitive"]["threshold"]
    cfg = yaml.safe_load(open(args.config))
    min_conf = cfg["router"]["embedding"]["min_confidence"]
    rows = [json.loads(l) for l in open(args.corpus, encoding="utf-8")]
    unsure = [r for r in rows if max(oof[r["id"]]["probabilities"].values()) < min_conf
              and oof[r["id"]].get("sensitive_score", oof[r["id"]]["probabilities"].get("sensitive", 0.0)) < threshold]
    random.Random(SEED).shuffle(unsure)
    picked = sorted(unsure[:args.n], key=lambda r: r["id"])
    with open(args.out, "w", encoding="utf-8") as f:
        for r in picked:
            f.write(json.dumps({"id": r["id"], "prompt": r["text"], "label": r["label"], "source": r["source"]}) + "\n")
    print(f"{len(unsure)} of {len(rows)} corpus rows escalate out of fold (top probability < {min_conf}, "
          f"sensitive score < {threshold}); wrote {len(picked)} to {args.out}")


def blend(model, hint, w):
    """log p_model + w x hint, the hint floored at its fifth-best value (the guest's five)."""
    top5 = np.sort(hint, axis=1)[:, -5][:, None]
    h = np.where(hint >= top5, hint, top5)
    return np.log(np.maximum(model, 1e-12)) + w * h


def score(args):
    oof = load_oof(args.oof)
    preds = [json.loads(l) for l in open(args.pred, encoding="utf-8")]
    preds = [p for p in preds if "tier3_probabilities" in p]
    if not preds:
        raise SystemExit(f"{args.pred}: no row has tier3_probabilities (was the host asked?)")
    labels = sorted(preds[0]["tier3_probabilities"])
    y = np.array([labels.index(oof[p["id"]]["label"]) for p in preds])
    model = np.array([[p["tier3_probabilities"][l] for l in labels] for p in preds])
    hint = np.array([[oof[p["id"]]["probabilities"].get(l, 0.0) for l in labels] for p in preds])
    acc = {w: (blend(model, hint, w).argmax(1) == y) for w in WEIGHTS}
    folds = np.arange(len(y)) % 5
    np.random.default_rng(SEED).shuffle(folds)
    cv_right, chosen = [], []
    for k in range(5):
        tr, te = folds != k, folds == k
        w = max(WEIGHTS, key=lambda w: (acc[w][tr].mean(), -w))
        chosen.append(w)
        cv_right.append(acc[w][te])
    cv = float(np.concatenate(cv_right).mean())
    best = max(WEIGHTS, key=lambda w: (acc[w].mean(), -w))
    report = {
        "rows": len(y),
        "tier2_alone": round(float((hint.argmax(1) == y).mean()), 4),
        "model_alone": round(float(acc[0.0].mean()), 4),
        "by_weight": {str(w): round(float(acc[w].mean()), 4) for w in WEIGHTS},
        "weight_chosen_per_fold": chosen,
        "cv_accuracy_of_the_blend": round(cv, 4),
        "weight_on_all_rows": best,
    }
    per_source = {}
    for src in sorted({oof[p["id"]]["source"] for p in preds}):
        m = np.array([oof[p["id"]]["source"] == src for p in preds])
        per_source[src] = {"n": int(m.sum()), "tier2": round(float((hint.argmax(1) == y)[m].mean()), 3),
                           "model": round(float(acc[0.0][m].mean()), 3), f"blend_w{best:g}": round(float(acc[best][m].mean()), 3)}
    report["by_source"] = per_source
    print(json.dumps(report, indent=1))
    if args.report:
        json.dump(report, open(args.report, "w"), indent=1, sort_keys=True)


def escalated_ids(oof, rows, head_json, config):
    threshold = json.load(open(head_json))["sensitive"]["threshold"]
    min_conf = yaml.safe_load(open(config))["router"]["embedding"]["min_confidence"]
    return {r["id"] for r in rows if max(oof[r["id"]]["probabilities"].values()) < min_conf
            and oof[r["id"]].get("sensitive_score", 0.0) < threshold}


def edge_labels(config):
    """The labels the edge sends the classifier: every capability, in name order (the config's
    map is a BTreeMap), with its description (edge/src/config/router.rs)."""
    caps = yaml.safe_load(open(config))["capabilities"]
    return [{"name": n, "description": caps[n].get("description", "")} for n in sorted(caps)]


def labels_cmd(args):
    json.dump(edge_labels(args.config), open(args.out, "w"), indent=1)
    print(f"wrote {args.out}")


def sample(args):
    rows = [json.loads(l) for l in open(args.corpus, encoding="utf-8")]
    if args.exclude:
        # Every corpus row whose id the earlier sample did not take, in corpus order.
        taken = {json.loads(l)["id"] for l in open(args.exclude, encoding="utf-8")}
        rest = [r for r in rows if r["id"] not in taken]
        with open(args.out, "w", encoding="utf-8") as f:
            for r in rest:
                f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
        print(f"{len(rest)} rows not in {args.exclude}: {args.out}")
        return
    if not args.oof:
        raise SystemExit("sample: --oof is needed (or --exclude)")
    oof = load_oof(args.oof)
    esc = escalated_ids(oof, rows, args.head, args.config)
    rest = [r for r in rows if r["id"] not in esc]
    random.Random(SEED).shuffle(rest)
    per = {}
    picked = [r for r in rows if r["id"] in esc]
    for r in rest:
        if per.get(r["label"], 0) < args.per_label:
            per[r["label"]] = per.get(r["label"], 0) + 1
            picked.append(r)
    picked.sort(key=lambda r: r["id"])
    with open(args.out, "w", encoding="utf-8") as f:
        for r in picked:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    print(f"{len(esc)} escalated rows and {len(picked) - len(esc)} others ({args.per_label} per label at most): {args.out}")


def fit_lr(X, y, C, n_classes):
    from sklearn.linear_model import LogisticRegression
    m = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    m.fit(X, y)
    W = np.zeros((n_classes, X.shape[1]))
    b = np.full(n_classes, -30.0)
    W[m.classes_] = m.coef_
    b[m.classes_] = m.intercept_
    return W, b


def head(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train import ece, fit_temperature, softmax
    oof = load_oof(args.oof)
    rows = {r["id"]: r for r in (json.loads(l) for l in open(args.corpus, encoding="utf-8"))}
    # Several feature files (e.g. a sample and the rest of the corpus) are one set, ordered by id
    # (stably: the folds depend on the order).
    feats = sorted((json.loads(l) for path in args.features for l in open(path, encoding="utf-8")), key=lambda f: f["id"])
    labels = [l["name"] for l in edge_labels(args.config)]
    esc_ids = escalated_ids(oof, list(rows.values()), args.head, args.config)
    ids = [f["id"] for f in feats]
    X = np.array([f["hidden"] for f in feats], dtype=np.float64)
    y = np.array([labels.index(rows[i]["label"]) for i in ids])
    esc = np.array([i in esc_ids for i in ids])
    likelihood = np.array([[f["probabilities"][l] for l in labels] for f in feats])
    hint = np.array([[oof[i]["probabilities"].get(l, 0.0) for l in labels] for i in ids])
    # Standardised inputs (the mean and scale go into the head's weights).
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    rng = np.random.default_rng(SEED)
    folds = rng.permutation(np.arange(len(y)) % 5)
    grid = [0.01, 0.03, 0.1, 0.3, 1.0]
    # Every fold's models are trained without that fold's rows. C is the grid value with the
    # best out-of-fold accuracy on the escalated rows (a choice among four made on the rows it is
    # reported on; the blend weights below are chosen on other folds than they are scored on).
    logits = {C: np.zeros((len(y), len(labels))) for C in grid}
    for k in range(5):
        tr, te = folds != k, folds == k
        for C in grid:
            W, b = fit_lr(Z[tr], y[tr], C, len(labels))
            logits[C][te] = Z[te] @ W.T + b
        print(f"fold {k + 1}/5", file=sys.stderr)
    acc_c = {C: (logits[C].argmax(1) == y) for C in grid}
    chosen_c = max(grid, key=lambda C: acc_c[C][esc].mean())
    lg = logits[chosen_c]
    temp = fit_temperature(lg, y)
    p_head = softmax(lg / temp)
    top5 = np.sort(hint, axis=1)[:, -5][:, None]
    h5 = np.where(hint >= top5, hint, top5)

    def blend(logp, w):
        return logp + w * h5

    lp_head, lp_ll = np.log(np.maximum(p_head, 1e-12)), np.log(np.maximum(likelihood, 1e-12))
    methods = {
        "tier 2's best guess (out of fold)": lambda w: hint,
        "label likelihood": lambda w: blend(lp_ll, w),
        "hidden-state head": lambda w: blend(lp_head, w),
        "hidden-state head + label likelihood": lambda w: blend(lp_head + lp_ll, w),
    }
    e_idx = np.where(esc)[0]
    efolds = folds[e_idx]
    report = {"rows": int(len(y)), "escalated_rows": int(esc.sum()), "C": chosen_c, "C_accuracy_on_escalated": {str(C): round(float(acc_c[C][esc].mean()), 4) for C in grid},
              "temperature": round(temp, 4), "ece_before": round(float(ece(softmax(lg), y)), 4), "ece_after": round(float(ece(p_head, y)), 4),
              "head_accuracy_all_rows_oof": round(float(acc_c[chosen_c].mean()), 4), "escalated": {}}
    for name, f in methods.items():
        acc = {w: (f(w)[e_idx].argmax(1) == y[e_idx]) for w in WEIGHTS}
        if name.startswith("tier 2"):
            report["escalated"][name] = {"accuracy": round(float(acc[0.0].mean()), 4)}
            continue
        cv, chosen = [], []
        for k in range(5):
            tr, te = efolds != k, efolds == k
            w = max(WEIGHTS, key=lambda w: (acc[w][tr].mean(), -w))
            chosen.append(w)
            cv.append(acc[w][te])
        report["escalated"][name] = {"alone": round(float(acc[0.0].mean()), 4),
                                     "by_weight": {str(w): round(float(acc[w].mean()), 4) for w in WEIGHTS},
                                     "blend_weight_chosen_per_fold": chosen,
                                     "blend_cv_accuracy": round(float(np.concatenate(cv).mean()), 4)}
    # The head blended with tier 2 at the weight the escalated rows choose.
    accs = {w: (blend(lp_head, w)[e_idx].argmax(1) == y[e_idx]).mean() for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: (accs[w], -w))
    # The cascade on the corpus as tier 2's min_confidence moves: rows at or above it keep tier
    # 2's answer, the others (not pinned sensitive) get the blended head's, all out of fold. The
    # rows above 0.70 were sampled per label, so each counts for its label's share of them.
    sens_thr = json.load(open(args.head))["sensitive"]["threshold"]
    sens = np.array([oof[i].get("sensitive_score", 0.0) >= sens_thr for i in ids])
    above = {}
    for i, r in rows.items():
        if i not in esc_ids:
            above[r["label"]] = above.get(r["label"], 0) + 1
    sampled = {}
    for i, e in zip(ids, esc):
        if not e:
            sampled[rows[i]["label"]] = sampled.get(rows[i]["label"], 0) + 1
    wt = np.array([1.0 if e else above[rows[i]["label"]] / sampled[rows[i]["label"]] for i, e in zip(ids, esc)])
    t2, conf, t3 = hint.argmax(1), hint.max(1), blend(lp_head, weight).argmax(1)
    report["cascade_by_min_confidence"] = {}
    for m in [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]:
        go = (conf < m) & ~sens
        right = np.where(go, t3 == y, t2 == y)
        report["cascade_by_min_confidence"][str(m)] = {"escalated": round(float(np.average(go, weights=wt)), 4),
                                                       "accuracy": round(float(np.average(right, weights=wt)), 4)}
    report["tier2_alone_weighted"] = round(float(np.average(t2 == y, weights=wt)), 4)
    print(json.dumps(report, indent=1))
    if args.report:
        json.dump(report, open(args.report, "w"), indent=1, sort_keys=True)
    if args.out:
        # The head blended with tier 2 as cross-validation chose it, fitted on every row.
        W, b = fit_lr(Z, y, chosen_c, len(labels))
        # Fold the standardisation in: W (x - mu) / sd + b.
        Wx = W / sd
        bx = b - Wx @ mu
        out = {
            "format": 1,
            "what": "a multinomial logistic regression over the classifier model's final hidden state at the prompt's last token (wasi-host features), temperature-calibrated out of fold; models/router/tier3_cv.py head",
            "model": feats[0]["model"],
            "template": args.template,
            "labels": edge_labels(args.config),
            "classes": labels,
            "temperature": round(temp, 6),
            "hint_weight": weight,
            "trained_on": {"corpus_sha256": hashlib.sha256(open(args.corpus, "rb").read()).hexdigest(),
                            "features_sha256": [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in args.features], "rows": int(len(y)), "C": chosen_c},
            "bias": [float(np.float32(v)) for v in bx],
            "weights": [[float(np.float32(v)) for v in row] for row in Wx],
        }
        json.dump(out, open(args.out, "w"), separators=(",", ":"))
        print(f"wrote {args.out} (hint weight {weight}, temperature {temp:.3f})")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select")
    s.add_argument("--oof", required=True)
    s.add_argument("--corpus", required=True)
    s.add_argument("--head", default="models/router/head.json")
    s.add_argument("--config", default="edge/gateway.yaml")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, default=300)
    c = sub.add_parser("score")
    c.add_argument("--oof", required=True)
    c.add_argument("--pred", required=True)
    c.add_argument("--report")
    lb = sub.add_parser("labels")
    lb.add_argument("--config", default="edge/gateway.yaml")
    lb.add_argument("--out", required=True)
    sm = sub.add_parser("sample")
    sm.add_argument("--oof")
    sm.add_argument("--corpus", required=True)
    sm.add_argument("--head", default="models/router/head.json")
    sm.add_argument("--config", default="edge/gateway.yaml")
    sm.add_argument("--out", required=True)
    sm.add_argument("--per-label", type=int, default=400)
    sm.add_argument("--exclude", help="instead: every corpus row whose id is not in this earlier sample")
    h = sub.add_parser("head")
    h.add_argument("--oof", required=True)
    h.add_argument("--features", required=True, nargs="+")
    h.add_argument("--corpus", required=True)
    h.add_argument("--head", default="models/router/head.json")
    h.add_argument("--config", default="edge/gateway.yaml")
    h.add_argument("--template", default="chatml")
    h.add_argument("--out")
    h.add_argument("--report")
    args = ap.parse_args()
    {"select": select, "score": score, "labels": labels_cmd, "sample": sample, "head": head}[args.cmd](args)


if __name__ == "__main__":
    main()
