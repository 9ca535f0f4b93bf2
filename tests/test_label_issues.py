"cvkit.curate.label_issues: out-of-fold predictions are really out of fold, injected label errors are found, cleanlab agrees, bad input is named."
import numpy as np, pandas as pd, pytest, torch
from cleanlab.filter import find_label_issues
from sklearn.model_selection import StratifiedKFold
from cvkit.curate.label_issues import Learner, compare_cleaned, flip_labels, label_issues, most_confused, oof_predictions
from cvkit.data.builtin import digits
from cvkit.data.dataset import DatasetError
from cvkit.evaluate.predictions import Predictions, predict

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures('no_network')

FAST = Learner(epochs=4, min_steps=100)

@pytest.fixture(scope='module')
def data():
    ds = digits(size=16, seed=0)
    tr = ds.split('train')
    return tr.subset(np.arange(240)), ds.split('test').subset(np.arange(120))

def test_learner_epochs_and_train(data):
    tr, te = data
    assert Learner(epochs=2, min_steps=100, batch_size=64).epochs_for(240) == 34   # 3 steps/epoch -> ceil(100/3)
    assert Learner(epochs=20, min_steps=10).epochs_for(1000) == 20
    m = Learner(epochs=3, min_steps=60).train(tr, seed=0)
    assert not m.training and predict(m, te).accuracy > 0.8

def test_oof_is_out_of_fold(data):
    "Each sample's logits are those of a model trained, with the same seed, on exactly the other folds."
    tr, _ = data
    lr = Learner(epochs=2, min_steps=30)
    oof = oof_predictions(tr, lr, k=3, seed=1)
    assert list(oof.ids) == list(tr.ids) and (oof.targets == tr.targets).all()
    folds = list(StratifiedKFold(3, shuffle=True, random_state=1).split(np.zeros(len(tr)), tr.targets))
    a, b = folds[2]
    assert (oof.meta.fold.to_numpy()[b] == 2).all()
    direct = predict(lr.train(tr.subset(a), seed=1 * 1000 + 2), tr.subset(b))
    np.testing.assert_allclose(oof.logits[b], direct.logits, rtol=1e-5, atol=1e-5)

def test_flags_match_cleanlab_on_known_probabilities(data):
    "Given out-of-fold probabilities with 12 planted errors, the flags are cleanlab's and exactly the planted ones."
    tr, _ = data
    rng = np.random.default_rng(0)
    y = tr.targets
    bad = np.sort(rng.choice(len(y), 12, replace=False))
    true = y.copy(); true[bad] = (y[bad] + 3) % 10        # the labels in `tr` are wrong at `bad`; `true` is the truth
    probs = np.full((len(y), 10), 0.02); probs[np.arange(len(y)), true] = 0.82
    oof = Predictions(tr.ids, np.log(probs), y, tr.classes, info=dict(k=5))
    li = label_issues(tr, oof=oof)
    assert set(li.issues.position) == set(bad)
    assert set(np.flatnonzero(find_label_issues(y, probs))) == set(bad)
    row = li.table.set_index('position').loc[bad[0]]
    assert row.given == tr.classes[y[bad[0]]] and row.suggested == tr.classes[true[bad[0]]]
    assert row.p_given == pytest.approx(0.02) and row.p_suggested == pytest.approx(0.82)
    assert li.table.is_issue.iloc[:12].all() and not li.table.is_issue.iloc[12:].any()
    assert len(li.without(tr)) == len(tr) - 12

def test_injected_random_errors_found(data):
    tr, _ = data
    noisy, flipped = flip_labels(tr, 0.1, seed=3)
    assert (noisy.targets != tr.targets).sum() == len(flipped) == 24
    li = label_issues(noisy, FAST, k=4)
    found = set(li.issues.position)
    tp = len(found & set(flipped))
    assert tp / len(found) >= 0.7 and tp / len(flipped) >= 0.6, (tp, len(found), len(flipped))
    assert li.issues.quality.is_monotonic_increasing

