"Detection analysis and the detection task: TIDE on hand-built cases, per-slice AP (image and object slices), D-ECE, the threshold chooser, evaluate/compare end to end."
import json, subprocess, sys
import numpy as np, pandas as pd, pytest
from cvkit.evaluate.detection import DetectionPredictions, synthetic_detections
from cvkit.evaluate.coco import coco_metrics, coco_matches, coco_evaluate, resampled_ap, coco_paired_bootstrap, _weights
from cvkit.evaluate.det_analysis import (tide_errors, det_matches, det_slice_report, normalized_ap, d_ece, detection_calibration,
                                         score_threshold_for_precision, _with_only)
from cvkit.evaluate.report import evaluate, EvalReport
from cvkit.evaluate.compare import compare
from cvkit.evaluate.tasks import get_task

BOX = (0, 0, 10, 10)

def one_image(gt, dt, k=2, **gtcols):
    g = pd.DataFrame([('a', *b) for b in gt], columns=['image_id', 'x1', 'y1', 'x2', 'y2', 'label']).assign(**gtcols)
    d = pd.DataFrame([('a', *b) for b in dt], columns=['image_id', 'x1', 'y1', 'x2', 'y2', 'score', 'label'])
    return DetectionPredictions(['a'], d, g, [f'c{i}' for i in range(k)])

@pytest.fixture(scope='module')
def p(): return synthetic_detections(200, seed=0)

def dap(gt, dt): return tide_errors(one_image(gt, dt)).set_index('error').dAP

@pytest.mark.parametrize('gt,dt,kind,gain', [
    ([(*BOX, 0)], [(*BOX, .9, 1)], 'Cls', 1.0),                                   # a single mislabelled box
    ([(*BOX, 0)], [(0, 0, 10, 4, .9, 0)], 'Loc', 1.0),                            # IoU 0.4, right class
    ([(*BOX, 0), (20, 20, 30, 30, 1)], [(0, 0, 10, 4, .9, 1), (20, 20, 30, 30, .5, 1)], 'Both', 0.25),  # dropped: class 1 AP 0.5 -> 1
    ([(*BOX, 0), (20, 20, 30, 30, 0)], [(*BOX, .9, 0), (*BOX, .8, 0), (20, 20, 30, 30, .7, 0)], 'Dupe', 1 - (1 + 2/3) / 2),
    ([(*BOX, 0)], [(*BOX, .5, 0), (50, 50, 60, 60, .9, 0)], 'Bkg', 0.5),         # a confident hallucination
    ([(*BOX, 0), (30, 30, 40, 40, 0)], [(*BOX, .9, 0)], 'Miss', 0.5)])
def test_tide_hand_built(gt, dt, kind, gain):
    t = dap(gt, dt)
    assert t[kind] == pytest.approx(gain, abs=0.011)
    assert t.drop([kind, 'FP', 'FN']).abs().max() < 1e-9          # no other error type costs anything

def test_tide_counts_every_false_positive(p):
    te, dm = tide_errors(p).set_index('error'), det_matches(p)
    assert te.attrs['ap'] == pytest.approx(coco_metrics(p)['AP50'], abs=1e-12)
    assert int(te['count'][['Cls', 'Loc', 'Both', 'Dupe', 'Bkg']].sum()) == int((~dm.dets.tp & ~dm.dets.ignored).sum())

def test_image_slices_equal_coco_on_subsets(p):
    r = det_slice_report(p, 'lighting', n_boot=100).rows.set_index('slice')
    for lv in ('day', 'night'):
        assert r.value[lv] == pytest.approx(coco_metrics(p.subset((p.meta.lighting == lv).to_numpy()))['AP'], abs=1e-12)
        assert r.lo[lv] <= r.value[lv] <= r.hi[lv]

def test_object_slices_hand_built():
    q = one_image([(*BOX, 0), (20, 20, 30, 30, 0)], [(*BOX, .8, 0), (20, 20, 30, 30, .9, 0), (50, 50, 60, 60, .95, 0)], occluded=[True, False])
    plain = det_slice_report(q, 'occluded', metric='AP50', min_n=1, n_boot=10, normalize=False)
    assert plain.overall.value == pytest.approx(2/3) and plain.rows.value.tolist() == pytest.approx([0.5, 0.5])
    norm = det_slice_report(q, 'occluded', metric='AP50', min_n=1, n_boot=10)
    assert norm.rows.value.tolist() == pytest.approx([2/3, 2/3])

def test_normalized_ap_is_coco_ap_on_everything_and_unbiased_on_random_slices(p):
    m, W = coco_matches(p), _weights(len(p), 30, 1)
    for k, v in normalized_ap(m, W, m.n_gt).items(): np.testing.assert_allclose(v, resampled_ap(m, W)[k], atol=1e-12)
    full = resampled_ap(m, np.ones(len(p)))['AP'][0]
    keep = np.random.default_rng(3).random(len(p.gt)) < 0.4
    r = coco_matches(_with_only(p, keep))
    assert abs(normalized_ap(r, np.ones(len(p)), m.n_gt)['AP'][0] - full) < 0.02 < full - resampled_ap(r, np.ones(len(p)))['AP'][0]

