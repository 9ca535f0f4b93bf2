"The govern stage end to end: model cards from a real `cvkit demo` run, and a real SQLite-backed MLflow registry."
import json, shutil
import numpy as np
import pytest
from conftest import reduced_demo
from cvkit.cli import main as cvkit_main
from cvkit.lab.store import SweepDir, RunDir, load_json
from cvkit.govern.card import ModelCard, CardSourceError, card_from_run, model_card

@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    "A real, reduced `cvkit demo` (one tiny backbone, one seed, two epochs); it ends with the best run's model card."
    return reduced_demo(tmp_path_factory.mktemp('demo'))

# --- model card ------------------------------------------------------------------------------------------------------
def test_demo_ends_with_a_card_of_numbers_from_the_artefacts(demo):
    for f in (demo.card_json, demo.card_md, demo.card_html): assert f.stat().st_size > 500, f
    card, rep, ck = ModelCard.load(demo.path), demo.report(), load_json(demo.checkpoint().with_suffix('.json'))
    assert card['metrics'] == rep['metrics']                                  # every metric with its interval, as the report has it
    assert card['calibration']['ece'] == rep['calibration']['ece']
    for by in rep['slices']: assert card['slices'][by]['worst']['slice'] == rep['slices'][by]['worst']['slice']
    md = card['model_details']
    assert md['checkpoint']['sha256'] == ck['sha256'] and md['architecture'] == 'cvkit_cnn_tiny'
    assert md['data']['fingerprint'] == demo.params()['data_fingerprint'] == demo.lineage()['dataset']
    assert md['lineage']['git']['sha'] == rep['lineage']['git']['sha'] and md['lineage']['seed'] == 0
    assert md['parameters'] == round(demo.metrics()['params_m'] * 1e6)
    assert card['sources']['report_predictions_sha256'] == rep['predictions']['sha256']
    from cvkit.evaluate.gate import gate
    assert card['gate']['passed'] == gate(rep).passed and len(card['gate']['rules']) == len(gate(rep).rows)
    # the Hugging Face reader (the reference for the layout) finds every metric with the report's value
    from huggingface_hub import ModelCard as HFCard
    hf = HFCard(demo.card_md.read_text())
    got = {r.metric_type: r.metric_value for r in hf.data.eval_results}
    assert got.keys() == rep['metrics'].keys()
    for k, v in got.items(): assert v == pytest.approx(rep['metrics'][k]['value'], abs=1e-6)
    page = demo.card_html.read_text()
    assert page.startswith('<!doctype html>') and page.count('data:image/png;base64,') >= 3   # reliability, risk-coverage, slices

def test_cvkit_card_reads_the_export_and_refuses_another_checkpoint(demo, tmp_path, capsys):
    from cvkit.deploy.ship import ship, load_for_export
    from cvkit.core import save_checkpoint, load_checkpoint
    from cvkit.models.factory import create_model
    ship(demo.path, threads=1, bench=False, verbose=False)                  # the run's own checkpoint -> <run>/export
    assert cvkit_main(['card', str(demo.path), '--no-plots']) == 0
    card = ModelCard.load(demo.path)
    dep = demo.export.report()
    assert card['deployment']['parity_max_abs_diff'] == dep['deployment']['parity_max_abs_diff'] <= 1e-4
    assert card['deployment']['accuracy'] == dep['metrics']['accuracy']
    # a deployment of another checkpoint (same architecture, other weights) is refused, naming both artefacts
    state, info = load_checkpoint(demo.checkpoint())
    other = create_model('cvkit_cnn_tiny', num_classes=10)
    save_checkpoint(tmp_path/'ck'/'best', {'model': other.state_dict()}, meta=info['meta'])
    out = tmp_path/'other_export'
    ship(tmp_path/'ck'/'best.safetensors', out=out, data='digits', threads=1, bench=False, verbose=False)
    with pytest.raises(CardSourceError, match='the deployment is of another checkpoint') as e:
        model_card(demo.report(), deployment=out, sources=dict(report=demo.report_json, deployment=out/'report.json'))
    assert str(out/'report.json') in str(e.value) and str(demo.report_json) in str(e.value)

