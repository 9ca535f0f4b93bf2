"Deploy: INT8 quantisation (checked against onnxruntime run directly), pruning (checked against hand-computed masks), benchmark harness and DeploymentReport."
import io, math, os
import numpy as np, pandas as pd, pytest, torch, onnx, onnxruntime as ort
from torch import nn
from sklearn.metrics import accuracy_score
from cvkit.data.builtin import digits
from cvkit.models.factory import create_model
from cvkit.train import fit
from cvkit.evaluate.predictions import predict
from cvkit.evaluate.gate import gate
from cvkit.deploy.export import export_onnx, onnx_metadata
from cvkit.deploy.quantize import (DatasetCalibrationReader, compare_variants, cpu_has_vnni, linear_share, quantize_dynamic_onnx,
                                   quantize_static_onnx, quantize_torch_dynamic)
from cvkit.deploy.prune import make_permanent, prune_channels, prune_global, sparsity, sparsity_sweep, zero_channels
from cvkit.deploy import bench
from cvkit.deploy.bench import (DeploymentReport, Runtime, benchmark, compile_runtime, eager_runtime, latency_stats, ort_runtime, time_fn)

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    ds = digits(size=32, seed=0)
    train, valid, test = ds.split('train'), ds.split('valid'), ds.split('test')
    torch.manual_seed(0)
    net = create_model('cvkit_cnn_tiny', num_classes=10)
    fit(net, train, valid, epochs=2, lr=1e-2, progress=False, seed=0)
    d = tmp_path_factory.mktemp('q')
    return net.eval(), train, test, export_onnx(net, d/'tiny.onnx'), d

def ort_preds(path, ds):
    s = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    xs = [torch.stack([ds[i][0] for i in range(k, min(k + 64, len(ds)))]).numpy() for k in range(0, len(ds), 64)]
    return np.concatenate([s.run(None, {'input': x})[0] for x in xs])

# --- quantisation ----------------------------------------------------------------------------------------------------
def test_calibration_reader_samples_dataset(setup):
    train = setup[1]
    r = DatasetCalibrationReader(train, 'input', n=40, batch_size=16, seed=3)
    got = []
    while (b := r.get_next()) is not None: got.append(b['input'])
    assert [len(g) for g in got] == [16, 16, 8]
    idx = np.random.default_rng(3).permutation(len(train))[:40]
    np.testing.assert_array_equal(np.concatenate(got)[0], train[int(idx[0])][0].numpy())
    r.rewind(); assert r.get_next()['input'].shape == (16, 3, 32, 32)

def test_static_int8_qdq_per_channel_and_variant_table(setup):
    net, train, test, fp32, d = setup
    q = quantize_static_onnx(fp32, train, out=d/'s.onnx', n_calib=128)
    m = onnx.load(q)
    ops = [n.op_type for n in m.graph.node]
    assert 'QuantizeLinear' in ops and 'DequantizeLinear' in ops
    conv_w = {n.input[1] for n in m.graph.node if n.op_type == 'Conv'}
    dq = [n for n in m.graph.node if n.op_type == 'DequantizeLinear' and n.output[0] in conv_w]
    inits = {i.name: i for i in m.graph.initializer}
    assert dq and all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1 for n in dq)   # one scale per output channel
    meta = onnx_metadata(q)
    assert meta['quantized'] == 'static-int8-qdq' and meta['reduce_range'] == (not cpu_has_vnni())
    table = compare_variants(net, test, {'fp32': fp32, 'int8': q}, threads=1, iters=5, n_boot=200).set_index('variant')
    ref8, ref32 = ort_preds(q, test), ort_preds(fp32, test)
    with torch.no_grad(): eager = torch.cat([net(torch.stack([test[i][0] for i in range(k, min(k + 64, len(test)))])) for k in range(0, len(test), 64)]).numpy()
    assert table.loc['int8', 'accuracy'] == pytest.approx(accuracy_score(test.targets, ref8.argmax(1)))
    assert table.loc['int8', 'accuracy_delta'] == pytest.approx(accuracy_score(test.targets, ref8.argmax(1)) - accuracy_score(test.targets, eager.argmax(1)))
    assert table.loc['int8', 'top1_agreement'] == pytest.approx((ref8.argmax(1) == eager.argmax(1)).mean())
    assert table.loc['int8', 'max_abs_diff'] == pytest.approx(np.abs(ref8 - eager).max(), rel=1e-5)
    assert table.loc['fp32', 'max_abs_diff'] < 1e-4 < table.loc['int8', 'max_abs_diff']
    assert table.loc['int8', 'delta_lo'] <= table.loc['int8', 'accuracy_delta'] <= table.loc['int8', 'delta_hi']
    assert table.loc['int8', 'size_mb'] < 0.5 * table.loc['fp32', 'size_mb']
    assert table.loc['int8', 'p50_ms'] > 0 and table.loc['int8', 'speedup'] == pytest.approx(table.loc['eager (float)', 'p50_ms'] / table.loc['int8', 'p50_ms'])

