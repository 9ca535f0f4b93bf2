"Slices: per-slice metrics against sklearn, quantile bins against pandas, crossings, small/empty/missing slices, the worst-gap interval."
import json, warnings
import numpy as np, pandas as pd, pytest
import matplotlib; matplotlib.use('Agg')
from sklearn.metrics import accuracy_score, f1_score, log_loss
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.stats import resample_indices
from cvkit.evaluate.slices import slice_labels, slice_report, slice_plot, SliceReport

def _sim(n=1200, seed=0, acc=dict(a=.92, b=.88, c=.70), k=3):
    "Predictions whose accuracy depends on a categorical `site`; plus a string column with missing values and a numeric one."
    rng = np.random.default_rng(seed)
    site = rng.choice(list(acc), n, p=[.5, .3, .2][:len(acc)])
    y = rng.integers(0, k, n)
    ok = rng.random(n) < np.vectorize(acc.get)(site)
    z = rng.normal(0, 1, (n, k)); z[np.arange(n), np.where(ok, y, (y + 1) % k)] += 3
    meta = pd.DataFrame(dict(site=pd.Categorical(site, categories=[*acc, 'zz']),
                             scanner=np.where(rng.random(n) < .04, None, rng.choice(['x1', 'x2'], n)).astype(object),
                             age=rng.gamma(4, 10, n), flag=rng.random(n) < .5))
    return Predictions([f's{i}' for i in range(n)], z, y, [f'c{i}' for i in range(k)], meta)

@pytest.fixture(scope='module')
def preds(): return _sim()

@pytest.mark.parametrize('by', ['site', 'scanner', 'age', 'flag'])
def test_slice_values_equal_sklearn_on_each_subset(preds, by):
    rep = slice_report(preds, by, n_boot=200)
    lab = slice_labels(preds, by)
    assert rep.rows.n.sum() == len(preds)                     # every sample lands in exactly one slice
    for r in rep.rows.itertuples():
        m = (lab == r.slice).to_numpy()
        assert r.n == m.sum()
        if r.n: assert r.value == pytest.approx(accuracy_score(preds.targets[m], preds.preds[m]), abs=1e-12)
    assert rep.overall.value == pytest.approx(accuracy_score(preds.targets, preds.preds), abs=1e-12)

def test_macro_f1_and_nll_slices_match_sklearn(preds):
    s = (preds.meta.site == 'c').to_numpy()
    f1 = slice_report(preds, 'site', metric='macro_f1', n_boot=200).rows.set_index('slice')
    assert f1.value['c'] == pytest.approx(f1_score(preds.targets[s], preds.preds[s], average='macro'), abs=1e-12)
    nll = slice_report(preds, 'site', metric='nll', n_boot=200)
    assert nll.rows.set_index('slice').value['c'] == pytest.approx(log_loss(preds.targets[s], preds.probs[s], labels=[0, 1, 2]), rel=1e-9)
    assert nll.worst['slice'] == 'c' and nll.worst['gap'].value > 0       # lower-is-better: positive gap still means worse
    r = nll.rows.set_index('slice')
    assert r.gap['c'] == pytest.approx(r.value['c'] - nll.overall.value)

@pytest.mark.parametrize('bins', [2, 3, 4, 5])
def test_numeric_bins_count_like_qcut(preds, bins):
    lab = slice_labels(preds, 'age', bins=bins)
    ref = pd.qcut(preds.meta.age, bins).value_counts(sort=False).to_numpy()
    np.testing.assert_array_equal(lab.value_counts(sort=False).to_numpy(), ref)
    assert list(lab.cat.categories)[0].startswith('q1 [') and list(lab.cat.categories)[-1].startswith(f'q{bins} (')

