"Monitor stage (issue 18): drift statistics against scipy/direct formulas, false alarms by simulation, bad input, a real /metrics scrape."
import socket, urllib.error, urllib.request
import numpy as np, pandas as pd, pytest
from scipy import stats as sps, ndimage

from cvkit.evaluate.predictions import Predictions
from cvkit.monitor.drift import PROPERTIES, mmd_test, _mmd_naive, property_tests, prediction_test, confidence_test, psi
from cvkit.monitor.accuracy import ATC, BBSE, doc_estimate
from cvkit.monitor.monitor import Monitor, Policy, DriftReport, _synthetic
from cvkit.monitor.runbook import runbook, dashboard, likely_cause
from cvkit.monitor.metrics import MetricsExporter
from cvkit.monitor.streams import severity, onset_at_severity

rng = np.random.default_rng(0)

def test_mmd_matches_naive_and_direct_formula():
    x, y = rng.normal(size=(25, 3)), rng.normal(0.3, 1, size=(35, 3))
    r = mmd_test(x, y, n_permutations=500, seed=4)
    stat, p = _mmd_naive(x, y, 500, seed=4)
    assert r.statistic == pytest.approx(stat, abs=1e-6) and r.p_value == pytest.approx(p)
    s2 = 2 * r.detail['sigma'] ** 2
    K = np.exp(-((np.r_[x, y][:, None] - np.r_[x, y][None]) ** 2).sum(-1) / s2)
    kxx, kyy, kxy = K[:25, :25], K[25:, 25:], K[:25, 25:]
    direct = (kxx.sum() - 25) / (25 * 24) + (kyy.sum() - 35) / (35 * 34) - 2 * kxy.mean()
    assert r.statistic == pytest.approx(direct, abs=1e-6)

def test_mmd_pvalue_is_calibrated_under_the_null():
    p = np.array([mmd_test(rng.normal(size=(30, 3)), rng.normal(size=(30, 3)), 200, seed=i).p_value for i in range(300)])
    assert 0.02 <= (p <= 0.05).mean() <= 0.09            # binomial 99.9% band around 15/300
    assert 0.40 <= (p <= 0.5).mean() <= 0.60
    assert mmd_test(rng.normal(size=(30, 3)), rng.normal(1, 1, size=(30, 3)), 200).p_value < 0.01

