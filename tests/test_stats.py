"Statistics: bootstrap coverage by simulation, McNemar vs scipy's exact binomial test, Holm vs its definition."
import json, math, warnings
import numpy as np, pytest
from scipy import stats as sps
from cvkit.evaluate.stats import (Estimate, resample_indices, bootstrap, bootstrap_samples, bootstrap_mean,
                                  bootstrap_confusion, paired_bootstrap, mcnemar_exact, holm)

def test_estimate_repr_and_json_roundtrip():
    e = Estimate(0.912, 0.897, 0.926, n=1000, n_boot=1000)
    assert repr(e) == '0.9120 [0.8970, 0.9260]'
    assert Estimate.from_dict(json.loads(json.dumps(e.to_dict(), allow_nan=False))) == e
    bad = Estimate(float('nan'), float('nan'), float('nan'), n=10, reason='class 2 absent from targets')
    d = json.loads(json.dumps(bad.to_dict(), allow_nan=False))
    assert d['value'] is None and d['lo'] is None and d['reason'] == 'class 2 absent from targets'
    back = Estimate.from_dict(d)
    assert math.isnan(back.value) and back.reason == bad.reason and 'class 2 absent' in repr(back)

def test_from_samples_percentiles_and_nan_replicates():
    s = np.arange(1001) / 1000
    e = Estimate.from_samples(0.5, s, level=0.9)
    assert (e.lo, e.hi) == pytest.approx((np.quantile(s, 0.05), np.quantile(s, 0.95)))
    with pytest.warns(UserWarning, match='2 of 1003 bootstrap resamples gave NaN'):
        e2 = Estimate.from_samples(0.5, np.r_[s, np.nan, np.nan], level=0.9)
    assert (e2.lo, e2.hi) == (e.lo, e.hi)
    e3 = Estimate.from_samples(0.5, np.full(10, np.nan))
    assert math.isnan(e3.lo) and 'every bootstrap resample gave NaN' in e3.reason

def test_resample_indices_seeded_and_shaped():
    a = np.concatenate(list(resample_indices(50, 130, seed=3, chunk=40)))
    b = np.concatenate(list(resample_indices(50, 130, seed=3, chunk=40)))
    assert a.shape == (130, 50) and a.min() >= 0 and a.max() < 50 and (a == b).all()
    assert not (a == np.concatenate(list(resample_indices(50, 130, seed=4, chunk=40)))).all()
    with pytest.raises(ValueError, match='empty'): next(resample_indices(0))

def test_bootstrap_samples_match_manual_loop():
    rng = np.random.default_rng(0); x, y = rng.normal(size=80), rng.normal(size=80)
    stat = lambda a, b: np.corrcoef(a, b)[0, 1]
    reps = bootstrap_samples(stat, x, y, n_boot=60, seed=7)
    idx = np.concatenate(list(resample_indices(80, 60, seed=7)))
    np.testing.assert_allclose(reps, [stat(x[i], y[i]) for i in idx], rtol=0, atol=0)
    e = bootstrap(stat, x, y, n_boot=60, seed=7)
    assert e.value == pytest.approx(stat(x, y)) and e.lo == pytest.approx(np.quantile(reps, 0.025)) and e.n == 80 and e.n_boot == 60

def _coverage(ci, p=0.8, n=500, sims=2000, seed=12345):
    rng = np.random.default_rng(seed); hit = 0
    for s in range(sims):
        lo, hi = ci((rng.random(n) < p).astype(float), s)
        hit += lo <= p <= hi
    return hit / sims

def test_coverage_bootstrap_mean():
    "Nominal 95% percentile intervals of accuracy cover the true p=0.8 in 93-97% of 2,000 simulated test sets (n=500)."
    cov = _coverage(lambda x, s: (lambda e: (e.lo, e.hi))(bootstrap_mean(x, n_boot=1000, seed=s)))
    print(f'bootstrap_mean coverage {cov:.4f}')
    assert 0.93 <= cov <= 0.97

def test_coverage_bootstrap_confusion_accuracy():
    "The confusion-matrix route (accuracy = trace / n of multinomial confusion resamples) covers as well (1,000 sets)."
    def ci(correct, s):
        rng = np.random.default_rng(s); y = rng.integers(0, 3, len(correct))
        yhat = np.where(correct > 0, y, (y + rng.integers(1, 3, len(y))) % 3)
        cms = bootstrap_confusion(y, yhat, 3, n_boot=1000, seed=s)
        return np.quantile(np.trace(cms, axis1=1, axis2=2) / len(y), [0.025, 0.975])
    cov = _coverage(ci, sims=1000)
    print(f'bootstrap_confusion coverage {cov:.4f}')
    assert 0.93 <= cov <= 0.97

