"Metrics against scikit-learn / torchmetrics / scipy over many seeds and edge cases; input checks; bootstrap routes."
import json, math, warnings
import numpy as np, pandas as pd, pytest, torch
import sklearn.metrics as skm
import torchmetrics.functional.classification as tmf
from scipy import stats as sps
from cvkit.evaluate.stats import Estimate, resample_indices, bootstrap
from cvkit.evaluate.metrics import (check_inputs, accuracy, top_k_accuracy, balanced_accuracy, macro_f1, weighted_f1, nll, brier,
                                    auroc_ovr, confusion_matrix, per_class_prf, Metric, METRICS, get_metric, metric_ci,
                                    classification_metrics, _auroc_weighted)
from cvkit.evaluate.predictions import Predictions

TOL = 1e-6

def _case(seed, kind):
    rng = np.random.default_rng(seed)
    k = {'random': int(rng.integers(3, 12)), 'missing': 8, 'binary': 2, 'perfect': 5}[kind]
    n = int(rng.integers(50, 600))
    y = rng.integers(0, k, n)
    if kind == 'missing': y = rng.choice([0, 2, 3, 5, 6], n)          # classes 1, 4 and 7 never occur in y
    logits = rng.normal(size=(n, k)) * rng.uniform(0.5, 3); logits[np.arange(n), y] += rng.uniform(0, 2)
    if kind == 'perfect': logits[np.arange(n), y] += 50
    p = torch.softmax(torch.tensor(logits), 1).numpy()
    return y, p, k

CASES = [(s, kind) for kind in ('random', 'missing', 'binary', 'perfect') for s in range(6)]

@pytest.mark.parametrize('seed,kind', CASES)
def test_against_sklearn(seed, kind):
    y, p, k = _case(seed, kind); yhat = p.argmax(1); labels = list(range(k))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert accuracy(y, p) == pytest.approx(skm.accuracy_score(y, yhat), abs=TOL)
        assert balanced_accuracy(y, p) == pytest.approx(skm.balanced_accuracy_score(y, yhat), abs=TOL)
        assert macro_f1(y, p) == pytest.approx(skm.f1_score(y, yhat, average='macro', zero_division=0), abs=TOL)
        assert weighted_f1(y, p) == pytest.approx(skm.f1_score(y, yhat, average='weighted', zero_division=0), abs=TOL)
        for kk in [1, 2, 3]:
            if kk < k and k > 2: assert top_k_accuracy(y, p, kk) == pytest.approx(skm.top_k_accuracy_score(y, p, k=kk, labels=labels), abs=TOL)
        assert nll(y, p) == pytest.approx(skm.log_loss(y, p, labels=labels), abs=TOL)
        assert brier(y, p) == pytest.approx(skm.brier_score_loss(y, p, labels=labels, scale_by_half=False), abs=TOL)
        np.testing.assert_array_equal(confusion_matrix(y, yhat, k), skm.confusion_matrix(y, yhat, labels=labels))
        P, R, F, S = skm.precision_recall_fscore_support(y, yhat, labels=labels, zero_division=0)
        prf = per_class_prf(y, yhat, k)
        np.testing.assert_allclose(prf[['precision', 'recall', 'f1']].values, np.c_[P, R, F], atol=TOL)
        np.testing.assert_array_equal(prf.support.values, S)
        if kind == 'missing':
            with pytest.warns(UserWarning, match=r'classes \[1, 4, 7\] never occur'): assert math.isnan(auroc_ovr(y, p))
        elif kind == 'binary':
            assert auroc_ovr(y, p) == pytest.approx(skm.roc_auc_score(y, p[:, 1]), abs=TOL)
        else:
            assert auroc_ovr(y, p) == pytest.approx(skm.roc_auc_score(y, p, multi_class='ovr', labels=labels), abs=TOL)
    if kind == 'perfect':
        assert accuracy(y, p) == balanced_accuracy(y, p) == macro_f1(y, p) == weighted_f1(y, p) == top_k_accuracy(y, p, 1) == 1.0
        assert auroc_ovr(y, p) == 1.0 and nll(y, p) < 1e-15 and brier(y, p) < 1e-15