def test_numeric_bins_with_ties_missing_and_constant():
    x = np.r_[np.zeros(50), np.arange(1., 51.), [np.nan] * 5]
    p = Predictions([str(i) for i in range(len(x))], np.zeros((len(x), 2)), np.zeros(len(x), int), meta=pd.DataFrame(dict(x=x, c=np.ones(len(x)))))
    lab = slice_labels(p, 'x', bins=4)
    ref = pd.qcut(pd.Series(x), 4, duplicates='drop').value_counts(sort=False).to_numpy()
    np.testing.assert_array_equal(lab.value_counts(sort=False).to_numpy()[:-1], ref)
    assert lab.value_counts()['missing'] == 5
    assert list(slice_labels(p, 'c').cat.categories) == ['= 1']

def test_crossing_of_two_columns(preds):
    lab = slice_labels(preds, ('site', 'flag'))
    assert lab.name == 'site x flag'
    assert len(lab.cat.categories) == 4 * 2                   # every combination, the empty level 'zz' included
    ref = preds.meta.groupby(['site', 'flag'], observed=True).size()
    for (s, f), cnt in ref.items(): assert (lab == f'site={s} & flag={f}').sum() == cnt
    rep = slice_report(preds, ('site', 'flag'), n_boot=100)
    rows = rep.rows.set_index('slice')
    m = ((preds.meta.site == 'c') & preds.meta.flag).to_numpy()
    assert rows.value['site=c & flag=True'] == pytest.approx(accuracy_score(preds.targets[m], preds.preds[m]))
    assert rows.status['site=zz & flag=True'] == 'empty'
    assert rep.to_dict()['by'] == ['site', 'flag']

def test_too_small_empty_and_missing_slices_are_reported(preds):
    rep = slice_report(preds, 'scanner', n_boot=100, min_n=60)
    rows = rep.rows.set_index('slice')
    k = int(pd.isna(preds.meta.scanner).sum())
    assert 0 < k < 60 and rows.n['missing'] == k
    assert rows.status['missing'] == 'too small (n<60)' and not rows.flagged['missing'] and 'min_n=60' in rows.reason['missing']
    assert np.isfinite(rows.value['missing'])                 # small slices keep their value and interval
    site = slice_report(preds, 'site', n_boot=100).rows.set_index('slice')
    assert site.status['zz'] == 'empty' and site.n['zz'] == 0 and np.isnan(site.value['zz']) and 'no samples' in site.reason['zz']
    assert not site.flagged['zz']

def test_small_slice_with_large_gap_is_not_flagged():
    q = _sim(n=400, acc=dict(a=.9, b=.9, c=.9))
    z = q.logits.copy(); z[np.arange(10), (q.targets[:10] + 1) % 3] += 100     # the first 10 samples are all wrong
    p = Predictions(q.ids, z, q.targets, q.classes, q.meta.assign(tiny=np.where(np.arange(len(q)) < 10, 'bad', 'rest')))
    rep = slice_report(p, 'tiny', n_boot=100)
    rows = rep.rows.set_index('slice')
    assert rows.value['bad'] == 0 and rows.rel_gap['bad'] > 0.5
    assert rows.status['bad'] == 'too small (n<30)' and not rows.flagged['bad']
    assert rep.worst['slice'] == 'rest'                       # the worst slice is chosen among judgeable ones

def test_flags_are_relative_to_overall(preds):
    rep = slice_report(preds, 'site', n_boot=100, gap_threshold=0.10)
    r = rep.rows
    np.testing.assert_allclose(r.rel_gap, r.gap / rep.overall.value)
    np.testing.assert_array_equal(r.flagged, (r.rel_gap > 0.10) & (r.n >= 30))
    assert list(rep.flagged.slice) == ['c']
    # a 12% relative gap at overall 0.5 is 0.06 absolute: flagged at 10% relative, although below 0.10 absolute
    hard = _sim(n=3000, seed=3, acc=dict(a=.56, b=.5, c=.44))
    h = slice_report(hard, 'site', n_boot=100).rows.set_index('slice')
    assert h.gap['c'] < 0.10 and h.flagged['c']

def test_missing_column_error_lists_available(preds):
    with pytest.raises(ValueError, match=r"\['lighting'\] not in the predictions metadata; available columns: \['site', 'scanner', 'age', 'flag'\]"):
        slice_report(preds, 'lighting')
    with pytest.raises(ValueError, match='available columns'): slice_labels(preds, ('site', 'nope'))