def test_coverage_generic_bootstrap_smaller():
    "The generic index route on a smaller simulation (300 sets, n_boot=500): same ballpark."
    cov = _coverage(lambda x, s: (lambda e: (e.lo, e.hi))(bootstrap(np.mean, x, n_boot=500, seed=s)), n=300, sims=300)
    assert 0.91 <= cov <= 0.98

def test_fast_routes_match_index_route_in_distribution():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 3000); yhat = np.where(rng.random(3000) < 0.75, y, rng.integers(0, 4, 3000))
    cms = bootstrap_confusion(y, yhat, 4, n_boot=4000, seed=0)
    assert cms.shape == (4000, 4, 4) and (cms.sum((1, 2)) == 3000).all()
    acc_cm = np.trace(cms, axis1=1, axis2=2) / 3000
    acc_idx = bootstrap_samples(lambda a, b: (a == b).mean(), y, yhat, n_boot=4000, seed=0)
    assert acc_cm.std() == pytest.approx(acc_idx.std(), rel=0.06)
    assert acc_cm.mean() == pytest.approx((y == yhat).mean(), abs=5e-4)
    np.testing.assert_allclose(cms.mean(0), np.bincount(y * 4 + yhat, minlength=16).reshape(4, 4), atol=4)
    assert (cms == bootstrap_confusion(y, yhat, 4, n_boot=4000, seed=0)).all()
    v = rng.exponential(1.0, 5000)   # continuous: block-gather route
    e_fast = bootstrap_mean(v, n_boot=2000, seed=0); se = v.std() / math.sqrt(5000)
    assert e_fast.hi - e_fast.lo == pytest.approx(2 * 1.96 * se, rel=0.08) and e_fast.value == pytest.approx(v.mean())
    e_bad = bootstrap_mean(np.r_[v, np.nan])
    assert math.isnan(e_bad.value) and '1 per-sample values are NaN' in e_bad.reason

@pytest.mark.parametrize('seed', range(3))
def test_bootstrap_confusion_sparse_route_is_multinomial(seed):
    "Many sparse off-diagonal cells (the item-placement route): totals, support, means, variances and covariances of a multinomial."
    rng = np.random.default_rng(seed); k = 30
    y = rng.integers(0, k, 1500); yhat = np.where(rng.random(1500) < 0.5, y, rng.integers(0, k, 1500))
    obs = np.bincount(y * k + yhat, minlength=k * k); q = obs / 1500
    cms = bootstrap_confusion(y, yhat, k, n_boot=6000, seed=seed).reshape(6000, -1)
    assert (cms.sum(1) == 1500).all() and not cms[:, obs == 0].any()
    nz = np.flatnonzero(obs)
    np.testing.assert_allclose(cms[:, nz].mean(0), obs[nz], atol=0.5)
    np.testing.assert_allclose(cms[:, nz].var(0), 1500 * q[nz] * (1 - q[nz]), rtol=0.2, atol=0.2)
    d, o = np.arange(k) * (k + 1), nz[~np.isin(nz, np.arange(k) * (k + 1))]
    cov = np.cov(cms[:, d[0]], cms[:, o[0]])[0, 1]                   # diagonal vs off-diagonal cell: -n q_i q_j
    assert cov == pytest.approx(-1500 * q[d[0]] * q[o[0]], abs=0.15)
    from cvkit.evaluate.metrics import _cm_macro_f1, confusion_matrix
    f_fast = _cm_macro_f1(cms.reshape(-1, k, k))
    f_idx = bootstrap_samples(lambda a, b: _cm_macro_f1(confusion_matrix(a, b, k)), y, yhat, n_boot=3000, seed=seed)
    assert f_fast.std() == pytest.approx(f_idx.std(), rel=0.08) and f_fast.mean() == pytest.approx(f_idx.mean(), abs=1e-3)

