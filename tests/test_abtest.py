"""A/B tests: designs against statsmodels and closed forms; analyses against statsmodels/scipy; and the statistics by
simulation: mSPRT false positives under daily peeking, power at the design, interval coverage, guardrail error rates."""
import contextlib, io, json, math
import numpy as np, pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats import proportion as smp
from cvkit.lab.store import to_jsonable
from cvkit.govern.abtest import (ABDesign, ABResult, GuardrailResult, SequentialResult, design_proportion, design_mean,
    diff_proportions, diff_means, quantile_ci, diff_quantiles, ab_proportions, ab_means, guardrail, msprt, msprt_core, check_counts, sequential_power, main)

Z = stats.norm.ppf

# --- design ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('p0,mde,rel,ratio,alpha,power', [(0.10, 0.01, False, 1, .05, .8), (0.03, 0.10, True, 1, .05, .9),
                                                          (0.50, -0.02, False, 2, .01, .8), (0.20, 0.015, False, 0.5, .1, .8)])
def test_design_proportion_matches_statsmodels_and_closed_form(p0, mde, rel, ratio, alpha, power):
    d = design_proportion(p0, mde, alpha=alpha, power=power, relative=rel, ratio=ratio, daily_traffic=5000)
    p1 = p0 * (1 + mde) if rel else p0 + mde
    h = smp.proportion_effectsize(p1, p0)
    sm = NormalIndPower().solve_power(abs(h), alpha=alpha, power=power, ratio=ratio)
    assert d.n_control == math.ceil(sm) and d.n_treatment == math.ceil(sm * ratio)
    closed = (1 + 1 / ratio) * (Z(1 - alpha / 2) + Z(power))**2 / h**2          # ignores the far tail: within one user
    assert abs(d.n_control - closed) <= 1
    assert d.days == math.ceil((d.n_control + d.n_treatment) / 5000)
    assert d.mde == pytest.approx(p1 - p0)

def test_design_proportion_close_to_fleiss_formula():
    d = design_proportion(0.10, 0.01)
    pbar = 0.105
    fleiss = (Z(.975) * math.sqrt(2 * pbar * (1 - pbar)) + Z(.8) * math.sqrt(.1 * .9 + .11 * .89))**2 / 0.01**2
    assert d.n_control == pytest.approx(fleiss, rel=0.01)

def test_design_mean_matches_statsmodels():
    d = design_mean(sd=10, mde=0.05, baseline=20, relative=True, daily_traffic=1000)   # 1.0 absolute
    sm = TTestIndPower().solve_power(0.1, alpha=0.05, power=0.8)
    assert d.n_control == math.ceil(sm) and d.mde == pytest.approx(1.0)
    assert d.n_control == pytest.approx(2 * (Z(.975) + Z(.8))**2 * 100, abs=3)
    assert d.days == math.ceil(d.n_total / 1000)
    json.dumps(d.to_dict(), allow_nan=False)

@pytest.mark.parametrize('call,msg', [
    (lambda: design_proportion(0, 0.01), 'baseline rate must be in (0, 1)'),
    (lambda: design_proportion(0.5, 0.6), 'must be in (0, 1)'),
    (lambda: design_proportion(0.5, 0), 'differ from the baseline'),
    (lambda: design_proportion(0.5, 0.1, power=0.01), 'power must be in'),
    (lambda: design_proportion(0.5, 0.1, daily_traffic=0), 'daily_traffic must be > 0'),
    (lambda: design_mean(0, 1), 'sd must be > 0'),
    (lambda: design_mean(1, 0.1, relative=True), 'needs the control mean'),
])
def test_design_bad_input(call, msg):
    with pytest.raises(ValueError, match=None) as e: call()
    assert msg in str(e.value)

