"Predictions: predict() against a bare forward loop, parquet round trip, bad inputs."
import numpy as np, pandas as pd, pytest, torch
from cvkit.data.builtin import digits
from cvkit.data.dataset import make_loader
from cvkit.models.factory import create_model
from cvkit.evaluate.predictions import Predictions, predict

@pytest.fixture(scope='module')
def test_ds(): return digits(size=16, seed=0).split('test')

def test_predict_matches_bare_loop_and_keeps_meta(test_ds):
    torch.manual_seed(0); m = create_model('cvkit_cnn_tiny', num_classes=10).eval()
    p = predict(m, test_ds, batch_size=50)
    with torch.inference_mode(): ref = torch.cat([m(x) for x, _ in make_loader(test_ds, batch_size=50)]).numpy()
    np.testing.assert_array_equal(p.logits, ref)
    np.testing.assert_array_equal(p.ids, test_ds.ids); np.testing.assert_array_equal(p.targets, test_ds.targets)
    assert set(p.meta.columns) <= set(test_ds.meta_columns) and len(p.meta.columns) > 0
    np.testing.assert_allclose(p.probs, torch.softmax(torch.from_numpy(ref).double(), 1).numpy(), rtol=1e-12)
    assert (p.preds == ref.argmax(1)).all()

def test_parquet_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    meta = pd.DataFrame(dict(light=pd.Categorical(rng.choice(['low', 'normal'], 20)), size=rng.random(20), site=rng.choice(['a', 'b'], 20)))
    p = Predictions([f's{i}' for i in range(20)], rng.normal(size=(20, 3)), rng.integers(0, 3, 20), ['x', 'y', 'z'], meta, info=dict(model='m'))
    q = Predictions.load(p.save(tmp_path/'p.parquet'))
    np.testing.assert_array_equal(q.logits, p.logits); np.testing.assert_array_equal(q.ids, p.ids)
    np.testing.assert_array_equal(q.targets, p.targets); pd.testing.assert_frame_equal(q.meta, p.meta)
    assert q.classes == ['x', 'y', 'z'] and q.info == dict(model='m')

@pytest.mark.parametrize('kw,msg', [
    (dict(ids=['a', 'b'], logits=np.zeros((3, 2))), 'differ in length'),
    (dict(ids=['a', 'b'], logits=np.zeros((2, 2)), targets=[0]), 'differ in length'),
    (dict(ids=['a', 'a'], logits=np.zeros((2, 2))), "['a']"),
    (dict(ids=['a'], logits=np.zeros((1, 2)), classes=['x', 'y', 'z']), '3 classes'),
    (dict(ids=['a'], logits=np.zeros(2)), '2-D'),
    (dict(ids=['a'], logits=np.zeros((1, 2)), meta=pd.DataFrame(dict(target=[1]))), 'reserved'),
])
def test_bad_inputs(kw, msg):
    with pytest.raises(ValueError) as e: Predictions(**kw)
    assert msg in str(e.value)

def test_load_non_cvkit_parquet(tmp_path):
    pd.DataFrame(dict(a=[1])).to_parquet(tmp_path/'x.parquet')
    with pytest.raises(ValueError, match='not a cvkit Predictions file'): Predictions.load(tmp_path/'x.parquet')

def test_subset_of_nothing_is_empty_not_an_error():
    "`subset([])` (a plain empty list arrives as float64) gives empty predictions, as a boolean mask of all False does."
    import numpy as np
    from cvkit.evaluate.predictions import Predictions
    p = Predictions(np.array(['a', 'b', 'c']), np.eye(3), np.array([0, 1, 2]), ['x', 'y', 'z'])
    for idx in ([], np.zeros(3, bool)):
        e = p.subset(idx)
        assert len(e.ids) == 0 and e.logits.shape == (0, 3) and e.targets.shape == (0,) and len(e.meta) == 0
    assert p.subset([2, 0]).ids.tolist() == ['c', 'a']
