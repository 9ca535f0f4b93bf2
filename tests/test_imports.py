"Stage boundaries: analysing saved Predictions (import, load, evaluate, compare, golden check) never imports torch."
import json, subprocess, sys, textwrap
import numpy as np
import pytest

EVALUATE = ['predictions', 'tasks', 'stats', 'metrics', 'calibration', 'selective', 'slices', 'compare', 'report', 'gate', 'golden', 'plots']

def run_py(code:str)->dict:
    "Run `code` in a fresh interpreter; it prints one JSON line, which is returned."
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])

def test_importing_evaluate_does_not_import_torch():
    mods = ', '.join(f'cvkit.evaluate.{m}' for m in EVALUATE)
    r = run_py(f"import sys, json, {mods}\nprint(json.dumps(dict(torch='torch' in sys.modules, "
               "heavy=sorted(m for m in ('torch', 'torchvision', 'timm', 'cvkit.core', 'cvkit.data.dataset') if m in sys.modules))))")
    assert r == dict(torch=False, heavy=[])

def test_predict_import_path_still_works():
    from cvkit.evaluate.predictions import predict
    import cvkit.evaluate.report as rep
    assert callable(predict)
    assert not {'to_markdown', 'plot_reliability', 'plot_risk_coverage', 'plot_slices'} & set(rep.__all__)   # @patch, not leaked helpers
    assert all(hasattr(rep.EvalReport, m) for m in ('to_markdown', '_repr_html_', 'plot_reliability', 'plot_risk_coverage', 'plot_slices'))

@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    "Predictions of a tiny CNN on the digits test split, made by `predict` (torch) and saved as parquet."
    import torch
    from cvkit.data.builtin import digits
    from cvkit.models.factory import create_model
    from cvkit.evaluate.predictions import predict
    torch.manual_seed(0)
    ds = digits(size=16, seed=0).split('test')
    p = predict(create_model('cvkit_cnn_tiny', num_classes=10), ds, batch_size=64)
    path = tmp_path_factory.mktemp('preds')/'test.parquet'
    p.save(path)
    return path, p

def test_saved_predictions_evaluate_without_torch(saved):
    path, p = saved
    assert p.info['lineage']['versions']['torch']                   # predict records the lineage with the predictions
    r = run_py(f'''
        import sys, json, numpy as np
        from cvkit.evaluate.predictions import Predictions
        from cvkit.evaluate.report import evaluate, EvalReport
        from cvkit.evaluate.compare import compare
        from cvkit.evaluate.golden import check_golden
        p = Predictions.load({str(path)!r})
        rep = evaluate(p, slices=['ink'], n_boot=200)
        md, html = rep.to_markdown(), rep._repr_html_()
        other = Predictions(p.ids, p.logits + np.random.default_rng(0).normal(0, .5, p.logits.shape), p.targets, p.classes, p.meta)
        cmp = compare(p, other, n_boot=100)
        gc = check_golden(other, p, max_prob_delta=1.0)
        print(json.dumps(dict(torch='torch' in sys.modules, acc=rep.metric('accuracy').value, lineage=rep['lineage'],
                              slices=list(rep['slices']), md='## Slices by `ink`' in md, n=cmp.n, flips=gc.n_flips)))
    ''')
    assert r['torch'] is False
    assert r['acc'] == pytest.approx(float((p.logits.argmax(1) == p.targets).mean()), abs=1e-12)
    assert r['lineage'] == json.loads(json.dumps(p.info['lineage']))
    assert r['slices'] == ['ink'] and r['md'] and r['n'] == len(p)
    rng = np.random.default_rng(0)
    other = p.logits + rng.normal(0, .5, p.logits.shape)
    assert r['flips'] == int((other.argmax(1) != p.logits.argmax(1)).sum())