# --- analysis against references ---------------------------------------------------------------------------------------
def test_proportions_match_statsmodels():
    res = ab_proportions((480, 5000), (540, 5100), alpha=0.05)
    assert [res.diff.lo, res.diff.hi] == pytest.approx(smp.confint_proportions_2indep(540, 5100, 480, 5000, method='wald'), abs=1e-12)
    assert [res.lift.lo + 1, res.lift.hi + 1] == pytest.approx(
        smp.confint_proportions_2indep(540, 5100, 480, 5000, method='log', compare='ratio'), abs=1e-12)
    assert res.p_value == pytest.approx(smp.test_proportions_2indep(540, 5100, 480, 5000, method='wald').pvalue, abs=1e-12)
    assert res.diff.value == pytest.approx(540 / 5100 - 480 / 5000)
    back = ABResult.from_dict(json.loads(json.dumps(to_jsonable(res.to_dict()), allow_nan=False)))
    assert back.to_dict() == res.to_dict() and back.verdict == res.verdict

def test_means_match_scipy_welch():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 1, 200), rng.normal(5.3, 2, 150)
    r = ab_means(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert [r.diff.lo, r.diff.hi] == pytest.approx(list(ref.confidence_interval(0.95)), rel=1e-10)
    s = ab_means(dict(n=200, mean=a.mean(), sd=a.std(ddof=1)), dict(n=150, mean=b.mean(), sd=b.std(ddof=1)))
    assert s.diff.to_dict() == pytest.approx(r.diff.to_dict())

def test_quantile_ci_matches_scipy_quantile_test():
    x = np.random.default_rng(1).exponential(20, 777)
    v, lo, hi = quantile_ci(x, 0.9, 0.95)
    ci = stats.quantile_test(x, q=v, p=0.9).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))

def test_few_events_warn():
    with pytest.warns(UserWarning, match='few events: control 0/1000'): ab_proportions((0, 1000), (5, 1000))

def test_lower_is_better_verdict():
    r = ab_proportions((200, 10_000), (150, 10_000), metric='error rate', higher_is_better=False)
    assert r.verdict == 'better' and r.diff.hi < 0
    assert ab_proportions((150, 10_000), (200, 10_000), higher_is_better=False).verdict == 'worse'

# --- bad input ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('call,msg', [
    (lambda: ab_proportions((0, 0), (5, 100)), "arm 'control' has zero traffic"),
    (lambda: ab_proportions((5, 100), dict(successes=0, trials=0)), "arm 'treatment' has zero traffic"),
    (lambda: ab_proportions((-2, 100), (5, 100)), "arm 'control': successes is negative"),
    (lambda: ab_proportions((2, 100), (5, -100)), "arm 'treatment': trials is negative"),
    (lambda: ab_proportions((2, 100), (101, 100)), "arm 'treatment': successes (101) exceed trials (100)"),
    (lambda: ab_proportions((2, 100), dict(successes=3)), "arm 'treatment': missing ['trials']"),
    (lambda: ab_proportions((np.nan, 100), (3, 100)), "arm 'control': successes is not a finite number"),
    (lambda: ab_proportions((1, 0), (1, 10), names=('old', 'new')), "arm 'old' has zero traffic"),
    (lambda: msprt(dict(n=[10, 20], mean=[1, 1], sd=[1, 1]), dict(n=[0, 20], mean=[1, 1], sd=[1, 1]), tau=.1, kind='mean'), "arm 'treatment' has zero traffic"),
    (lambda: msprt(dict(n=[10, 20], mean=[1, 1]), dict(n=[10, 20], mean=[1, 1], sd=[1, 1]), tau=.1, kind='mean'), "arm 'control': for kind=\"mean\" pass dict(n=, mean=, sd=)"),
    (lambda: msprt(([1], [10]), ([1], [10]), tau=.1, kind='median'), "kind must be 'proportion' or 'mean'"),
    (lambda: ab_means([], [1, 2]), "arm 'control' has zero traffic"),
    (lambda: ab_means([1, np.nan, 3], [1, 2]), "arm 'control': 1 values are NaN/inf at position(s) [1]"),
    (lambda: ab_means(dict(n=0, mean=1, sd=1), [1, 2]), "arm 'control' has zero traffic"),
    (lambda: ab_means(dict(n=-5, mean=1, sd=1), [1, 2]), 'cannot be negative'),
    (lambda: guardrail('latency', [1., 2.], [], 0.1, kind='quantile'), "arm 'treatment' has zero traffic"),
    (lambda: guardrail('latency', [1., -2.], [1.], 0.1, kind='quantile'), "arm 'control': 1 negative values"),
    (lambda: guardrail('errors', (1, 10), (1, 10), margin=-0.1), 'margin must be a finite number >= 0'),
    (lambda: guardrail('errors', (1, 10), (1, 10), 0.1, kind='median'), "kind must be one of"),
    (lambda: msprt(([1, 2], [10, 0]), ([1, 2], [10, 20]), tau=0.1), "arm 'control' has zero traffic (trials=0 at position(s) [1])"),
    (lambda: msprt(([1, 2], [10, 20]), ([1, 2], [10, 20]), tau=0), 'tau must be > 0'),
    (lambda: msprt(([1, 2], [10, 20]), ([1, 2], [20, 10]), tau=.1), "arm 'treatment': traffic decreases between looks at position(s) [1]"),
])
def test_bad_input_names_the_arm(call, msg):
    with pytest.raises((ValueError, TypeError)) as e: call()
    assert msg in str(e.value), str(e.value)

