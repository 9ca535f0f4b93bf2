"""Benchmark: COCO bbox evaluation of 2,000 images, 80 categories (target: the same 12 stats as pycocotools, >= 50x faster).

Measured side by side in one run, on the same synthetic detection set (`synthetic_detections(2000, 80)`, ~12k true boxes
with 5% crowd regions, ~30k detections, non-contiguous category ids):
  * cvkit `coco_metrics` (hotcoco 1.3.0 engine; the time includes building the COCO dicts from DetectionPredictions);
  * pycocotools 2.0.11 `COCOeval` (evaluate + accumulate + summarize; index building and loadRes included);
  * faster-coco-eval 1.8.0 `COCOeval_faster` (same steps), for reference.
Each is timed best of 3 (pycocotools once) on the process's CPUs (pinned to 2 cores).

    .venv/bin/python benchmarks/coco_eval_speed.py
"""
import contextlib, copy, io, os, platform, time
import numpy as np
from cvkit.evaluate.detection import synthetic_detections
from cvkit.evaluate.coco import coco_metrics, COCO_STATS

def best(fn, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return min(ts), out

def pycoco(gt, dt):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(); g.dataset = copy.deepcopy(gt); g.createIndex()
        e = COCOeval(g, g.loadRes(dt), 'bbox'); e.evaluate(); e.accumulate(); e.summarize()
    return np.asarray(e.stats)

def fce(gt, dt):
    from faster_coco_eval import COCO, COCOeval_faster
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(copy.deepcopy(gt)); e = COCOeval_faster(g, g.loadRes(dt), 'bbox'); e.evaluate(); e.accumulate(); e.summarize()
    return np.asarray(e.stats)

def main():
    if hasattr(os, 'sched_setaffinity') and os.cpu_count() > 2: os.sched_setaffinity(0, {0, 1})
    p = synthetic_detections(2000, 80, seed=0, skill=0.6, crowd=0.05, category_ids=list(range(1, 161, 2)))
    gt, dt = p.to_coco()
    t_cv, m = best(lambda: coco_metrics(p))
    cv = np.array([m[k] for k in COCO_STATS])
    t_pc, ref = best(lambda: pycoco(gt, dt), reps=1)
    t_fc, fc = best(lambda: fce(gt, dt))
    ref_nan = np.where(ref == -1, np.nan, ref)
    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} used), "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.2f} at the end of the run")
    print(f'data: {len(p)} images, {p.num_classes} categories (ids 1, 3, ..., 159), {len(p.gt)} true boxes '
          f'({int(p.gt.iscrowd.sum())} crowd), {len(p.detections)} detections\n')
    print('| engine | time | speed-up vs pycocotools | max abs diff of the 12 stats vs pycocotools |')
    print('|---|---|---|---|')
    print(f'| cvkit `coco_metrics` (hotcoco), best of 3 | **{t_cv:.3f} s** | **{t_pc / t_cv:.0f}x** | {np.nanmax(np.abs(cv - ref_nan)):.1e} |')
    print(f'| faster-coco-eval `COCOeval_faster`, best of 3 | {t_fc:.3f} s | {t_pc / t_fc:.0f}x | {np.abs(fc - ref).max():.1e} |')
    print(f'| pycocotools `COCOeval` | {t_pc:.2f} s | 1x | 0 |')
    print(f'\nAP {m["AP"]:.4f}, AP50 {m["AP50"]:.4f}, AP75 {m["AP75"]:.4f}, AR100 {m["AR100"]:.4f}')

if __name__ == '__main__': main()
