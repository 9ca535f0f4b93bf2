"EvalReport views: markdown and HTML render the same sections (one table builder); intervals print as `Estimate`s."
import html, re
import numpy as np, pandas as pd, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.report import evaluate, report_sections, default_slices, EvalReport
from cvkit.evaluate.stats import Estimate

LIN = dict(git=dict(sha='abc123', dirty=True), seed=0, versions=dict(torch='x', cvkit='y'), dataset='fp')

@pytest.fixture(scope='module')
def report():
    rng = np.random.default_rng(0); n = 300
    y = rng.integers(0, 4, n); logits = rng.normal(size=(n, 4)); logits[np.arange(n), y] += rng.normal(1.5, 1, n)
    site = rng.choice(['a', 'b', 'c'], n); logits[site == 'b'] = rng.normal(size=((site == 'b').sum(), 4))   # site b: chance level
    meta = pd.DataFrame(dict(site=site, tiny=np.where(np.arange(n) < 10, 'x', 'y'), score=rng.random(n)))
    p = Predictions([f's{i}' for i in range(n)], logits, y, list('wxyz'), meta)
    cal = Predictions([f'c{i}' for i in range(100)], logits[:100] * 1.3, y[:100], list('wxyz'))
    return evaluate(p, calibration=cal, n_boot=200, lineage=LIN)

def test_default_slices_finds_string_columns():
    # pandas 3 stores strings with dtype `str`, not `object`: they must still be sliced by default
    meta = pd.DataFrame(dict(site=np.array(['a', 'b'] * 10), flag=[True, False] * 10, cat=pd.Categorical(['u', 'v'] * 10),
                             uid=[f'u{i}' for i in range(20)], score=np.arange(20.)))
    p = Predictions([str(i) for i in range(20)], np.zeros((20, 2)), np.zeros(20, int), meta=meta)
    assert default_slices(p) == ['site', 'flag', 'cat']

def test_markdown_and_html_render_the_same_sections(report):
    secs = report_sections(report.data)
    md, h = report.to_markdown(), report._repr_html_()
    assert [s['title'] for s in secs if s['level'] == 2] == ['Metrics', 'Calibration', 'Selective prediction', 'Slices by `site` (accuracy)',
                                                             'Slices by `tiny` (accuracy)', 'Lineage']
    n_rows = 0
    for s in secs:
        if s['title']: assert f"{'#' * s['level']} {s['title']}" in md
        for r in s['rows'] or []:
            assert '| ' + ' | '.join(map(str, r)) + ' |' in md
            assert ''.join(f'<td>{html.escape(str(v))}</td>' if v != 'FLAGGED' else f'<td style="color:#b00;font-weight:bold">FLAGGED</td>'
                           for v in r) in h
            n_rows += 1
    assert n_rows == len(re.findall(r'^\| (?!---|metric |slice )', md, flags=re.M))     # markdown shows no row the builder lacks
    assert h.count('<tr>') == n_rows + sum(1 for s in secs if s['head'])
    assert '<h5>Slices by <code>site</code> (accuracy)</h5>' in h and '**' not in h

def test_intervals_print_as_estimates(report):
    m = report['metrics']['accuracy']
    row = next(r for r in report_sections(report.data)[1]['rows'] if r[0] == 'accuracy')
    assert row[1] == format(Estimate.from_dict(m), '.4f') == f"{m['value']:.4f} [{m['lo']:.4f}, {m['hi']:.4f}]"
    assert repr(report) == f"EvalReport(n=300, accuracy={Estimate.from_dict(m):.4f}, slices=['site', 'tiny'])"
    s = report['slices']['site']
    assert s['worst']['slice'] == 'b'
    assert f"Worst slice: **b**, gap {Estimate.from_dict(s['worst']['gap']):+.4f}" in report.to_markdown()
    assert 'FLAGGED' in report.to_markdown() and report.flagged_slices.slice.tolist() == ['b']

def test_views_survive_a_json_round_trip(report, tmp_path):
    back = EvalReport.load(report.save(tmp_path/'r.json'))
    assert back.to_markdown() == report.to_markdown() and back._repr_html_() == report._repr_html_()
