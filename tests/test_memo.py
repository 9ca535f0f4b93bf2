"""Go/no-go memo on a real EvalReport (from Predictions built here), a real Gate verdict and real A/B analyses:
decisions, risks read from the report, monitoring thresholds traced to their sources, views and atomic saving."""
import json, math
import numpy as np, pandas as pd, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.report import evaluate, EvalReport
from cvkit.evaluate.gate import gate
from cvkit.govern.abtest import ab_proportions, ab_means, guardrail, msprt
from cvkit.govern.memo import Memo, go_no_go, memo_sections, report_risks

N, K = 500, 3

def _preds(p_ok, seed, y, light):
    r = np.random.default_rng(seed)
    ok = r.random(len(y)) < p_ok
    z = np.eye(K)[np.where(ok, y, (y + 1) % K)] * 2.5 + r.normal(0, 0.7, (len(y), K))
    return Predictions([f'img{i}' for i in range(len(y))], z, y, ['cat', 'dog', 'fox'], meta=pd.DataFrame(dict(lighting=light)))

@pytest.fixture(scope='module')
def setup():
    rng = np.random.default_rng(0)
    y, light = rng.integers(0, K, N), np.where(rng.random(N) < 0.3, 'low', 'high')
    report = evaluate(_preds(np.where(light == 'low', 0.6, 0.95), 1, y, light), n_boot=200,
                      lineage=dict(git=dict(sha='abc', dirty=False), seed=0))
    policy = [dict(rule='min_metric', metric='accuracy', min=0.75), dict(rule='max_ece', max=0.2)]
    lat = np.random.default_rng(1).lognormal(3, 0.4, (2, 20_000))
    guards = [guardrail('latency p95 (ms)', lat[0], lat[1], margin=0.05, kind='quantile', relative=True),
              guardrail('error rate', (140, 20_000), (138, 20_000), margin=0.002)]
    return report, gate(report, policy), guards, lat

WIN, FLAT, LOSS = ((1500, 15_000), (1680, 15_000)), ((1500, 15_000), (1510, 15_000)), ((1500, 15_000), (1330, 15_000))

def test_go_with_risks_and_thresholds_from_the_report(setup):
    report, verdict, guards, _ = setup
    assert verdict.passed
    m = go_no_go(verdict, ab_proportions(*WIN), rollback='resnet-prod:7', guardrails=guards, report=report, candidate=('resnet-prod', 8))
    assert m.decision == 'GO' and m.candidate == dict(name='resnet-prod', version='8')
    risks = {r['risk']: r for r in m.risks}
    w = report['slices']['lighting']['worst']
    assert w['slice'] == 'low' and risks['worst slice']['level'] == ('high' if w['flagged'] else 'medium')
    assert f"{w['rel_gap_ci']['value']:.1%}" in risks['worst slice']['finding']
    ece = report['calibration']['ece']
    assert risks['calibration']['level'] == ('medium' if ece['value'] > 0.2 else 'low') and 'ceiling of 0.2' in risks['calibration']['finding']
    assert risks['robustness']['level'] == 'not assessed'                 # no robustness in this report: said, not hidden
    mon = {x['signal']: x for x in m.monitoring}
    assert mon['conversion (live)']['threshold'] == pytest.approx(0.1) and mon['conversion (live)']['alert_when'] == '<'
    assert mon['latency p95 (ms) (live)']['threshold'] == pytest.approx(np.quantile(lat := setup[3][0], 0.95, method='inverted_cdf') * 1.05)
    assert mon['error rate (live)']['threshold'] == pytest.approx(140 / 20_000 + 0.002)
    assert mon['accuracy on a labelled audit sample']['threshold'] == pytest.approx(report.metric('accuracy').lo)
    low = next(r for r in report['slices']['lighting']['rows'] if r['slice'] == 'low')
    assert mon['accuracy on `lighting` = low']['threshold'] == pytest.approx(low['lo'])
    assert mon['ECE on a labelled audit sample']['threshold'] == 0.2
    md = m.to_markdown()
    for s in ('# Go/no-go: resnet-prod v8: GO', '## Evidence', '## Risks', '## Rollback plan', '## Monitoring after launch',
              "set_registered_model_alias('resnet-prod', 'champion', '7')", 'min_metric: accuracy'):
        assert s in md, s
    assert format(m_diff := ab_proportions(*WIN).diff, '+.4f') in md      # the A/B interval printed the Estimate way

def test_no_go_and_hold(setup):
    report, verdict, guards, lat = setup
    failing = gate(report, [dict(rule='min_metric', metric='accuracy', min=0.99)])
    m = go_no_go(failing, ab_proportions(*WIN), 'resnet-prod:7', guards, report)
    assert m.decision == 'NO-GO' and 'The offline gate failed 1 of 1 rules: min_metric (accuracy)' in m.reasons[0]
    slow = guardrail('latency p95 (ms)', lat[0], lat[0] * 1.15, margin=0.05, kind='quantile', relative=True)
    m = go_no_go(verdict, ab_proportions(*WIN), 'resnet-prod:7', [slow, guards[1]], report)
    assert m.decision == 'NO-GO' and m.reasons[0].startswith('Guardrail latency p95 (ms)')
    assert go_no_go(verdict, ab_proportions(*LOSS), 'resnet-prod:7', guards, report).decision == 'NO-GO'
    hold = go_no_go(verdict, ab_proportions(*FLAT), 'resnet-prod:7', guards, report)
    assert hold.decision == 'HOLD' and 'ship_if_neutral' in hold.reasons[0]
    assert go_no_go(verdict, ab_proportions(*FLAT), 'resnet-prod:7', guards, report, ship_if_neutral=True).decision == 'GO'
    nog = go_no_go(verdict, ab_proportions(*WIN), 'resnet-prod:7')
    assert any('No guardrail was checked' in r for r in nog.reasons)
    low_err = ab_proportions((300, 10_000), (240, 10_000), metric='error rate', higher_is_better=False)
    m = go_no_go(verdict, low_err, 'resnet-prod:7', guards)
    assert m.decision == 'GO' and {x['signal']: x for x in m.monitoring}['error rate (live)']['alert_when'] == '>'

