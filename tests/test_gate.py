"Gates: policy validation, each rule against hand-built reports, CI-aware regressions, and missing inputs failing loudly."
import json, math
import numpy as np, pandas as pd, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.gate import Gate, GateResult, gate, DEFAULT_POLICY, RULES

def E(v, lo, hi, reason=None): return dict(value=v, lo=lo, hi=hi, level=0.95, n=500, n_boot=1000, reason=reason)

@pytest.fixture
def report():
    return {'schema_version': 1, 'task': 'classification', 'n': 500, 'classes': ['a', 'b'], 'settings': dict(n_boot=200, level=0.95, seed=0),
            'metrics': {'accuracy': E(0.95, 0.93, 0.97), 'nll': E(0.20, 0.17, 0.23), 'auroc': E(None, None, None, 'class b absent')},
            'calibration': {'ece': E(0.04, 0.03, 0.06), 'mce': E(0.2, 0.1, 0.3)},
            'slices': {'lighting': {'by': 'lighting', 'metric': 'accuracy', 'overall': E(0.95, 0.93, 0.97),
                                    'worst': dict(slice='low', gap=E(0.06, 0.02, 0.11), rel_gap=0.06 / 0.95)},
                       'clutter x scale': {'by': ['clutter', 'scale'], 'overall': E(0.95, 0.93, 0.97),
                                           'worst': dict(slice='clutter=high & scale=small', gap=E(0.12, 0.05, 0.19), rel_gap=0.12 / 0.95)}},
            'robustness': None, 'deployment': None}

class Report:   # the EvalReport shape: .data plus in-memory .predictions
    def __init__(self, data, predictions=None): self.data, self.predictions = data, predictions

# --- policy construction -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('rules,msg', [
    ([dict(rule='min_accuracy', min=0.9)], 'Valid rules: min_metric'),
    ([dict(rule='min_metric', metric='accuracy')], "missing ['min']"),
    ([dict(rule='max_slice_gap', max_gap=0.1)], "missing ['by']"),
    ([dict(rule='max_ece', max=0.05, bund='hi')], "unknown keys ['bund']"),
    ([dict(rule='max_ece', max=0.05, bound='lo')], "bound must be one of ['value', 'hi']"),
    ([dict(rule='max_ece', max='low')], 'max must be a finite number'),
    ([dict(rule='min_metric', metric='nll', min=0.1)], 'use max_metric'),
    ([dict(rule='max_metric', metric='accuracy', max=0.1)], 'use min_metric'),
    (['max_ece'], 'must be a mapping'),
    ([], 'no rules'),
])
def test_policy_errors_at_construction(rules, msg):
    with pytest.raises(ValueError) as e: Gate(rules)
    assert msg in str(e.value)

def test_policy_error_lists_required_keys():
    with pytest.raises(ValueError) as e: Gate([dict(rule='nope')])
    for r in RULES: assert r in str(e.value)
    assert 'max_regression: requires metric, max_drop' in str(e.value)

def test_policy_from_yaml_file_string_and_dict(tmp_path):
    y = "name: ship\nrules:\n  - rule: min_metric\n    metric: accuracy\n    min: 0.9\n  - {rule: max_ece, max: 0.05}\n"
    (tmp_path/'policy.yaml').write_text(y)
    a, b = Gate(tmp_path/'policy.yaml'), Gate(y)
    c = Gate(str(tmp_path/'policy.yaml'))
    assert a.rules == b.rules == c.rules and a.name == 'ship'
    assert a.rules[0]['bound'] == 'lo' and a.rules[1]['bound'] == 'value' and a.rules[1]['metric'] == 'ece'
    assert Gate(a).rules == a.rules and Gate(a.to_yaml()).rules == a.rules
    with pytest.raises(FileNotFoundError): Gate(tmp_path/'missing.yaml')
    with pytest.raises(ValueError, match='unknown top-level keys'): Gate(dict(rules=[dict(rule='max_ece', max=0.1)], rulez=[]))
    with pytest.raises(ValueError, match='neither a YAML file'): Gate('just-a-word')

# --- rules --------------------------------------------------------------------------------------------------------
def test_min_metric_uses_lower_bound_by_default(report):
    r = gate(report, [dict(rule='min_metric', metric='accuracy', min=0.94)])
    assert not r.passed and r.rows.value[0] == 0.93 and 'CI lower bound 0.93 < 0.94' in r.rows.reason[0]
    r = gate(report, [dict(rule='min_metric', metric='accuracy', min=0.94, bound='value')])
    assert r.passed and r.rows.value[0] == 0.95 and 'point estimate' in r.rows.reason[0]
    r = gate(report, [dict(rule='min_metric', metric='accuracy', min=0.93)])   # boundary: >= passes
    assert r.passed

