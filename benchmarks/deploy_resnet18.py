"""Benchmark: ResNet-18 at 224×224, batch 1, 2 threads: PyTorch eager vs onnxruntime fp32 vs onnxruntime INT8 (static QDQ and dynamic).

Targets (issue 7), measured side by side in one run (interleaved rounds):
  ORT fp32 p50 <= 0.70 × eager p50;  ORT INT8 p50 <= 0.45 × eager p50 with top-1 agreement >= 99% on the
  evaluation set;  fp32 parity max |Δlogit| <= 1e-4.

The model is timm `resnet18` (pretrained=False; nothing downloads), *trained* on digits before anything is measured: INT8
agreement is only meaningful on a network whose features carry the class signal (a random-conv network's do not, and
8-bit rounding then flips half its predictions). Training (AdamW, batch 32, light augmentation, `cvkit.train.fit`) runs
`--train-epochs-low` epochs at `--train-low-size` (by default 8 at 112×112, 4× cheaper per epoch) and then `--train-epochs`
at 224 (by default 2; about 14 min on 2 quiet cores, reaching ~0.99 validation accuracy: a half-trained network sits
near its decision boundaries and INT8 rounding flips many of its predictions); the weights are cached as a cvkit
checkpoint (`--cache`, safetensors + JSON) and reused by later runs with the same settings.
`--weights PATH` skips training and uses your weights. INT8 is calibrated on training digits and top-1 agreement is
measured on the held-out test digits (269 images), with a bootstrap CI.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/deploy_resnet18.py [--threads 2] [--batch-sizes 1,8,32] [--iters 60]
        [--train-epochs 2] [--train-epochs-low 8] [--train-low-size 112] [--weights PATH] [--method minmax]
        [--compile] [--out benchmarks/results/deploy.md]
"""
import argparse, os, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
from cvkit.core import save_checkpoint, load_checkpoint, checkpoint_paths, lineage, seed_everything
from cvkit.data.builtin import digits
from cvkit.data.dataset import train_transforms
from cvkit.models.factory import create_model, load_weights
from cvkit.train import fit
from cvkit.deploy.export import export_onnx, parity
from cvkit.deploy.quantize import quantize_static_onnx, quantize_dynamic_onnx, cpu_has_vnni
from cvkit.deploy.bench import benchmark, eager_runtime, ort_runtime, compile_runtime, machine_info

CACHE = Path(__file__).resolve().parent/'out'/'resnet18_digits224.safetensors'

def train_model(epochs:int=2, epochs_low:int=8, low_size:int=112, lr:float=1e-3, batch_size:int=32, threads:int=2, seed:int=0, cache=CACHE):
    "timm resnet18 (10 classes) trained on digits: `epochs_low` epochs at `low_size`, then `epochs` at 224; cached as a cvkit checkpoint."
    cfg = dict(arch='resnet18', num_classes=10, in_chans=3, data='digits', epochs_low=epochs_low, low_size=low_size, epochs=epochs, size=224,
               lr=lr, batch_size=batch_size, optimizer='AdamW', augment='light', seed=seed)
    model = create_model('resnet18', num_classes=10, in_chans=3)
    cache = Path(cache)
    if checkpoint_paths(cache)[1].exists():
        st, info = load_checkpoint(cache)
        if info['meta'].get('config') == cfg:
            model.load_state_dict(st['model']); print(f'loaded cached weights {cache} (trained in {info["meta"]["train_seconds"]:.0f} s)', flush=True)
            return model.eval(), info['meta']
        print(f'{cache} was trained with other settings ({info["meta"].get("config")}); retraining', flush=True)
    torch.set_num_threads(threads); seed_everything(seed)
    t0, hist = time.time(), []
    phases = [(low_size, epochs_low, lr), (224, epochs, lr if epochs_low == 0 else lr / 3)]
    for size, ep, plr in phases:
        if ep <= 0: continue
        ds = digits(size=size, seed=seed)
        tr, va = ds.split('train').with_transform(train_transforms(size, 'light')), ds.split('valid')
        r = fit(model, tr, va, epochs=ep, lr=plr, batch_size=batch_size, warmup_epochs=min(0.3, ep), seed=seed, device='cpu',
                progress=False, restore_best=False)
        h = r.history.assign(size=size); hist += h.to_dict('records')
        print(f'trained {ep} epoch(s) at {size}×{size} in {r.seconds:.0f} s:\n' + h.to_string(index=False), flush=True)
        del ds, tr, va
    meta = dict(config=cfg, history=hist, train_seconds=time.time() - t0, classes=[str(k) for k in range(10)])
    save_checkpoint(cache, dict(model=model.state_dict()), meta=meta, lineage=lineage(seed=seed, config=cfg, device='cpu'))
    print(f'saved {cache} (+ .json)', flush=True)
    return model.eval(), meta

