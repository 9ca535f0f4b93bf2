"""Benchmark: every GPU speed path of cvkit in one short run; prints "no GPU" and exits 0 on a machine without CUDA.

1. `fit` training throughput of a timm ResNet-18 (no weights) at 128x128, global batch 256, on GPU-resident random
   data (so the loader is not what is measured): fp32, `amp='bf16'`, bf16 + `channels_last`, bf16 + channels-last
   + `compile`. Images/s is the median of the epochs after the first (the first includes compilation).
2. `predict` correctness on the GPU: the bf16, channels-last and compiled paths against fp32 (top-1 agreement and
   max logit difference) on the digits test split.
3. Inference latency and throughput (`cvkit.deploy.bench.benchmark`) at 224x224, batch 1 and 64: CUDA eager
   fp32/fp16/bf16, bf16 autocast + channels-last, torch.compile (+ bf16 + channels-last), onnxruntime's CUDA and
   TensorRT execution providers (skipped, with the reason, where onnxruntime-gpu or TensorRT is missing).
4. DDP over nccl with `benchmarks/ddp_throughput.py --device cuda` when the machine has 2 GPUs or more.

    python benchmarks/gpu.py [--out benchmarks/results/gpu.md]      # about 3-5 minutes on one GPU
    python benchmarks/gpu.py --smoke                                 # the same code at tiny sizes on the CPU (a check, not a measurement)
"""
import argparse, copy, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# sizes of the real run; `--smoke` shrinks them and runs the same code on the CPU, to check the script without a GPU
S = dict(dev='cuda', n=4096, px=128, batch=256, epochs=4, infer_px=224, batches=(1, 64), iters=60, max_s=6.0)
SMOKE = dict(dev='cpu', n=64, px=32, batch=16, epochs=2, infer_px=32, batches=(1, 4), iters=4, max_s=1.0)


def train_rows(torch):
    from torch.utils.data import TensorDataset
    from cvkit.models.factory import create_model
    from cvkit.train import fit
    g = torch.Generator(device=S['dev']).manual_seed(0)
    x = torch.randn(S['n'], 3, S['px'], S['px'], device=S['dev'], generator=g); y = torch.randint(0, 10, (S['n'],), device=S['dev'], generator=g)
    ds = TensorDataset(x, y)
    rows = []
    for name, kw in [('fp32', dict(amp=False)), ('bf16 autocast', dict(amp='bf16')), ('bf16 + channels_last', dict(amp='bf16', channels_last=True)),
                     ('bf16 + channels_last + compile', dict(amp='bf16', channels_last=True, compile=True))]:
        torch.manual_seed(0); m = create_model('resnet18', num_classes=10)
        t0 = time.perf_counter()
        try: r = fit(m, ds, epochs=S['epochs'], batch_size=S['batch'], lr=1e-3, device=S['dev'], progress=False, **kw)
        except Exception as e: rows.append((name, f'failed: {type(e).__name__}: {str(e)[:200]}', '', '', '')); continue
        h = r.history
        rows.append((name, f'{statistics.median(h.imgs_per_s.iloc[1:]):.0f}', f'{h.seconds.iloc[0]:.1f}', f'{time.perf_counter() - t0:.1f}',
                     f'{h.train_loss.iloc[-1]:.4f}'))
        print('fit', rows[-1], flush=True)
    return rows


def predict_rows(torch):
    import numpy as np
    from cvkit.data.builtin import digits
    from cvkit.models.factory import create_model
    from cvkit.train import fit
    from cvkit.evaluate.predictions import predict
    ds = digits(size=32, seed=0)
    torch.manual_seed(0); m = create_model('cvkit_cnn_small', num_classes=10)
    fit(m, ds.split('train'), epochs=3 if S['dev'] == 'cuda' else 1, lr=3e-3, device=S['dev'], progress=False)
    test = ds.split('test'); ref = predict(m, test, device=S['dev'])
    rows = [('fp32', f'{(ref.preds == test.targets).mean():.4f}', '1.0000', '0')]
    for name, kw in [('bf16 autocast', dict(amp='bf16')), ('channels_last', dict(channels_last=True)),
                     ('compile', dict(compile=True, batch_size=len(test))), ('bf16 + channels_last + compile', dict(amp='bf16', channels_last=True, compile=True, batch_size=len(test)))]:
        try: p = predict(copy.deepcopy(m), test, device=S['dev'], **kw)
        except Exception as e: rows.append((name, f'failed: {type(e).__name__}: {str(e)[:200]}', '', '')); continue
        rows.append((name, f'{(p.preds == test.targets).mean():.4f}', f'{(p.preds == ref.preds).mean():.4f}', f'{np.abs(p.logits - ref.logits).max():.2e}'))
        print('predict', rows[-1], flush=True)
    return rows


