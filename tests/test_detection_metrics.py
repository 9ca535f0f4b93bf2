"Detection: DetectionPredictions checks and parquet round trip; COCO metrics and resampled AP against pycocotools itself."
import contextlib, copy, io, json, subprocess, sys
import numpy as np, pandas as pd, pytest
import pyarrow as pa, pyarrow.parquet as pq
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from cvkit.evaluate.detection import DetectionPredictions, from_coco, synthetic_detections
from cvkit.evaluate.coco import (COCO_STATS, coco_evaluate, coco_metrics, coco_matches, resampled_ap, coco_bootstrap,
                                 coco_paired_bootstrap, _n_below, _weights)

def pycoco(gt, dt, max_dets=(1, 10, 100)):
    "pycocotools' COCOeval on a ground-truth dict and a results list or (N, 7) array: the reference."
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(); g.dataset = copy.deepcopy(gt); g.createIndex()
        e = COCOeval(g, g.loadRes(copy.deepcopy(dt) if isinstance(dt, list) else np.asarray(dt)), 'bbox')
        e.params.maxDets = list(max_dets)
        e.evaluate(); e.accumulate(); e.summarize()
    return e

def per_class(e):
    prec = e.eval['precision'][:, :, :, 0, -1]
    return np.array([x[x > -1].mean() if (x > -1).any() else np.nan for x in np.moveaxis(prec, 2, 0)])

def check_parity(p, ref):
    m = coco_metrics(p)
    got = np.array([m[k] for k in COCO_STATS]); want = np.where(ref.stats == -1, np.nan, ref.stats)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(np.array(list(m['per_class'].values())), per_class(ref), rtol=0, atol=1e-9, equal_nan=True)
    return m