def quantize_static_keep_float(exp, calib, out, keep, n_calib=128, method='minmax', reduce_range=True):
    "Static INT8 QDQ per-channel like `quantize_static_onnx`, but with the stem conv ('first') and/or the head ('fc') left in float."
    import onnx
    from onnxruntime.quantization import quantize_static, QuantFormat, QuantType
    from cvkit.deploy.quantize import DatasetCalibrationReader, _preprocess, _METHODS
    src = Path(str(getattr(exp, 'path', exp)))
    pre = _preprocess(src, Path(out).with_suffix('.pre.onnx'))
    g = onnx.load(str(pre)).graph
    convs, fcs = [n.name for n in g.node if n.op_type == 'Conv'], [n.name for n in g.node if n.op_type in ('Gemm', 'MatMul')]
    excl = (convs[:1] if 'first' in keep else []) + (fcs if 'fc' in keep else [])
    quantize_static(str(pre), str(out), DatasetCalibrationReader(calib, g.input[0].name, n_calib, 32, 0), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=_METHODS[method], nodes_to_exclude=excl)
    return Path(out)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--batch-sizes', default='1,8,32')
    ap.add_argument('--iters', type=int, default=60); ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--max-seconds', type=float, default=40, help='time budget per runtime and batch size')
    ap.add_argument('--n-calib', type=int, default=128)
    ap.add_argument('--train-epochs', type=int, default=2, help='training epochs at 224×224')
    ap.add_argument('--train-epochs-low', type=int, default=8, help='training epochs at --train-low-size first (0: train only at 224)')
    ap.add_argument('--train-low-size', type=int, default=112)
    ap.add_argument('--lr', type=float, default=1e-3); ap.add_argument('--cache', default=str(CACHE), help='cvkit checkpoint the trained weights are cached in')
    ap.add_argument('--compile', action='store_true', help='also time torch.compile (slow to compile on 2 cores)')
    ap.add_argument('--no-dynamic', action='store_true', help='skip onnxruntime dynamic INT8')
    ap.add_argument('--dollars-per-hour', type=float, default=0.0416, help='price of the machine (default: a 2-vCPU cloud VM)')
    ap.add_argument('--out', default=None, help='also write the markdown here')
    ap.add_argument('--weights', default=None, help='trained 10-class resnet18 weights (.safetensors or cvkit checkpoint) instead of training')
    ap.add_argument('--method', default='minmax', choices=('minmax', 'entropy', 'percentile'), help='INT8 calibration method')
    ap.add_argument('--reduce-range', default='auto', choices=('auto', 'on', 'off'), help='7-bit weights (auto: on when the CPU lacks VNNI)')
    ap.add_argument('--keep-float', default='', help="comma-separated: 'first' (stem conv) and/or 'fc' (head) stay in float in static INT8")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    load0 = os.getloadavg()
    if a.weights:
        model = create_model('resnet18', num_classes=10)
        rep_w = load_weights(model, a.weights)
        if rep_w['n_loaded'] != rep_w['n_tensors']:
            sys.exit(f"{a.weights}: only {rep_w['n_loaded']} of {rep_w['n_tensors']} tensors fit timm resnet18 with 10 classes ({rep_w}); "
                     'pass weights of a 10-class resnet18.')
        model.eval(); desc = f'weights {a.weights}'
    else:
        model, meta = train_model(a.train_epochs, a.train_epochs_low, a.train_low_size, a.lr, 32, a.threads, cache=a.cache)
        h = meta['history'][-1]
        desc = (f"trained here on the 1,078 training digits (AdamW lr {a.lr}, batch 32, light augmentation: "
                f"{a.train_epochs_low} epoch(s) at {a.train_low_size}×{a.train_low_size}, then {a.train_epochs} at 224×224 with lr/3; "
                f"{meta['train_seconds']:.0f} s on {a.threads} threads; last-epoch valid accuracy {h['valid_acc']:.4f}; cached in {a.cache})")
    t_train = time.time() - t0
    ds = digits(size=224, seed=0); train, test = ds.split('train'), ds.split('test')
    tmp = Path(tempfile.mkdtemp())
    exp = export_onnx(model, tmp/'resnet18.onnx', input_size=(3, 224, 224))
    rr = dict(auto=not cpu_has_vnni(), on=True, off=False)[a.reduce_range]
    keep = [k for k in a.keep_float.split(',') if k]
    if not keep: int8 = quantize_static_onnx(exp, train, out=tmp/'resnet18.int8.onnx', n_calib=a.n_calib, method=a.method, reduce_range=rr)
    else: int8 = quantize_static_keep_float(exp, train, tmp/'resnet18.int8.onnx', keep, a.n_calib, a.method, rr)
    p32 = parity(model, exp, test, threads=a.threads)
    p8 = parity(model, int8, test, threads=a.threads, eager=p32.eager)
    pars = dict(ort_fp32=p32, ort_int8=p8)
    if not a.no_dynamic:
        dyn = quantize_dynamic_onnx(exp, out=tmp/'resnet18.int8-dynamic.onnx', per_channel=True)
        pars['ort_int8_dynamic'] = parity(model, dyn, test, threads=a.threads, eager=p32.eager)
    rts = [eager_runtime(model, 'eager')] + ([compile_runtime(model)] if a.compile else []) + \
          [ort_runtime(exp, 'ort_fp32', threads=a.threads), ort_runtime(int8, 'ort_int8', threads=a.threads)] + \
          ([] if a.no_dynamic else [ort_runtime(dyn, 'ort_int8_dynamic', threads=a.threads)])
    bs = tuple(int(b) for b in a.batch_sizes.split(','))
    rep = benchmark(rts, input_size=(3, 224, 224), batch_sizes=bs, threads=a.threads, iters=a.iters, rounds=a.rounds, max_seconds=a.max_seconds,
                    baseline='eager', target='ort_int8', parity=pars, dollars_per_hour=a.dollars_per_hour)
    r32, r8 = rep.ratio('ort_fp32', 1), rep.ratio('ort_int8', 1)
    ag = p8.top1_agreement
    checks = [('ORT fp32 p50 / eager p50 (batch 1)', f'{r32:.3f}', '<= 0.70', r32 <= 0.70),
              ('ORT INT8 (static QDQ) p50 / eager p50 (batch 1)', f'{r8:.3f}', '<= 0.45', r8 <= 0.45),
              ('INT8 (static QDQ) top-1 agreement with eager (test digits, n=%d)' % p8.n, f"{ag['value']:.4f} [{ag['lo']:.4f}, {ag['hi']:.4f}]", '>= 0.99', ag['value'] >= 0.99),
              ('fp32 parity max |Δlogit|', f'{p32.max_abs_diff:.2e}', '<= 1e-4', p32.max_abs_diff <= 1e-4)]
    cmd = 'OMP_NUM_THREADS=%d .venv/bin/python benchmarks/deploy_resnet18.py %s' % (a.threads, ' '.join(sys.argv[1:]))
    m = machine_info(a.threads)
    load1 = os.getloadavg()
    lines = ['## Deployment: ResNet-18 at 224×224 (issue 7)', '', f'Command: `{cmd}`', '',
             f"Machine: {m['cpu']}, {m['cores']} cores (load average {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f} at the start and "
             f"{load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} at the end, this run's own {a.threads} threads included), "
             f"{a.threads} threads, VNNI: {cpu_has_vnni()}; torch {m['torch']}, onnxruntime {m['onnxruntime']}. "
             f"Model: timm resnet18 (pretrained=False), {desc}. Eager test accuracy {p32.eager.accuracy:.4f} (n={p32.n}); "
             f"INT8 = static QDQ ({a.method}), per-channel, {a.n_calib} calibration images from the training split, "
             f"reduce_range={rr}" + (f", kept in float: {', '.join(keep)}" if keep else '') + ('' if a.no_dynamic else '; dynamic INT8 = onnxruntime quantize_dynamic, per-channel') +
             f". Total run {time.time() - t0:.0f} s (training/loading {t_train:.0f} s).", '',
             '| target | measured | required | met |', '|---|---|---|---|']
    lines += [f'| {n} | {v} | {req} | {"yes" if ok else "NO"} |' for n, v, req, ok in checks]
    lines += ['', rep.to_markdown(), '']
    md = '\n'.join(lines)
    print(md)
    if a.out: Path(a.out).write_text(md + '\n')

if __name__ == '__main__': main()
