"Calibration: ECE/MCE against torchmetrics, equal-mass and classwise ECE against direct definitions, temperature scaling, slices, bad input."
import json, warnings
import numpy as np, pandas as pd, pytest, torch
from torchmetrics.classification import MulticlassCalibrationError
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.calibration import (ece, mce, classwise_ece, reliability_table, calibration_metrics, fit_temperature,
                                        apply_temperature, temperature_scaling, ece_by_slice, reliability_diagram, _nll_per_sample, _bin_sums)

SEEDS = range(6)

def simulate(n=2000, k=5, scale=1.0, seed=0, sigma=2.0):
    "Labels drawn from softmax(logits) (calibrated by construction); logits then multiplied by `scale`."
    rng = np.random.default_rng(seed)
    z = rng.normal(0, sigma, (n, k))
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    y = (rng.random((n, 1)) > p.cumsum(1)).sum(1).clip(0, k - 1)
    meta = pd.DataFrame(dict(site=rng.choice(['a', 'b', 'c'], n, p=[0.6, 0.39, 0.01]), size=rng.random(n)))
    return Predictions([f's{i}' for i in range(n)], z * scale, y, meta=meta)

def tm(p, norm, n_bins=15):
    return MulticlassCalibrationError(num_classes=p.num_classes, n_bins=n_bins, norm=norm)(torch.from_numpy(p.probs), torch.from_numpy(p.targets)).item()

@pytest.mark.parametrize('seed', SEEDS)
@pytest.mark.parametrize('scale', [0.5, 1.0, 3.0])
def test_ece_mce_match_torchmetrics(seed, scale):
    p = simulate(1000 + 137 * seed, k=3 + seed, scale=scale, seed=seed)
    keep = p.confidence.astype(np.float32) < 1      # torchmetrics (float32) sees these as exactly 1.0: see the next test
    assert keep.mean() > 0.9
    p = p.subset(keep)
    for n_bins in (15, 7):
        assert abs(ece(p.confidence, p.correct, n_bins) - tm(p, 'l1', n_bins)) < 1e-6
        assert abs(mce(p.confidence, p.correct, n_bins) - tm(p, 'max', n_bins)) < 1e-6

def test_documented_difference_confidence_exactly_one():
    "torchmetrics puts confidence == 1.0 in an extra (n_bins+1)-th bin; here it joins the top bin [14/15, 1]."
    conf = np.array([1.0, 0.94]); ok = np.array([0, 1])          # both in [14/15, 1]; gaps of opposite sign
    probs = np.stack([conf, 1 - conf], 1)
    ref = MulticlassCalibrationError(num_classes=2, n_bins=15, norm='l1')(torch.from_numpy(probs), torch.tensor([1, 0])).item()
    np.testing.assert_allclose(ref, (1.0 + 0.06) / 2, atol=1e-6)                # two bins: {1.0} gap 1, [.933, 1) gap .06
    np.testing.assert_allclose(ece(conf, ok), abs(0.5 - 0.97), atol=1e-12)       # one top bin: acc .5, conf .97
    keep = conf < 1                                                              # without exact 1.0 they agree
    ref = MulticlassCalibrationError(num_classes=2, n_bins=15, norm='l1')(torch.from_numpy(probs[keep]), torch.tensor([0])).item()
    np.testing.assert_allclose(ece(conf[keep], ok[keep]), ref, atol=1e-6)