def test_card_refuses_a_report_of_other_predictions_and_a_report_without_lineage(demo, tmp_path, capsys):
    run = RunDir(tmp_path/'run')
    shutil.copytree(demo.path, run.path)
    from cvkit.evaluate.predictions import Predictions
    p = Predictions.load(run.predictions)
    z = p.logits.copy(); z[0] = z[0][::-1]                                    # one sample's scores changed after the report was written
    Predictions(p.ids, z, p.targets, p.classes, p.meta, p.task, p.info).save(run.predictions)
    assert cvkit_main(['card', str(run.path), '--no-plots']) == 2
    err = capsys.readouterr().err
    assert 'sources disagree' in err and str(run.report_json) in err and str(run.predictions) in err
    rep = demo.report(); rep['lineage'] = {}
    with pytest.raises(ValueError, match='has no lineage'): model_card(rep)
    rep = demo.report(); rep['lineage']['git'] = None                      # cvkit installed from a wheel: no checkout
    assert 'no git checkout' in model_card(rep).to_markdown()               # the installed cvkit version names the code
    rep['lineage']['versions'].pop('cvkit')
    with pytest.raises(ValueError, match='git \\(or an installed cvkit version\\) missing'): model_card(rep)
    with pytest.raises(ValueError, match="unknown keys \\['intented_use'\\]"): card_from_run(demo.path, text=dict(intented_use='x'))

# --- registry ----------------------------------------------------------------------------------------------------------
def _variant(demo, folder, n_fix:int=0, n_break:int=0):
    "A copy of the demo run whose model is better (n_fix wrong test samples made right) or worse (n_break right ones made wrong), re-evaluated."
    from cvkit.evaluate.predictions import Predictions
    from cvkit.evaluate.report import evaluate
    run = RunDir(folder); shutil.copytree(demo.path, run.path)
    for f in (run.card_json, run.card_md, run.card_html): f.unlink(missing_ok=True)
    shutil.rmtree(run.export.path, ignore_errors=True)
    p, v = Predictions.load(run.predictions), Predictions.load(run.valid_predictions)
    z, ok = p.logits.copy(), p.correct
    fix, brk = np.flatnonzero(~ok)[:n_fix], np.flatnonzero(ok)[:n_break]
    z[fix, p.targets[fix]] = z[fix].max(1) + 1.0                           # the true class now wins
    z[brk, p.targets[brk]] = z[brk].min(1) - 1.0                           # the true class now loses
    p = Predictions(p.ids, z, p.targets, p.classes, p.meta, p.task, p.info); p.save(run.predictions)
    rep = evaluate(p, calibration=v, n_boot=200, seed=0); rep.save(run.report_json)
    return run, rep

@pytest.fixture(scope='module')
def registry(tmp_path_factory):
    "A real SQLite-backed MLflow registry, created on first use in a temporary folder (once per module: creating one takes seconds)."
    from cvkit.govern.registry import Registry
    path = tmp_path_factory.mktemp('reg')/'registry'
    assert not path.exists()
    reg = Registry(path)
    assert reg.dir.db.stat().st_size > 0
    return reg

