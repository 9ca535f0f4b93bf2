"""Per-image speed of cvkit's batched torch corruptions against the `imagecorruptions` reference, side by side.

    OMP_NUM_THREADS=2 python benchmarks/corruption_speed.py --threads 2 --batch 32 --out benchmarks/results/robustness_2threads.md

Both run in this process on 224x224 photographs (scikit-image samples) at severity 3. The reference corrupts one
uint8 image per call; cvkit corrupts a float batch. Reported: ms per image for each, and the speed-up.
"""
import argparse, os, platform, sys, time, warnings
warnings.filterwarnings('ignore', message='.*pkg_resources.*')
import numpy as np
import torch
from cvkit.robustness.corruptions import corruption_names, corrupt, reference_corrupt, sample_photos, to_uint8

def _time(fn, reps):
    fn()                                              # warm-up (allocations, FFT plans)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return float(np.median(ts))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2, help='torch intra-op threads (the reference is single-threaded numpy/OpenCV)')
    ap.add_argument('--batch', type=int, default=32, help='images per cvkit call')
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--severity', type=int, default=3)
    ap.add_argument('--ref-images', type=int, default=6, help='reference calls per corruption (glass blur: 1)')
    ap.add_argument('--reps', type=int, default=3, help='timed repetitions of each cvkit batch (median)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--out', default=None, help='also write the markdown here')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        import cv2; cv2.setNumThreads(a.threads)
    except ImportError: pass
    load0 = os.getloadavg()[0]
    photos = sample_photos(a.size)
    x = photos.repeat(-(-a.batch // len(photos)), 1, 1, 1)[:a.batch].contiguous().to(a.device)
    u8 = to_uint8(photos)
    rows = []
    for nm in corruption_names('reference'):
        sync = (lambda: torch.cuda.synchronize()) if a.device.startswith('cuda') else (lambda: None)
        ours = _time(lambda: (corrupt(x, nm, a.severity, seed=0), sync()), a.reps) / a.batch * 1000
        k = 1 if nm == 'glass_blur' else a.ref_images
        t = time.perf_counter()
        for i in range(k): reference_corrupt(u8[i % len(u8)], nm, a.severity, seed=i)
        ref = (time.perf_counter() - t) / k * 1000
        rows.append((nm, ref, ours))
        print(f'{nm:18s} reference {ref:8.2f} ms  cvkit {ours:7.3f} ms  {ref / ours:7.1f}x', file=sys.stderr, flush=True)
    ref_m, our_m = np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
    nog = [r for r in rows if r[0] != 'glass_blur']
    ref_ng, our_ng = np.mean([r[1] for r in nog]), np.mean([r[2] for r in nog])
    geo = float(np.exp(np.mean([np.log(r[1] / r[2]) for r in rows])))
    cmd = 'OMP_NUM_THREADS=' + str(a.threads) + ' python benchmarks/corruption_speed.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    dev = torch.cuda.get_device_name() if a.device.startswith('cuda') else f'{platform.processor() or platform.machine()}, {a.threads} CPU threads'
    lines = ['## Robustness: corruption speed', '',
             f'{a.size}x{a.size} photos, severity {a.severity}, cvkit batch {a.batch} on {a.device} ({dev}); reference `imagecorruptions` '
             f'one uint8 image per call (patched for numpy 2 / scikit-image 0.26), same process, same run. Machine: {os.cpu_count()} CPU cores, '
             f'load average {load0:.2f} at the start and {os.getloadavg()[0]:.2f} at the end (this process included); single run.', '',
             f'Command: `{cmd}`', '',
             '| corruption | reference ms/image | cvkit ms/image | speed-up |', '|---|---:|---:|---:|']
    lines += [f'| {n} | {r:.2f} | {o:.3f} | {r / o:.1f}x |' for n, r, o in rows]
    lines += [f'| **mean over {len(rows)} shared corruptions** | **{ref_m:.2f}** | **{our_m:.3f}** | **{ref_m / our_m:.1f}x** |',
              f'| mean without glass blur | {ref_ng:.2f} | {our_ng:.3f} | {ref_ng / our_ng:.1f}x |',
              f'| geometric mean of per-corruption speed-ups | | | {geo:.1f}x |', '']
    md = '\n'.join(lines)
    print(md)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or '.', exist_ok=True)
        with open(a.out, 'w') as f: f.write(md + '\n')
    return rows

if __name__ == '__main__': main()