def test_max_metric_and_missing_or_nan_metric(report):
    r = gate(report, [dict(rule='max_metric', metric='nll', max=0.22), dict(rule='max_metric', metric='nll', max=0.22, bound='value')])
    assert list(r.rows.passed) == [False, True] and r.rows.value.tolist() == [0.23, 0.20]
    r = gate(report, [dict(rule='min_metric', metric='macro_f1', min=0.9)])
    assert not r.passed and "'accuracy', 'auroc', 'nll'" in r.rows.reason[0]
    r = gate(report, [dict(rule='min_metric', metric='auroc', min=0.5)])
    assert not r.passed and math.isnan(r.rows.value[0]) and 'class b absent' in r.rows.reason[0]

def test_max_ece(report):
    r = gate(report, [dict(rule='max_ece', max=0.05), dict(rule='max_ece', max=0.05, bound='hi'), dict(rule='max_ece', metric='mce', max=0.25)])
    assert list(r.rows.passed) == [True, False, True] and r.rows.value.tolist() == [0.04, 0.06, 0.2]
    r = gate({**report, 'calibration': None}, [dict(rule='max_ece', max=0.05)])
    assert r.rows.status[0] == 'not evaluated' and not r.passed
    r = gate(report, [dict(rule='max_ece', metric='ece_mass', max=0.05)])
    assert not r.passed and "['ece', 'mce']" in r.rows.reason[0]

def test_max_slice_gap(report):
    r = gate(report, [dict(rule='max_slice_gap', by='lighting', max_gap=0.10),
                      dict(rule='max_slice_gap', by='lighting', max_gap=0.10, bound='hi'),
                      dict(rule='max_slice_gap', by='lighting', max_gap=0.05, relative=False),
                      dict(rule='max_slice_gap', by=['clutter', 'scale'], max_gap=0.10)])
    assert list(r.rows.passed) == [True, False, False, False]
    np.testing.assert_allclose(r.rows.value, [0.06 / 0.95, 0.11 / 0.95, 0.06, 0.12 / 0.95])
    assert r.rows.target[0] == 'lighting: low' and r.rows.target[3] == 'clutter x scale: clutter=high & scale=small'

def test_slice_gap_missing_slice_and_star(report):
    r = gate(report, [dict(rule='max_slice_gap', by='noise', max_gap=0.1)])
    assert not r.passed and "available: ['clutter x scale', 'lighting']" in r.rows.reason[0]
    r = gate(report, [dict(rule='max_slice_gap', by='*', max_gap=0.1)])
    assert list(r.rows.target) == ['lighting: low', 'clutter x scale: clutter=high & scale=small'] and list(r.rows.passed) == [True, False]
    r = gate({**report, 'slices': {}}, [dict(rule='max_slice_gap', by='*', max_gap=0.1)])
    assert r.passed and r.rows.status[0] == 'skipped'
    r = gate({**report, 'slices': {'lighting': {'worst': None}}}, [dict(rule='max_slice_gap', by='lighting', max_gap=0.1)])
    assert not r.passed and r.rows.status[0] == 'not evaluated'
    small = dict(slice=None, rel_gap=None, gap=E(None, None, None, 'every slice has n < min_n=30'))
    r = gate({**report, 'slices': {'lighting': {'worst': small}}}, [dict(rule='max_slice_gap', by='lighting', max_gap=0.1)])
    assert not r.passed and r.rows.status[0] == 'not evaluated' and 'n < min_n=30' in r.rows.reason[0]

