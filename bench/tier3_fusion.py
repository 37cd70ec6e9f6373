"""Sweeps the classifier host's --hint-weight offline: how much tier 2's cosine scores should
count against tier 3's label log-likelihoods on the escalated rows.

Usage: python3 bench/tier3_fusion.py ../shared/eval/router_dev.jsonl pred.jsonl
pred.jsonl: `gateway eval --classifier URL --out pred.jsonl` from a host run with
--hint-weight 0 (its rows carry tier2_scores and tier3_probabilities).

The guest adds weight x score for the edge's hint (tier 2's top 5; labels outside it get the
lowest of the five), so this reproduces its decision exactly. Besides the sweep, a 2-fold
cross-validation (weight chosen on one half, scored on the other, both ways, 20 random
splits) estimates the accuracy on rows the weight was not tuned on."""
import json, math, random, sys

gold = {r['id']: r for r in map(json.loads, open(sys.argv[1]))}
rows = [r for r in map(json.loads, open(sys.argv[2])) if r.get('tier') == 'classifier' and r.get('tier3_probabilities')]
if not rows:
    sys.exit('no escalated rows with tier3_probabilities: run gateway eval with --classifier')

def decide(r, w):
    top5 = sorted(r['tier2_scores'].items(), key=lambda kv: -kv[1])[:5]
    hint = dict(top5)
    floor = min(hint.values())
    best = max(r['tier3_probabilities'].items(),
               key=lambda kv: math.log(max(kv[1], 1e-30)) + w * hint.get(kv[0], floor))
    return best[0]

def acc(rs, w, lenient=False):
    ok = 0
    for r in rs:
        g, p = gold[r['id']], decide(r, w)
        ok += p == g['label'] or (lenient and p in g['alt_labels'])
    return ok / len(rs)

weights = [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 60, 100, 1000]
t2 = sum(max(r['tier2_scores'], key=r['tier2_scores'].get) == gold[r['id']]['label'] for r in rows) / len(rows)
print(f"escalated rows: {len(rows)}; tier 2's best guess alone: {t2:.3f}")
print(f"{'weight':>7s} {'strict':>7s} {'lenient':>8s}")
for w in weights:
    print(f"{w:7g} {acc(rows, w):7.3f} {acc(rows, w, True):8.3f}")

rng = random.Random(7)
cv = []
for _ in range(20):
    shuffled = rows[:]
    rng.shuffle(shuffled)
    halves = shuffled[: len(rows) // 2], shuffled[len(rows) // 2:]
    for tune, test in (halves, halves[::-1]):
        best = max(weights, key=lambda w: (acc(tune, w), -w))
        cv.append(acc(test, best))
print(f"2-fold cross-validated strict accuracy (weight tuned on the other half): "
      f"mean {sum(cv) / len(cv):.3f}, min {min(cv):.3f}, max {max(cv):.3f}")