def test_kpi_flag_finds_a_degraded_slice_and_only_it():
    p = synthetic_detections(300, seed=2, skill=0.8)
    night = set(p.ids[p.meta.lighting == 'night'])
    rng = np.random.default_rng(0)
    d = p.detections
    drop = d.image_id.isin(night) & (rng.random(len(d)) < 0.6)            # the detector misses most boxes at night
    q = DetectionPredictions(p.ids, d[~drop], p.gt, p.classes, p.meta)
    r = det_slice_report(q, 'lighting', n_boot=300).rows.set_index('slice')
    assert bool(r.flagged['night']) and not bool(r.flagged['day'])
    assert r.rel_gap_lo['night'] > 0.10 and r.p_adj['night'] < 0.05
    none = det_slice_report(p, 'lighting', n_boot=300)                    # lighting is irrelevant here: no flag
    assert not none.rows.flagged.any()

def test_d_ece_direct_and_hotcoco(p):
    dm = det_matches(p); d = dm.dets[~dm.dets.ignored]
    b = np.minimum((d.score * 10).astype(int), 9)
    direct = sum(abs(d.tp[b == i].mean() - d.score[b == i].mean()) * (b == i).sum() for i in range(10) if (b == i).any()) / len(d)
    assert d_ece(p) == pytest.approx(direct, abs=1e-12)
    assert d_ece(p) == pytest.approx(coco_evaluate(p).calibration(n_bins=10, iou_threshold=0.5)['ece'], abs=1e-9)
    c = detection_calibration(p, n_boot=200)
    assert c['d_ece'].lo < c['d_ece'].value < c['d_ece'].hi and c['reliability'].n.sum() == len(d)

def brute(p, target):
    d = det_matches(p).dets; d = d[~d.ignored]
    ok = [(s, d.tp[d.score >= s].mean(), d.tp[d.score >= s].sum() / (~p.gt.iscrowd).sum()) for s in np.unique(d.score)
          if d.tp[d.score >= s].mean() >= target]
    return min(ok) if ok else None

@pytest.mark.parametrize('seed,skill', [(0, 0.6), (5, 0.3)])
def test_threshold_against_brute_force(seed, skill):
    p = synthetic_detections(80, seed=seed, skill=skill)
    for target in (0.5, 0.7, 0.9):
        got, want = score_threshold_for_precision(p, target, n_boot=30), brute(p, target)
        if want is None: assert np.isnan(got['threshold'].value); continue
        assert [got['threshold'].value, got['precision'].value, got['recall'].value] == pytest.approx(list(want), abs=1e-12)
        assert got['precision'].value >= target

def test_evaluate_and_compare_end_to_end(tmp_path):
    a, b = synthetic_detections(150, seed=1, skill=0.5), synthetic_detections(150, seed=1, skill=0.75, det_seed=4)
    rep = evaluate(a, n_boot=100, lineage=dict(seed=0))
    assert rep['task'] == 'detection' and list(rep['slices']) == ['lighting', 'size', 'occluded']
    assert rep.metric('AP').value == pytest.approx(coco_metrics(a)['AP'], abs=1e-12)
    assert rep.metric('AP50').lo < rep.metric('AP50').value < rep.metric('AP50').hi
    md = rep.to_markdown()
    for title in ('## COCO metrics', '## Slices by `occluded` (AP)', '## Error breakdown (TIDE)', '## Calibration', '## Lineage'): assert title in md
    back = EvalReport.load(rep.save(tmp_path/'r.json'), predictions=a)
    assert back.to_markdown() == md and json.loads((tmp_path/'r.json').read_text())['task'] == 'detection'
    c = compare(a, b, n_boot=100, slices=['lighting', 'occluded'])
    ref = coco_paired_bootstrap(a, b, n_boot=100)
    assert c.deltas.set_index('metric').delta['AP'] == pytest.approx(ref['AP'][0].value, abs=1e-12)
    assert c.verdict == 'better' and set(c.slices.by) == {'lighting', 'occluded'}
    assert (c.slices.p_holm >= c.slices.p_value - 1e-12).all()
    assert compare(a, a, n_boot=50).verdict == 'no significant difference'

def test_registration_happens_on_first_use():
    code = ("import sys; from cvkit.evaluate.detection import synthetic_detections; from cvkit.evaluate.report import evaluate; "
            "assert 'cvkit.evaluate.det_task' not in sys.modules; "
            "r = evaluate(synthetic_detections(40), n_boot=20, slices=[], lineage={}); print(r['task'], 'cvkit.evaluate.det_task' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['detection', 'True']
    assert get_task('detection').predictions_type is DetectionPredictions
