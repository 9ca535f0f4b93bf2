"""Deploy: ONNX export (both exporters, fallback, bad input), parity against onnxruntime run directly, gates, merged LoRA,
and `cvkit export` on the run folder of a real (reduced) `cvkit demo`: one demo run, shared by every test here."""
import json
import numpy as np, pytest, torch, onnx, onnxruntime as ort
from conftest import reduced_demo
from torch import nn
from sklearn.metrics import accuracy_score
from cvkit.cli import main as cvkit_main
from cvkit.lab.store import RunDir, SweepDir
from cvkit.data.builtin import digits
from cvkit.models.factory import create_model
from cvkit.evaluate.report import evaluate
from cvkit.evaluate.gate import gate
from cvkit.deploy.export import (ExportError, OnnxCheckError, OnnxModule, attach_deployment, check_onnx, export_onnx,
                                 onnx_metadata, parity, predict_onnx)
from cvkit.deploy.ship import export_main, load_for_export

@pytest.fixture(scope='module')
def data():
    ds = digits(size=32, seed=0)
    return ds, ds.split('train'), ds.split('valid'), ds.split('test')

@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    "The run folder of a real, reduced `cvkit demo` (one tiny backbone, one seed, two epochs)."
    return reduced_demo(tmp_path_factory.mktemp('demo'))

@pytest.fixture(scope='module')
def trained(demo_run):
    net, info = load_for_export(demo_run.path)
    return net, demo_run.path

@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    return export_onnx(trained[0], tmp_path_factory.mktemp('onnx')/'tiny.onnx')

def ort_logits(path, x):
    s = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return s.run(None, {s.get_inputs()[0].name: x})[0]

def batches(ds, bs=64):
    return [torch.stack([ds[i][0] for i in range(s, min(s + bs, len(ds)))]).numpy() for s in range(0, len(ds), bs)]

# --- export ------------------------------------------------------------------------------------------------------
def test_export_dynamic_batch_matches_torch(trained, exported):
    net = trained[0]
    m = onnx.load(exported.path)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'batch'
    assert exported.opset == 18 and exported.exporter == 'torchscript' and onnx_metadata(exported)['input_size'] == [3, 32, 32]
    for b in (1, 7):
        x = torch.rand(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
        with torch.no_grad(): ref = net(x).numpy()
        np.testing.assert_allclose(ort_logits(exported, x.numpy()), ref, atol=1e-4)

def test_opset_and_dynamo_exporter(trained, tmp_path):
    net = trained[0]
    e17 = export_onnx(net, tmp_path/'o17.onnx', opset=17, exporter='torchscript', fallback=False)
    assert e17.opset == 17
    ed = export_onnx(net, tmp_path/'d.onnx', exporter='dynamo', fallback=False)
    assert ed.exporter == 'dynamo' and [a['exporter'] for a in ed.attempts] == ['dynamo']
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad(): ref = net(x).numpy()
    np.testing.assert_allclose(ort_logits(ed, x.numpy()), ref, atol=1e-4)

class SignFlip(nn.Module):
    def __init__(self): super().__init__(); self.fc = nn.Linear(3 * 8 * 8, 4)
    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x) if x.mean() > 0 else -self.fc(x)

def test_control_flow_names_both_exporters_and_fallback(tmp_path):
    with pytest.raises(ExportError) as e: export_onnx(SignFlip(), tmp_path/'f.onnx', input_size=(3, 8, 8))
    msg = str(e.value)
    assert "tried 'torchscript', then the fallback 'dynamo'" in msg
    assert 'torchscript exporter failed' in msg and 'control flow' in msg
    assert 'dynamo exporter failed' in msg and 'data-dependent' in msg
    assert not (tmp_path/'f.onnx').exists()
    with pytest.raises(ExportError, match="tried only 'torchscript' \\(fallback=False; no fallback exporter was tried\\)"):
        export_onnx(SignFlip(), tmp_path/'f.onnx', input_size=(3, 8, 8), exporter='torchscript', fallback=False)

def test_input_size_mismatch(trained, tmp_path):
    with pytest.raises(ExportError, match='expects 3×32×32 input \\(3 channels\\), but was given 1×32×32'):
        export_onnx(trained[0], tmp_path/'x.onnx', input_size=(1, 32, 32))
    flat = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
    flat.cvkit_cfg = dict(name='flatnet', input_size=(3, 32, 32))
    with pytest.raises(ExportError, match='flatnet expects 3×32×32 input, but its eager forward pass fails on 3×64×64') as e:
        export_onnx(flat, tmp_path/'y.onnx', input_size=(3, 64, 64))
    assert 'No exporter was tried' in str(e.value)
    om = OnnxModule(export_onnx(flat, tmp_path/'z.onnx'))
    with pytest.raises(ValueError, match='expects N×3×32×32 input but got a batch of 2×3×64×64'): om(torch.rand(2, 3, 64, 64))

