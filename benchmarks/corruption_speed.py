"""Per-image speed of cvkit's batched torch corruptions against the `imagecorruptions` reference, side by side.

    OMP_NUM_THREADS=2 python benchmarks/corruption_speed.py --threads 2 --batch 32 --ref-images 6 --out benchmarks/results/robustness_2threads.md

Both run in this process on 224x224 photographs (scikit-image samples) at severity 3. The reference corrupts one
uint8 image per call; cvkit corrupts a float batch. The two are timed alternately (ours, reference, reference, ours,
...) for `--reps` rounds per corruption, so both see the same machine load; reported are the medians over rounds (ms
per image), their ratio (the speed-up), the spread of the per-round ratios, the minimum speed-up and the geometric
mean over corruptions, and PASS/FAIL against the targets (no corruption slower than the reference; geometric mean of
the speed-ups >= 5x). The load average is sampled before every corruption and printed.
"""
import argparse, os, platform, sys, time, warnings
warnings.filterwarnings('ignore', message='.*pkg_resources.*')
import numpy as np
import torch
from cvkit.robustness.corruptions import corruption_names, corrupt, reference_corrupt, sample_photos, to_uint8

def _clock(fn):
    "(wall seconds, process CPU seconds: all threads) of one call."
    t, c = time.perf_counter(), time.process_time(); fn(); return time.perf_counter() - t, time.process_time() - c