# --- simulations ---------------------------------------------------------------------------------------------------------
N_EXP, DAYS, PER_DAY = 2000, 30, 1000

def _daily(p_a, p_b, seed, n_exp=N_EXP, days=DAYS, per_day=PER_DAY):
    rng = np.random.default_rng(seed)
    sa = np.cumsum(rng.binomial(per_day, p_a, (n_exp, days)), axis=1).astype(float)
    sb = np.cumsum(rng.binomial(per_day, p_b, (n_exp, days)), axis=1).astype(float)
    return sa, sb, np.broadcast_to(per_day * np.arange(1, days + 1.), sa.shape)

def _seq(sa, sb, n, tau):
    pa, pb = sa / n, sb / n
    return msprt_core(pb - pa, (pa * (1 - pa) + pb * (1 - pb)) / n, tau=tau)

def test_msprt_controls_false_positives_under_daily_peeking_while_naive_ttests_do_not():
    sa, sb, n = _daily(0.10, 0.10, seed=11)
    naive = (diff_proportions(sa, n, sb, n)['p'] < 0.05).any(axis=1).mean()
    seq = _seq(sa, sb, n, tau=0.01)['reject'].any(axis=1).mean()
    assert seq <= 0.05, seq
    assert naive > 0.05 + 3 * math.sqrt(.05 * .95 / N_EXP), naive      # about 25-30%: clearly inflated
    for i in range(3):   # the public per-experiment msprt gives the same numbers as the vectorised core
        r = msprt((sa[i], n[i]), (sb[i], n[i]), tau=0.01)
        assert r.looks['p_value'].to_numpy() == pytest.approx(_seq(sa[i:i + 1], sb[i:i + 1], n[i:i + 1], 0.01)['p'][0])

def test_msprt_false_positives_for_means_and_other_tau():
    rng = np.random.default_rng(12)
    x = rng.normal(0, 1, (N_EXP, 2, DAYS, 100))              # 100 users/arm/day, a continuous metric
    s, s2 = np.cumsum(x.sum(-1), -1), np.cumsum((x**2).sum(-1), -1)
    n = 100 * np.arange(1, DAYS + 1.)
    m = s / n; v = (s2 - n * m**2) / (n - 1)
    for tau in (0.02, 0.1):
        rej = msprt_core(m[:, 1] - m[:, 0], (v[:, 0] + v[:, 1]) / n, tau)['reject'].any(1).mean()
        assert rej <= 0.05, (tau, rej)