def test_check_onnx_rejects_bad_files(tmp_path):
    from onnx import helper, TensorProto
    g = helper.make_graph([helper.make_node('Relu', ['missing'], ['y'])], 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), tmp_path/'bad.onnx')
    with pytest.raises(OnnxCheckError, match='bad.onnx fails onnx.checker'): check_onnx(tmp_path/'bad.onnx')
    (tmp_path/'junk.onnx').write_bytes(b'\x00garbage')
    with pytest.raises(OnnxCheckError, match='junk.onnx fails onnx.checker'): check_onnx(tmp_path/'junk.onnx')
    with pytest.raises(FileNotFoundError, match='nope.onnx not found'): check_onnx(tmp_path/'nope.onnx')

# --- parity ------------------------------------------------------------------------------------------------------
def test_parity_against_reference(trained, exported, data):
    net, test = trained[0], data[3]
    par = parity(net, exported, test, n_boot=300)
    ref = np.concatenate([ort_logits(exported, b) for b in batches(test)])
    with torch.no_grad(): eager = np.concatenate([net(torch.from_numpy(b)).numpy() for b in batches(test)])
    np.testing.assert_allclose(par.onnx.logits, ref, atol=1e-6)
    assert par.max_abs_diff == pytest.approx(np.abs(eager.astype(np.float64) - ref).max(), abs=1e-6)
    assert par.mean_abs_diff == pytest.approx(np.abs(eager.astype(np.float64) - ref).mean(), abs=1e-7)
    assert par.top1_agreement['value'] == pytest.approx((eager.argmax(1) == ref.argmax(1)).mean())
    d = par.delta('accuracy')
    assert d['candidate'] == pytest.approx(accuracy_score(test.targets, ref.argmax(1)))
    assert d['baseline'] == pytest.approx(accuracy_score(test.targets, eager.argmax(1)))
    assert par.max_abs_diff <= 1e-4 and par.gate().passed
    assert list(par.onnx.ids) == list(par.eager.ids) and list(par.onnx.meta.columns) == list(par.eager.meta.columns)

def test_gate_on_report_and_drift(trained, exported, data, tmp_path):
    from onnx import numpy_helper
    net, test = trained[0], data[3]
    par = parity(net, exported, test, n_boot=200)
    rep = attach_deployment(evaluate(par.onnx, n_boot=100), par, p95_ms=3.0)
    assert rep['deployment']['parity_max_abs_diff'] == par.max_abs_diff
    policy = [dict(rule='max_parity_diff'), dict(rule='min_parity_agreement'), dict(rule='max_latency', max=5)]
    assert gate(rep, policy).passed
    slow = gate(rep, [dict(rule='max_latency', max=2.0)])
    assert not slow.passed and '3 > 2' in slow.rows.reason[0]
    m = onnx.load(exported.path)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim == 4: init.CopyFrom(numpy_helper.from_array(w * 1.03, init.name))
    onnx.save(m, tmp_path/'drift.onnx')
    drift = parity(net, tmp_path/'drift.onnx', test, eager=par.eager, n_boot=200)
    v = gate(attach_deployment(evaluate(drift.onnx, n_boot=100), drift), policy[:2]).rows.set_index('rule')
    assert not v.loc['max_parity_diff', 'passed'] and drift.max_abs_diff > 1e-2

# --- merged LoRA ---------------------------------------------------------------------------------------------------
def test_merged_lora_exports_with_parity(trained, data, tmp_path):
    peft = pytest.importorskip('peft')
    test = data[3]
    net = create_model('cvkit_cnn_tiny', num_classes=10)
    net.load_state_dict(trained[0].state_dict())
    torch.manual_seed(0)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=['conv', 'fc'], init_lora_weights=False)   # random B: merging changes the weights
    lm = peft.get_peft_model(net, cfg).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad(): y_lora, y_base = lm(x).numpy(), trained[0](x).numpy()
    assert np.abs(y_lora - y_base).max() > 1e-3          # the adapter does something
    merged = lm.merge_and_unload().eval()
    assert not any('lora' in n for n, _ in merged.named_modules())
    with torch.no_grad(): np.testing.assert_allclose(merged(x).numpy(), y_lora, atol=1e-4)
    e = export_onnx(merged, tmp_path/'lora.onnx', input_size=(3, 32, 32))
    par = parity(merged, e, test, n_boot=200)
    assert par.max_abs_diff <= 1e-4 and par.top1_agreement['value'] == 1.0 and par.gate().passed
    np.testing.assert_allclose(ort_logits(e, x.numpy()), y_lora, atol=1e-4)   # the file computes the LoRA model

