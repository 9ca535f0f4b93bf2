"""Speed of one MMD permutation test (issue 18 target: 1,000 permutations on two 1,000 x 512 windows <= 1 s on 2 cores).

    OMP_NUM_THREADS=2 python benchmarks/mmd_speed.py [--naive-perms 1000] [--repeats 5]

cvkit's vectorised `mmd_test` against the textbook loop over permutations (`_mmd_naive`: slice the kernel blocks per
permutation), on the same data and the same permutations, so their p-values must agree. alibi-detect is not installed
in this environment (pip resolves only alibi-detect 0.4.4 with TensorFlow 2.21 under cvkit's pins), so the naive
implementation is the anchor. Writes benchmarks/results/mmd_speed.md.
"""
import argparse, os, platform, sys, time
from pathlib import Path
import numpy as np
from cvkit.monitor.drift import mmd_test, _mmd_naive

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=1000); ap.add_argument('--d', type=int, default=512)
    ap.add_argument('--perms', type=int, default=1000); ap.add_argument('--naive-perms', type=int, default=1000)
    ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--out', default='benchmarks/results/mmd_speed.md')
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.n, a.d)).astype(np.float32); y = (rng.normal(size=(a.n, a.d)) + 0.02).astype(np.float32)
    load0 = os.getloadavg()
    mmd_test(x, y, a.perms)  # warm-up (BLAS threads)
    ts, cpu = [], []
    for _ in range(a.repeats):
        t, c = time.perf_counter(), time.process_time(); r = mmd_test(x, y, a.perms)
        ts.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
    t = time.perf_counter(); stat, p = _mmd_naive(x, y, a.naive_perms); tn = time.perf_counter() - t
    rs = mmd_test(x, y, a.naive_perms)
    load1 = os.getloadavg()
    lines = ['| implementation | permutations | time (s) | per 1,000 permutations (s) | MMD² | p-value |', '|---|---|---|---|---|---|',
             f'| cvkit `mmd_test` (vectorised), median of {a.repeats} | {a.perms} | {np.median(ts):.3f} (min {min(ts):.3f}, max {max(ts):.3f}) | '
             f'{np.median(ts) * 1000 / a.perms:.3f} | {r.statistic:.6g} | {r.p_value:.4g} |',
             f'| (its CPU time, both threads together: median {np.median(cpu):.3f} s, so about {np.median(cpu) / 2:.2f} s of wall time on two idle cores) | | | | | |',
             f'| naive loop over permutations (float64) | {a.naive_perms} | {tn:.2f} | {tn * 1000 / a.naive_perms:.2f} | {stat:.6g} | {p:.4g} |',
             f'| cvkit on the naive run\'s permutations | {a.naive_perms} | | | {rs.statistic:.6g} | {rs.p_value:.4g} |']
    head = (f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python benchmarks/mmd_speed.py "
            f"{' '.join(sys.argv[1:] if argv is None else argv)}`; {a.n} vs {a.n} rows of {a.d}-d; machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load average {load0[0]:.1f} before, {load1[0]:.1f} after (shared machine). Speed-up "
            f"{tn * 1000 / a.naive_perms / (np.median(ts) * 1000 / a.perms):.0f}x per permutation.\n\n")
    md = head + '\n'.join(lines) + '\n'
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(md); print(md)

if __name__ == '__main__': main()
