"""Benchmark (issue 16): active learning on digits, every strategy against random, as a `cvkit sweep`.

Target: the best uncertainty strategy (least-confidence, margin or entropy) reaches the accuracy that random
sampling reaches with the full pool using <= 60% of the pool's labels.

Runs `cvkit sweep experiments/active.ipynb` over strategies x seeds (the real command), reads the per-round curves
back with `cvkit.curate.active.learning_curves`, saves them to benchmarks/results/active_curves.csv (the
03_active notebook draws them) and prints a markdown table for BENCHMARKS.md. Random sampling is the baseline,
measured in the same sweep.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/active.py [--seeds 0,1,2] [--workers 2]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/active.py --sweep-dir runs/active-digits   # summarise a finished sweep
"""
import argparse, os, platform, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
from cvkit.curate.active import UNCERTAINTY, labels_needed, learning_curves, summarize_curves

STRATS = 'random,least_confidence,margin,entropy,coreset,badge'

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--strategies', default=STRATS); ap.add_argument('--sweep-dir', default=None)
    a = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    wall = None
    if a.sweep_dir is None:
        name = f'active-bench-{time.strftime("%Y%m%d-%H%M%S")}'
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent/'cvkit'), 'sweep', str(root/'experiments'/'active.ipynb'), '-p', f'strategy={a.strategies}',
                        '--seeds', a.seeds, '--workers', str(a.workers), '--root', str(root/'runs'), '--name', name, '--no-progress'],
                       check=True, stdout=subprocess.DEVNULL)
        wall, a.sweep_dir = time.perf_counter() - t0, root/'runs'/name
    curves = learning_curves(a.sweep_dir)
    out = root/'benchmarks'/'results'/'active_curves.csv'
    curves.to_csv(out, index=False)
    pool = 1258
    s = summarize_curves(curves)
    need = labels_needed(curves).set_index('strategy')
    near = labels_needed(curves, float(need.target.iloc[0]) - 0.005).set_index('strategy')
    full = curves.groupby('run_id').agg(full=('full_pool_accuracy', 'first'), seed=('seed', 'first'))
    from scipy import stats
    fm, fs, fn = full.full.mean(), full.full.std(ddof=1), len(full)
    per_seed = {}
    for (k, seed), g in curves.groupby(['strategy', 'seed']):
        f = g.full_pool_accuracy.iloc[0]; hit = g[g.accuracy >= f]
        per_seed.setdefault(k, []).append(int(hit.labels.iloc[0]) if len(hit) else None)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores ({platform.machine()}), shared, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
          + (f"; sweep wall {wall / 60:.1f} min" if wall else ''))
    print(f"sweep: {a.sweep_dir}; curves saved to {out.relative_to(root)}")
    print(f"full-pool accuracy (every one of the {pool} pool labels; {fn} trainings, one per run): mean {fm:.4f}, "
          f"runs {full.full.min():.4f}-{full.full.max():.4f}\n")
    marks = [80, 160, 320, 720]
    print('| strategy | ' + ' | '.join(f'accuracy at {m} labels ({m / pool:.0%})' for m in marks) +
          f' | labels to reach the full-pool mean {fm:.4f} (mean curve) | per seed (own full-pool run) | within 0.5 points (supplementary) |')
    print('|---|' + '---|' * (len(marks) + 3))
    for k in a.strategies.split(','):
        if k not in need.index: print(f'| {k} | no completed runs |'); continue
        g = s[s.strategy == k].set_index('labels')
        cells = [f'{g.accuracy[m]:.4f} [{g.lo[m]:.4f}, {g.hi[m]:.4f}]' if m in g.index else '-' for m in marks]
        n = need.labels.get(k)
        nl = f'**{int(n)} ({int(n) / pool:.1%})**' if n is not None and not pd.isna(n) else f'not reached by {int(need.max_labels[k])} ({need.max_labels[k] / pool:.0%})'
        nn = near.labels.get(k)
        nr = f'{int(nn)} ({int(nn) / pool:.1%})' if nn is not None and not pd.isna(nn) else 'not reached'
        print(f'| {k} | ' + ' | '.join(cells) + f' | {nl} | {per_seed.get(k)} | {nr} |')
    unc = need.loc[[u for u in UNCERTAINTY if u in need.index]].dropna(subset=['labels'])
    if len(unc):
        best = unc.labels.astype(int).idxmin()
        frac = unc.labels[best] / pool
        print(f'\nbest uncertainty strategy: {best}, {int(unc.labels[best])} labels = {frac:.1%} of the pool (target <= 60%: '
              f'{"met" if frac <= 0.6 else "NOT met"})')
    else: print('\nno uncertainty strategy reached the full-pool accuracy within the rounds run: target not met in the measured range')

if __name__ == '__main__': main()
