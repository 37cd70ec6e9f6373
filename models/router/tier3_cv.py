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

A row is escalated when its out-of-fold top probability is below the bundled config's
min_confidence and the sensitive detector did not pin it (pinned prompts never reach tier 3).
The blend is the guest's (wasi-host/guest/src/classify.rs, `add_hint`): each label's
log-probability under the model plus W x its tier-2 probability, where labels outside tier 2's
top five take the lowest of the five; W is chosen by 5-fold cross-validation over these rows
(pick W on four folds, score the fifth), so the reported accuracy is not the tuned one.

Nothing here reads the validation set.
"""
import argparse
import json
import random

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
    args = ap.parse_args()
    select(args) if args.cmd == "select" else score(args)


if __name__ == "__main__":
    main()