def ece_mass_direct(c, ok, B):
    order = np.argsort(c, kind='stable'); n = len(c); total = 0.
    for b in range(B):
        idx = order[[r for r in range(n) if r * B // n == b]]
        if len(idx): total += len(idx) / n * abs(ok[idx].mean() - c[idx].mean())
    return total

def classwise_direct(y, p, B):
    n, k = p.shape; edges = np.linspace(0, 1, B + 1); total = 0.
    for j in range(k):
        for b in range(B):
            inb = (p[:, j] >= edges[b]) & ((p[:, j] < edges[b + 1]) if b < B - 1 else (p[:, j] <= 1))
            if inb.any(): total += inb.sum() / n * abs((y[inb] == j).mean() - p[inb, j].mean())
    return total / k

@pytest.mark.parametrize('seed', SEEDS)
def test_mass_and_classwise_against_direct(seed):
    p = simulate(300 + 41 * seed, k=4, scale=2.0, seed=seed)
    c, ok = p.confidence, p.correct.astype(float)
    for B in (15, 10, 1):
        assert abs(ece(c, ok, B, 'mass') - ece_mass_direct(c, ok, B)) < 1e-12
        assert abs(classwise_ece(p.targets, p.probs, B) - classwise_direct(p.targets, p.probs, B)) < 1e-12
    # ties: mass bins split tied runs by input order, consistently with the direct definition
    ct = np.round(c, 1)
    assert abs(ece(ct, ok, 15, 'mass') - ece_mass_direct(ct, ok, 15)) < 1e-12

def test_reliability_table_consistent():
    p = simulate(scale=3.0)
    for strategy in ('width', 'mass'):
        t = reliability_table(p.confidence, p.correct, 15, strategy)
        assert len(t) == 15 and t.n.sum() == len(p)
        np.testing.assert_allclose((t.n * t.gap.abs()).sum() / len(p), ece(p.confidence, p.correct, 15, strategy), atol=1e-12)
        assert (t.gap[t.n > 50] > 0).all()     # overconfident
    assert t.n.max() - t.n.min() <= 1        # equal mass: 2000/15 -> 133 or 134 per bin

def test_calibration_metrics_estimates():
    p = simulate(scale=3.0)
    m = calibration_metrics(p, n_boot=100)
    assert set(m) == {'ece', 'ece_mass', 'mce', 'classwise_ece'}
    assert abs(m['ece'].value - ece(p.confidence, p.correct)) < 1e-12
    assert abs(m['classwise_ece'].value - classwise_ece(p.targets, p.probs)) < 1e-12
    for k in ('ece', 'ece_mass', 'classwise_ece'): e = m[k]; assert e.lo <= e.value <= e.hi and e.n == len(p) and e.n_boot == 100
    # MCE: the value, no interval, and the reason (a bootstrap interval of a maximum over bins is not valid)
    assert m['mce'].value == pytest.approx(mce(p.confidence, p.correct), abs=1e-12)
    assert np.isnan(m['mce'].lo) and np.isnan(m['mce'].hi) and m['mce'].n_boot == 0 and 'maximum over bins' in m['mce'].reason
    assert repr(m['mce']).count('no interval') == 1   # printed once, by Estimate
    d = json.loads(json.dumps(m['mce'].to_dict(), allow_nan=False))
    assert d['lo'] is None and d['value'] == pytest.approx(m['mce'].value)
    # same seed -> same interval
    assert calibration_metrics(p, n_boot=100)['ece'].lo == m['ece'].lo

def test_mce_without_interval_through_the_gate():
    from cvkit.evaluate.gate import gate
    m = calibration_metrics(simulate(scale=3.0), n_boot=50)['mce']
    rep = {'calibration': {'mce': m.to_dict()}}
    ok = gate(rep, [dict(rule='max_ece', metric='mce', max=m.value + 0.01, bound='value')])
    assert ok.passed and ok.rows.value[0] == pytest.approx(m.value)
    hi = gate(rep, [dict(rule='max_ece', metric='mce', max=1.0, bound='hi')])   # no upper bound to check: fails, saying why
    assert not hi.passed and 'upper bound is NaN (MCE is a maximum over bins' in hi.rows.reason[0]

def test_old_percentile_mce_interval_undercovers():
    "Why MCE lost its interval: over repeated calibrated test sets (true MCE 0) the percentile bootstrap never covers it."
    from cvkit.evaluate.stats import bootstrap
    def _mce(c, ok):
        n, sc, sa = _bin_sums(c, ok, 15, 'width'); k = n > 0
        return (np.abs(sa[k] - sc[k]) / n[k]).max()
    hits = [bootstrap(_mce, p.confidence, p.correct.astype(float), n_boot=100, seed=s).lo <= 0
            for s in range(20) for p in [simulate(1000, seed=500 + s)]]
    assert not any(hits)

@pytest.mark.parametrize('seed', SEEDS)
def test_temperature_recovers_three(seed):
    calib, test = simulate(4000, scale=3.0, seed=10 + seed), simulate(2000, scale=3.0, seed=20 + seed)
    T = fit_temperature(calib)
    assert abs(T - 3) < 0.25, T
    # brute-force grid agrees with the optimiser
    grid = np.exp(np.linspace(np.log(1.5), np.log(6), 801)); z = calib.logits.astype(np.float64)
    nll = [_nll_per_sample(z / t, calib.targets).mean() for t in grid]
    assert abs(T / grid[int(np.argmin(nll))] - 1) < 3e-3
    assert _nll_per_sample(z / T, calib.targets).mean() <= min(nll) + 1e-9
    scaled = apply_temperature(test, T)
    assert (scaled.preds == test.preds).all() and scaled.info['temperature'] == T
    assert ece(scaled.confidence, scaled.correct) < ece(test.confidence, test.correct)

def test_temperature_calibrated_is_one_and_scaling_report():
    assert abs(fit_temperature(simulate(4000, seed=3)) - 1) < 0.1
    calib, test = simulate(4000, scale=3.0, seed=1), simulate(scale=3.0, seed=2)
    r = temperature_scaling(calib, test, n_boot=100)
    assert set(r) >= {'temperature', 'before', 'after', 'predictions'}
    for k in ('before', 'after'): assert set(r[k]) == {'ece', 'nll', 'accuracy'}
    assert r['before']['accuracy'].value == r['after']['accuracy'].value == test.accuracy
    assert r['after']['ece'].hi < r['before']['ece'].lo and r['after']['nll'].value < r['before']['nll'].value
    nll_ref = torch.nn.functional.cross_entropy(torch.from_numpy(test.logits).double(), torch.from_numpy(test.targets)).item()
    assert abs(r['before']['nll'].value - nll_ref) < 1e-9
    with pytest.warns(UserWarning, match='both the calibration and the test split'): temperature_scaling(calib, calib, n_boot=10)

def test_temperature_bound_warning_when_separable():
    z = np.eye(3)[[0, 1, 2, 0]] * 5.0
    p = Predictions(list('abcd'), z, [0, 1, 2, 0])
    with pytest.warns(UserWarning, match='no interior minimum'): T = fit_temperature(p)
    assert T < 0.2

def test_ece_by_slice_keeps_small_and_empty():
    p = simulate(scale=1.0)
    meta = p.meta.assign(site=pd.Categorical(p.meta.site, categories=['a', 'b', 'c', 'never']))
    meta.loc[:4, 'site'] = np.nan
    q = Predictions(p.ids, p.logits, p.targets, meta=meta)
    t = ece_by_slice(q, 'site', n_boot=50)
    assert list(t.slice) == ['a', 'b', 'c', 'never', 'missing'] and t.n.sum() == len(q)
    assert t.set_index('slice').status.to_dict() == {'a': 'ok', 'b': 'ok', 'c': 'too small (n<30)', 'never': 'empty', 'missing': 'too small (n<30)'}
    assert np.isnan(t.ece[3]) and not np.isnan(t.ece[2])
    a = q.subset((meta.site == 'a').to_numpy())
    assert abs(t.ece[0] - ece(a.confidence, a.correct)) < 1e-12
    assert len(ece_by_slice(q, 'size', bins=4, n_boot=10)) == 4            # numeric -> quantile groups
    with pytest.raises(ValueError, match=r"available columns: \['site', 'size'\]"): ece_by_slice(q, 'light')
    x = ece_by_slice(q, ('site', 'size'), n_boot=10)                       # a crossing, as in slice_report
    assert x.n.sum() == len(q) and x.slice.str.contains(' & ').all()

@pytest.mark.parametrize('call,msg', [
    (lambda: ece([0.2, 1.5], [1, 0]), 'not probabilities'),
    (lambda: ece([0.2, np.nan], [1, 0]), 'positions [1]'),
    (lambda: ece([0.2, 0.3], [1]), '2 values but correct has 1'),
    (lambda: ece([], []), 'No samples'),
    (lambda: ece([0.5], [2]), 'boolean or 0/1'),
    (lambda: ece([0.5], [1], n_bins=0), 'positive integer'),
    (lambda: mce([0.5], [1], strategy='uniform'), "'width'"),
    (lambda: classwise_ece([0, 3], np.full((2, 3), 1 / 3)), 'outside 0..2'),
    (lambda: classwise_ece([0, 1], np.array([[2., -1], [0.5, 0.5]])), 'not probabilities'),
    (lambda: calibration_metrics(Predictions(['a'], [[0., 1.]])), 'unlabelled'),
    (lambda: fit_temperature(Predictions(['a'], [[0., 1.]])), 'unlabelled'),
    (lambda: fit_temperature(Predictions(['a', 'b'], [[0., np.inf], [0, 1]], [0, 1])), "ids ['a']"),
    (lambda: apply_temperature(simulate(10), -1.0), 'positive'),
    (lambda: ece_by_slice(Predictions([], np.zeros((0, 2)), []), 'x'), 'empty'),
])
def test_bad_input(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)

def test_reliability_diagram_draws(tmp_path):
    import matplotlib; matplotlib.use('Agg')
    p = simulate(500, scale=3.0)
    ax = reliability_diagram(p, title='x')
    t = reliability_table(p.confidence, p.correct)
    assert ax.get_title().startswith('x: ECE = ') and len(ax.patches) >= 2 * (t.n > 0).sum()
    assert abs(float(ax.get_title().split('ECE = ')[1]) - (t.n * t.gap.abs()).sum() / t.n.sum()) < 1e-4   # the title's ECE is the table's
    ax2 = reliability_diagram(reliability_table(p.confidence, p.correct, 10, 'mass'))
    ax2.figure.savefig(tmp_path/'r.png'); assert (tmp_path/'r.png').stat().st_size > 1000
    with pytest.raises(TypeError, match='reliability_table'): reliability_diagram([1, 2])