@pytest.mark.usefixtures('no_network')
def test_registry_promotes_on_the_gate_and_rolls_back(demo, registry, tmp_path):
    from cvkit.govern.registry import Registry
    from cvkit.evaluate.compare import compare
    from cvkit.lab.store import sha256_file, read_jsonl
    if not demo.export.onnx.exists():
        from cvkit.deploy.ship import ship
        ship(demo.path, threads=1, bench=False, verbose=False)
    reg = registry
    v1 = reg.register(demo, 'digits')
    assert v1['version'] == 1 and v1['tags']['cvkit.git_sha'] == demo.report()['lineage']['git']['sha']
    assert v1['tags']['cvkit.dataset_fingerprint'] == demo.params()['data_fingerprint']
    assert sha256_file(reg.artefact('digits', 1, 'checkpoint/best.safetensors')) == sha256_file(demo.checkpoint())
    assert reg.report('digits', 1) == demo.report()
    assert sha256_file(reg.artefact('digits', 1, 'onnx/model.onnx')) == sha256_file(demo.export.onnx)
    assert json.loads(reg.artefact('digits', 1, 'card/card.json').read_text())['metrics'] == demo.report()['metrics']
    better, rb = _variant(demo, tmp_path/'better', n_fix=60)
    worse, rw = _variant(demo, tmp_path/'worse', n_break=30)
    assert reg.register(better, 'digits')['version'] == 2 and reg.register(worse, 'digits')['version'] == 3
    policy = [dict(rule='min_metric', metric='accuracy', min=0.1), dict(rule='max_regression', metric='accuracy', max_drop=0.0)]
    with pytest.raises(ValueError, match="unknown rule 'min_acc'"): reg.promote('digits', 1, policy=[dict(rule='min_acc', min=0.5)])
    assert reg.champion('digits') is None and reg.decisions('digits') == []  # a bad policy decides nothing
    d1 = reg.promote('digits', 1, policy=policy, reason='first')
    assert d1['passed'] and reg.champion('digits') == 1 and [r['status'] for r in d1['rules']] == ['passed', 'skipped']
    d2 = reg.promote('digits', 2, policy=policy)
    assert d2['passed'] and d2['baseline'] == 1 and reg.champion('digits') == 2
    d3 = reg.promote('digits', 3, policy=policy)
    assert not d3['passed'] and reg.champion('digits') == 2                  # rejected: the alias did not move
    # the regression rule's evidence is compare's paired interval: 30 samples broken -> drop of at least 30/n at the upper end
    c = compare(reg.predictions('digits', 2), reg.predictions('digits', 3), metrics=['accuracy', 'macro_f1', 'nll'], n_boot=1000, seed=0)
    row = c.deltas.set_index('metric').loc['accuracy']
    reg_rule = {r['rule']: r for r in d3['rules']}['max_regression']
    assert reg_rule['status'] == 'failed' and reg_rule['value'] == pytest.approx(-row.lo)
    assert row.delta == pytest.approx(rw.metric('accuracy').value - rb.metric('accuracy').value)
    back = reg.rollback('digits', reason='live accuracy dropped')
    assert back['champion_before'] == 2 and reg.champion('digits') == 1
    hist = [(d['action'], d['outcome'], d['on_version']) for d in reg.decisions('digits')]
    assert hist == [('promote', 'promoted', 1), ('promote', 'promoted', 2), ('promote', 'rejected', 3),
                    ('rollback', 'rolled back', 2), ('rollback', 'rolled back', 1)]
    assert json.loads(reg.version('digits', 3)['tags']['cvkit.decision.001'])['rules'] == d3['rules']   # rule by rule, on the version
    assert len(read_jsonl(reg.dir.decisions_jsonl)) == 5
    # a second Registry on the same folder sees the same store; MLflow's telemetry stayed off
    assert Registry(reg.dir.path).champion('digits') == 1
    from mlflow.telemetry.utils import is_telemetry_disabled
    assert is_telemetry_disabled()

@pytest.mark.usefixtures('no_network')
def test_registry_tracks_a_run_folder_in_mlflow(demo, registry):
    reg = registry
    rid = reg.track(demo)
    r = reg.client.get_run(rid)
    m, est = demo.metrics(), demo.estimates()
    assert r.data.metrics['accuracy'] == pytest.approx(m['accuracy']) and r.data.metrics['valid_loss'] == pytest.approx(m['valid_loss'])
    assert r.data.metrics['accuracy.lo'] == pytest.approx(est['accuracy']['lo']) and r.data.metrics['accuracy.hi'] == pytest.approx(est['accuracy']['hi'])
    assert r.data.params['backbone'] == 'cvkit_cnn_tiny' and r.data.tags['cvkit.dataset_fingerprint'] == demo.params()['data_fingerprint']
    assert reg.client.get_experiment(r.info.experiment_id).name == f'cvkit-runs/{demo.path.parent.name}'
