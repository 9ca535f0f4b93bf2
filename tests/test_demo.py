"""End to end through the installed `cvkit` command: the run folder, determinism across processes, and the
accuracy target of the flagship demo (>= 97% test accuracy on digits from scratch on CPU). Its time is
measured in benchmarks/digits_demo.py, not asserted here: CI machines are noisy."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.core import load_checkpoint

CVKIT = shutil.which('cvkit', path=str(Path(sys.executable).parent)) or 'cvkit'

def _demo(out, *args):
    r = subprocess.run([CVKIT, 'demo', '--out', str(out), '--no-progress', *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout

def test_same_seed_bitwise_identical_predictions(tmp_path):
    _demo(tmp_path, '--epochs', '2', '--name', 'a', '--seed', '1')
    _demo(tmp_path, '--epochs', '2', '--name', 'b', '--seed', '1')
    a, b = (Predictions.load(tmp_path/n/'predictions.parquet') for n in 'ab')
    assert a.logits.tobytes() == b.logits.tobytes() and (a.ids == b.ids).all()
    _demo(tmp_path, '--epochs', '2', '--name', 'c', '--seed', '2')
    assert Predictions.load(tmp_path/'c'/'predictions.parquet').logits.tobytes() != a.logits.tobytes()

def test_demo_run_folder_and_accuracy_target(tmp_path):
    out = _demo(tmp_path, '--name', 'full')
    run = tmp_path/'full'
    for f in ['predictions.parquet', 'valid_predictions.parquet', 'metrics.json', 'lineage.json', 'config.json', 'history.csv',
              'summary.md', 'report.json', 'report.md',
              'checkpoints/best.safetensors', 'checkpoints/best.json', 'checkpoints/last.safetensors']:
        assert (run/f).exists(), f
    m = json.loads((run/'metrics.json').read_text())
    p = Predictions.load(run/'predictions.parquet')
    assert m['accuracy'] == pytest.approx(p.accuracy, abs=1e-12)
    assert m['accuracy'] >= 0.97, f"digits test accuracy {m['accuracy']:.4f} < 0.97"
    lin = json.loads((run/'lineage.json').read_text())
    assert lin['seed'] == 0 and lin['dataset'] and lin['versions']['torch'] and lin['config']['model'] == 'cvkit_cnn_small'
    _, info = load_checkpoint(run/'checkpoints'/'best')
    assert info['meta']['dataset_fingerprint'] == lin['dataset']
    assert 'test accuracy' in out and str(run) in out
    from cvkit.evaluate.report import EvalReport
    rep = EvalReport.load(run/'report.json', predictions=p)     # the report is tied to these exact predictions
    acc = rep.metric('accuracy')
    assert acc.value == pytest.approx(p.accuracy) and acc.lo <= acc.value <= acc.hi and acc.n_boot == 1000
    assert set(rep['slices']) == {'ink', 'stroke'} and rep['calibration']['temperature']['fitted_on'] == 270
    assert m['accuracy_lo'] == pytest.approx(acc.lo)