def test_slice_gap_from_real_slice_report():
    sl = pytest.importorskip('cvkit.evaluate.slices')
    rng = np.random.default_rng(0)
    n = 900
    y = rng.integers(0, 3, n); light = rng.choice(['normal', 'low'], n, p=[0.7, 0.3])
    noise = np.where(light == 'low', 2.5, 0.6)[:, None]
    p = Predictions([f's{i}' for i in range(n)], 2.0 * np.eye(3)[y] + rng.normal(size=(n, 3)) * noise, y, meta=pd.DataFrame(dict(lighting=light)))
    sr = sl.slice_report(p, 'lighting', n_boot=200)
    acc = lambda m: float(p.correct[m].mean())
    worst_rel = (acc(np.ones(n, bool)) - acc(light == 'low')) / acc(np.ones(n, bool))
    data = {'metrics': {}, 'slices': {'lighting': sr.to_dict()}}
    r = gate(data, [dict(rule='max_slice_gap', by='lighting', max_gap=0.10), dict(rule='max_slice_gap', by='lighting', max_gap=0.5, relative=False, bound='hi')])
    assert r.rows.target[0] == 'lighting: low' and r.rows.value[0] == pytest.approx(worst_rel)
    assert not r.rows.passed[0] and r.rows.value[1] == pytest.approx(sr.worst['gap'].hi)
    r2 = gate({'slices': {'lighting': sr}}, [dict(rule='max_slice_gap', by='lighting', max_gap=0.10)])   # the object itself works too
    assert r2.rows.value[0] == pytest.approx(worst_rel)
    r3 = gate(data, [dict(rule='max_slice_gap', by='lighting', max_gap=0.10, bound=b) for b in ('hi', 'lo')])
    ci = sr.worst['rel_gap_ci']                                   # the relative bounds come from the selection-aware interval
    assert list(r3.rows.value) == pytest.approx([ci.hi, ci.lo]) and ci.lo > 0.10 and not r3.rows.passed.any()
    assert sr.worst['flagged'] and 'significantly above 0.1' in r3.rows.reason[1] and 'of 2 slices' in r3.rows.reason[1]

def _equal_slices(k, seed, n=200):
    "k slices of n samples each, every one at accuracy 0.8 (5 classes)."
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(k), n); y = rng.integers(0, 5, k * n); ok = rng.random(k * n) < 0.8
    z = np.eye(5, dtype=np.float32)[np.where(ok, y, (y + rng.integers(1, 5, k * n)) % 5)]
    return Predictions([f's{i}' for i in range(k * n)], z, y, meta=pd.DataFrame(dict(g=[f'g{i}' for i in s])))

def test_slice_gap_lo_bound_controls_false_failures():
    """6 truly equal slices, max_gap=0: `bound: value` fails every time (the observed worst gap is > 0 by selection);
    `bound: lo` fails only when some slice is flagged family-wise, at most 5% (+ the 99.9% binomial Monte-Carlo slack)."""
    from scipy.stats import binom
    sl = pytest.importorskip('cvkit.evaluate.slices')
    T, fails_lo, fails_value = 150, 0, 0
    for t in range(T):
        sr = sl.slice_report(_equal_slices(6, t), 'g', gap_threshold=0.0, n_boot=300, seed=t)
        r = gate({'slices': {'g': sr.to_dict()}}, [dict(rule='max_slice_gap', by='g', max_gap=0.0, bound=b) for b in ('value', 'lo')])
        assert (not r.rows.passed[1]) == bool(sr.rows.flagged.any())      # the gate's lo bound and the report's flags agree
        fails_value += not r.rows.passed[0]; fails_lo += not r.rows.passed[1]
    assert fails_value == T
    assert fails_lo <= binom.ppf(0.999, T, 0.05), fails_lo / T

def test_slots_fail_unless_optional(report):
    rules = [dict(rule='min_robustness', min=0.9), dict(rule='max_latency', max=20)]
    r = gate(report, rules)
    assert list(r.rows.status) == ['not evaluated'] * 2 and not r.passed and "report['robustness'] is empty" in r.rows.reason[0]
    r = gate(report, [{**x, 'optional': True} for x in rules])
    assert list(r.rows.status) == ['skipped'] * 2 and r.passed
    full = {**report, 'robustness': {'relative': E(0.92, 0.89, 0.95)}, 'deployment': {'p95_ms': 25.0, 'p50_ms': 10.0}}
    r = gate(full, rules + [dict(rule='max_latency', metric='p50_ms', max=20), dict(rule='min_robustness', min=0.9, bound='value')])
    assert list(r.rows.passed) == [False, False, True, True] and r.rows.value.tolist() == [0.89, 25.0, 10.0, 0.92]

# --- regressions --------------------------------------------------------------------------------------------------
COMP = {'deltas': [dict(metric='accuracy', baseline=0.96, candidate=0.95, delta=-0.01, lo=-0.025, hi=0.004, p_value=0.2, significant=False),
                   dict(metric='nll', baseline=0.18, candidate=0.20, delta=0.02, lo=0.005, hi=0.035, p_value=0.01, significant=True)]}