def test_dynamic_int8_onnx(setup):
    net, _, test, fp32, d = setup
    q = quantize_dynamic_onnx(fp32, out=d/'dyn.onnx')
    ops = {n.op_type for n in onnx.load(q).graph.node}
    assert ops & {'ConvInteger', 'MatMulInteger', 'DynamicQuantizeLinear'}
    p = ort_preds(q, test)
    assert (p.argmax(1) == ort_preds(fp32, test).argmax(1)).mean() > 0.9

def test_torch_dynamic_quantisation_linear_heavy():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    assert linear_share(mlp) == 1.0
    q = quantize_torch_dynamic(mlp)
    from torch.ao.nn.quantized.dynamic import Linear as DQLinear
    assert isinstance(q[1], DQLinear) and isinstance(q[3], DQLinear)
    x = torch.randn(64, 3, 8, 8)
    with torch.no_grad(): a, b = mlp(x), q(x)
    assert (a - b).abs().max() < 0.05 * a.abs().max() and (a - b).abs().max() > 0   # close, but really quantised
    assert isinstance(mlp[1], nn.Linear)   # the original is untouched

# --- pruning ----------------------------------------------------------------------------------------------------------
def test_global_magnitude_matches_reference(setup):
    net = setup[0]
    p = make_permanent(prune_global(net, 0.6))
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    w = torch.cat([m.weight.detach().abs().flatten() for _, m in convs])
    k = int(round(0.6 * w.numel()))
    thr = w.sort().values[k - 1]
    kept = torch.cat([m.weight.detach().flatten() for n, m in p.named_modules() if isinstance(m, nn.Conv2d)])
    assert int((kept == 0).sum()) == k
    assert torch.equal(kept != 0, w > thr)      # exactly the largest-magnitude weights survive, across layers
    assert sparsity(p, (nn.Conv2d,))['overall'] == pytest.approx(0.6, abs=1e-3)
    assert sparsity(p)['layers']['head.fc'] == 0.0 and sparsity(net)['overall'] == 0.0
    assert not any(k.endswith('_mask') for k, _ in p.named_buffers())

def test_channel_pruning_zeroes_smallest_channels(setup):
    net = setup[0]
    p = make_permanent(prune_channels(net, 0.25))
    for (n, m0), (_, m1) in zip(net.named_modules(), p.named_modules()):
        if not isinstance(m0, nn.Conv2d): continue
        norms = m0.weight.detach().flatten(1).norm(dim=1)
        k = int(round(0.25 * len(norms)))
        zero = (m1.weight.detach().flatten(1).abs().sum(1) == 0)
        assert int(zero.sum()) == k == zero_channels(p)[n]
        assert set(torch.nonzero(zero).flatten().tolist()) == set(norms.argsort()[:k].tolist())

def test_sparsity_sweep_rows(setup):
    net, train, test, _, _ = setup
    sw = sparsity_sweep(net, test, amounts=(0.0, 0.7), method='global', n_boot=200)
    dense = predict(net, test).preds
    pruned = predict(make_permanent(prune_global(net, 0.7)), test).preds
    r = sw.iloc[1]
    assert sw.delta.iloc[0] == 0.0 and r.accuracy == pytest.approx(accuracy_score(test.targets, pruned))
    assert r.agreement == pytest.approx((dense == pruned).mean()) and r.lo <= r.delta <= r.hi
    with pytest.raises(ValueError, match='finetune needs train_ds'): sparsity_sweep(net, test, finetune=dict(epochs=1))
    with pytest.raises(ValueError, match='in \\[0, 1\\)'): prune_global(net, 1.5)