# --- cvkit export ---------------------------------------------------------------------------------------------------
def test_load_for_export_reads_the_run_folder(demo_run):
    from cvkit.core import load_checkpoint
    net, info = load_for_export(demo_run.path)
    p = demo_run.params()
    assert (p['backbone'], p['dataset'], p['size'], p['seed']) == ('cvkit_cnn_tiny', 'digits', 32, 0)   # the run's params.json
    assert (info['model'], info['dataset'], info['size'], info['seed']) == ('cvkit_cnn_tiny', 'digits', 32, 0)
    assert info['checkpoint'] == str(demo_run.checkpoint()) and info['run'] == str(demo_run.path)
    state, saved = load_checkpoint(demo_run.checkpoint())
    for k, v in net.state_dict().items(): assert torch.equal(v, state['model'][k]), k     # the weights of the run's best checkpoint
    assert saved['meta']['dataset_fingerprint'] == demo_run.lineage()['dataset'] == p['data_fingerprint']

def test_cvkit_export_on_a_real_demo_run(demo_run, capsys):
    rc = cvkit_main(['export', str(demo_run.path), '--threads', '1', '--batch-sizes', '1,8', '--iters', '5', '--dollars-per-hour', '0.1'])
    printed = capsys.readouterr().out
    ex = demo_run.export                                     # default output: <run>/export
    assert ex.onnx.stat().st_size > 1000 and ex.deployment_png.stat().st_size > 1000 and ex.summary_md.exists()
    par = ex.parity()['export']
    assert 0 < par['parity_max_abs_diff'] <= 1e-4 and par['parity_top1_agreement']['value'] >= 0.999
    dep = ex.deployment()
    rows = {(r['runtime'], r['batch']): r for r in dep['rows']}
    assert {('eager', 1), ('ort_fp32', 1), ('ort_fp32', 8)} <= set(rows)
    assert all(rows[k]['p50_ms'] > 0 and rows[k]['throughput'] > 0 for k in rows if rows[k]['status'] == 'ok')
    rep = ex.report()
    assert rep['deployment']['runtime'] == 'ort_fp32' and rep['deployment']['p95_ms'] > 0
    # the export was evaluated on the run's own test split (same dataset, size and seed): the ONNX model's accuracy is the run's
    onnx_acc, run_acc = rep['metrics']['accuracy']['value'], demo_run.metrics()['accuracy']
    assert rep['n'] == demo_run.params()['n_test']
    assert onnx_acc == pytest.approx(run_acc, abs=1 / rep['n'] + 1e-12)
    assert rc == 0 and 'Gate PASSED** (export parity)' in printed and str(demo_run.checkpoint()) in printed

def test_export_main_run_folder_int8(trained, tmp_path, capsys):
    net, run = trained
    out = tmp_path/'out'
    rc = export_main([str(run), '--out', str(out), '--quantize', 'static', '--threads', '1', '--batch-sizes', '1', '--iters', '5',
                      '--dollars-per-hour', '0.1', '--n-calib', '64'])
    printed = capsys.readouterr().out
    from cvkit.lab.store import ExportDir
    ex = ExportDir(out)
    for f in (ex.onnx, ex.int8_onnx, ex.deployment_json, ex.deployment_md, ex.deployment_png, ex.report_json, ex.parity_json, ex.summary_md):
        assert f.exists(), f
    d = ex.parity()
    ag = d['int8']['parity_top1_agreement']['value']
    assert d['export']['parity_max_abs_diff'] <= 1e-4
    assert rc == (0 if ag >= 0.99 else 1) and 'Gate PASSED** (export parity)' in printed
    rep = ex.report()
    assert rep['deployment']['p95_ms'] > 0 and rep['deployment']['runtime'] == 'ort_int8'
    # the INT8 file computes what parity.json says: check agreement with onnxruntime directly
    test = digits(size=32, seed=0).split('test')
    q = np.concatenate([ort_logits(ex.int8_onnx, b) for b in batches(test)])
    with torch.no_grad(): e = np.concatenate([net(torch.from_numpy(b)).numpy() for b in batches(test)])
    assert ag == pytest.approx((q.argmax(1) == e.argmax(1)).mean())

def test_export_main_bad_input_and_failing_gate(trained, tmp_path, capsys):
    assert export_main([str(tmp_path/'missing')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    (tmp_path/'empty').mkdir()
    assert export_main([str(tmp_path/'empty')]) == 2
    assert 'checkpoints/best.safetensors' in capsys.readouterr().err
    rc = export_main([str(RunDir(trained[1]).checkpoint()), '--out', str(tmp_path/'o'), '--no-bench', '--max-parity-diff', '1e-12'])
    assert rc == 1 and 'Gate FAILED' in capsys.readouterr().out
