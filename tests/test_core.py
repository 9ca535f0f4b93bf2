"Bad-input and fault tests for cvkit.core: corrupt and pickled checkpoints, interrupted writes, lineage."
import json, os, subprocess
import numpy as np, pytest, torch
from cvkit.core import (CheckpointError, atomic_write, checkpoint_paths, convert_checkpoint, lineage, load_checkpoint,
                        save_checkpoint, save_json, seed_everything)

def _net(): return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))

def test_checkpoint_roundtrip_nested(tmp_path):
    net = _net()
    state = dict(model=net.state_dict(), extra=dict(step=7, lrs=[0.1, 0.01], arr=np.arange(5), t=(1, 'a')))
    save_checkpoint(tmp_path/'c', state, meta=dict(classes=['x', 'y']))
    st, info = load_checkpoint(tmp_path/'c.safetensors')
    for k, v in net.state_dict().items(): assert torch.equal(st['model'][k], v)
    assert st['extra']['step'] == 7 and st['extra']['lrs'] == [0.1, 0.01] and st['extra']['t'] == (1, 'a')
    np.testing.assert_array_equal(st['extra']['arr'], np.arange(5))
    assert info['meta'] == dict(classes=['x', 'y'])

def test_tied_weights_saved(tmp_path):
    lin = torch.nn.Linear(4, 4); state = dict(a=lin.weight, b=lin.weight)
    st, _ = load_checkpoint(save_checkpoint(tmp_path/'tied', state))
    assert torch.equal(st['a'], st['b'])

@pytest.mark.parametrize('cut', [0.5, 0.99])
def test_corrupt_checkpoint_named(tmp_path, cut):
    w = save_checkpoint(tmp_path/'model', dict(model=_net().state_dict()))
    data = w.read_bytes(); w.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(CheckpointError, match='model.safetensors is corrupt'): load_checkpoint(w)

def test_corrupt_checkpoint_unverified_still_clear(tmp_path):
    w = save_checkpoint(tmp_path/'model', dict(model=_net().state_dict()))
    w.write_bytes(b'garbage' * 10)
    with pytest.raises(CheckpointError, match='corrupt'): load_checkpoint(w, verify=False)

def test_checkpoint_missing_metadata(tmp_path):
    w = save_checkpoint(tmp_path/'m', dict(model=_net().state_dict()))
    checkpoint_paths(w)[1].unlink()
    with pytest.raises(CheckpointError, match='m.json'): load_checkpoint(w)

@pytest.mark.parametrize('name', ['legacy.pth', 'legacy.pt', 'legacy.bin', 'renamed.safetensors', 'noext'])
def test_pickled_checkpoint_refused_never_unpickled(tmp_path, monkeypatch, name):
    torch.save(_net().state_dict(), tmp_path/name)
    def boom(*a, **k): raise AssertionError('torch.load must not be called')
    monkeypatch.setattr(torch, 'load', boom)
    import pickle; monkeypatch.setattr(pickle, 'load', boom); monkeypatch.setattr(pickle, 'loads', boom)
    with pytest.raises(CheckpointError) as e: load_checkpoint(tmp_path/name)
    assert name in str(e.value) and 'convert_checkpoint' in str(e.value)

def test_convert_checkpoint_explicit(tmp_path):
    net = _net(); torch.save(net.state_dict(), tmp_path/'mine.pth')
    st, info = load_checkpoint(convert_checkpoint(tmp_path/'mine.pth', tmp_path/'mine'))
    for k, v in net.state_dict().items(): assert torch.equal(st['model'][k], v)
    assert info['meta']['converted_from'].endswith('mine.pth')

def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = save_json(dict(v=1), tmp_path/'x.json')
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write('{"v": 2, "trunc'); raise RuntimeError('killed mid-write')
    assert json.loads(p.read_text()) == dict(v=1)
    assert [q.name for q in tmp_path.iterdir()] == ['x.json']

def test_save_json_refuses_nan_silently_written_as_null(tmp_path):
    p = save_json(dict(a=float('nan'), b=np.float32(1.5)), tmp_path/'m.json')
    assert json.loads(p.read_text()) == dict(a=None, b=1.5)

def test_lineage_git_sha_and_dirty(tmp_path):
    run = lambda *a: subprocess.run(['git', *a], cwd=tmp_path, check=True, capture_output=True)
    run('init', '-q'); run('config', 'user.email', 't@t'); run('config', 'user.name', 't')
    (tmp_path/'f.txt').write_text('a'); run('add', '.'); run('commit', '-qm', 'x')
    sha = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    lin = lineage(seed=3, config=dict(lr=0.1), repo=tmp_path)
    assert lin['git']['sha'] == sha and lin['git']['dirty'] is False
    (tmp_path/'f.txt').write_text('b')
    assert lineage(repo=tmp_path)['git']['dirty'] is True
    assert lin['seed'] == 3 and lin['config'] == dict(lr=0.1) and lin['versions']['torch'] == torch.__version__

def test_seed_everything_repeats_draws():
    seed_everything(5); a = torch.randn(3), np.random.rand(3)
    seed_everything(5); b = torch.randn(3), np.random.rand(3)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
