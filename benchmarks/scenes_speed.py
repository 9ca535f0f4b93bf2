"""Generation speed of the `scenes` detection dataset beside the one-object `shapes` built-in, side by side.

    OMP_NUM_THREADS=1 python benchmarks/scenes_speed.py --n 1000 --size 128 --out benchmarks/results/scenes_speed.md

Both generate `n` images of `size` pixels in this process, single-threaded numpy/PIL. Reported per generator: wall
seconds and this process's CPU seconds (median of `--reps`), and per image. CPU seconds are steadier than wall
seconds on a shared machine; the load average before and after is printed with them.
"""
import argparse, os, platform, time
import numpy as np
from cvkit.data.builtin import shapes
from cvkit.data.scenes import scenes

def _time(fn, reps):
    walls, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t); cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=1000)
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--out', default=None, help='also write the markdown here')
    a = ap.parse_args(argv)
    load0 = os.getloadavg()
    rows = []
    for name, fn in [('scenes', lambda: scenes(a.n, size=a.size)), ('shapes (baseline, 1 object)', lambda: shapes(a.n, size=a.size))]:
        w, c = _time(fn, a.reps)
        rows.append(f"| {name} | {w:.2f} | {c:.2f} | {1e3*c/a.n:.2f} |")
    ds = scenes(a.n, size=a.size)
    load1 = os.getloadavg()
    md = '\n'.join([f"{a.n} images at {a.size}x{a.size} px, median of {a.reps}; {platform.processor() or platform.machine()}, "
                    f"{os.cpu_count()} cores; load average {load0[0]:.2f} before, {load1[0]:.2f} after; "
                    f"scenes hold {ds.df.n_objects.sum()} objects ({ds.df.n_objects.mean():.2f} per image).", '',
                    '| generator | wall s | CPU s | CPU ms / image |', '|---|---|---|---|', *rows])
    print(md)
    if a.out: os.makedirs(os.path.dirname(a.out) or '.', exist_ok=True); open(a.out, 'w').write(md + '\n')

if __name__ == '__main__': main()