@pytest.mark.parametrize('seed', range(8))
def test_mcnemar_matches_scipy_binomtest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400)); a = rng.random(n) < rng.uniform(0.3, 0.9); b = a.copy()
    flip = rng.random(n) < rng.uniform(0.01, 0.3); b[flip] = ~b[flip]
    r = mcnemar_exact(a, b)
    assert r['n01'] == int((~a & b).sum()) and r['n10'] == int((a & ~b).sum())
    m = r['n01'] + r['n10']
    ref = sps.binomtest(min(r['n01'], r['n10']), m, 0.5).pvalue if m else 1.0
    assert r['p_value'] == pytest.approx(ref, rel=1e-10, abs=1e-300)

@pytest.mark.parametrize('n01,n10', [(0, 0), (5, 5), (0, 7), (30, 10), (1, 200)])
def test_mcnemar_tables(n01, n10):
    a = np.r_[np.zeros(n01, bool), np.ones(n10, bool), np.ones(50, bool)]
    b = np.r_[np.ones(n01, bool), np.zeros(n10, bool), np.ones(50, bool)]
    r = mcnemar_exact(a, b)
    assert (r['n01'], r['n10']) == (n01, n10)
    assert r['p_value'] == pytest.approx(sps.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue if n01 + n10 else 1.0, rel=1e-10)

def _holm_rejects(p, alpha):
    "Holm's step-down procedure as defined: reject H_(1..i) while p_(j) <= alpha / (m - j + 1)."
    o = np.argsort(p); rej = np.zeros(len(p), bool)
    for j, i in enumerate(o):
        if p[i] <= alpha / (len(p) - j): rej[i] = True
        else: break
    return rej

@pytest.mark.parametrize('seed', range(5))
def test_holm_matches_step_down_definition(seed):
    rng = np.random.default_rng(seed)
    p = np.r_[rng.uniform(0, 0.02, 4), rng.uniform(0, 1, 8)]
    adj = holm(p)
    assert (adj >= p).all() and (adj <= 1).all()
    assert (np.diff(adj[np.argsort(p)]) >= -1e-15).all()          # monotone in the sorted order
    for alpha in [0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]:
        assert ((adj <= alpha) == _holm_rejects(p, alpha)).all()

def test_holm_hand_example_and_nan():
    # Holm (1979)-style textbook example (Wikipedia, Holm–Bonferroni method): m=4
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.2, 0.9]), [0.4, 0.9])
    h = holm([0.01, np.nan, 0.04])
    assert math.isnan(h[1]) and h[[0, 2]] == pytest.approx([0.02, 0.04])

def test_paired_bootstrap_matches_shared_indices():
    rng = np.random.default_rng(3); a = rng.random(200) < 0.7; b = rng.random(200) < 0.75
    est, p = paired_bootstrap(np.mean, (a,), (b,), n_boot=300, seed=5)
    d = [b[i].mean() - a[i].mean() for i in np.concatenate(list(resample_indices(200, 300, seed=5)))]
    assert est.value == pytest.approx(b.mean() - a.mean())
    assert (est.lo, est.hi) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])))
    e0, p0 = paired_bootstrap(np.mean, (a,), (a,), n_boot=100)
    assert e0.value == 0 and p0 == 1.0
    with pytest.raises(ValueError, match='differ in length'): paired_bootstrap(np.mean, (a,), (b[:5],))

def test_paired_bootstrap_coverage_of_true_delta():
    "Two correlated models with true accuracies 0.80 and 0.85 (delta 0.05): the 95% delta interval covers it ~95% (300 sets); p < 0.05 about 5% of the time when the true delta is 0."
    rng, hit, small_p, false_pos = np.random.default_rng(2024), 0, 0, 0
    for s in range(300):
        u = rng.random(400)
        a, b = u < 0.80, u < 0.85             # strongly paired ...
        redraw = rng.random(400) < 0.2        # ... except 20% of samples where b errs independently of a
        b[redraw] = rng.random(redraw.sum()) < 0.85
        e, p = paired_bootstrap(np.mean, (a,), (b,), n_boot=500, seed=s)
        hit += e.lo <= 0.05 <= e.hi; small_p += p < 0.05
        b0 = a.copy(); b0[redraw] = rng.random(redraw.sum()) < 0.80   # same true accuracy as a
        false_pos += paired_bootstrap(np.mean, (a,), (b0,), n_boot=500, seed=s)[1] < 0.05
    print(f'paired coverage {hit/300:.3f}, power {small_p/300:.3f}, type I error {false_pos/300:.3f}')
    assert 0.90 <= hit / 300 <= 0.985
    assert small_p / 300 > 0.8                 # power against delta 0.05 at n=400
    assert false_pos / 300 <= 0.09             # type I error near the nominal 5%
