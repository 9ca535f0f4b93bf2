"EvalReport views: markdown and HTML render the same sections (one table builder); intervals print as `Estimate`s."
import copy, html, re
import numpy as np, pandas as pd, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.report import evaluate, report_sections, default_slices, EvalReport
from cvkit.evaluate.slices import SliceReport
from cvkit.evaluate.stats import Estimate

LIN = dict(git=dict(sha='abc123', dirty=True), seed=0, versions=dict(torch='x', cvkit='y'), dataset='fp')
STYLE = {'significantly below': 'color:#b00;font-weight:bold', 'over threshold, not significant': 'color:#b60', 'over threshold': 'color:#b60'}

def _preds():
    "Site b at chance level (significantly below), site d mildly worse on 36 samples (over the threshold, not significant)."
    rng = np.random.default_rng(0); n = 300
    y = rng.integers(0, 4, n); logits = rng.normal(size=(n, 4)); logits[np.arange(n), y] += rng.normal(1.5, 1, n)
    site = rng.choice(['a', 'b', 'c', 'd'], n, p=[.3, .25, .3, .15]); logits[site == 'b'] = rng.normal(size=((site == 'b').sum(), 4))
    logits[np.flatnonzero(site == 'd'), y[site == 'd']] -= 1.3
    meta = pd.DataFrame(dict(site=site, tiny=np.where(np.arange(n) < 10, 'x', 'y'), score=rng.random(n)))
    return Predictions([f's{i}' for i in range(n)], logits, y, list('wxyz'), meta), logits, y

@pytest.fixture(scope='module')
def report():
    p, logits, y = _preds()
    cal = Predictions([f'c{i}' for i in range(100)], logits[:100] * 1.3, y[:100], list('wxyz'))
    return evaluate(p, calibration=cal, n_boot=200, lineage=LIN)

def _td(v):
    s = html.escape(str(v)); k = s.split(' (')[0]
    return f'<td style="{STYLE[k]}">{s}</td>' if k in STYLE else f'<td>{s}</td>'

def _row_md(r): return '| ' + ' | '.join(map(str, r)) + ' |'
def _row_html(r): return '<tr>' + ''.join(_td(v) for v in r) + '</tr>'

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
            assert _row_md(r) in md and _row_html(r) in h
            n_rows += 1
    assert n_rows == len(re.findall(r'^\| (?!---|metric |slice |corruption )', md, flags=re.M))  # markdown shows no row the builder lacks
    assert h.count('<tr>') == n_rows + sum(1 for s in secs if s['head'])
    assert '<h5>Slices by <code>site</code> (accuracy)</h5>' in h and '**' not in h

def test_intervals_print_as_estimates(report):
    m = report['metrics']['accuracy']
    row = next(r for r in report_sections(report.data)[1]['rows'] if r[0] == 'accuracy')
    assert row[1] == format(Estimate.from_dict(m), '.4f') == f"{m['value']:.4f} [{m['lo']:.4f}, {m['hi']:.4f}]"
    assert repr(report) == f"EvalReport(n=300, accuracy={Estimate.from_dict(m):.4f}, slices=['site', 'tiny'])"

def test_slice_columns_carry_the_slice_reports_numbers(report):
    sr = SliceReport.from_dict(report['slices']['site'])
    rows, st = sr.rows.set_index('slice'), sr.settings
    # the simulation gives one slice of each kind: significantly below, over the threshold only on the point estimate, fine
    assert rows.flagged.tolist() == [False, True, False, False] and rows.flagged_point.tolist() == [False, True, False, True]
    assert 0 < rows.p_adj['b'] < 0.05 < rows.p_adj['d'] < 1 and rows.rel_gap['d'] > st['gap_threshold'] > rows.rel_gap_lo['d']
    sec = next(s for s in report_sections(report.data) if s['title'] == 'Slices by `site` (accuracy)')
    assert sec['head'] == ['slice', 'n', 'value [CI]', 'gap [gap_lo, gap_hi] (simultaneous)', 'relative gap [simultaneous]', 'status']
    md, h = report.to_markdown(), report._repr_html_()
    for s, r in rows.iterrows():
        status = {'b': f"significantly below (p_adj={r.p_adj:.3f})", 'd': f"over threshold, not significant (p_adj={r.p_adj:.3f})"}.get(s, 'ok')
        want = [s, r.n, format(Estimate(r.value, r.lo, r.hi), '.4f'), format(Estimate(r.gap, r.gap_lo, r.gap_hi), '+.4f'),
                format(Estimate(r.rel_gap, r.rel_gap_lo, r.rel_gap_hi), '+.1%'), status]
        assert want[3] == f'{r.gap:+.4f} [{r.gap_lo:+.4f}, {r.gap_hi:+.4f}]'      # the band, as the SliceReport holds it
        assert _row_md(want) in md and _row_html(want) in h
    w = sr.worst
    # the largest gap is d's (picked by the data), and it is not significant; b, with a smaller gap, is
    assert (w['slice'], w['flagged'], w['family'], w['n_flagged'], w['p_adj']) == (rows.gap.idxmax(), False, 4, 1, rows.p_adj['d']) == ('d', False, 4, 1, w['p_adj'])
    line = (f"Worst slice: **d**: gap {w['gap']:+.4f} (allows for picking the worst of 4); relative {w['rel_gap_ci']:+.1%}; "
            f"significant: no (p_adj={w['p_adj']:.3f}).")
    assert f"{w['gap']:+.4f}" == f"{w['gap'].value:+.4f} [{w['gap'].lo:+.4f}, {w['gap'].hi:+.4f}]"
    assert line in md and line.replace('**d**', '<b>d</b>') in html.unescape(h)
    assert report.flagged_slices.slice.tolist() == ['b']