@pytest.mark.parametrize('seed,kind', [c for c in CASES if c[1] != 'missing'])
def test_against_torchmetrics(seed, kind):
    y, p, k = _case(seed, kind)
    yt, pt = torch.tensor(y), torch.tensor(p)
    assert accuracy(y, p) == pytest.approx(tmf.multiclass_accuracy(pt, yt, k, average='micro').item(), abs=TOL)
    assert balanced_accuracy(y, p) == pytest.approx(tmf.multiclass_accuracy(pt, yt, k, average='macro').item(), abs=TOL)
    assert macro_f1(y, p) == pytest.approx(tmf.multiclass_f1_score(pt, yt, k, average='macro').item(), abs=TOL)
    assert weighted_f1(y, p) == pytest.approx(tmf.multiclass_f1_score(pt, yt, k, average='weighted').item(), abs=TOL)
    if k > 2: assert top_k_accuracy(y, p, 2) == pytest.approx(tmf.multiclass_accuracy(pt, yt, k, average='micro', top_k=2).item(), abs=TOL)
    assert auroc_ovr(y, p) == pytest.approx(tmf.multiclass_auroc(pt, yt, k, average='macro', thresholds=None).item(), abs=TOL)
    assert nll(y, p) == pytest.approx(torch.nn.functional.nll_loss(torch.log(pt), yt).item(), abs=TOL)
    np.testing.assert_array_equal(confusion_matrix(y, p.argmax(1), k), tmf.multiclass_confusion_matrix(pt, yt, k).numpy())

@pytest.mark.parametrize('seed', range(5))
def test_auroc_is_mann_whitney(seed):
    "One-vs-rest AUROC of each class equals scipy's Mann-Whitney U / (n_pos n_neg), ties included."
    rng = np.random.default_rng(seed); y = rng.integers(0, 4, 300)
    p = rng.dirichlet(np.ones(4), 300).round(2); p /= p.sum(1, keepdims=True)   # rounding makes ties
    per = [sps.mannwhitneyu(p[y == c, c], p[y != c, c]).statistic / ((y == c).sum() * (y != c).sum()) for c in range(4)]
    assert auroc_ovr(y, p) == pytest.approx(np.mean(per), abs=1e-12)

@pytest.mark.parametrize('seed', range(5))
def test_bootstrap_routes_are_exact_on_resamples(seed):
    "Each fast route scores a resample exactly as the plain metric on the resampled rows would."
    y, p, k = _case(seed, 'random'); n = len(y)
    idx = next(resample_indices(n, 4, seed=seed))
    w = np.stack([np.bincount(i, minlength=n) for i in idx])
    np.testing.assert_allclose(_auroc_weighted(y, p, w), [auroc_ovr(y[i], p[i]) for i in idx], atol=1e-12)
    for name in ['accuracy', 'balanced_accuracy', 'macro_f1', 'weighted_f1']:
        m = METRICS[name]
        cms = np.stack([confusion_matrix(y[i], p[i].argmax(1), k) for i in idx])
        np.testing.assert_allclose(m.cm_fn(cms), [m.fn(y[i], p[i]) for i in idx], atol=1e-12)
    for name in ['accuracy', 'top5_accuracy', 'nll', 'brier']:
        m = METRICS[name]
        assert m.per_sample(y, p).mean() == pytest.approx(m.fn(y, p), abs=1e-12)

@pytest.mark.parametrize('name', list(METRICS))
def test_metric_ci_agrees_with_generic_bootstrap(name):
    rng = np.random.default_rng(0); n, k = 1500, 6
    y = rng.integers(0, k, n); logits = rng.normal(size=(n, k)); logits[np.arange(n), y] += 1.5
    p = torch.softmax(torch.tensor(logits), 1).numpy()
    fast = metric_ci(name, y, p, n_boot=1000, seed=0)
    slow = bootstrap(METRICS[name].fn, y, p, n_boot=1000, seed=1)
    assert fast.value == slow.value and fast.lo <= fast.value <= fast.hi and fast.n == n and fast.n_boot == 1000
    assert fast.hi - fast.lo == pytest.approx(slow.hi - slow.lo, rel=0.15)
    assert (fast.lo, fast.hi) == pytest.approx((slow.lo, slow.hi), abs=0.25 * (slow.hi - slow.lo))
    assert metric_ci(name, y, p, n_boot=200, seed=3) == metric_ci(name, y, p, n_boot=200, seed=3)
    e90 = metric_ci(name, y, p, n_boot=1000, level=0.9, seed=0)
    assert e90.level == 0.9 and e90.hi - e90.lo < fast.hi - fast.lo

def test_metric_registry():
    assert list(METRICS) == ['accuracy', 'top5_accuracy', 'balanced_accuracy', 'macro_f1', 'weighted_f1', 'auroc', 'nll', 'brier']
    assert not METRICS['nll'].higher_is_better and METRICS['macro_f1'].higher_is_better
    assert get_metric('top3_accuracy').name == 'top3_accuracy'
    with pytest.raises(ValueError, match="unknown metric 'f2'"): get_metric('f2')

def _preds(n=600, k=5, seed=0, drop_class=None):
    rng = np.random.default_rng(seed); y = rng.integers(0, k, n)
    if drop_class is not None: y[y == drop_class] = (drop_class + 1) % k
    logits = rng.normal(size=(n, k)); logits[np.arange(n), y] += 2
    return Predictions([f'id{i}' for i in range(n)], logits, y)

