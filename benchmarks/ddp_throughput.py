"""Benchmark: training throughput of `fit` in 2 DDP processes (torchrun, gloo) against 1 process, on this machine.

Three ways to use the same cores on the same run (the experiment notebook's model, `cvkit_cnn_small` on digits at
32x32, global batch 64, no augmentation, no validation beyond a small split):

- 1 process, 1 thread   (OMP_NUM_THREADS=1)
- 1 process, N threads  (OMP_NUM_THREADS=N: the fair baseline, it uses every core too)
- N processes, 1 thread each, under torchrun (gloo on the CPU; each takes half of every global batch)

Throughput is training images per second over the epochs after the first (`fit`'s `imgs_per_s`, counted over all
processes); `wall` is the whole command, torchrun's start and the imports included. Variants are interleaved over
`--rounds` and the median is reported. On a GPU machine pass `--device cuda` (one process per GPU, nccl).

    OMP_NUM_THREADS=1 python benchmarks/ddp_throughput.py [--nproc 2] [--epochs 4] [--n-train 1024] [--rounds 2]
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(cfg:dict, nproc:int, threads:int, tmp:Path, tag:str)->dict:
    out = tmp/tag
    path = tmp/f'{tag}.yaml'; path.write_text(yaml.safe_dump(dict(cfg, out=str(out))))
    cmd = [sys.executable, '-m', 'cvkit.train_cli', str(path)] + (['--nproc', str(nproc)] if nproc > 1 else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if r.returncode: raise SystemExit(f'{tag} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}')
    hist = json.loads((out/'checkpoints/last.json').read_text())['meta']['history']
    ips = [h['imgs_per_s'] for h in hist[1:]] or [hist[0]['imgs_per_s']]
    return dict(imgs_per_s=statistics.median(ips), train_s=sum(h['seconds'] for h in hist), wall_s=wall,
                final_loss=hist[-1]['train_loss'])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nproc', type=int, default=2); ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--n-train', type=int, default=1024); ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--backbone', default='cvkit_cnn_small'); ap.add_argument('--device', default='cpu')
    a = ap.parse_args()
    n = a.nproc
    cfg = dict(backbone=a.backbone, dataset='digits', size=32, augment='none', epochs=a.epochs, batch_size=64, n_train=a.n_train,
               n_valid=64, lr=3e-3, device=a.device, progress=False)
    variants = [(f'1 process x 1 thread', 1, 1), (f'1 process x {n} threads', 1, n), (f'{n} processes x 1 thread (DDP, '
                f"{'nccl' if a.device == 'cuda' else 'gloo'})", n, 1)]
    tmp = Path(tempfile.mkdtemp(prefix='ddp_bench_'))
    load0 = os.getloadavg()
    res = {v[0]: [] for v in variants}
    for k in range(a.rounds):
        for name, procs, threads in variants:
            res[name].append(run(cfg, procs, threads, tmp, f'r{k}_{procs}p{threads}t'))
            print(f'round {k}: {name}: {res[name][-1]}', flush=True)
    load1 = os.getloadavg()
    med = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in res.items()}
    base = med[variants[1][0]]['imgs_per_s']
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; device {a.device}; "
          f"load average before {load0[0]:.2f}, after {load1[0]:.2f}; {a.rounds} interleaved rounds, medians")
    print(f'config: {cfg}\n')
    print('| variant | train images/s | x 1 process with all cores | x 1 process 1 thread | train s | wall s (incl. start) | final train loss |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    one = med[variants[0][0]]['imgs_per_s']
    for name, *_ in variants:
        m = med[name]
        print(f"| {name} | {m['imgs_per_s']:.0f} | {m['imgs_per_s'] / base:.2f}x | {m['imgs_per_s'] / one:.2f}x | {m['train_s']:.1f} | "
              f"{m['wall_s']:.1f} | {m['final_loss']:.4f} |")


if __name__ == '__main__': main()
