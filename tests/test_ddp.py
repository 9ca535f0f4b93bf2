"""`fit` under torchrun: a real 2-process gloo run on the CPU against one process with the same global batch.

The model is `cvkit_cnn_tiny` with LayerNorm instead of BatchNorm (`model_args: {norm_layer: layernorm2d}`): LayerNorm
normalises each sample on its own, so splitting a batch over processes changes nothing, whereas BatchNorm under DDP
normalises each process's half-batch (SyncBatchNorm, the fix, is CUDA-only). No dropout and no augmentation
(`augment: none`), so the only randomness is the data order, which `fit` draws the same way for 1 and N processes.
DDP averages the two processes' gradients of their mean losses over 16 samples each: the gradient of the mean loss
over the 32-sample global batch, up to float rounding. AdamW amplifies that rounding a little where gradients are
tiny, so the run is short (6 steps) and the tolerance is 1e-5 on every weight, while training moves the weights by
far more than that.
"""
import os, signal, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from cvkit.core import load_checkpoint
from cvkit.train_cli import load_config, run_training, build
from cvkit.train import fit

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-5
CFG = dict(dataset='digits', backbone='cvkit_cnn_tiny', model_args={'norm_layer': 'layernorm2d'}, augment='none', size=16,
           n_train=96, n_valid=64, batch_size=32, epochs=2, lr=1e-3, warmup_epochs=0, seed=0, device='cpu', progress=False)
STEPS = 2 * (96 // 32)   # 2 epochs of 3 global batches


def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _group_alive(pgid:int)->bool:
    try: os.killpg(pgid, 0); return True
    except ProcessLookupError: return False


def torchrun(config:Path, nproc:int=2, timeout:float=300)->str:
    "Run `torchrun -m cvkit.train_cli config` in its own process group; kill the whole group on timeout or failure."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc), '--master_addr', '127.0.0.1',
           '--master_port', str(_free_port()), '-m', 'cvkit.train_cli', '--config', str(config)]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); out, _ = p.communicate()
        pytest.fail(f'torchrun did not finish in {timeout}s; output:\n{out[-3000:]}')
    finally:   # torchrun, its workers and anything they started share the group: none may outlive the test
        if _group_alive(p.pid):
            os.killpg(p.pid, signal.SIGTERM)
            for _ in range(50):
                if not _group_alive(p.pid): break
                time.sleep(0.1)
            else: os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, f'torchrun exited with {p.returncode}:\n{out[-3000:]}'
    assert not _group_alive(p.pid), 'a torchrun process outlived the run'
    return out


def _write(path:Path, **cfg)->Path:
    import yaml
    path.write_text(yaml.safe_dump(cfg)); return path


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "The one-process run, in this process (no process group), with the same config."
    out = tmp_path_factory.mktemp('one')
    res = run_training(load_config(dict(CFG, out=str(out))))
    init = build(load_config(CFG))[0].state_dict()
    return res, load_checkpoint(out/'checkpoints/last'), init


def _max_diff(a:dict, b:dict)->float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_processes_match_one(reference, tmp_path):
    res1, (st1, info1), init = reference
    out = torchrun(_write(tmp_path/'run.yaml', **CFG, out=str(tmp_path/'two')))
    assert out.count('trained 2 epochs') == 1, out[-2000:]                     # rank 0 alone reports
    ck = tmp_path/'two/checkpoints'
    assert sorted(p.name for p in ck.iterdir()) == ['best.json', 'best.safetensors', 'last.json', 'last.safetensors']
    assert sorted(p.name for p in (tmp_path/'two').iterdir()) == ['checkpoints', 'history.csv', 'params.json']
    st2, info2 = load_checkpoint(ck/'last')
    assert info2['lineage']['distributed'] == dict(world_size=2, backend='gloo', per_process_batch=16)
    assert info1['lineage']['distributed'] == dict(world_size=1, backend=None, per_process_batch=32)
    assert int(st2['optimizer']['state'][0]['step']) == int(st1['optimizer']['state'][0]['step']) == STEPS
    moved = _max_diff(st1['model'], init)
    assert moved > 100 * TOL, f'training barely moved the weights ({moved}): the comparison would prove nothing'
    diff = _max_diff(st1['model'], st2['model'])
    assert diff <= TOL, f'2-process weights differ from 1-process weights by {diff} (weights moved {moved})'
    # metrics are reduced over both processes: the history is the one-process history
    h1, h2 = info1['meta']['history'], info2['meta']['history']
    for k in ('train_loss', 'train_acc', 'valid_loss', 'valid_acc'):
        np.testing.assert_allclose([r[k] for r in h2], [r[k] for r in h1], atol=1e-5, err_msg=k)


def test_resume_under_ddp(reference, tmp_path):
    "A one-process run stopped after epoch 0 and resumed by 2 processes ends with the uninterrupted run's weights."
    res1, (st1, _), _ = reference
    run = tmp_path/'resumed'
    cfg = load_config(dict(CFG, out=str(run)))
    model, train, valid, _ = build(cfg)
    calls = [0]
    def stop_in_epoch_1(module, args):
        calls[0] += module.training
        if calls[0] == STEPS // 2 + 1: raise KeyboardInterrupt
    h = model.register_forward_pre_hook(stop_in_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, valid, epochs=2, lr=cfg.lr, batch_size=cfg.batch_size, warmup_epochs=0, monitor=cfg.monitor, device='cpu',
            ckpt_dir=run/'checkpoints', progress=False)
    h.remove()
    assert load_checkpoint(run/'checkpoints/last')[1]['meta']['epoch'] == 0
    torchrun(_write(tmp_path/'run.yaml', **CFG, out=str(run), resume=True))
    st2, info2 = load_checkpoint(run/'checkpoints/last')
    assert [r['epoch'] for r in info2['meta']['history']] == [0, 1]
    assert info2['lineage']['distributed']['world_size'] == 2
    diff = _max_diff(st1['model'], st2['model'])
    assert diff <= TOL, f'resumed 2-process weights differ from the uninterrupted run by {diff}'


def test_batch_must_split_evenly(monkeypatch):
    "A global batch that does not split over the processes is refused before any work (one process, told it is one of 2)."
    from cvkit import train as T
    model, train, valid, _ = build(load_config(CFG))
    monkeypatch.setattr(T, 'dist_world_size', lambda: 2)
    with pytest.raises(ValueError, match='multiple of 2'): fit(model, train, epochs=1, batch_size=31, device='cpu', progress=False)