def measure(ours, ref, reps:int):
    "Time `ours` and `ref` alternately for `reps` rounds (the first of the pair alternates); returns the per-round times."
    ours(); ref()                                     # warm-up (allocations, FFT plans, imports)
    to, tr = [], []
    for r in range(reps):
        if r % 2 == 0: to.append(_clock(ours)); tr.append(_clock(ref))
        else: tr.append(_clock(ref)); to.append(_clock(ours))
    return np.array(to).T, np.array(tr).T            # (wall, cpu) x rounds

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2, help='torch intra-op threads (the reference is single-threaded numpy/OpenCV/PIL)')
    ap.add_argument('--batch', type=int, default=32, help='images per cvkit call')
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--severity', type=int, default=3)
    ap.add_argument('--ref-images', type=int, default=6, help='reference calls per round (glass blur: 1)')
    ap.add_argument('--reps', type=int, default=7, help='interleaved rounds per corruption (medians reported)')
    ap.add_argument('--glass-reps', type=int, default=3, help='rounds for glass blur (the reference takes 2-4 s per image)')
    ap.add_argument('--min-speedup', type=float, default=1.0, help='target: every corruption at least this many times faster')
    ap.add_argument('--geomean-target', type=float, default=5.0, help='target: geometric mean of the speed-ups')
    ap.add_argument('--only', nargs='*', default=None, help='time only these corruptions (targets are then not judged)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--out', default=None, help='also write the markdown here')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        import cv2; cv2.setNumThreads(a.threads)
    except ImportError: pass
    photos = sample_photos(a.size)
    x = photos.repeat(-(-a.batch // len(photos)), 1, 1, 1)[:a.batch].contiguous().to(a.device)
    u8 = to_uint8(photos)
    sync = (lambda: torch.cuda.synchronize()) if a.device.startswith('cuda') else (lambda: None)
    names = corruption_names('reference') if not a.only else list(a.only)
    loads, rows, t0 = [os.getloadavg()], [], time.perf_counter()
    for nm in names:
        loads.append(os.getloadavg())
        k = 1 if nm == 'glass_blur' else a.ref_images
        def ref():
            for i in range(k): reference_corrupt(u8[i % len(u8)], nm, a.severity, seed=i)
        to, tr = measure(lambda: (corrupt(x, nm, a.severity, seed=0), sync()), ref, a.glass_reps if nm == 'glass_blur' else a.reps)
        to, tr = to / a.batch * 1000, tr / k * 1000
        rr = tr[0] / to[0]                             # per-round speed-ups (same round, same load)
        rows.append((nm, float(np.median(tr[0])), float(np.median(to[0])), float(rr.min()), float(rr.max()), to.shape[1], loads[-1][0],
                     float(np.median(tr[1])), float(np.median(to[1]))))
        r = rows[-1]
        print(f'{nm:18s} reference {r[1]:8.2f} ms  cvkit {r[2]:7.3f} ms  {r[1] / r[2]:7.1f}x  (rounds {r[3]:.1f}-{r[4]:.1f}x, load {r[6]:.2f}; '
              f'CPU ms {r[7]:.2f} vs {r[8]:.3f}: {r[7] / r[8]:.1f}x)', file=sys.stderr, flush=True)
    loads.append(os.getloadavg())
    sp = np.array([r[1] / r[2] for r in rows])
    geo, worst = float(np.exp(np.mean(np.log(sp)))), rows[int(np.argmin(sp))]
    ref_m, our_m = np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
    cmd = 'OMP_NUM_THREADS=' + os.environ.get('OMP_NUM_THREADS', '?') + ' python benchmarks/corruption_speed.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    dev = torch.cuda.get_device_name() if a.device.startswith('cuda') else f'{platform.processor() or platform.machine()}, {a.threads} CPU threads'
    l1 = [l[0] for l in loads]
    lines = ['## Robustness: corruption speed', '',
             f'{a.size}x{a.size} photos, severity {a.severity}, cvkit batch {a.batch} on {a.device} ({dev}); reference `imagecorruptions` '
             f'one uint8 image per call (patched for numpy 2 / scikit-image 0.26), same process. Timed alternately, {a.reps} rounds per '
             f'corruption ({a.glass_reps} for glass blur; reference {a.ref_images} images per round, 1 for glass blur); medians. '
             f'Machine: {os.cpu_count()} CPU cores, shared; 1-minute load average {loads[0][0]:.2f} at the start, {loads[-1][0]:.2f} at the end, '
             f'{min(l1):.2f}-{max(l1):.2f} over the run (5-minute: {loads[0][1]:.2f} to {loads[-1][1]:.2f}; this process included). '
             f'torch {torch.__version__}; run took {time.perf_counter() - t0:.0f} s.', '',
             f'Command: `{cmd}`', '',
             'Wall-clock times decide the targets. The CPU columns are process CPU time per image (all threads, spin-waits '
             'included), shown because on a loaded machine wall time also measures the wait for a core.', '',
             '| corruption | reference ms/image | cvkit ms/image | speed-up | per-round speed-ups (rounds) | load (1 min) | CPU ms/image: reference / cvkit (ratio) |',
             '|---|---:|---:|---:|---:|---:|---:|']
    lines += [f'| {n} | {r:.2f} | {o:.3f} | {r / o:.1f}x | {lo:.1f}-{hi:.1f}x ({k}) | {ld:.2f} | {cr:.2f} / {co:.3f} ({cr / co:.1f}x) |'
              for n, r, o, lo, hi, k, ld, cr, co in rows]
    cgeo = float(np.exp(np.mean([np.log(r[7] / r[8]) for r in rows])))
    lines += [f'| mean time over {len(rows)} corruptions | {ref_m:.2f} | {our_m:.3f} | {ref_m / our_m:.1f}x | | | |',
              f'| **minimum speed-up** ({worst[0]}) | | | **{worst[1] / worst[2]:.2f}x** | | | |',
              f'| **geometric mean of the speed-ups** | | | **{geo:.2f}x** | | | {cgeo:.2f}x |', '']
    if not a.only:
        ok1, ok2 = worst[1] / worst[2] >= a.min_speedup, geo >= a.geomean_target
        lines += [f'- {"PASS" if ok1 else "FAIL"}: no corruption slower than {a.min_speedup:g}x the reference '
                  f'(minimum {worst[1] / worst[2]:.2f}x, {worst[0]})',
                  f'- {"PASS" if ok2 else "FAIL"}: geometric mean of the speed-ups >= {a.geomean_target:g}x (measured {geo:.2f}x)', '']
    md = '\n'.join(lines)
    print(md)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or '.', exist_ok=True)
        tmp = a.out + '.tmp'
        with open(tmp, 'w') as f: f.write(md + '\n')
        os.replace(tmp, a.out)
    return rows

if __name__ == '__main__': main()