def deploy_report(torch, tmp):
    from cvkit.accel import autocast, use_channels_last
    from cvkit.models.factory import create_model
    from cvkit.deploy.export import export_onnx
    from cvkit.deploy.bench import Runtime, benchmark, compile_runtime, eager_runtime, gpu_runtimes
    torch.manual_seed(0); net = create_model('resnet18', num_classes=1000).eval()
    onnx = export_onnx(net, tmp/'resnet18.onnx', input_size=(3, S['infer_px'], S['infer_px']))

    def autocast_runtime(name, compile=False):
        m = copy.deepcopy(net).to(S['dev']).eval(); use_channels_last(m)
        f = torch.compile(m) if compile else m
        def fn(x):
            with torch.inference_mode(), autocast(S['dev'], 'bf16'): y = f(torch.from_numpy(x).to(S['dev']))
            if S['dev'] == 'cuda': torch.cuda.synchronize()
            return y
        return Runtime(name, fn, 'torch', S['dev'])
    first = gpu_runtimes(net, onnx) if S['dev'] == 'cuda' else [eager_runtime(copy.deepcopy(net), 'eager_cuda_fp32')]
    rts = [*first, autocast_runtime('cuda_bf16_autocast_channels_last'), compile_runtime(net, 'compile_cuda_fp32', S['dev']),
           autocast_runtime('compile_cuda_bf16_channels_last', compile=True)]
    return benchmark(rts, input_size=(3, S['infer_px'], S['infer_px']), batch_sizes=S['batches'], threads=None, iters=S['iters'], warmup=2,
                     max_seconds=S['max_s'], baseline='eager_cuda_fp32')


def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--out', default=str(ROOT/'benchmarks/results/gpu.md'))
    ap.add_argument('--smoke', action='store_true', help='tiny sizes on the CPU: checks that the script runs, measures nothing')
    a = ap.parse_args()
    import torch
    if a.smoke: S.update(SMOKE); a.out = str(Path(tempfile.mkdtemp())/'gpu_smoke.md')
    elif not torch.cuda.is_available():
        print('no GPU: torch.cuda.is_available() is False here; nothing measured. Run this on a CUDA machine.'); return 0
    tmp = Path(tempfile.mkdtemp(prefix='cvkit_gpu_'))
    torch.backends.cudnn.benchmark = True
    head = (f"GPU: {torch.cuda.get_device_name(0) if S['dev'] == 'cuda' else 'none (--smoke on the CPU)'} x {torch.cuda.device_count()}; torch {torch.__version__}; "
            f'CPU cores {os.cpu_count()}; command: python benchmarks/gpu.py')
    print(head, flush=True)
    t0 = time.perf_counter()
    out = [f'# GPU speed paths\n\n{head}\n', f"## fit: ResNet-18, {S['px']}x{S['px']}, global batch {S['batch']}, device-resident random data, {S['epochs']} epochs of {S['n'] // S['batch']} steps\n",
           '| switches | train images/s (median, epochs 2-4) | first epoch s | total s | final train loss |', '|---|---:|---:|---:|---:|']
    out += ['| ' + ' | '.join(r) + ' |' for r in train_rows(torch)]
    out += ['\n## predict on the GPU against fp32 (cvkit_cnn_small trained 3 epochs on digits, test split)\n',
            '| switches | accuracy | top-1 agreement with fp32 | max abs logit diff |', '|---|---:|---:|---:|']
    out += ['| ' + ' | '.join(r) + ' |' for r in predict_rows(torch)]
    rep = deploy_report(torch, tmp)
    out += [f"\n## inference: ResNet-18 at {S['infer_px']}x{S['infer_px']} (cvkit.deploy.bench)\n", rep.to_markdown()]
    if S['dev'] == 'cuda' and torch.cuda.device_count() >= 2:
        r = subprocess.run([sys.executable, str(ROOT/'benchmarks/ddp_throughput.py'), '--device', 'cuda', '--rounds', '1', '--epochs', '3',
                            '--backbone', 'resnet18', '--n-train', '4096'], capture_output=True, text=True, timeout=900)
        out += ['\n## DDP over nccl (benchmarks/ddp_throughput.py --device cuda)\n', r.stdout[-4000:] or r.stderr[-2000:]]
    else: out += [f'\n## DDP over nccl\n\nnot measured: it needs 2 GPUs; this machine has {torch.cuda.device_count()}.']
    out.append(f'\ntotal {time.perf_counter() - t0:.0f} s')
    text = '\n'.join(out) + '\n'
    Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(text)
    if os.environ.get('OUT'): (Path(os.environ['OUT'])/'gpu.md').write_text(text)
    print(text)
    return 0


if __name__ == '__main__': sys.exit(main())
