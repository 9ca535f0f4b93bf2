"""Benchmark: `predict()` against a bare `torch.inference_mode()` forward loop (target: within 5%).

Both run over the same DataLoader (`make_loader`, same batch size) and the same model, interleaved, several
rounds; the table gives the median time of each and the ratio.

    .venv/bin/python benchmarks/predict_overhead.py [--rounds 7] [--model cvkit_cnn_small] [--n 3000]
"""
import argparse, os, platform, statistics, time
import torch
from cvkit.data.builtin import shapes
from cvkit.data.dataset import make_loader
from cvkit.models.factory import create_model
from cvkit.evaluate.predictions import predict

def bare(model, loader):
    with torch.inference_mode():
        for x, _ in loader: model(x)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=7); ap.add_argument('--model', default='cvkit_cnn_small')
    ap.add_argument('--n', type=int, default=3000); ap.add_argument('--batch-size', type=int, default=256)
    a = ap.parse_args()
    ds = shapes(n=a.n, size=64, seed=0)
    model = create_model(a.model, num_classes=ds.num_classes).eval()
    loader = make_loader(ds, batch_size=a.batch_size)
    bare(model, loader); predict(model, ds, batch_size=a.batch_size)    # warm-up
    tb, tp = [], []
    for _ in range(a.rounds):
        t = time.perf_counter(); bare(model, loader); tb.append(time.perf_counter() - t)
        t = time.perf_counter(); predict(model, ds, batch_size=a.batch_size); tp.append(time.perf_counter() - t)
    mb, mp = statistics.median(tb), statistics.median(tp)
    print(f'machine: {os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads')
    print(f'data: shapes n={a.n} 64x64, model {a.model}, batch {a.batch_size}, {a.rounds} interleaved rounds (median)')
    print('| loop | median s | images/s |'); print('|---|---|---|')
    print(f'| bare inference_mode forward loop | {mb:.3f} | {a.n / mb:.0f} |')
    print(f'| cvkit predict() -> Predictions | {mp:.3f} | {a.n / mp:.0f} |')
    print(f'| ratio predict / bare | {mp / mb:.3f} | target <= 1.05 |')

if __name__ == '__main__': main()