def test_unjudged_slices_and_zero_p_values(report):
    sec = next(s for s in report_sections(report.data) if s['title'] == 'Slices by `tiny` (accuracy)')
    x = next(r for r in report['slices']['tiny']['rows'] if r['slice'] == 'x')     # 10 samples: no band, no flag
    assert sec['rows'][0] == ['x', 10, format(Estimate(x['value'], x['lo'], x['hi']), '.4f'), f"{x['gap']:+.4f}", f"{x['rel_gap']:+.1%}",
                              'too small (n<30)']
    d = copy.deepcopy(report.data)
    d['slices']['site']['rows'][1]['p_adj'] = d['slices']['site']['worst']['p_adj'] = 0.0   # no resample reached: p < 1/B
    md = EvalReport(d).to_markdown()
    assert 'significantly below (p_adj<0.005)' in md and 'significant: no (p_adj<0.005)' in md

def test_mce_prints_without_an_interval_and_says_why(report):
    mce = report['calibration']['mce']
    assert mce['lo'] is None and mce['reason']
    sec = next(s for s in report_sections(report.data) if s['title'] == 'Calibration')
    assert ['mce', f"{mce['value']:.4f} (no interval)"] in sec['rows']
    assert sec['text'].startswith('No interval for `mce`: MCE is a maximum over bins') and 'no interval: no interval' not in sec['text']
    md, h = report.to_markdown(), report._repr_html_()
    assert _row_md(['mce', f"{mce['value']:.4f} (no interval)"]) in md and sec['text'] in md
    assert _row_html(['mce', f"{mce['value']:.4f} (no interval)"]) in h

def test_robustness_section_shows_the_selection_aware_worst():
    from cvkit.robustness.suite import analyse_robustness
    p, logits, y = _preds()
    rng = np.random.default_rng(1)
    cells = {(c, s): Predictions(p.ids, logits + rng.normal(0, k * s, logits.shape), y, p.classes) for c, k in [('noise', 1.0), ('blur', .3)]
             for s in (1, 2)}
    rob = analyse_robustness(p, cells, n_boot=200)
    rep = evaluate(p, n_boot=50, lineage=LIN, slices=['site']); rob.attach(rep)
    d = rep['robustness']
    wr, marg = Estimate.from_dict(d['worst_relative']), Estimate.from_dict(d['worst']['relative_marginal'])
    assert d['worst']['corruption'] == 'noise' and wr.value == marg.value and wr.lo < marg.lo   # the picked worst: a wider interval
    secs = [s for s in report_sections(rep.data) if s['title'] and s['title'].startswith('Robustness')]
    assert len(secs) == 1 and secs[0]['text'] == (f"Worst corruption: **noise**: relative {wr:.4f} (allows for picking the worst of 2); "
                                                  f"marginal interval {marg:.4f}.")
    md, h = rep.to_markdown(), rep._repr_html_()
    assert secs[0]['text'] in md and f"relative {wr:.4f} (allows for picking the worst of 2)" in h
    pc = rob.per_corruption.set_index('corruption')
    for c in ('noise', 'blur'):
        r = pc.loc[c]
        row = [c, format(Estimate(r.relative, r.relative_lo, r.relative_hi), '.4f'), format(Estimate(r.relative, r.relative_adj_lo, r.relative_adj_hi), '.4f')]
        assert _row_md(row) in md and _row_html(row) in h
    assert _row_md(['relative', format(rob.relative, '.4f')]) in md
    assert not any(s['title'] and s['title'].startswith('Robustness') for s in report_sections(evaluate(p, n_boot=20, lineage=LIN, slices=[]).data))

def test_reports_from_before_the_adjusted_columns_still_render(report):
    d = copy.deepcopy(report.data)
    for s in d['slices'].values():
        for r in s['rows']:
            for k in ('gap_lo', 'gap_hi', 'rel_gap_lo', 'rel_gap_hi', 'p_adj', 'flagged_point'): r.pop(k)
        for k in ('rel_gap_ci', 'flagged', 'p_adj', 'n_flagged', 'family'): s['worst'].pop(k)
    md, h = EvalReport(d).to_markdown(), EvalReport(d)._repr_html_()
    b = next(r for r in d['slices']['site']['rows'] if r['slice'] == 'b')
    assert f"| b | {b['n']} | {format(Estimate(b['value'], b['lo'], b['hi']), '.4f')} | {b['gap']:+.4f} | {b['rel_gap']:+.1%} | over threshold (point estimate; this report predates the significance test) |" in md
    assert 'allows for picking the worst of –' in md and 'significant: –' in md
    assert '<td style="color:#b60">over threshold (point estimate; this report predates the significance test)</td>' in h

def test_views_survive_a_json_round_trip(report, tmp_path):
    back = EvalReport.load(report.save(tmp_path/'r.json'))
    assert back.to_markdown() == report.to_markdown() and back._repr_html_() == report._repr_html_()