# --- benchmark ----------------------------------------------------------------------------------------------------------
def test_latency_stats_reference():
    t = np.random.default_rng(0).gamma(2.0, 0.003, 200)
    s = latency_stats(t, batch=8)
    np.testing.assert_allclose([s['p50_ms'], s['p95_ms'], s['p99_ms']], np.percentile(t * 1e3, [50, 95, 99]))
    assert s['throughput'] == pytest.approx(8 / t.mean()) and s['iters'] == 200
    calls = []
    out = time_fn(lambda x: calls.append(x), 1, warmup=3, iters=10)
    assert len(calls) == 13 and len(out) == 10

def test_benchmark_report_roundtrip_and_gate(setup, tmp_path):
    net, _, _, fp32, _ = setup
    calls = {'n': 0}
    def flaky(x):
        calls['n'] += 1
        if x.shape[0] == 8: raise RuntimeError('out of memory (simulated)')
        return x
    rts = [eager_runtime(net), ort_runtime(fp32, 'ort_fp32', threads=1), Runtime('flaky', flaky, 'callable'),
           Runtime('gpu', None, 'torch', 'cuda', 'skipped', 'no CUDA device on this machine')]
    rep = benchmark(rts, input_size=(3, 32, 32), batch_sizes=(1, 8), threads=1, iters=9, warmup=2, rounds=3, dollars_per_hour=0.36)
    r = rep.row('ort_fp32', 8)
    assert r['status'] == 'ok' and r['iters'] == 9 and r['p50_ms'] <= r['p95_ms'] <= r['p99_ms']
    assert r['cost_per_1k'] == pytest.approx(0.36 / 3600 / r['throughput'] * 1000)
    assert r['ratio_p50'] == pytest.approx(r['p50_ms'] / rep.row('eager', 8)['p50_ms'])
    assert rep.row('flaky', 1)['status'] == 'ok' and rep.row('flaky', 8)['status'] == 'failed'
    assert 'out of memory (simulated)' in rep.row('flaky', 8)['reason'] and 'batch 8' in rep.row('flaky', 8)['reason']
    assert rep.row('gpu', 1)['status'] == 'skipped' and math.isnan(rep.row('gpu', 1)['p50_ms'])
    back = DeploymentReport.load(rep.save(tmp_path/'d.json'))
    pd.testing.assert_frame_equal(back.rows[['runtime', 'batch', 'p50_ms']], rep.rows[['runtime', 'batch', 'p50_ms']])
    md = rep.to_markdown()
    assert '| ort_fp32 | 8 |' in md and 'skipped: no CUDA device' in md
    d = rep.deployment_dict('ort_fp32', 1)
    assert gate({'deployment': d}, [dict(rule='max_latency', max=d['p95_ms'] + 1)]).passed
    assert not gate({'deployment': d}, [dict(rule='max_latency', max=d['p95_ms'] / 10)]).passed
    with pytest.raises(ValueError, match="runtime 'gpu' did not run \\(skipped: no CUDA"): rep.deployment_dict('gpu', 1)
    (tmp_path/'x.json').write_text('{"a": 1}')
    with pytest.raises(ValueError, match='is not a cvkit DeploymentReport'): DeploymentReport.load(tmp_path/'x.json')

def test_fixed_threads_and_compile_without_compiler(setup, monkeypatch):
    before = torch.get_num_threads()
    with bench.fixed_threads(1): assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setattr(bench.shutil, 'which', lambda c: None)
    monkeypatch.delenv('CC', raising=False)
    r = compile_runtime(setup[0])
    assert r.status == 'skipped' and 'needs a C compiler' in r.reason
    so = ort_runtime(setup[3], threads=1).fn.__self__.session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1   # the fixed thread count reaches onnxruntime
