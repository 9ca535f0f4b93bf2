"cvkit.curate.active: strategy scores match their formulas, core-set greedy matches brute force, labels stay hidden, bad budgets are named."
import itertools, json
import numpy as np, pandas as pd, pytest, torch
from scipy import stats
from cvkit.curate.active import (STRATEGIES, Pool, active_learning, entropy, grad_embedding, kcenter_greedy, kmeanspp, labels_needed,
                                 learning_curves, least_confidence, margin, summarize_curves)
from cvkit.curate.label_issues import Learner
from cvkit.data.builtin import digits
from cvkit.data.dataset import DatasetError

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures('no_network')

@pytest.fixture(scope='module')
def data():
    ds = digits(size=16, seed=0)
    return ds.split('train').subset(np.arange(160)), ds.split('test').subset(np.arange(100))

def test_uncertainty_scores_match_formulas():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), 50)
    np.testing.assert_allclose(entropy(p), stats.entropy(p.T))
    np.testing.assert_allclose(least_confidence(p), 1 - p.max(1))
    s = np.sort(p, 1)
    np.testing.assert_allclose(margin(p), 1 - (s[:, -1] - s[:, -2]))
    for name, score in (('least_confidence', least_confidence), ('margin', margin), ('entropy', entropy)):
        got = STRATEGIES[name](p, None, None, 7, rng)
        assert set(got) == set(np.argsort(-score(p))[:7])

def test_kcenter_greedy_against_brute_force():
    rng = np.random.default_rng(1)
    X, L = rng.normal(size=(10, 3)), rng.normal(size=(2, 3))
    got = kcenter_greedy(X, L, 4)
    chosen = list(L)
    for i in got:   # each pick is the brute-force argmax of the min distance to everything chosen so far
        d = [min(np.linalg.norm(x - c) for c in chosen) for x in X]
        assert i == int(np.argmax(d)); chosen.append(X[i])
    radius = lambda S: max(min(np.linalg.norm(x - c) for c in list(L) + [X[j] for j in S]) for x in X)
    best = min(radius(S) for S in itertools.combinations(range(10), 4))       # the optimal k-centre cover, by enumeration
    assert best <= radius(got) <= 2 * best + 1e-12                              # greedy is a 2-approximation
    first = kcenter_greedy(X, np.zeros((0, 3)), 3, np.random.default_rng(5))   # nothing labelled: a random first centre
    assert first[0] == np.random.default_rng(5).integers(10) and len(set(first)) == 3

def test_badge_gradient_embedding_and_kmeanspp():
    torch.manual_seed(0)
    z, W = torch.randn(6, 4), torch.randn(3, 4, requires_grad=True)
    pr = torch.softmax(z @ W.T, 1).detach()
    ge = grad_embedding(pr.numpy(), z.numpy())
    for i in range(6):
        g, = torch.autograd.grad(torch.nn.functional.cross_entropy(z[i:i+1] @ W.T, pr[i:i+1].argmax(1)), W)
        np.testing.assert_allclose(ge[i], g.numpy().reshape(-1), atol=1e-6)
    x = np.r_[np.zeros((5, 2)), [[10, 0]], [[0, 3]]]
    picks = kmeanspp(x, 3, np.random.default_rng(0))
    assert picks[0] == 5 and len(set(picks)) == 3 and 6 in picks   # the far point first; the next draws favour (0, 3) over the zeros
    assert len(set(kmeanspp(np.zeros((4, 2)), 3, np.random.default_rng(0)))) == 3   # coincident rows: still distinct picks

def test_pool_hides_labels(data):
    pool_ds, _ = data
    p = Pool(pool_ds)
    assert p.n_labelled == 0 and all(p.unlabelled_view()[i][1] == -1 for i in range(3))
    assert (p.label([5, 2]) == pool_ds.targets[[5, 2]]).all() and p.n_labelled == 2
    with pytest.raises(ValueError, match='asked for twice'): p.label([2])
    with pytest.raises(IndexError): p.label([1000])

