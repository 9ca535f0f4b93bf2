"""End to end through the installed `cvkit` command: the flagship study (experiments/train_eval.ipynb) run as a
sweep by `cvkit demo`, its run folder, the accuracy target (>= 97% test accuracy on digits from scratch on CPU),
and exact reproduction with `cvkit rerun`. Its time is measured in benchmarks/digits_demo.py, not asserted
here: CI machines are noisy."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest
from cvkit.evaluate.predictions import Predictions
from cvkit.core import load_checkpoint
from cvkit.lab.store import RunDir, SweepDir

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
    sd = SweepDir(sweep)
    (rd,) = sd.runs()
    assert [p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith('_')] == [rd.name]
    for f in [rd.notebook, rd.params_json, rd.metrics_json, rd.estimates_json, rd.bootstrap_json, rd.lineage_json, rd.status_json,
              rd.log_txt, rd.track_jsonl, rd.predictions, rd.valid_predictions, rd.history_csv, rd.report_json, rd.report_md,
              rd.checkpoint_path('best'), rd.checkpoint_path('best').with_suffix('.json'), rd.checkpoint_path('last')]:
        assert f.exists(), f
    for f in [sd.summary_md, sd.summary_html, sd.summary_csv, sd.summary_png, sd.sweep_json, sd.source]: assert f.exists(), f
    assert rd.status()['status'] == 'completed'
    m = rd.metrics()
    p = Predictions.load(rd.predictions)
    assert m['accuracy'] == pytest.approx(p.accuracy, abs=1e-12)
    assert m['accuracy'] >= 0.97, f"digits test accuracy {m['accuracy']:.4f} < 0.97"
    lin = rd.lineage()
    assert lin['seed'] == 0 and lin['versions']['torch'] and lin['config']['backbone'] == 'cvkit_cnn_small' and lin['notebook']['sha256']
    _, info = load_checkpoint(rd.checkpoint('best'))
    assert info['meta']['dataset_fingerprint'] == lin['dataset']            # code, data and seed: all traceable
    assert '| cvkit_cnn_small |' in out and 'accuracy' in out and str(sweep) in out
    from cvkit.evaluate.report import EvalReport
    rep = EvalReport.load(rd.report_json, predictions=p)     # the report is tied to these exact predictions
    acc = rep.metric('accuracy')
    assert acc.value == pytest.approx(p.accuracy) and acc.lo <= acc.value <= acc.hi and acc.n_boot == 1000
    assert set(rep['slices']) == {'ink', 'stroke'} and rep['calibration']['temperature']['fitted_on'] == 270
    e = rd.estimates()['accuracy']                                    # the interval is a structured record, not name_lo/name_hi
    assert (e['value'], e['lo'], e['hi']) == pytest.approx((acc.value, acc.lo, acc.hi)) and not any(k.endswith('_lo') for k in m)
    b = rd.bootstrap()
    assert b['n'] == len(p) and len(b['replicates']['accuracy']) == b['n_boot'] == 1000
    assert all(0 <= v <= 1 for v in b['replicates']['accuracy'])
    assert 'two-level bootstrap' in out                                # one seed: the two-level interval is the run's own bootstrap
    card = rd.card()                                                   # `cvkit demo` ends with the best run's model card
    assert 'model card of the best run' in out and rd.card_md.exists() and rd.card_html.exists()
    from cvkit.evaluate.gate import gate
    assert card['metrics']['accuracy'] == rep['metrics']['accuracy'] and card['gate']['passed'] == gate(rep).passed

def test_rerun_reproduces_the_demo_exactly(demo_sweep):
    sweep, _ = demo_sweep
    (run,) = SweepDir(sweep).runs()
    r = _cvkit('rerun', run.path)
    assert 'MATCH: every metric reproduced exactly' in r.stdout
    again = RunDir(next(SweepDir(sweep).reruns.iterdir()))
    a, b = Predictions.load(run.predictions), Predictions.load(again.predictions)
    assert a.logits.tobytes() == b.logits.tobytes() and (a.ids == b.ids).all()     # bitwise, not just the metrics