def test_classification_metrics():
    pr = _preds(k=10)
    res = classification_metrics(pr, n_boot=300, seed=0)
    assert list(res) == ['accuracy', 'top5_accuracy', 'balanced_accuracy', 'macro_f1', 'weighted_f1', 'auroc', 'nll', 'brier']
    y, p = pr.targets, pr.probs
    assert res['accuracy'].value == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert res['macro_f1'].value == pytest.approx(skm.f1_score(y, p.argmax(1), average='macro'))
    assert res['auroc'].value == pytest.approx(skm.roc_auc_score(y, p, multi_class='ovr'))
    for name, e in res.items():
        assert isinstance(e, Estimate) and e.lo <= e.value <= e.hi and e.n == 600 and e.n_boot == 300, name
        assert e == metric_ci(name, y, p, n_boot=300, seed=0)
    json.dumps({k: v.to_dict() for k, v in res.items()}, allow_nan=False)
    assert 'top5_accuracy' not in classification_metrics(_preds(k=4), n_boot=10)   # trivially 1 when k <= top_k
    assert list(classification_metrics(pr, metrics=['nll', 'top2_accuracy'], n_boot=10)) == ['nll', 'top2_accuracy']

def test_undefined_metric_is_nan_with_reason():
    res = classification_metrics(_preds(drop_class=3), n_boot=50)
    e = res['auroc']
    assert math.isnan(e.value) and 'classes [3] never occur in the targets' in e.reason
    assert json.loads(json.dumps(e.to_dict(), allow_nan=False))['value'] is None
    assert not math.isnan(res['macro_f1'].value)

def test_unlabelled_predictions():
    pr = Predictions(['a', 'b'], np.zeros((2, 3)))
    with pytest.raises(ValueError, match='no targets'): classification_metrics(pr)

# ---- bad inputs ----
P3 = np.array([[.2, .3, .5], [.1, .1, .8], [.6, .3, .1], [.3, .3, .4]])

def test_check_inputs_ok():
    check_inputs([0, 2, 1, 0], P3); check_inputs([0, 2, 1, 0], np.log(P3), kind='logits', num_classes=3)

def test_check_inputs_length_mismatch():
    with pytest.raises(ValueError, match='length mismatch: 3 targets but 4 rows of probs'): check_inputs([0, 1, 2], P3)

def test_check_inputs_nan_inf():
    z = np.log(P3); z[1, 2] = np.nan; z[3, 0] = np.inf; z[3, 1] = np.nan
    with pytest.raises(ValueError) as e: check_inputs([0, 1, 2, 0], z, kind='logits', ids=['a', 'b', 'c', 'd'])
    msg = str(e.value)
    assert '2 samples have NaN or inf logits (3 values; 2 NaN)' in msg and '(1, 2), (3, 0), (3, 1)' in msg and "ids ['b', 'd']" in msg
    with pytest.raises(ValueError, match=r'positions \[1, 3\]'): check_inputs([0, 1, 2, 0], z, kind='logits')

def test_check_inputs_probs_not_normalised():
    q = P3.copy(); q[1] *= 0.9; q[2] *= 0.5
    with pytest.raises(ValueError) as e: check_inputs([0, 1, 2, 0], q)
    msg = str(e.value)
    assert '2 rows of probs do not sum to 1 (tolerance 1e-4)' in msg and 'positions [1, 2]' in msg and '[0.9, 0.5]' in msg
    assert "kind='logits'" in msg and 'softmax' in msg
    check_inputs([0, 1, 2, 0], P3 + np.array([5e-5, 0, 0]))           # within tolerance
    with pytest.raises(ValueError, match="outside \\[0, 1\\].*kind='logits'"): check_inputs([0, 1, 2, 0], np.log(P3))

def test_check_inputs_label_out_of_range():
    with pytest.raises(ValueError) as e: check_inputs([0, 3, 7, -1], P3, ids=['a', 'b', 'c', 'd'])
    msg = str(e.value)
    assert '3 targets are outside 0..2 (there are 3 classes)' in msg and 'labels [-1, 3, 7]' in msg and "ids ['b', 'c', 'd']" in msg
    with pytest.raises(ValueError, match='num_classes=4'): check_inputs([0, 1, 2, 0], P3, num_classes=4)
    with pytest.raises(ValueError, match='integer class indices'): check_inputs([0, 1.5, 2, 0], P3)
    with pytest.raises(ValueError, match='2-D'): check_inputs([0], np.ones(3) / 3)

def test_classification_metrics_checks_logits():
    pr = _preds(n=50); pr.logits[[4, 9], 0] = np.nan
    with pytest.raises(ValueError, match=r"2 samples have NaN or inf logits.*ids \['id4', 'id9'\]"): classification_metrics(pr, n_boot=10)
