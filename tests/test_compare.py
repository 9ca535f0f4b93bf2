"compare: deltas against sklearn, McNemar against scipy, Holm against its definition, verdicts on simulated candidates, pairing by id."
import json
import numpy as np, pandas as pd, pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score, log_loss
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.compare import compare, Comparison

N, K = 1500, 4

def _logits(y, ok, seed):
    z = np.random.default_rng(seed).normal(0, 1, (len(y), K)); z[np.arange(len(y)), np.where(ok, y, (y + 1) % K)] += 3
    return z

@pytest.fixture(scope='module')
def pair():
    "A baseline right 78% of the time and a candidate that fixes ~40% of its errors (most of them at night), breaking 2%."
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, N)
    meta = pd.DataFrame(dict(time=pd.Categorical(rng.choice(['day', 'night'], N, p=[.7, .3]), categories=['day', 'night', 'dusk']),
                             site=rng.choice(['s1', 's2', 's3'], N), blur=rng.random(N)))
    night = (meta.time == 'night').to_numpy()
    ok_a = rng.random(N) < .78
    ok_b = np.where(ok_a, rng.random(N) > .02, rng.random(N) < np.where(night, .7, .25))
    ok_c = rng.random(N) < .78                                 # same quality as the baseline, independent errors
    ids = np.array([f'img{i:05d}' for i in range(N)])
    mk = lambda ok, s: Predictions(ids, _logits(y, ok, s), y, list('abcd'), meta)
    return mk(ok_a, 1), mk(ok_b, 2), mk(ok_c, 3)

def test_deltas_equal_difference_of_sklearn_metrics(pair):
    a, b, _ = pair
    c = compare(a, b, metrics=('accuracy', 'macro_f1', 'nll', 'balanced_accuracy', 'brier'), n_boot=300)
    d = c.deltas.set_index('metric')
    ya, yb = a.preds, b.preds
    assert d.delta['accuracy'] == pytest.approx(accuracy_score(a.targets, yb) - accuracy_score(a.targets, ya), abs=1e-12)
    assert d.delta['macro_f1'] == pytest.approx(f1_score(a.targets, yb, average='macro') - f1_score(a.targets, ya, average='macro'), abs=1e-12)
    assert d.delta['nll'] == pytest.approx(log_loss(a.targets, b.probs) - log_loss(a.targets, a.probs), abs=1e-9)
    assert d.baseline['accuracy'] == pytest.approx(accuracy_score(a.targets, ya)) and d.candidate['accuracy'] == pytest.approx(accuracy_score(a.targets, yb))
    assert (d.lo <= d.delta).all() and (d.delta <= d.hi).all()
    assert d.test['accuracy'] == 'McNemar exact' and d.test['macro_f1'] == 'paired bootstrap'
    assert list(d.higher_is_better) == [True, True, False, True, False]

def test_mcnemar_equals_scipy_binomtest(pair):
    a, b, _ = pair
    mc = compare(a, b, metrics=('accuracy',), n_boot=50).mcnemar
    ca, cb = a.correct, b.correct
    assert mc['n01'] == (~ca & cb).sum() and mc['n10'] == (ca & ~cb).sum()
    assert mc['p_value'] == pytest.approx(binomtest(min(mc['n01'], mc['n10']), mc['n01'] + mc['n10'], 0.5).pvalue, rel=1e-12)

def _holm_direct(p):
    "Holm by definition: adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)) over the sorted p-values."
    p = np.asarray(p, float); m = len(p); o = np.argsort(p); out = np.empty(m)
    for i in range(m): out[o[i]] = min(1.0, max((m - j) * p[o[j]] for j in range(i + 1)))
    return out

def test_slice_deltas_with_holm(pair):
    a, b, _ = pair
    c = compare(a, b, slices=['time', 'site', ('time', 'site')], n_boot=300)
    s = c.slices
    assert list(s.by.unique()) == ['time', 'site', 'time x site']
    for by, g in s.groupby('by'):
        ok = g.p_value.notna()
        np.testing.assert_allclose(g.p_holm[ok], _holm_direct(g.p_value[ok]), rtol=1e-12)
        np.testing.assert_array_equal(g.significant, g.p_holm < 0.05)
    t = s[s.by == 'time'].set_index('slice')
    m = (a.meta.time == 'night').to_numpy()
    assert t.delta['night'] == pytest.approx(accuracy_score(a.targets[m], b.preds[m]) - accuracy_score(a.targets[m], a.preds[m]))
    ca, cb = a.correct[m], b.correct[m]
    assert t.p_value['night'] == pytest.approx(binomtest(min((~ca & cb).sum(), (ca & ~cb).sum()), (ca != cb).sum(), .5).pvalue)
    assert t.significant['night']
    assert t.n['dusk'] == 0 and np.isnan(t.delta['dusk']) and 'no samples' in t.reason['dusk'] and not t.significant['dusk']
    assert t.n.sum() == N

