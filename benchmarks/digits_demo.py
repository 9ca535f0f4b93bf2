"""Benchmark: the flagship demo's accuracy and time on digits (targets: >= 97% test accuracy; the whole demo sweep,
2 backbones x 2 seeds, <= 5 min on 2 CPU cores).

Runs `cvkit demo` (the real command) and, on the same split in the same run, a scikit-learn baseline on the
raw 8x8 pixels (logistic regression), then prints a markdown table for BENCHMARKS.md.

    .venv/bin/python benchmarks/digits_demo.py
"""
import json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from cvkit.data.builtin import digits

def main():
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent/'cvkit'), 'demo', '--root', str(out), '--name', 'bench', '--no-progress'],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    import pandas as pd
    runs = pd.read_csv(out/'bench'/'summary.csv')
    ds = digits(size=32, seed=0)            # same split as the demo (seed 0)
    X = load_digits().data; order = {f'digits-{i:04d}': i for i in range(len(X))}
    idx = lambda s: np.array([order[i] for i in ds.split(s).ids])
    t1 = time.perf_counter()
    lr = LogisticRegression(max_iter=2000).fit(X[idx('train')], ds.split('train').targets)
    base_acc = float((lr.predict(X[idx('test')]) == ds.split('test').targets).mean()); base_s = time.perf_counter() - t1
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch threads {__import__('torch').get_num_threads()}")
    print(f"`cvkit demo` (2 backbones x 2 seeds, 2 workers): **{wall:.0f} s** wall, process start to exit (target <= 300 s)\n")
    print('| model | test accuracy (n) | train time | ')
    print('|---|---|---|')
    for r in runs.itertuples():
        print(f"| cvkit demo run: {runs.loc[r.Index, 'p:backbone']}, seed {runs.loc[r.Index, 'p:seed']}, 20 epochs, from scratch | "
              f"{runs.loc[r.Index, 'm:accuracy']:.4f} (269) | {runs.loc[r.Index, 'm:train_seconds']:.1f} s |")
    print(f"| baseline: sklearn LogisticRegression on raw 8x8 pixels (seed-0 split) | {base_acc:.4f} ({len(idx('test'))}) | {base_s:.1f} s |")

if __name__ == '__main__': main()
