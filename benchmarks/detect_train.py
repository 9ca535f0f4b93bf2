"""Train a detector from scratch on the built-in scenes and score it on the test split, with bootstrap intervals.

Target (issue 14): mAP@0.5 >= 0.70 and mAP@[.5:.95] >= 0.40 on the scenes test split, trained from scratch in
<= 10 minutes on 2 CPU cores. Several models can be given (comma-separated) to compare them on the same data,
e.g. the light `fcos_timm_resnet18` against torchvision's `fasterrcnn_mobilenet_v3_large_320_fpn`.

    python benchmarks/detect_train.py --model fcos_timm_resnet18 --epochs 12 --size 128 --n 1000 --threads 2 --batch-size 8
"""
import argparse, json, os, sys, time

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='fcos_timm_resnet18', help='detector name(s), comma-separated (cvkit.models.detection.list_detectors())')
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--size', type=int, default=128, help='scene image side in pixels')
    ap.add_argument('--n', type=int, default=1000, help='scenes generated (70/15/15 train/valid/test)')
    ap.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
    ap.add_argument('--batch-size', type=int, default=8, help='images per step (small batches: more steps in the same time)')
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--no-flip', action='store_true', help='train without random horizontal flips')
    ap.add_argument('--valid', action='store_true', help='score mAP on the valid split each epoch and keep the best (costs time)')
    ap.add_argument('--n-boot', type=int, default=1000)
    ap.add_argument('--out', default=None, help='also write the results as JSON here')
    a = ap.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', str(a.threads))
    import torch
    from torchvision.transforms import v2
    torch.set_num_threads(a.threads)
    from cvkit.data.scenes import DetectionView, scenes
    from cvkit.evaluate.coco import coco_bootstrap, coco_metrics
    from cvkit.evaluate.detect import predict_detections
    from cvkit.models.factory import count_params, create_model
    from cvkit.train import fit

    t = time.perf_counter()
    ds = scenes(a.n, size=a.size, seed=a.seed)
    train, valid, test = ds.split('train'), ds.split('valid'), ds.split('test')
    print(f'scenes: {len(train)} train / {len(valid)} valid / {len(test)} test images of {a.size} px, made in {time.perf_counter() - t:.1f}s; '
          f'torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}', flush=True)
    tf = None if a.no_flip else v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])
    train_view = DetectionView(train, transform=tf, masks=False)
    results = []
    for name in a.model.split(','):
        torch.manual_seed(a.seed)
        model = create_model(name, num_classes=ds.num_classes, size=a.size)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        res = fit(model, train_view, valid if a.valid else None, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size,
                  warmup_epochs=1, clip_grad=10.0, seed=a.seed, progress=False)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        p = predict_detections(res.model, test, batch_size=32, name=name)
        infer_s = time.perf_counter() - t1
        m, ci = coco_metrics(p), coco_bootstrap(p, n_boot=a.n_boot, seed=a.seed)
        load1 = os.getloadavg()
        h = res.history
        print(h.round(4).to_string(index=False), flush=True)
        r = dict(model=name, params=count_params(model)['total'], epochs=a.epochs, size=a.size, n_train=len(train), n_test=len(test),
                 threads=a.threads, batch_size=a.batch_size, lr=a.lr, train_s=round(train_s, 1), infer_s=round(infer_s, 1),
                 imgs_per_s=round(float(h.imgs_per_s.mean()), 2), AP=m['AP'], AP50=m['AP50'], AP75=m['AP75'],
                 APs=m['APs'], APm=m['APm'], APl=m['APl'],
                 AP_ci=[ci['AP'].lo, ci['AP'].hi], AP50_ci=[ci['AP50'].lo, ci['AP50'].hi],
                 loadavg_before=[round(x, 2) for x in load0], loadavg_after=[round(x, 2) for x in load1])
        results.append(r)
        print(f"{name}: {r['params']/1e6:.1f}M params, {a.epochs} epochs in {train_s:.0f}s ({r['imgs_per_s']} img/s), test inference {infer_s:.1f}s\n"
              f"  mAP@[.5:.95] {m['AP']:.3f} (95% CI {ci['AP'].lo:.3f}-{ci['AP'].hi:.3f})   mAP@0.5 {m['AP50']:.3f} "
              f"(95% CI {ci['AP50'].lo:.3f}-{ci['AP50'].hi:.3f})   APs/m/l {m['APs']:.3f}/{m['APm']:.3f}/{m['APl']:.3f}\n"
              f"  target mAP@0.5 >= 0.70: {'met' if m['AP50'] >= 0.70 else 'not met'}; mAP >= 0.40: {'met' if m['AP'] >= 0.40 else 'not met'}; "
              f"<= 600 s: {'met' if train_s <= 600 else 'not met'}\n"
              f"  load average (1/5/15 min) before {r['loadavg_before']}, after {r['loadavg_after']}", flush=True)
    if a.out:
        with open(a.out, 'w') as f: json.dump(dict(command=' '.join(sys.argv), results=results), f, indent=1)
    return results

if __name__ == '__main__': main()