def test_msprt_always_valid_interval_covers_the_truth_over_all_looks():
    sa, sb, n = _daily(0.10, 0.115, seed=13)
    r = _seq(sa, sb, n, tau=0.01)
    cover = ((r['lo'] <= 0.015) & (r['hi'] >= 0.015)).all(axis=1).mean()
    assert cover >= 0.95, cover
    assert r['reject'].any(axis=1).mean() > 0.8              # and a 1.5-point effect is found

def test_power_at_the_designed_effect_matches_the_design():
    d = design_proportion(0.10, 0.01, power=0.8)
    rng = np.random.default_rng(14)
    sa, sb = rng.binomial(d.n_control, 0.10, N_EXP), rng.binomial(d.n_treatment, 0.11, N_EXP)
    power = (diff_proportions(sa, d.n_control, sb, d.n_treatment)['p'] < 0.05).mean()
    assert abs(power - 0.8) <= 0.03, power
    dm = design_mean(sd=4.0, mde=0.5, power=0.9)            # means: simulate the sufficient statistics of normal data
    na = dm.n_control
    ma, mb = rng.normal(10, 4 / math.sqrt(na), N_EXP), rng.normal(10.5, 4 / math.sqrt(na), N_EXP)
    va, vb = (16 * rng.chisquare(na - 1, N_EXP) / (na - 1) for _ in range(2))
    power = (diff_means(ma, va, na, mb, vb, na)['p'] < 0.05).mean()
    assert abs(power - 0.9) <= 0.03, power

def test_fixed_horizon_intervals_cover_95_percent():
    rng = np.random.default_rng(15)
    sa, sb = rng.binomial(3000, 0.08, N_EXP), rng.binomial(3000, 0.10, N_EXP)
    r = diff_proportions(sa, 3000, sb, 3000)
    cov = ((r['lo'] <= 0.02) & (r['hi'] >= 0.02)).mean()
    lift = ((r['lift_lo'] <= 0.25) & (r['lift_hi'] >= 0.25)).mean()
    se = math.sqrt(.95 * .05 / N_EXP)
    assert abs(cov - 0.95) <= 3 * se and abs(lift - 0.95) <= 3 * se, (cov, lift)
    na, nb = 80, 40                                            # Welch with unequal variances and sizes
    a, b = rng.normal(0, 1, (N_EXP, na)), rng.normal(0.3, 3, (N_EXP, nb))
    w = diff_means(a.mean(1), a.var(1, ddof=1), na, b.mean(1), b.var(1, ddof=1), nb)
    cov = ((w['lo'] <= 0.3) & (w['hi'] >= 0.3)).mean()
    assert abs(cov - 0.95) <= 3 * se, cov

def test_quantile_difference_interval_covers():
    rng = np.random.default_rng(16)
    n, mu, sd = 2000, 3.0, 0.5
    a, b = rng.lognormal(mu, sd, (1000, n)), rng.lognormal(mu + 0.05, sd, (1000, n))
    q = lambda m: math.exp(m + sd * Z(0.95))
    r = diff_quantiles(a, b, 0.95)
    cov = ((r['lo'] <= q(mu + .05) - q(mu)) & (r['hi'] >= q(mu + .05) - q(mu))).mean()
    rel = ((r['lift_lo'] <= math.exp(.05) - 1) & (r['lift_hi'] >= math.exp(.05) - 1)).mean()
    assert 0.93 <= cov <= 0.99 and 0.93 <= rel <= 0.99, (cov, rel)

def test_guardrail_false_pass_rate_at_the_margin():
    "When the true harm equals the margin, the guardrail passes at most about alpha of the time (non-inferiority size)."
    rng = np.random.default_rng(17)
    n = 20_000
    sa, sb = rng.binomial(n, 0.010, N_EXP), rng.binomial(n, 0.012, N_EXP)
    passed = (diff_proportions(sa, n, sb, n, level=0.90)['hi'] <= 0.002).mean()
    assert passed <= 0.05 + 3 * math.sqrt(.05 * .95 / N_EXP), passed
    for i in range(5):   # the public guardrail agrees with the vectorised rule
        g = guardrail('error rate', (sa[i], n), (sb[i], n), margin=0.002)
        assert g.passed == bool(diff_proportions(sa[i], n, sb[i], n, level=0.90)['hi'] <= 0.002)

