"Golden sets: freeze/load hashes, tamper detection, and sample-level checks (flips, probability drift, id pairing)."
import hashlib, json
import numpy as np, pandas as pd, pyarrow.parquet as pq, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.golden import GoldenCheck, GoldenError, check_golden, content_hash, freeze_golden, load_golden

def _softmax(z): e = np.exp(z - z.max(1, keepdims=True)); return e / e.sum(1, keepdims=True)

@pytest.fixture
def ref():
    rng = np.random.default_rng(1)
    n, k = 150, 3
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 3 * np.eye(k)[y]
    return Predictions([f'img-{i}' for i in range(n)], logits, y, ['a', 'b', 'c'],
                       pd.DataFrame(dict(site=rng.choice(['x', 'y'], n), w=rng.random(n))), info=dict(model='m1'))

@pytest.fixture
def frozen(ref, tmp_path):
    freeze_golden(ref, tmp_path/'golden.parquet', lineage=dict(seed=0))
    return tmp_path/'golden.parquet'

def test_manifest(ref, frozen):
    man = json.loads(frozen.with_suffix('.json').read_text())
    assert man['sha256'] == hashlib.sha256(frozen.read_bytes()).hexdigest()
    assert man['content_sha256'] == content_hash(ref) and len(man['content_sha256']) == 64
    assert (man['n'], man['classes'], man['file'], man['lineage'], man['has_targets']) == (150, ['a', 'b', 'c'], 'golden.parquet', dict(seed=0), True)
    assert man['created'].endswith('+00:00')
    g = load_golden(frozen)
    np.testing.assert_array_equal(g.logits, ref.logits); np.testing.assert_array_equal(g.targets, ref.targets)
    assert g.info['golden']['sha256'] == man['sha256'] and g.info['model'] == 'm1'
    assert load_golden(frozen.with_suffix('.json')).ids.tolist() == ref.ids.tolist()   # the manifest path works too

def test_content_hash_is_encoding_independent_and_sensitive(ref, frozen, tmp_path):
    pq.write_table(pq.read_table(frozen), tmp_path/'gz.parquet', compression='gzip')
    assert hashlib.sha256((tmp_path/'gz.parquet').read_bytes()).hexdigest() != hashlib.sha256(frozen.read_bytes()).hexdigest()
    assert content_hash(Predictions.load(tmp_path/'gz.parquet')) == content_hash(ref)
    lg = ref.logits.copy(); lg[7, 1] = np.nextafter(lg[7, 1], np.float32(np.inf))   # one ulp
    assert content_hash(Predictions(ref.ids, lg, ref.targets, ref.classes)) != content_hash(ref)
    y = ref.targets.copy(); y[0] = (y[0] + 1) % 3
    assert content_hash(Predictions(ref.ids, ref.logits, y, ref.classes)) != content_hash(ref)
    assert content_hash(Predictions(ref.ids, ref.logits, None, ref.classes)) != content_hash(ref)

