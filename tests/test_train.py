"fit(): resume exactness, NaN guard, early stopping, accumulation, checkpoints."
import numpy as np, pytest, torch
from torch import nn
from cvkit.core import load_checkpoint
from cvkit.data.builtin import digits
from cvkit.models.factory import create_model
from cvkit.train import TrainingDiverged, fit

@pytest.fixture(scope='module')
def data():
    ds = digits(size=16, seed=0)
    return ds.split('train').subset(np.arange(256)), ds.split('valid')

def _model():
    torch.manual_seed(0)  # the same initial weights every time
    return create_model('cvkit_cnn_tiny', num_classes=10)

def test_loss_falls_and_best_checkpoint(data, tmp_path):
    res = fit(_model(), *data, epochs=3, lr=3e-3, ckpt_dir=tmp_path, progress=False)
    h = res.history
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
    st, info = load_checkpoint(res.best_checkpoint)
    assert info['meta']['epoch'] == res.best_epoch and info['meta']['score'] == h.valid_acc.max()
    assert info['meta']['classes'] == [str(i) for i in range(10)] and info['lineage']['seed'] == 0

class _Interruptible(nn.Module):
    def __init__(self, m, at=None): super().__init__(); self.m, self.at, self.calls = m, at, 0
    def forward(self, x):
        self.calls += self.training
        if self.at is not None and self.calls == self.at: raise KeyboardInterrupt
        return self.m(x)

def test_resume_after_interrupt_is_bitwise_identical(data, tmp_path):
    steps = len(data[0]) // 64
    m1 = _Interruptible(_model()); fit(m1, data[0], epochs=3, lr=3e-3, ckpt_dir=tmp_path/'a', progress=False, restore_best=False)
    m2 = _Interruptible(_model(), at=2 * steps + 2)
    with pytest.raises(KeyboardInterrupt): fit(m2, data[0], epochs=3, lr=3e-3, ckpt_dir=tmp_path/'b', progress=False, restore_best=False)
    m3 = _Interruptible(_model()); r = fit(m3, data[0], epochs=3, lr=3e-3, ckpt_dir=tmp_path/'b', resume=True, progress=False, restore_best=False)
    assert list(r.history.epoch) == [0, 1, 2]
    for (k, a), b in zip(m1.state_dict().items(), m3.state_dict().values()): assert torch.equal(a, b), k

class _NaNAfter(nn.Module):
    def __init__(self, m, ok): super().__init__(); self.m, self.ok, self.n = m, ok, 0
    def forward(self, x):
        self.n += self.training
        out = self.m(x)
        return out * float('nan') if self.n > self.ok else out

def test_nan_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    steps = len(data[0]) // 64
    with pytest.raises(TrainingDiverged) as e:
        fit(_NaNAfter(_model(), steps + 1), data[0], epochs=3, ckpt_dir=tmp_path, progress=False)
    msg = str(e.value)
    assert 'epoch 1' in msg and 'last.safetensors' in msg and 'lower learning rate' in msg
    st, info = load_checkpoint(e.value.last_checkpoint)
    assert info['meta']['epoch'] == 0 and all(torch.isfinite(v).all() for v in st['model'].values() if v.is_floating_point())

def test_nan_without_checkpoint_dir_says_so(data):
    with pytest.raises(TrainingDiverged, match='pass ckpt_dir'):
        fit(_NaNAfter(_model(), 0), data[0], epochs=1, progress=False)

def test_early_stopping(data):
    frozen = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))  # no BatchNorm, lr 0: valid accuracy never moves
    res = fit(frozen, *data, epochs=30, lr=0.0, patience=2, progress=False)
    assert res.stopped == 'early_stopping' and len(res.history) == 3

def test_grad_accum_and_clipping_run(data):
    res = fit(_model(), data[0], epochs=2, batch_size=32, grad_accum=2, clip_grad=1.0, label_smoothing=0.1, progress=False)
    assert np.isfinite(res.history.train_loss).all() and res.history.train_loss.iloc[-1] < res.history.train_loss.iloc[0]

def test_empty_train_set_clear_error(data):
    with pytest.raises(ValueError, match='0 samples'):
        fit(_model(), data[0].subset(np.arange(0)), epochs=1, progress=False)