def test_flip_to_confused_and_most_confused(data):
    tr, _ = data
    to = np.array([8, 7, 3, 5, 9, 3, 5, 1, 1, 4])
    noisy, fl = flip_labels(tr, 0.05, to=to, seed=0)
    assert (noisy.targets[fl] == to[tr.targets[fl]]).all() and (np.delete(noisy.targets, fl) == np.delete(tr.targets, fl)).all()
    # most_confused against a direct per-class mean of the probabilities
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(300, 4)), rng.integers(0, 4, 300)
    p = Predictions([str(i) for i in range(300)], logits, y)
    m = np.stack([p.probs[y == c].mean(0) for c in range(4)])
    np.fill_diagonal(m, 0)
    assert (most_confused(p) == m.argmax(1)).all()
    with pytest.raises(ValueError, match='different class'): flip_labels(tr, 0.1, to=np.arange(10))

def test_compare_cleaned_pairs_the_two_models(data):
    tr, te = data
    lr = Learner(epochs=2, min_steps=40)
    noisy, _ = flip_labels(tr, 0.1, seed=0)
    probs = np.full((len(tr), 10), 0.02); probs[np.arange(len(tr)), tr.targets] = 0.82
    li = label_issues(noisy, oof=Predictions(tr.ids, np.log(probs), noisy.targets, tr.classes))
    c = compare_cleaned(noisy, li, te, lr, seed=0, n_boot=200)
    base = predict(lr.train(noisy, 0), te).accuracy
    cand = predict(lr.train(li.without(noisy), 0), te).accuracy
    r = c.deltas.set_index('metric').loc['accuracy']
    assert c.n == len(te) and r.baseline == pytest.approx(base) and r.candidate == pytest.approx(cand)

def test_bad_input_is_named(data):
    tr, _ = data
    class NoLabels(torch.utils.data.Dataset):
        ids = np.array(['a', 'b'])
        def __len__(self): return 2
    with pytest.raises(DatasetError, match='needs a labelled dataset'): label_issues(NoLabels())
    class Partly:
        ids, classes, targets = np.array(['a', 'b', 'c']), ['x', 'y'], np.array([0, -1, 1])
    with pytest.raises(DatasetError, match=r"1 have no label .*ids b"): oof_predictions(Partly())
    one = tr.subset(np.flatnonzero(tr.targets == 4))
    with pytest.raises(DatasetError, match='at least two classes'): label_issues(one)
    few = tr.subset(np.r_[np.flatnonzero(tr.targets == 0), np.flatnonzero(tr.targets == 1)[:2]])
    with pytest.raises(DatasetError, match=r"'1' \(2\) have fewer samples than the k=5 folds.*lower `k`"): label_issues(few)
    with pytest.raises(ValueError, match='at least 2 folds'): oof_predictions(tr, k=1)
    oof = Predictions(tr.ids[:10], np.zeros((10, 10)), tr.targets[:10], tr.classes)
    with pytest.raises(ValueError, match='does not match'): label_issues(tr, oof=oof)

def test_learner_adapt_probe_path(data):
    "strategy='probe' goes through adapt(): only the head changes, on frozen embeddings."
    tr, te = data
    torch.manual_seed(0)
    from cvkit.models.factory import create_model
    base = create_model('cvkit_cnn_tiny', num_classes=10)
    snap = {k: v.clone() for k, v in base.state_dict().items()}
    lr = Learner(model=lambda n: __import__('copy').deepcopy(base), strategy='probe', epochs=2, min_steps=10, lr=1e-2)
    m = lr.train(tr, seed=0)
    changed = {k for k, v in m.state_dict().items() if not torch.equal(v, snap[k])}
    assert changed and all(k.startswith('head.') for k in changed), changed
    assert lr.to_dict()['model'] == '<lambda>' and lr.to_dict()['strategy'] == 'probe'
    assert predict(m, te).logits.shape == (len(te), 10)
