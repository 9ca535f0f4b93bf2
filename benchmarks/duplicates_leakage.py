"""Benchmark (issue 16): find near-duplicates of training images injected into the test split.

Target: 100 near-copies of digits training images (JPEG quality 50, resize 0.8-1.2, 2-pixel shift, brightness
+-10%) injected into the test split are found with precision >= 0.95 and recall >= 0.95. Each cvkit method picks
its threshold on its own check set (near-copies of *other* images, seed 1); the baseline, in the same run, is plain
`imagehash.phash` over all test x train pairs with the customary fixed Hamming threshold. Shapes adds a horizontal
flip to the perturbation. Precision and recall are over the cross-split pairs reported (a pair is right when it
joins a copy to its own source).

    .venv/bin/python benchmarks/duplicates_leakage.py            # writes benchmarks/results/curate_leakage.md
"""
import os, platform, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
from PIL import Image
import imagehash
from cvkit.data.builtin import digits, shapes
from cvkit.curate.duplicates import inject_near_duplicates, injection_study

def phash_baseline(ds, n=100, seed=0, max_distance=8, copy_kw=None):
    "imagehash.phash of every test and train image; a test image whose nearest train hash is within `max_distance` bits is a copy of it."
    inj, truth = inject_near_duplicates(ds, n, seed=seed, **(copy_kw or {}))
    t0 = time.perf_counter()
    h = np.stack([imagehash.phash(Image.fromarray(inj.load_image(i))).hash.ravel() for i in range(len(inj))])
    tr, te = np.flatnonzero(inj.df.split == 'train'), np.flatnonzero(inj.df.split == 'test')
    D = (h[te][:, None] != h[tr][None]).sum(2)
    j = D.argmin(1); hit = D.min(1) <= max_distance
    pairs = set(zip(inj.ids[te][hit], inj.ids[tr][j[hit]]))
    true = set(zip(truth.id, truth.source_id))
    tp = len(pairs & true)
    return dict(method=f'baseline: imagehash.phash, Hamming <= {max_distance} (fixed)', n_found=len(pairs), true_pairs=tp,
                precision=tp / max(len(pairs), 1), recall=tp / n, threshold=max_distance, seconds=time.perf_counter() - t0)

def row(name, r):
    cs = r.get('check_set') or {}
    chk = f"{cs['precision']:.3f} / {cs['recall']:.3f}" if 'f1' in cs else '–'
    return (f"| {name} | {r['method']} | {r['n_found']} | {r['true_pairs']} | **{r['precision']:.3f}** | **{r['recall']:.3f}** | "
            f"{r['threshold']:.4g} | {chk} | {r['seconds']:.1f} |")

def main():
    out = [f"machine: {os.cpu_count()} cores ({platform.machine()}), load average before: "
           f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; command: `{' '.join([Path(sys.executable).name] + sys.argv)}`", '',
           '| data | method | pairs reported | true pairs | precision | recall | threshold | check set P / R | scan s |',
           '|---|---|---|---|---|---|---|---|---|']
    d32 = digits(size=32)
    for seed in (0, 1, 2):
        out.append(row(f'digits 32px, seed {seed}', injection_study(d32, n=100, seed=seed, method='verify')))
    for m in ('embedding', 'phash'):
        out.append(row('digits 32px, seed 0', injection_study(d32, n=100, seed=0, method=m)))
    for dist in (4, 8, 12):
        out.append(row('digits 32px, seed 0', phash_baseline(d32, max_distance=dist)))
    sh = shapes(n=1000, size=64)
    out.append(row('shapes 64px + flip, seed 0', injection_study(sh, n=100, seed=0, method='verify', flip=True, copy_kw=dict(flip=True))))
    sh0 = shapes(n=1000, size=64, low_light_frac=0.0)
    out.append(row('shapes 64px + flip, no low light', injection_study(sh0, n=100, seed=0, method='verify', flip=True, copy_kw=dict(flip=True))))
    out.append(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    text = '\n'.join(out) + '\n'
    print(text)
    res = Path(__file__).parent/'results'/'curate_leakage.md'
    res.parent.mkdir(exist_ok=True); res.write_text(text)

if __name__ == '__main__': main()