def test_image_properties_direct_formulas():
    "The monitor measures its PROPERTIES with the datasheet's function (one definition), on the uint8 stacks streams pass."
    from cvkit.curate.datasheet import image_properties
    from cvkit.monitor import streams
    im = rng.integers(0, 256, (16, 12, 3)).astype(np.uint8)
    p = image_properties(np.stack([im, im // 2]))[list(PROPERTIES)]
    y = im.astype(float) @ [0.299, 0.587, 0.114]
    assert p.brightness[0] == pytest.approx(y.mean(), rel=1e-6) and p.contrast[0] == pytest.approx(y.std(), rel=1e-6)
    assert p.sharpness[0] == pytest.approx(ndimage.laplace(y, mode='mirror').var(), rel=1e-6)
    assert p.brightness[1] < p.brightness[0] and list(p.height) == [16, 16] and list(p.width) == [12, 12]
    assert streams.image_properties is image_properties and not hasattr(streams, '_image_properties')

def test_ks_holm_chi2_psi_against_references():
    from statsmodels.stats.multitest import multipletests
    ref = pd.DataFrame(dict(a=rng.normal(size=300), b=rng.normal(size=300), c=rng.normal(size=300)))
    win = pd.DataFrame(dict(a=rng.normal(0.3, 1, 150), b=rng.normal(size=150), c=rng.normal(0, 1.3, 150)))
    t = property_tests(ref, win)
    raw = [sps.ks_2samp(ref[c], win[c]).pvalue for c in 'abc']
    assert [t[c].p_value for c in 'abc'] == pytest.approx(raw)
    assert [t[c].detail['p_holm'] for c in 'abc'] == pytest.approx(multipletests(raw, method='holm')[1])
    rp, wp = rng.integers(0, 5, 400), rng.choice(5, 150, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    c = prediction_test(rp, wp, 5)
    ref_c = sps.chi2_contingency(np.stack([np.bincount(rp, minlength=5), np.bincount(wp, minlength=5)]), correction=False)
    assert c.statistic == pytest.approx(ref_c.statistic) and c.p_value == pytest.approx(ref_c.pvalue)
    r_, w_ = np.bincount(rp) / 400, np.bincount(wp) / 150
    assert c.detail['psi'] == pytest.approx(((w_ - r_) * np.log(w_ / r_)).sum())
    assert psi([10, 0], [5, 5]) == pytest.approx((0.5 - 1e-4) * np.log(0.5 / 1e-4) + (0.5 - 1) * np.log(0.5))
    ca, cb = rng.uniform(size=200), rng.uniform(size=100)
    assert confidence_test(ca, cb).p_value == pytest.approx(sps.ks_2samp(ca, cb).pvalue)

def test_atc_doc_bbse():
    p = rng.dirichlet(np.full(4, 0.5), 3000); y = (rng.random(3000)[:, None] > p.cumsum(1)).sum(1)
    for score in ('neg_entropy', 'max_conf'):
        assert ATC.fit(p, y, score).estimate(p).value == pytest.approx((p.argmax(1) == y).mean(), abs=1e-3)
    q = rng.dirichlet(np.full(4, 0.5), 500)
    assert doc_estimate(p, y, q).value == pytest.approx((p.argmax(1) == y).mean() - p.max(1).mean() + q.max(1).mean())
    conf = np.full((3, 3), 0.1) + np.eye(3) * 0.7
    draw = lambda t: (rng.random(len(t))[:, None] > conf[:, t].T.cumsum(1)).sum(1)
    yv = rng.integers(0, 3, 20000); bb = BBSE.fit(draw(yv), yv, 3)
    yw = rng.choice(3, 20000, p=[0.6, 0.3, 0.1]); e = bb.estimate(draw(yw))
    assert e['priors'] == pytest.approx([0.6, 0.3, 0.1], abs=0.02) and e['moved_class'] == 0

def test_false_alarm_rate_by_simulation():
    "Default policy (alpha = 0.02 over five tests) on 200 no-drift windows: at most 5% alert."
    mon = Monitor(Policy(n_permutations=200)).fit(*_synthetic(500, seed=1))
    reports = [mon.check(*_synthetic(100, seed=1000 + i)) for i in range(200)]
    assert np.mean([r.fired for r in reports]) <= 0.05
    drift = [mon.check(*_synthetic(100, shift=0.4, seed=5000 + i)) for i in range(10)]
    assert np.mean([r.fired for r in drift]) >= 0.9

def test_bad_input_and_small_windows():
    with pytest.raises(ValueError, match=r"unknown test\(s\) \['kl_div'\]"): Policy.from_yaml('tests: [kl_div]\n')
    with pytest.raises(ValueError, match='no targets'): Monitor().fit(Predictions(['a'] * 0 + [f'{i}' for i in range(50)], rng.normal(size=(50, 3))))
    mon = Monitor(Policy(n_permutations=100)).fit(*_synthetic(300, seed=2))
    w, e, p = _synthetic(100, seed=3)
    with pytest.raises(ValueError, match=r"missing \['contrast'\], unexpected \['colour'\]"): mon.check(w, e, p.rename(columns={'contrast': 'colour'}))
    with pytest.raises(ValueError, match='empty window'): mon.check(w.subset(np.zeros(0, int)), e[:0], p[:0])
    e2 = e.copy(); e2[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r'NaN/inf in 2 rows \(first rows \[3, 7\]\)'): mon.check(w, e2, p)
    with pytest.raises(ValueError, match='16-d embeddings but the window has none'): mon.check(w, None, p)
    with pytest.raises(ValueError, match='window embeddings are 8-d'): mon.check(w, e[:, :8], p)
    small = mon.check(w.subset(np.arange(10)), e[:10], p[:10])
    assert not small.fired and all(t.p_value is None and 'not enough data' in t.reason for t in small.tests.values())

def test_report_roundtrip_runbook_dashboard(tmp_path):
    mon = Monitor(Policy(n_permutations=200)).fit(*_synthetic(500, seed=1))
    reps = [mon.check(*_synthetic(120, shift=0.5 * (i >= 3), seed=70 + i)) for i in range(5)]
    r = reps[-1]
    assert r.fired and DriftReport.load(r.save(tmp_path/'r.json')).to_dict() == r.to_dict()
    md = runbook(r, mon.classes, tmp_path/'alert.md')
    assert (tmp_path/'alert.png').stat().st_size > 1000 and 'the images got darker' in md and '## Mitigations' in md
    assert '**Threshold change**' in md and 'ATC: **' in md
    html = dashboard(reps, tmp_path/'dash.html')
    assert (tmp_path/'dash.html').read_text() == html and html.count('data:image/png;base64,') == 1

def test_metrics_endpoint_scrape_and_shutdown():
    from prometheus_client.parser import text_string_to_metric_families
    mon = Monitor(Policy(n_permutations=200)).fit(*_synthetic(400, seed=1))
    r = mon.check(*_synthetic(150, shift=0.5, seed=9))
    ex = MetricsExporter('m1'); port = ex.serve(0)
    try:
        ex.update(r); ex.update(r)
        text = urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10).read().decode()
    finally: ex.stop()
    v = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert v[('cvkit_monitor_p_value', (('model', 'm1'), ('test', 'prediction_chi2')))] == pytest.approx(r.tests['prediction_chi2'].p_value)
    assert v[('cvkit_monitor_estimated_accuracy', (('bound', 'lo'), ('method', 'atc'), ('model', 'm1')))] == pytest.approx(r.accuracy['atc'].lo)
    assert v[('cvkit_monitor_windows_total', (('model', 'm1'),))] == 2
    assert v[('cvkit_monitor_alerts_total', (('model', 'm1'), ('name', 'property_ks')))] == 2
    assert v[('cvkit_monitor_window_size', (('model', 'm1'),))] == 150
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=2)

def test_stream_severity_schedule():
    assert [severity('low_light', w, onset=5, ramp=20) for w in (4, 5, 9, 25)] == [0, 1, 2, 5]
    assert onset_at_severity('low_light') == 14 and onset_at_severity('new_class') == 10

def test_novelty_test_is_the_hypergeometric_tail_and_calibrated():
    from cvkit.monitor.drift import novelty_test, nn_distance
    bank, cal = rng.normal(size=(200, 3)), rng.normal(size=(300, 3))
    dc = nn_distance(bank, cal)
    win = np.r_[rng.normal(size=(80, 3)), rng.normal(5, 1, size=(8, 3))]
    t = novelty_test(bank, dc, win)
    dw = nn_distance(bank, win); pooled = np.r_[dc, dw]; thr = np.quantile(pooled, 0.98)
    assert t.p_value == pytest.approx(sps.hypergeom.sf((dw > thr).sum() - 1, len(pooled), (pooled > thr).sum(), len(dw)))
    assert t.p_value < 1e-3
    null = np.array([novelty_test(bank, dc, rng.normal(size=(80, 3))).p_value for _ in range(300)])
    assert (null <= 0.05).mean() <= 0.09