def test_regression_ci_aware_both_directions(report):
    r = gate(report, [dict(rule='max_regression', metric='accuracy', max_drop=0.02),
                      dict(rule='max_regression', metric='accuracy', max_drop=0.02, bound='value'),
                      dict(rule='max_regression', metric='nll', max_drop=0.03),
                      dict(rule='max_regression', metric='nll', max_drop=0.04)], baseline=COMP)
    np.testing.assert_allclose(r.rows.value, [0.025, 0.01, 0.035, 0.035])
    assert list(r.rows.passed) == [False, True, False, True]
    assert 'baseline − candidate' in r.rows.reason[0] and 'candidate − baseline' in r.rows.reason[2] and 'p=0.2' in r.rows.reason[0]

def test_regression_accepts_comparison_object_and_column_dict(report):
    class Comparison: deltas = pd.DataFrame(COMP['deltas'])
    rule = [dict(rule='max_regression', metric='accuracy', max_drop=0.03)]
    a = gate(report, rule, baseline=Comparison())
    b = gate(report, rule, baseline={'deltas': pd.DataFrame(COMP['deltas']).to_dict('list')})
    assert a.passed and b.passed and a.rows.value[0] == b.rows.value[0] == pytest.approx(0.025)
    r = gate(report, [dict(rule='max_regression', metric='macro_f1', max_drop=0.03)], baseline=COMP)
    assert not r.passed and 'not in the baseline comparison' in r.rows.reason[0]

def test_regression_without_baseline(report):
    r = gate(report, [dict(rule='max_regression', metric='accuracy', max_drop=0.01)])
    assert not r.passed and r.rows.status[0] == 'not evaluated' and 'no baseline given' in r.rows.reason[0]
    r = gate(report, [dict(rule='max_regression', metric='accuracy', max_drop=0.01, optional=True)])
    assert r.passed and r.rows.status[0] == 'skipped' and 'no baseline given' in r.rows.reason[0]

def _pair(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    base = rng.normal(size=(n, 3)) + 2.5 * np.eye(3)[y]
    cand = base + rng.normal(scale=0.8, size=(n, 3))
    ids = [f'x{i}' for i in range(n)]
    return Predictions(ids, base, y), Predictions(ids, cand, y)

def test_regression_with_baseline_predictions_uses_compare(report):
    compare = pytest.importorskip('cvkit.evaluate.compare').compare
    base, cand = _pair()
    rep = Report({**report, 'settings': dict(n_boot=300, level=0.95, seed=0)}, cand)
    rules = [dict(rule='max_regression', metric='accuracy', max_drop=0.05), dict(rule='max_regression', metric='accuracy', max_drop=0.05, bound='value')]
    r = gate(rep, rules, baseline=base)
    ref = compare(base, cand, metrics=['accuracy'], n_boot=300, level=0.95, seed=0).deltas.set_index('metric').loc['accuracy']
    assert r.rows.value[0] == pytest.approx(-ref['lo'])
    assert r.rows.value[1] == pytest.approx(base.accuracy - cand.accuracy)   # reference: the drop in plain accuracy
    assert r.rows.value[0] >= r.rows.value[1]
    r = gate(report, rules[:1], baseline=base)    # a plain dict has no in-memory predictions to pair with
    assert not r.passed and 'no in-memory predictions' in r.rows.reason[0]

# --- result ---------------------------------------------------------------------------------------------------------
def test_result_views_and_eval_report_object(report):
    r = gate(Report(report), [dict(rule='min_metric', metric='accuracy', min=0.9), dict(rule='max_ece', max=0.01)])
    assert isinstance(r, GateResult) and not r.passed and list(r.failures.rule) == ['max_ece']
    d = json.loads(json.dumps(r.to_dict()))
    assert d['passed'] is False and [x['status'] for x in d['rules']] == ['passed', 'failed'] and d['policy']['rules'][1]['max'] == 0.01
    h = r._repr_html_()
    assert 'Gate FAILED' in h and '#c62828' in h and '#e8f5e9' in h and '1/2 rules passed' in h
    md = r.to_markdown()
    assert md.startswith('**Gate FAILED**') and md.count('\n|') == 4
    ok = gate(report, [dict(rule='min_metric', metric='accuracy', min=0.9)])
    assert ok.passed and 'Gate PASSED' in ok._repr_html_() and '#2e7d32' in ok._repr_html_()
    assert list(r.rows.columns) == ['rule', 'target', 'value', 'threshold', 'passed', 'status', 'reason']

def test_default_policy(report):
    r = gate(report)
    assert list(r.rows.rule) == ['min_metric', 'max_ece'] + ['max_slice_gap'] * 2
    assert list(r.rows.passed) == [True, True, True, False]
    assert Gate(None).rules == Gate(DEFAULT_POLICY).rules
    with pytest.raises(TypeError, match='EvalReport'): gate([1, 2])