def test_guardrails_latency_and_error_rate():
    rng = np.random.default_rng(18)
    a = rng.lognormal(3, .5, 20_000)
    ok = guardrail('latency p95 (ms)', a, rng.lognormal(3.0, .5, 20_000), margin=0.05, kind='quantile', relative=True)
    bad = guardrail('latency p95 (ms)', a, a * 1.2, margin=0.05, kind='quantile', relative=True)
    assert ok.passed and not bad.passed and 'harm not ruled out' in bad.reason
    assert ok.limit == pytest.approx(ok.control * 1.05)
    thr = guardrail('throughput', dict(n=500, mean=100, sd=10), dict(n=500, mean=99.5, sd=10), margin=2, kind='mean', higher_is_worse=False)
    assert thr.passed and thr.limit == pytest.approx(98) and thr.change.lo > -2
    assert GuardrailResult.from_dict(json.loads(json.dumps(to_jsonable(ok.to_dict())))) == ok

def test_sequential_result_roundtrip_and_cli():
    sa, sb, n = _daily(0.10, 0.12, seed=19, n_exp=1, days=10)
    r = msprt((sa[0], n[0]), (sb[0], n[0]), tau=0.01)
    back = SequentialResult.from_dict(json.loads(json.dumps(to_jsonable(r.to_dict()), allow_nan=False)))
    assert back.stopped_at == r.stopped_at and back.diff.to_dict() == pytest.approx(r.diff.to_dict())
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): main(['--baseline', '0.1', '--mde', '0.1', '--relative', '--daily-traffic', '8000'])
    assert '14,745 control' in buf.getvalue() and '4 days' in buf.getvalue()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()): main(['--baseline', '1.5', '--mde', '0.1'])

def test_msprt_on_means_matches_the_closed_form():
    n = np.array([100., 200, 300]); ma, mb = np.array([5., 5.1, 5.05]), np.array([5.2, 5.3, 5.4]); sd = np.array([2., 2.1, 2.0])
    r = msprt(dict(n=n, mean=ma, sd=sd), dict(n=n, mean=mb, sd=sd), tau=0.2, kind='mean', metric='minutes')
    v = 2 * sd**2 / n
    lr = np.sqrt(v / (v + .04)) * np.exp(.04 * (mb - ma)**2 / (2 * v * (v + .04)))
    assert r.looks['lr'].to_numpy() == pytest.approx(lr)
    assert r.looks['p_value'].to_numpy() == pytest.approx(np.minimum.accumulate(np.minimum(1, 1 / lr)))
    half = np.sqrt(v * (v + .04) / .04 * (2 * np.log(20) + np.log((v + .04) / v)))
    assert r.looks['lo'].to_numpy() == pytest.approx(np.maximum.accumulate(mb - ma - half))

@pytest.mark.parametrize('design', [design_proportion(0.10, 0.01, daily_traffic=8000), design_mean(sd=12, mde=0.5, daily_traffic=3000)])
def test_sequential_power_plan(design):
    sp = sequential_power(design, n_sim=2000, seed=21)
    first = sp[sp.n_control >= design.n_control].iloc[0]          # the first day past the designed sample size
    ref = (NormalIndPower() if design.kind == 'proportion' else TTestIndPower()).power(abs(design.effect_size), sp.n_control.to_numpy(), 0.05)
    assert np.abs(sp.fixed_power - ref).max() <= 0.035, np.c_[sp.fixed_power, ref]   # the simulation's fixed test has the analytic power
    assert sp.msprt_stopped.is_monotonic_increasing and first.msprt_stopped < first.fixed_power
    assert sp.msprt_stopped.iloc[-1] > 0.8                         # twice the duration: the mSPRT catches up
    with pytest.raises(ValueError, match='needs the design to have daily_traffic'): sequential_power(design_proportion(0.1, 0.01))