def test_sequential_and_mean_results(setup):
    report, verdict, guards, _ = setup
    rng = np.random.default_rng(3)
    n = 2000 * np.arange(1, 15)
    seq = msprt((np.cumsum(rng.binomial(2000, .10, 14)), n), (np.cumsum(rng.binomial(2000, .13, 14)), n), tau=0.01)
    assert seq.significant
    m = go_no_go(verdict, seq, 'resnet-prod:7', guards, report)
    assert m.decision == 'GO' and 'always-valid mSPRT' in m.to_markdown()
    mean = ab_means(dict(n=4000, mean=10, sd=5), dict(n=4000, mean=10.1, sd=5), metric='minutes')
    assert go_no_go(verdict, mean, 'resnet-prod:7', guards, report).decision == 'HOLD'

def test_roundtrip_and_atomic_saves(setup, tmp_path):
    report, verdict, guards, _ = setup
    m = go_no_go(verdict, ab_proportions(*WIN), 'resnet-prod:7', guards, report, candidate='resnet-prod:8')
    for ext in ('json', 'md', 'html'): m.save(tmp_path/f'memo.{ext}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['memo.html', 'memo.json', 'memo.md']    # no temp files left
    back = Memo.load(tmp_path/'memo.json')
    assert back.to_dict() == m.to_dict() and back.to_markdown() == (tmp_path/'memo.md').read_text()
    d = json.loads((tmp_path/'memo.json').read_text())
    assert d['schema_version'] == 1 and d['decision'] == 'GO'
    page = (tmp_path/'memo.html').read_text()
    assert page.startswith('<!doctype html>') and 'resnet-prod' in page and '<table>' in page
    # a memo rebuilt from JSON artefacts (gate and A/B as dicts) is the same memo
    m2 = go_no_go(verdict.to_dict(), ab_proportions(*WIN).to_dict(), dict(name='resnet-prod', version=7), [g.to_dict() for g in guards],
                  report.data, candidate='resnet-prod:8')
    strip = lambda d: {k: v for k, v in d.items() if k != 'created'}
    assert strip(m2.to_dict()) == strip(m.to_dict())
    d['schema_version'] = 99; (tmp_path/'new.json').write_text(json.dumps(d))
    with pytest.raises(ValueError, match='newer than this cvkit reads'): Memo.load(tmp_path/'new.json')
    with pytest.raises(ValueError, match='save a memo as .json, .md or .html'): m.save(tmp_path/'memo.txt')

def test_memo_reads_robustness_from_the_report(setup):
    pytest.importorskip('torch')
    from cvkit.robustness.suite import analyse_robustness, attach_robustness
    report, verdict, guards, _ = setup
    rng = np.random.default_rng(0)
    y, light = report.predictions.targets, report.predictions.meta['lighting'].to_numpy()
    rep = EvalReport(json.loads(json.dumps(report.data)), report.predictions)
    rob = analyse_robustness(report.predictions, {('gaussian_noise', 3): _preds(0.45, 5, y, light), ('fog', 3): _preds(0.8, 6, y, light)}, n_boot=200)
    attach_robustness(rep, rob)
    r = {x['risk']: x for x in report_risks(rep, verdict.to_dict())}['robustness']
    wr = rep['robustness']['worst_relative']
    assert rep['robustness']['worst']['corruption'] == 'gaussian_noise' and '**gaussian_noise**' in r['finding']
    assert r['level'] == ('high' if wr['hi'] < 0.9 else 'medium' if wr['value'] < 0.9 else 'low') == 'high'

@pytest.mark.parametrize('kw,exc,msg', [
    (dict(rollback=None), ValueError, 'rollback must name a registered model and version'),
    (dict(rollback='resnet-prod'), ValueError, 'rollback must name a registered model and version'),
    (dict(rollback=('resnet-prod', '')), ValueError, 'non-empty name and version'),
    (dict(gate='passed'), TypeError, 'gate must be a GateResult'),
    (dict(ab=(1, 2)), TypeError, 'ab must be an ABResult'),
    (dict(guardrails=[dict(name='x')]), TypeError, 'each guardrail must be a GuardrailResult'),
    (dict(report={'a': 1}), TypeError, 'report must be an EvalReport'),
    (dict(monitoring=[dict(signal='x')]), ValueError, 'needs signal, alert_when'),
])
def test_bad_input(setup, kw, exc, msg):
    report, verdict, guards, _ = setup
    args = dict(gate=verdict, ab=ab_proportions(*WIN), rollback='resnet-prod:7', guardrails=guards, report=report) | kw
    with pytest.raises(exc) as e: go_no_go(**args)
    assert msg in str(e.value)