def random_coco(seed=0, n_img=60, n_cat=25, crowd=0.1, dets_per_img=12, dup=0.1):
    "A COCO-format case: non-contiguous category ids, crowd regions, empty images, images without detections, duplicates."
    rng = np.random.default_rng(seed)
    cat_ids = sorted(rng.choice(np.arange(1, 500), n_cat, replace=False).tolist())
    images = [dict(id=int(10 * i + 3), file_name=f'{i}.jpg', width=640, height=480, site=['a', 'b'][i % 2]) for i in range(n_img)]
    anns, dets, aid = [], [], 1
    for im in images:
        i = im['id']
        k = 0 if rng.random() < 0.15 else rng.poisson(5)          # some images have no ground truth
        gts = []
        for _ in range(k):
            w, h = np.exp(rng.uniform(np.log(5), np.log(250), 2)); x, y = rng.uniform(0, 380, 2)
            c = int(rng.choice(cat_ids[:n_cat // 2 + 1]))           # the other categories never have a true box
            anns.append(dict(id=aid, image_id=i, category_id=c, bbox=[x, y, w, h], area=float(w * h * rng.uniform(0.6, 1)),
                             iscrowd=int(rng.random() < crowd), occluded=bool(rng.random() < 0.3))); aid += 1
            gts.append((x, y, w, h, c))
        if rng.random() < 0.15: continue                            # some images get no detections
        for _ in range(rng.poisson(dets_per_img)):
            if gts and rng.random() < 0.6:
                x, y, w, h, c = gts[rng.integers(len(gts))]
                b = [x + rng.normal(0, 0.1 * w), y + rng.normal(0, 0.1 * h), w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)]
                c = c if rng.random() < 0.8 else int(rng.choice(cat_ids))
            else:
                b = [*rng.uniform(0, 380, 2), *np.exp(rng.uniform(np.log(5), np.log(250), 2))]; c = int(rng.choice(cat_ids))
            d = dict(image_id=i, category_id=c, bbox=[float(v) for v in b], score=float(rng.random()))
            dets.append(d)
            if rng.random() < dup: dets.append(copy.deepcopy(d))  # an exact duplicate (same box, same score)
    cats = [dict(id=c, name=f'cat{c}') for c in rng.permutation(cat_ids).tolist()]  # listed out of order
    return dict(images=images, annotations=anns, categories=cats), dets

def materialise(p, counts):
    "The resample with image i repeated counts[i] times under new ids (copies adjacent, original order)."
    rows = np.repeat(np.arange(len(p)), counts)
    new = np.array([f'{p.ids[i]}#{c}' for i, c in zip(rows, np.concatenate([np.arange(n) for n in counts]))])
    rep = lambda t: pd.concat([t[t.image_id == p.ids[i]].assign(image_id=nid) for i, nid in zip(rows, new)], ignore_index=True)
    return DetectionPredictions(new, rep(p.detections), rep(p.gt), p.classes, p.meta.iloc[rows], p.category_ids)

# --- DetectionPredictions -------------------------------------------------------------------------------------------

def small():
    dets = pd.DataFrame(dict(image_id=['b', 'a', 'a'], x1=[0., 10, 50], y1=[0., 10, 50], x2=[40., 30, 60], y2=[40., 40, 70],
                             score=[0.8, 0.9, 0.3], label=[0, 0, 1]))
    gt = pd.DataFrame(dict(image_id=['a', 'b'], x1=[11., 0], y1=[10., 0], x2=[30., 50], y2=[41., 50], label=[0, 0],
                           iscrowd=[0, 1], occluded=[False, True]))
    return DetectionPredictions(['a', 'b', 'c'], dets, gt, ['cat', 'dog'], pd.DataFrame(dict(site=['x', 'y', 'x'])), info=dict(name='toy'))

def test_objects_grouped_by_image_in_id_order():
    p = small()
    assert p.detections.image_id.tolist() == ['a', 'a', 'b'] and p.detections.score.tolist() == [0.9, 0.3, 0.8]
    assert p.gt.area.tolist() == [19 * 31, 2500] and p.gt.iscrowd.tolist() == [False, True]
    assert p.to_frame().n_detections.tolist() == [2, 1, 0] and p.to_frame().n_gt.tolist() == [1, 1, 0]

@pytest.mark.parametrize('change,msg', [
    (dict(score=[0.8, np.nan, 0.3]), "NaN/inf (or non-numeric) values in ['x1', 'y1', 'x2', 'y2', 'score'] in 1 image(s): ['a']"),
    (dict(x1=[0., 10, np.inf]), "NaN/inf"),
    (dict(x2=[40., 5, 60]), "x2 < x1 or y2 < y1 in 1 image(s): ['a']"),
    (dict(y2=[40., 70, -1]), "x2 < x1 or y2 < y1 in 1 image(s): ['b']"),
    (dict(label=[0, 0, 7]), "labels outside the 2 classes (got [7])"),
    (dict(image_id=['b', 'a', 'zz']), "not among the dataset images in 1 image(s): ['zz']"),
])
def test_bad_detections_refused_naming_images(change, msg):
    p = small()
    with pytest.raises(ValueError) as e:
        DetectionPredictions(p.ids, p.detections.assign(**change), p.gt, p.classes)
    assert msg in str(e.value)

def test_bad_gt_and_shapes_refused():
    p = small()
    with pytest.raises(ValueError, match=r"gt: boxes with x2 < x1"): DetectionPredictions(p.ids, p.detections, p.gt.assign(x2=[1., 50]), p.classes)
    with pytest.raises(ValueError, match='lacks column'): DetectionPredictions(p.ids, p.detections.drop(columns='score'), p.gt, p.classes)
    with pytest.raises(ValueError, match='one row per image'): DetectionPredictions(p.ids, p.detections, p.gt, p.classes, p.meta.iloc[:2])
    with pytest.raises(ValueError, match="appear more than once"): DetectionPredictions(['a', 'a', 'b'], p.detections, p.gt, p.classes)
    with pytest.raises(ValueError, match='category_ids must be 2 distinct'): DetectionPredictions(p.ids, p.detections, p.gt, p.classes, category_ids=[1, 1])

def test_save_load_roundtrip_and_atomic(tmp_path, monkeypatch):
    p = small()
    path = p.save(tmp_path / 'd.parquet')
    q = DetectionPredictions.load(path)
    assert list(q.ids) == list(p.ids) and q.classes == p.classes and q.category_ids == p.category_ids and q.info == p.info
    pd.testing.assert_frame_equal(q.detections, p.detections); pd.testing.assert_frame_equal(q.gt, p.gt)
    pd.testing.assert_frame_equal(q.meta, p.meta)
    assert pq.read_table(path).num_rows == 3                       # one row per image, 'c' (empty) included
    # a write that fails half-way leaves the old file untouched and no temporary file
    before = path.read_bytes()
    def boom(table, f, *a, **k): f.write(b'partial'); raise OSError('disk full')
    monkeypatch.setattr(pq, 'write_table', boom)
    with pytest.raises(OSError, match='disk full'): p.subset(['a']).save(path)
    assert path.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ['d.parquet']

def test_load_refuses_foreign_and_newer_files(tmp_path):
    pq.write_table(pa.table(dict(x=[1])), tmp_path / 'x.parquet')
    with pytest.raises(ValueError, match='not a cvkit DetectionPredictions file'): DetectionPredictions.load(tmp_path / 'x.parquet')
    p = small(); path = p.save(tmp_path / 'd.parquet')
    t = pq.read_table(path); h = json.loads(t.schema.metadata[b'cvkit']); h['schema_version'] = 99
    pq.write_table(t.replace_schema_metadata({b'cvkit': json.dumps(h).encode()}), path)
    with pytest.raises(ValueError, match='schema version 99'): DetectionPredictions.load(path)
    with pytest.raises(FileNotFoundError): DetectionPredictions.load(tmp_path / 'missing.parquet')

def test_subset_by_ids_positions_mask():
    p = small()
    s = p.subset(['b', 'c'])
    assert list(s.ids) == ['b', 'c'] and s.detections.image_id.tolist() == ['b'] and s.meta.site.tolist() == ['y', 'x']
    assert s.info['subset_of']['n_images'] == 3
    assert list(p.subset([2, 0]).ids) == ['c', 'a'] and list(p.subset(np.array([True, False, True])).ids) == ['a', 'c']
    with pytest.raises(KeyError, match='not in these predictions'): p.subset(['zz'])

def test_module_is_torch_free():
    code = 'import sys, cvkit.evaluate.detection, cvkit.evaluate.coco; assert "torch" not in sys.modules, "torch imported"'
    subprocess.run([sys.executable, '-c', code], check=True)

# --- COCO metrics: parity with pycocotools ----------------------------------------------------------------------------

def test_parity_scenes_like_synthetic():
    p = synthetic_detections(200, 6, seed=0, crowd=0.05)
    check_parity(p, pycoco(*p.to_coco()))

@pytest.mark.parametrize('seed', [0, 1])
def test_parity_random_coco_format(seed):
    gt, dt = random_coco(seed)
    p = from_coco(gt, dt)
    assert p.category_ids == sorted(c['id'] for c in gt['categories'])
    assert (p.to_frame().n_gt == 0).any() and (p.to_frame().n_detections == 0).any() and p.gt.iscrowd.any()
    assert 'site' in p.meta and 'occluded' in p.gt
    m = check_parity(p, pycoco(gt, dt))                             # against pycocotools on the original COCO files
    assert np.isnan(list(m['per_class'].values())).any()          # categories without true boxes: NaN, not -1

def test_parity_more_than_100_detections_per_image():
    p = synthetic_detections(40, 2, seed=5, fp_per_image=320)
    assert p.detections.groupby(['image_id', 'label']).size().min() > 100   # COCO cuts per image and class
    gt, dt = p.to_coco()
    check_parity(p, pycoco(gt, dt))
    m = coco_matches(p, max_det=100)
    assert np.bincount(m.img * 2 + m.cat).max() == 100             # the maxDets cut, per image and class
    np.testing.assert_allclose(resampled_ap(m, np.ones(len(p)))['AP'], pycoco(gt, dt).stats[0], atol=1e-12)
    # other limits: the full precision array, and AP at maxDets=20 from the weighted matches
    ref = pycoco(gt, dt, (1, 5, 20))
    np.testing.assert_allclose(np.asarray(coco_evaluate(p, (1, 5, 20)).eval['precision']), ref.eval['precision'], atol=1e-12)
    prec = ref.eval['precision'][:, :, :, 0, 2]
    np.testing.assert_allclose(resampled_ap(coco_matches(p, max_det=20), np.ones(len(p)))['AP'], prec[prec > -1].mean(), atol=1e-12)

# --- resampled AP from weighted matches -------------------------------------------------------------------------------

def test_n_below_equals_searchsorted():
    thr = np.linspace(0, 1, 101)
    x = np.concatenate([np.arange(n + 1) / n for n in range(1, 800)] + [np.random.default_rng(0).random(10**5)])
    np.testing.assert_array_equal(_n_below(thr, x), np.searchsorted(thr, x, 'right'))

@pytest.mark.parametrize('seed,crowd', [(2, 0.1), (3, 0.0)])
def test_weighted_resample_equals_naive_pycocotools(seed, crowd):
    p = synthetic_detections(30, 3, seed=seed, crowd=crowd)
    m = coco_matches(p)
    rng = np.random.default_rng(seed)
    W = np.stack([np.bincount(rng.integers(0, len(p), len(p)), minlength=len(p)) for _ in range(4)])
    got = resampled_ap(m, W)
    for b in range(len(W)):
        want = pycoco(*materialise(p, W[b]).to_coco()).stats
        np.testing.assert_allclose([got['AP'][b], got['AP50'][b], got['AP75'][b]], want[:3], rtol=0, atol=1e-9)
    assert np.ptp(got['AP']) > 0                                    # the resamples really differ

def test_weighted_resample_equals_naive_on_coco_format_case():
    gt, dt = random_coco(4, n_img=25, n_cat=8, dup=0.0)
    p = from_coco(gt, dt)
    W = np.stack([np.bincount(np.random.default_rng(s).integers(0, len(p), len(p)), minlength=len(p)) for s in range(3)])
    got = resampled_ap(coco_matches(p), W)
    for b in range(len(W)):
        want = pycoco(*materialise(p, W[b]).to_coco()).stats
        np.testing.assert_allclose([got['AP'][b], got['AP50'][b]], want[:2], rtol=0, atol=1e-9)

def test_weights_are_resample_counts_and_chunking_is_invisible():
    W = _weights(50, 300, seed=1)
    assert W.shape == (300, 50) and (W.sum(1) == 50).all()
    p = synthetic_detections(50, 3, seed=1)
    m = coco_matches(p)
    a, b = resampled_ap(m, W), resampled_ap(m, W, chunk=7)
    for k in a: np.testing.assert_array_equal(a[k], b[k])

def test_bootstrap_estimates_and_paired_difference():
    a = synthetic_detections(200, 4, seed=3, skill=0.5, det_seed=11)
    b = synthetic_detections(200, 4, seed=3, skill=0.8, det_seed=10)
    ea, eb = coco_bootstrap(a, n_boot=300), coco_bootstrap(b, n_boot=300, method='percentile')
    ma, mb = coco_metrics(a), coco_metrics(b)
    assert ea['AP'].value == pytest.approx(ma['AP'], abs=1e-12) and eb['AP50'].value == pytest.approx(mb['AP50'], abs=1e-12)
    assert ea['AP'].lo < ea['AP'].value < ea['AP'].hi and ea['AP'].n == 200 and ea['AP'].n_boot == 300
    d = coco_paired_bootstrap(a, b, n_boot=300)
    est, pval = d['AP']
    assert est.value == pytest.approx(mb['AP'] - ma['AP'], abs=1e-12) and est.lo > 0 and pval < 0.01
    # the same detector against itself: a zero difference on every resample
    z, pz = coco_paired_bootstrap(a, a, n_boot=100)['AP50']
    assert (z.value, z.lo, z.hi, pz) == (0.0, 0.0, 0.0, 1.0)
    # image order does not matter; different ground truth or images is refused
    shuffled = b.subset(list(b.ids[::-1]))
    assert coco_paired_bootstrap(a, shuffled, n_boot=300)['AP'][0].value == pytest.approx(est.value, abs=1e-12)
    with pytest.raises(ValueError, match='different ground truth'): coco_paired_bootstrap(a, synthetic_detections(200, 4, seed=4))
    with pytest.raises(ValueError, match='different images'): coco_paired_bootstrap(a, b.subset(list(b.ids[:150])))
    with pytest.raises(ValueError, match="method must be"): coco_bootstrap(a, n_boot=10, method='bca')
