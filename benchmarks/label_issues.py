"""Benchmark (issue 16): find injected label errors in digits, and measure what removing the flagged samples does.

Target: with 5% of the digits training labels flipped at random, and separately flipped to each class's most
confused class, the flagged set has precision >= 0.80 and recall >= 0.80; a model retrained without the flagged
samples is compared with one trained on the noisy labels on the clean test split (paired bootstrap CI, McNemar).

cvkit: `label_issues` = 5-fold out-of-fold probabilities from `fit()` of cvkit_cnn_tiny at 16x16, then cleanlab's
`find_label_issues`. Baselines in the same run, on the same flips: (a) flag every sample whose out-of-fold argmax
disagrees with its label (same cvkit probabilities, no confident learning); (b) cleanlab on out-of-fold probabilities
of scikit-learn's LogisticRegression on the raw 8x8 pixels.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/label_issues.py [--seeds 0,1,2]
"""
import argparse, os, platform, time
import numpy as np
import torch
from cleanlab.filter import find_label_issues
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from cvkit.curate.label_issues import Learner, compare_cleaned, flip_labels, label_issues, most_confused, oof_predictions
from cvkit.data.builtin import digits

def pr(found, truth):
    found, truth = set(map(int, found)), set(map(int, truth))
    tp = len(found & truth)
    return tp / max(1, len(found)), tp / max(1, len(truth)), len(found)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--frac', type=float, default=0.05)
    a = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(',')]
    ds = digits(size=16, seed=0)
    train, test = ds.split('train'), ds.split('test')
    X8 = load_digits().data; order = {f'digits-{i:04d}': i for i in range(len(X8))}
    Xtr = X8[[order[i] for i in train.ids]] / 16.0
    t = time.perf_counter()
    clean = oof_predictions(train, Learner(), k=5, seed=0)
    confused = most_confused(clean)
    print(f"clean out-of-fold accuracy {clean.accuracy:.4f} ({time.perf_counter() - t:.0f}s); most confused class per class: "
          f"{dict(zip(train.classes, np.asarray(train.classes)[confused]))}\n")
    rows = []
    for mode in ('random', 'confusable'):
        for s in seeds:
            noisy, flipped = flip_labels(train, a.frac, to='random' if mode == 'random' else confused, seed=s)
            t = time.perf_counter()
            li = label_issues(noisy, Learner(), k=5, seed=s)
            sec = time.perf_counter() - t
            p, r, n = pr(li.issues.position, flipped)
            pa, ra, na = pr(np.flatnonzero(li.predictions.preds != noisy.targets), flipped)
            lr_probs = cross_val_predict(LogisticRegression(max_iter=3000), Xtr, noisy.targets, cv=5, method='predict_proba')
            pb, rb, nb = pr(np.flatnonzero(find_label_issues(noisy.targets, lr_probs)), flipped)
            c = compare_cleaned(noisy, li, test, Learner(), seed=s)
            d = c.deltas.set_index('metric').loc['accuracy']
            rows.append((mode, s, len(flipped), n, p, r, sec, na, pa, ra, nb, pb, rb, d.baseline, d.candidate, d.delta, d.lo, d.hi, d.p_value,
                         c.mcnemar['n01'], c.mcnemar['n10'], c.verdict))
            print(f'{mode} seed {s}: flagged {n}, precision {p:.3f}, recall {r:.3f} ({sec:.0f}s); retrain {d.baseline:.4f} -> '
                  f'{d.candidate:.4f}, delta {d.delta:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}], {c.verdict}', flush=True)
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} cores ({platform.machine()}), torch threads 1, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print(f'digits train n={len(train)} ({a.frac:.0%} flipped = {rows[0][2]}), test n={len(test)}\n')
    print('| flips | seed | cvkit: flagged / precision / recall (time) | baseline a: OOF argmax != label | baseline b: cleanlab on sklearn LogReg pixels | '
          'test accuracy noisy -> cleaned | delta [95% CI], p | McNemar fixed/broke |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {r[0]} | {r[1]} | {r[3]} / **{r[4]:.3f}** / **{r[5]:.3f}** ({r[6]:.0f}s) | {r[7]} / {r[8]:.3f} / {r[9]:.3f} | '
              f'{r[10]} / {r[11]:.3f} / {r[12]:.3f} | {r[13]:.4f} -> {r[14]:.4f} | {r[15]:+.4f} [{r[16]:+.4f}, {r[17]:+.4f}], p={r[18]:.2g} ({r[21]}) | {r[19]}/{r[20]} |')
    for mode in ('random', 'confusable'):
        sub = [r for r in rows if r[0] == mode]
        print(f'\n{mode}: mean precision {np.mean([r[4] for r in sub]):.3f}, mean recall {np.mean([r[5] for r in sub]):.3f} '
              f'(min {min(r[4] for r in sub):.3f} / {min(r[5] for r in sub):.3f}) over seeds {seeds}')

if __name__ == '__main__': main()