def test_worst_gap_interval_matches_joint_resampling_by_hand(preds):
    "The vectorised worst-gap replicates equal recomputing overall and the slice on each joint resample."
    for metric, fn in [('accuracy', lambda y, p: accuracy_score(y, p.argmax(1))),
                       ('macro_f1', lambda y, p: f1_score(y, p.argmax(1), average='macro', labels=np.unique(y))),
                       ('nll', None)]:
        rep = slice_report(preds, 'site', metric=metric, n_boot=200, seed=5)
        assert rep.worst['slice'] == 'c'
        s = (preds.meta.site == 'c').to_numpy(); y, p = preds.targets, preds.probs
        if fn is None: fn = lambda y, p: -np.log(p[np.arange(len(y)), y]).mean()
        sign = -1 if metric == 'nll' else 1
        gaps = np.array([sign * (fn(y[i], p[i]) - fn(y[i][s[i]], p[i][s[i]])) for b in resample_indices(len(y), 200, 5) for i in b])
        lo, hi = np.quantile(gaps, [.025, .975])
        g = rep.worst['gap']
        assert g.lo == pytest.approx(lo, abs=1e-9) and g.hi == pytest.approx(hi, abs=1e-9)
        assert g.lo < g.value < g.hi

def test_worst_gap_interval_covers_true_gap_and_shrinks_with_n():
    "Small simulation: population accuracies a .92, b .88, c .70 with weights .5/.3/.2; true gap = overall - c."
    true_gap = (.5 * .92 + .3 * .88 + .2 * .70) - .70
    hits, widths = [], {}
    for seed in range(60):
        rep = slice_report(_sim(n=600, seed=100 + seed), 'site', n_boot=300, seed=seed)
        g = rep.worst['gap']
        assert rep.worst['slice'] == 'c' and g.lo <= g.value <= g.hi
        hits.append(g.lo <= true_gap <= g.hi)
    assert np.mean(hits) >= 0.85, np.mean(hits)
    for n in (500, 5000):
        g = slice_report(_sim(n=n, seed=7), 'site', n_boot=300).worst['gap']; widths[n] = g.hi - g.lo
    assert widths[5000] < 0.5 * widths[500]

def test_json_roundtrip_and_html(preds):
    rep = slice_report(preds, ('site', 'scanner'), n_boot=100)
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))     # strict JSON: NaN stored as null
    back = SliceReport.from_dict(d)
    pd.testing.assert_frame_equal(back.rows, rep.rows)
    assert back.worst['slice'] == rep.worst['slice'] and back.worst['gap'].lo == rep.worst['gap'].lo
    assert back.overall.value == rep.overall.value
    h = rep._repr_html_()
    assert 'worst slice' in h and '<table' in h

def test_no_judgeable_slice_gives_reasoned_nan():
    p = _sim(n=50)
    rep = slice_report(p, 'site', n_boot=50, min_n=100)
    assert rep.worst['slice'] is None and np.isnan(rep.worst['gap'].value) and 'min_n=100' in rep.worst['gap'].reason
    assert not rep.rows.flagged.any()

def test_unlabelled_and_nonscalar_columns_error():
    p = _sim(n=50)
    with pytest.raises(ValueError, match='labelled'): slice_report(Predictions(p.ids, p.logits, meta=p.meta), 'site')
    p.meta['boxes'] = [[1, 2]] * len(p)
    with pytest.raises(ValueError, match="'boxes' holds list values"): slice_labels(p, 'boxes')

def test_slice_plot_highlights_flagged(preds):
    rep = slice_report(preds, 'site', n_boot=100)
    ax = slice_plot(rep)
    cols = [matplotlib.colors.to_hex(b.get_facecolor()) for b in ax.patches[:len(rep.rows)]]
    assert [c == '#d62728' for c in cols] == list(rep.rows.flagged)
    assert any(l.get_linestyle() == '--' for l in ax.lines)   # the overall line