def test_verdicts(pair):
    a, b, same = pair
    assert compare(a, b, n_boot=200).verdict == 'better'
    assert compare(b, a, n_boot=200).verdict == 'worse'
    assert compare(a, same, n_boot=200).verdict == 'no significant difference'
    assert compare(same, a, n_boot=200).verdict == 'no significant difference'
    # a non-accuracy primary uses the paired-bootstrap p-value; NLL is lower-is-better, so a drop is 'better'
    c = compare(a, b, metrics=('nll', 'accuracy'), n_boot=300)
    d = c.deltas.set_index('metric')
    assert c.primary == 'nll' and d.delta['nll'] < 0 and d.p_value['nll'] < 0.05 and c.verdict == 'better'
    assert compare(b, a, metrics=('macro_f1',), n_boot=300).verdict == 'worse'

def test_identical_predictions_are_no_difference(pair):
    a, _, _ = pair
    c = compare(a, a, n_boot=100)
    assert c.verdict == 'no significant difference' and (c.deltas.delta == 0).all()
    assert c.mcnemar == dict(n01=0, n10=0, p_value=1.0)

def test_mismatched_ids_named(pair):
    a, b, _ = pair
    drop = b.subset(np.arange(12, N))                               # 12 ids only in the baseline
    extra = Predictions(np.r_[a.ids[:-1], ['new-1']], a.logits, a.targets, a.classes, a.meta)
    with pytest.raises(ValueError) as e: compare(a, drop)
    msg = str(e.value)
    assert '12 id(s) only in the baseline' in msg and all(i in msg for i in a.ids[:10]) and a.ids[11] not in msg
    assert '0 id(s) only in the candidate []' in msg
    with pytest.raises(ValueError, match=r"1 id\(s\) only in the baseline \['img01499'\], 1 id\(s\) only in the candidate \['new-1'\]"):
        compare(a, extra)

def test_other_input_errors(pair):
    a, b, _ = pair
    bad = Predictions(b.ids, b.logits, (b.targets + 1) % K, b.classes, b.meta)
    with pytest.raises(ValueError, match=r'1500 sample\(s\) have different targets.*img00000'): compare(a, bad)
    with pytest.raises(ValueError, match='class lists differ'): compare(a, Predictions(b.ids, b.logits, b.targets, list('wxyz'), b.meta))
    with pytest.raises(ValueError, match='no targets'): compare(a, Predictions(b.ids, b.logits, None, b.classes, b.meta))
    with pytest.raises(ValueError, match='available columns'): compare(a, b, slices=['lighting'], n_boot=10)
    with pytest.raises(ValueError, match='unknown metric'): compare(a, b, metrics=('acc',), n_boot=10)

def test_permuted_candidate_gives_identical_results(pair):
    a, b, _ = pair
    perm = np.random.default_rng(9).permutation(N)
    c1 = compare(a, b, slices=['time', 'blur'], n_boot=200)
    c2 = compare(a, b.subset(perm), slices=['time', 'blur'], n_boot=200)
    pd.testing.assert_frame_equal(c1.deltas, c2.deltas)
    pd.testing.assert_frame_equal(c1.slices, c2.slices)
    assert c1.mcnemar == c2.mcnemar and c1.verdict == c2.verdict

def test_to_dict_json_and_html(pair):
    a, b, _ = pair
    c = compare(a, b, slices=['time'], n_boot=100)
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d['verdict'] == 'better' and d['primary'] == 'accuracy' and d['mcnemar'] == c.mcnemar
    assert d['slices'][2]['delta'] is None                        # the empty 'dusk' slice: null, with a reason
    back = Comparison.from_dict(d)
    pd.testing.assert_frame_equal(back.deltas, c.deltas, check_dtype=False)
    h = c._repr_html_()
    assert '#1a7f37' in h and 'better' in h and '<table' in h and 'McNemar' in h
    assert '#cf222e' in compare(b, a, n_boot=100)._repr_html_()