def test_loop_curve_and_hidden_labels(data):
    "The queries depend on revealed labels only: scrambling the hidden ones leaves the first query unchanged."
    pool_ds, test = data
    lr = Learner(epochs=2, min_steps=20)
    res = active_learning(pool_ds, test, 'margin', batch=20, rounds=1, learner=lr, seed=3)
    assert res.curve.labels.tolist() == [20, 40] and res.curve.accuracy.between(0, 1).all()
    init = np.isin(pool_ds.ids, res.queried[0])
    df = pool_ds.df.copy(); df.loc[~init, 'target'] = (df.target[~init] + 1) % 10
    res2 = active_learning(pool_ds._new(df), test, 'margin', batch=20, rounds=1, learner=lr, seed=3)
    assert list(res2.queried[0]) == list(res.queried[0]) and list(res2.queried[1]) == list(res.queried[1])
    assert res2.curve.accuracy.iloc[0] == res.curve.accuracy.iloc[0]
    assert res.labels_to_reach(0.0) == 20 and res.labels_to_reach(1.01) is None

def test_coreset_and_badge_run(data):
    pool_ds, test = data
    for s in ('coreset', 'badge'):
        res = active_learning(pool_ds, test, s, batch=15, rounds=1, learner=Learner(epochs=1, min_steps=5), seed=0)
        q = np.concatenate(res.queried)
        assert len(q) == len(set(q)) == 30

def test_bad_budget_is_named(data):
    pool_ds, test = data
    with pytest.raises(DatasetError, match=r'the pool has 10 samples, fewer than batch=20.*lower `batch`'):
        active_learning(pool_ds.subset(np.arange(10)), test, batch=20)
    with pytest.raises(DatasetError, match=r'lower `rounds` to 7'): active_learning(pool_ds, test, batch=20, rounds=8)
    with pytest.raises(ValueError, match='batch=0'): active_learning(pool_ds, test, batch=0)
    with pytest.raises(ValueError, match="strategy='bald' is not one of"): active_learning(pool_ds, test, strategy='bald')
    class NoLabels:
        ids = np.array(['a'])
        def __len__(self): return 1
    with pytest.raises(DatasetError, match='needs a labelled dataset'): active_learning(NoLabels(), test, batch=1)

def test_learning_curves_from_a_sweep_folder(tmp_path):
    from cvkit.lab.track import Run
    acc = {('random', 0): [.5, .8], ('random', 1): [.6, .9], ('random', 2): [.7, 1.], ('margin', 0): [.6, .95],
           ('margin', 1): [.7, .97], ('margin', 2): [.8, .99]}
    ids = []
    for (s, seed), a in acc.items():
        rid = f'{s}-{seed}'; ids.append(rid)
        (tmp_path/rid).mkdir(); (tmp_path/rid/'run.json').write_text(json.dumps(dict(params=dict(strategy=s, seed=seed))))
        r = Run(tmp_path/rid)
        for labels, v in zip((10, 20), a): r.log_metrics(step=labels, labels=labels, accuracy=v)
        r.log_metrics(full_pool_accuracy=0.9); r.finish()
    (tmp_path/'sweep.json').write_text(json.dumps(dict(runs=ids)))
    c = learning_curves(tmp_path)
    assert len(c) == 12 and set(c.strategy) == {'random', 'margin'} and (c.full_pool_accuracy == 0.9).all()
    s = summarize_curves(c).set_index(['strategy', 'labels'])
    r = s.loc[('random', 20)]
    assert r.accuracy == pytest.approx(0.9) and r.accuracy - r.lo == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3))
    assert r.hi == 1.0                                                  # 0.9 + 0.248 clipped to 1
    assert labels_needed(c).set_index('strategy').labels.to_dict() == dict(margin=20, random=20)
    assert labels_needed(c, 0.7).set_index('strategy').labels.to_dict() == dict(margin=10, random=20)
