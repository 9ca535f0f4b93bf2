"Selective prediction: AURC against the direct O(n^2) definition, exact oracle AURC, thresholds, held-out CIs, bad input."
import math, warnings
import numpy as np, pandas as pd, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.selective import (risk_coverage, aurc, eaurc, threshold_for_risk, threshold_for_coverage, evaluate_threshold,
                                      abstention_summary, selective_metrics, risk_coverage_plot, _optimal_aurc)

def simulate(n=2000, k=5, scale=1.0, seed=0, sigma=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, sigma, (n, k))
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    y = (rng.random((n, 1)) > p.cumsum(1)).sum(1).clip(0, k - 1)
    return Predictions([f's{i}' for i in range(n)], z * scale, y)

def aurc_direct(s, err):
    "Mean over samples of the selective risk when the threshold is that sample's score (O(n^2))."
    return np.mean([err[s >= t].mean() for t in s])

def oracle_direct(err):
    "AURC of the ranking that puts every error last, by the per-coverage definition."
    e_sorted = np.sort(err)                       # correct (0) first
    return np.mean([e_sorted[:m].mean() for m in range(1, len(err) + 1)])

@pytest.mark.parametrize('seed', range(8))
def test_aurc_matches_direct_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 80))
    p = Predictions(np.arange(n), rng.normal(size=(n, 3)), rng.integers(0, 3, n))
    err = (~p.correct).astype(float)
    for s in (p.confidence, rng.integers(0, 5, n).astype(float), rng.random(n)):
        assert abs(aurc(p, s) - aurc_direct(s, err)) < 1e-12
        assert eaurc(p, s) >= -1e-12
    assert abs(aurc(p) - aurc_direct(p.confidence, err)) < 1e-12
    assert abs(_optimal_aurc(n, int(err.sum())) - oracle_direct(err)) < 1e-12
    oracle = -err + rng.random(n) / 2
    assert abs(eaurc(p, oracle)) < 1e-12
    rc = risk_coverage(p, s)
    assert rc.coverage.is_monotonic_increasing and rc.coverage.iloc[-1] == 1 and len(rc) == len(np.unique(s))
    for _, row in rc.iterrows():
        acc = s >= row.threshold
        assert abs(row.coverage - acc.mean()) < 1e-12 and abs(row.risk - err[acc].mean()) < 1e-12

def test_optimal_aurc_continuous_limit():
    for r in (0.05, 0.2, 0.5):
        approx = r + (1 - r) * math.log(1 - r)
        errs = [abs(_optimal_aurc(n, round(r * n)) - approx) for n in (100, 1000, 10000)]
        assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3 * (1 + r)      # converges like 1/n
    assert _optimal_aurc(10, 0) == 0 and _optimal_aurc(10, 10) == 1

def test_thresholds_and_heldout_ci():
    calib, test = simulate(seed=1), simulate(seed=2)
    t = threshold_for_risk(calib, 0.05)
    rc = risk_coverage(calib)
    assert rc.risk[rc.threshold == t].item() <= 0.05 and (rc.risk[rc.threshold < t] > 0.05).all()
    ev = evaluate_threshold(test, t, n_boot=300)
    acc = test.confidence >= t
    assert ev['n_accepted'] == acc.sum() and ev['n_abstained'] == (~acc).sum()
    assert abs(ev['coverage'].value - acc.mean()) < 1e-12 and abs(ev['risk'].value - (~test.correct[acc]).mean()) < 1e-12
    assert ev['risk'].lo < ev['risk'].value < ev['risk'].hi and ev['risk'].hi < 0.1
    for c in (0.3, 0.8, 1.0, 1e-9):
        tc = threshold_for_coverage(calib, c)
        assert (calib.confidence >= tc).sum() == max(1, math.ceil(c * len(calib)))
    ties = Predictions(list('abcd'), [[1., 0], [1., 0], [1., 0], [0., 2.]], [0, 0, 1, 1])
    assert (ties.confidence >= threshold_for_coverage(ties, 0.5)).sum() == 4    # ties accepted together: coverage >= target

def test_unreachable_risk_warns_and_returns_lowest():
    calib = simulate(seed=1)
    hard = Predictions(calib.ids, -calib.logits, calib.targets)
    rc = risk_coverage(hard)
    with pytest.warns(UserWarning, match='not reachable') as w: t = threshold_for_risk(hard, rc.risk.min() / 2)
    assert rc.risk[rc.threshold == t].item() == rc.risk.min()
    assert f'{rc.risk.min():.4f}' in str(w[0].message)

def test_abstention_summary_and_metrics():
    test = simulate(seed=2)
    t = threshold_for_coverage(test, 0.7)
    a = abstention_summary(test, t)
    assert list(a['class']) == test.classes + ['(all)']
    assert a.n.iloc[:-1].sum() == len(test) and a.abstained.iloc[-1] == (test.confidence < t).sum()
    m = test.targets == 0; acc = test.confidence >= t
    assert abs(a.risk_accepted[0] - (~test.correct[m & acc]).mean()) < 1e-12
    sm = selective_metrics(test, n_boot=100)
    assert abs(sm['aurc'].value - aurc(test)) < 1e-12 and abs(sm['eaurc'].value - eaurc(test)) < 1e-12
    assert 0 < sm['eaurc'].lo <= sm['eaurc'].value <= sm['eaurc'].hi
    # a model that ranks its errors well has a lower E-AURC than one that ranks them badly
    assert eaurc(test) < eaurc(test, score=-test.confidence)

@pytest.mark.parametrize('call,msg', [
    (lambda p: threshold_for_coverage(p, 0), '(0, 1]'),
    (lambda p: threshold_for_coverage(p, 1.01), '(0, 1]'),
    (lambda p: threshold_for_coverage(p, float('nan')), '(0, 1]'),
    (lambda p: threshold_for_risk(p, -0.1), '[0, 1]'),
    (lambda p: aurc(Predictions(['a'], [[0., 1.]])), 'unlabelled'),
    (lambda p: evaluate_threshold(Predictions(['a'], [[0., 1.]]), 0.5), 'unlabelled'),
    (lambda p: aurc(p, np.ones(3)), '3 values'),
    (lambda p: aurc(p, 'entropy'), 'Unknown score'),
    (lambda p: risk_coverage(Predictions([], np.zeros((0, 2)), [])), 'empty'),
])
def test_bad_input(call, msg):
    with pytest.raises(ValueError) as e: call(simulate(50))
    assert msg in str(e.value)

def test_nothing_accepted_is_nan_with_reason_and_plot(tmp_path):
    import matplotlib; matplotlib.use('Agg')
    p = simulate(200)
    ev = evaluate_threshold(p, 2.0, n_boot=10)
    assert np.isnan(ev['risk'].value) and 'nothing accepted' in ev['risk'].reason and ev['coverage'].value == 0
    a = abstention_summary(p, 2.0)
    assert a.risk_accepted.isna().all() and (a.note.iloc[:-1] == 'all abstained: risk undefined').all()
    ax = risk_coverage_plot(p, threshold=threshold_for_coverage(p, 0.5))
    assert f'{aurc(p):.4f}' in ax.get_legend().get_texts()[1].get_text()
    risk_coverage_plot(risk_coverage(p), ax=ax, label='again').figure.savefig(tmp_path/'rc.png')
    assert (tmp_path/'rc.png').stat().st_size > 1000
