"""End to end through the installed `cvkit` command: the flagship study (experiments/train_eval.ipynb) run as a
sweep by `cvkit demo`, its run folder, the accuracy target (>= 97% test accuracy on digits from scratch on CPU),
and exact reproduction with `cvkit rerun`. Its time is measured in benchmarks/digits_demo.py, not asserted
here: CI machines are noisy."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.core import load_checkpoint
from cvkit.lab.sweep import read_status

CVKIT = shutil.which('cvkit', path=str(Path(sys.executable).parent)) or 'cvkit'

def _cvkit(*args, ok=(0,)):
    r = subprocess.run([CVKIT, *map(str, args)], capture_output=True, text=True, timeout=900)
    assert r.returncode in ok, r.stdout + r.stderr
    return r

@pytest.fixture(scope='module')
def demo_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    r = _cvkit('demo', '--root', root, '--name', 'd', '--backbones', 'cvkit_cnn_small', '--seeds', '0', '--no-progress')
    return root/'d', r.stdout

def test_demo_run_folder_and_accuracy_target(demo_sweep):
    sweep, out = demo_sweep
    runs = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith('_')]
    assert len(runs) == 1
    run = runs[0]
    for f in ['notebook.ipynb', 'params.json', 'metrics.json', 'lineage.json', 'status.json', 'log.txt', 'track.jsonl',
              'predictions.parquet', 'valid_predictions.parquet', 'history.csv', 'report.json', 'report.md',
              'checkpoints/best.safetensors', 'checkpoints/best.json', 'checkpoints/last.safetensors']:
        assert (run/f).exists(), f
    for f in ['summary.md', 'summary.html', 'summary.csv', 'summary.png', 'sweep.json', 'source.ipynb']: assert (sweep/f).exists(), f
    assert read_status(run)['status'] == 'completed'
    m = json.loads((run/'metrics.json').read_text())
    p = Predictions.load(run/'predictions.parquet')
    assert m['accuracy'] == pytest.approx(p.accuracy, abs=1e-12)
    assert m['accuracy'] >= 0.97, f"digits test accuracy {m['accuracy']:.4f} < 0.97"
    lin = json.loads((run/'lineage.json').read_text())
    assert lin['seed'] == 0 and lin['versions']['torch'] and lin['config']['backbone'] == 'cvkit_cnn_small' and lin['notebook']['sha256']
    _, info = load_checkpoint(run/'checkpoints'/'best')
    assert info['meta']['dataset_fingerprint'] == lin['dataset']            # code, data and seed: all traceable
    assert '| cvkit_cnn_small |' in out and 'accuracy' in out and str(sweep) in out
    from cvkit.evaluate.report import EvalReport
    rep = EvalReport.load(run/'report.json', predictions=p)     # the report is tied to these exact predictions
    acc = rep.metric('accuracy')
    assert acc.value == pytest.approx(p.accuracy) and acc.lo <= acc.value <= acc.hi and acc.n_boot == 1000
    assert set(rep['slices']) == {'ink', 'stroke'} and rep['calibration']['temperature']['fitted_on'] == 270
    assert m['accuracy_lo'] == pytest.approx(acc.lo)

def test_rerun_reproduces_the_demo_exactly(demo_sweep):
    sweep, _ = demo_sweep
    run = next(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith('_'))
    r = _cvkit('rerun', run)
    assert 'MATCH: every metric reproduced exactly' in r.stdout
    again = next((sweep/'_reruns').iterdir())
    a, b = Predictions.load(run/'predictions.parquet'), Predictions.load(again/'predictions.parquet')
    assert a.logits.tobytes() == b.logits.tobytes() and (a.ids == b.ids).all()     # bitwise, not just the metrics