def test_tamper_detection(ref, frozen, tmp_path):
    man = frozen.with_suffix('.json').read_text()
    raw = bytearray(frozen.read_bytes()); raw[len(raw) // 2] ^= 0x01   # flip one bit
    frozen.write_bytes(raw)
    with pytest.raises(GoldenError, match='golden.parquet was modified'): load_golden(frozen)
    # logits edited and re-saved through the normal writer: content changed
    lg = ref.logits.copy(); lg[3] += 0.5
    Predictions(ref.ids, lg, ref.targets, ref.classes, ref.meta, info=ref.info).save(tmp_path/'edit.parquet')
    (tmp_path/'edit.json').write_text(man.replace('golden.parquet', 'edit.parquet'))
    with pytest.raises(GoldenError, match='was modified: its content'): load_golden(tmp_path/'edit.parquet')
    # only metadata changed: bytes differ, content same -> refused by default, accepted with verify='content'
    Predictions(ref.ids, ref.logits, ref.targets, ref.classes, ref.meta, info=dict(model='renamed')).save(tmp_path/'meta.parquet')
    (tmp_path/'meta.json').write_text(man.replace('golden.parquet', 'meta.parquet'))
    with pytest.raises(GoldenError, match="verify='content'"): load_golden(tmp_path/'meta.parquet')
    assert load_golden(tmp_path/'meta.parquet', verify='content').info['model'] == 'renamed'

def test_missing_manifest_and_bad_paths(ref, tmp_path):
    ref.save(tmp_path/'p.parquet')
    with pytest.raises(GoldenError, match='has no manifest p.json'): load_golden(tmp_path/'p.parquet')
    with pytest.raises(FileNotFoundError): load_golden(tmp_path/'none.parquet')
    with pytest.raises(GoldenError, match='not the manifest'): freeze_golden(ref, tmp_path/'g.json')
    with pytest.raises(ValueError, match='verify must be'): load_golden(tmp_path/'p.parquet', verify='yes')

def test_identical_passes_in_any_order(ref, frozen):
    c = check_golden(ref.subset(np.random.default_rng(0).permutation(len(ref))), frozen)
    assert isinstance(c, GoldenCheck) and c.passed and c.n_flips == 0 and c.max_delta_p == 0 and len(c.changes) == 0 and c.reasons == []
    assert c.accuracy['golden'] == c.accuracy['new'] == ref.accuracy

def test_one_flip_fails_naming_the_id(ref, frozen):
    i = int(np.flatnonzero(ref.correct)[5])
    lg = ref.logits.copy(); new = (ref.preds[i] + 1) % 3; lg[i, new] = lg[i].max() + 1.0
    c = check_golden(Predictions(ref.ids, lg, ref.targets, ref.classes), frozen)
    assert not c.passed and c.n_flips == 1 and ref.ids[i] in c.reasons[0] and '1 predicted labels flipped' in c.reasons[0]
    row = c.changes.iloc[0]
    p_old, p_new = _softmax(ref.logits[i].astype(float)[None])[0], _softmax(lg[i].astype(float)[None])[0]
    assert (row.id, row.target, row.old_pred, row.new_pred, bool(row.flipped)) == (ref.ids[i], ref.classes[ref.targets[i]], ref.classes[ref.preds[i]], ref.classes[new], True)
    assert row.old_p == pytest.approx(p_old[ref.preds[i]]) and row.new_p == pytest.approx(p_new[ref.preds[i]])
    assert row.max_delta_p == pytest.approx(np.abs(p_new - p_old).max())
    assert c.accuracy['new'] == pytest.approx(ref.accuracy - 1 / len(ref))
    assert check_golden(Predictions(ref.ids, lg, ref.targets, ref.classes), frozen, max_flips=1, max_prob_delta=1.0).passed

def test_noise_under_and_over_tolerance(ref, frozen):
    rng = np.random.default_rng(3)
    tiny = Predictions(ref.ids, ref.logits + rng.normal(scale=1e-3, size=ref.logits.shape), ref.targets, ref.classes)
    c = check_golden(tiny, frozen)
    assert c.passed and c.n_flips == 0 and 0 < c.max_delta_p < 0.01
    assert c.max_delta_p == pytest.approx(np.abs(tiny.probs - ref.probs).max())
    big = Predictions(ref.ids, ref.logits + rng.normal(scale=0.5, size=ref.logits.shape), ref.targets, ref.classes)
    c = check_golden(big, frozen, max_flips=1000)
    dp = np.abs(big.probs - ref.probs).max(1)
    assert not c.passed and len(c.changes) == int(((dp > 0.05) | (big.preds != ref.preds)).sum())
    assert f'{int((dp > 0.05).sum())} samples moved' in c.reasons[-1] and ref.ids[dp.argmax()] in c.reasons[-1]
    assert c.changes.max_delta_p.iloc[c.n_flips:].is_monotonic_decreasing   # flips first, then by |Δp|

def test_pairing_errors(ref, frozen):
    g = load_golden(frozen)
    with pytest.raises(GoldenError) as e: check_golden(ref.subset(np.arange(2, len(ref))), g)
    assert '2 ids only in the golden set (img-0, img-1)' in str(e.value) and '0 only in the new predictions' in str(e.value)
    other = Predictions([f'z{i}' for i in range(len(ref))], ref.logits, ref.targets, ref.classes)
    with pytest.raises(GoldenError, match=r'150 ids only in the golden set .*… \(140 more\)'): check_golden(other, g)
    y = ref.targets.copy(); y[4] = (y[4] + 1) % 3
    with pytest.raises(GoldenError, match='1 samples have different targets.*img-4'): check_golden(Predictions(ref.ids, ref.logits, y, ref.classes), g)
    with pytest.raises(GoldenError, match='class lists differ'): check_golden(Predictions(ref.ids, ref.logits, ref.targets, ['a', 'b', 'd']), g)

def test_unlabelled_and_views(ref, tmp_path):
    u = Predictions(ref.ids, ref.logits, None, ref.classes)
    freeze_golden(u, tmp_path/'u.parquet')
    lg = ref.logits.copy(); lg[0, (ref.preds[0] + 1) % 3] += 10
    c = check_golden(Predictions(ref.ids, lg, None, ref.classes), tmp_path/'u.parquet')
    assert not c.passed and c.accuracy == {} and c.changes.id.tolist() == ['img-0'] and c.changes.target.isna().all()
    d = json.loads(json.dumps(c.to_dict()))
    assert d['passed'] is False and d['n_flips'] == 1 and d['changes'][0]['id'] == 'img-0'
    h = c._repr_html_()
    assert 'Golden check FAILED' in h and 'img-0' in h and '#c62828' in h
    assert 'FAILED' in repr(c) and 'flips=1' in repr(c)
