"cvkit.adapt.core on tiny CPU models: every strategy trains, frozen means frozen, adapters round-trip, bad input is named."
import numpy as np, pytest, torch
from scipy.special import log_softmax as np_log_softmax, softmax as np_softmax
from transformers import CLIPVisionConfig, ConvNextConfig, ViTConfig
from cvkit.core import checkpoint_paths, load_json
from cvkit.data.builtin import digits
from cvkit.adapt.core import (PeakMemory, STRATEGIES, _groups, adapt, adapted_modules, find_target_modules, kd_loss, layer_groups,
                              load_adapter, merge_adapter, save_adapter)
from cvkit.models.factory import create_model

torch.set_num_threads(1)

pytestmark = pytest.mark.usefixtures('no_network')   # nothing here may download (tests/conftest.py)

@pytest.fixture(scope='module')
def data():
    ds = digits(size=16, seed=0)
    return ds.split('train').subset(np.arange(192)), ds.split('valid').subset(np.arange(64))

def vit(embed_dim=32, seed=0):
    torch.manual_seed(seed)
    return create_model('vit_tiny_patch16_224', num_classes=10, img_size=16, patch_size=8, embed_dim=embed_dim, depth=2, num_heads=2)

def cnn(seed=0):
    torch.manual_seed(seed)
    return create_model('cvkit_cnn_tiny', num_classes=10)

def snapshot(model): return {n: t.detach().clone() for n, t in model.state_dict().items()}

def base_state(model):
    "State of the frozen base inside a peft model, under the base model's own names (adapter and head copies left out)."
    base = model.get_base_model() if hasattr(model, 'get_base_model') else model
    out = {}
    for n, t in base.state_dict().items():
        if any(s in n for s in ('lora_', 'modules_to_save', 'original_module')): continue
        out[n.replace('.base_layer', '')] = t
    return out

def frozen_unchanged(before, model, trainable_prefixes):
    after = base_state(model)
    frozen = [n for n in before if not any(n.startswith(p) for p in trainable_prefixes)]
    assert frozen and all(n in after for n in frozen)
    return [n for n in frozen if not torch.equal(before[n], after[n])]

@pytest.mark.parametrize('strategy', STRATEGIES)
def test_each_strategy_trains_and_loss_falls(data, strategy):
    teacher = adapt(vit(seed=1), *data, strategy='full', epochs=2).model if strategy == 'distill' else None
    r = adapt(vit(), *data, strategy=strategy, epochs=3, teacher=teacher)
    h, a = r.result.history, r.accounting
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0], h.train_loss.tolist()
    assert 0 < a['trainable_params'] <= a['total_params'] and a['wall_s'] > 0 and a['images_per_s'] > 0
    assert a['mem_kind'] == 'cpu_rss_growth' and a['peak_mem_mb'] >= 0
    assert (a['trainable_params'] == a['total_params']) == (strategy in ('full', 'distill'))

def test_frozen_parameters_stay_bitwise_frozen(data):
    # probe without cache on a CNN with BatchNorm: backbone params *and* running stats untouched
    m = cnn(); before = snapshot(m)
    r = adapt(m, *data, strategy='probe', cache=False, epochs=2, lr=1e-2)
    assert frozen_unchanged(before, r.model, ['head.']) == []
    assert not torch.equal(before['head.fc.weight'], r.model.state_dict()['head.fc.weight'])
    # partial: the stem and first block groups frozen, the last block changes
    m = vit(); before = snapshot(m)
    r = adapt(m, *data, strategy='partial', blocks=1, epochs=2)
    assert frozen_unchanged(before, r.model, ['blocks.1.', 'norm.', 'head.', 'fc_norm.']) == []
    assert not torch.equal(before['blocks.1.mlp.fc1.weight'], r.model.state_dict()['blocks.1.mlp.fc1.weight'])
    # lora / dora on a CNN's convolutions: every base weight and BN statistic untouched
    for s in ('lora', 'dora'):
        m = cnn(); before = snapshot(m)
        r = adapt(m, *data, strategy=s, convs=True, r=4, epochs=2)
        assert frozen_unchanged(before, r.model, ['head.']) == [], s

def test_cached_probe_equals_frozen_forward_probe(data):
    "With no augmentation, the head trained on cached embeddings is the head trained behind the frozen backbone."
    a = adapt(cnn(), *data, strategy='probe', cache=True, epochs=3)
    b = adapt(cnn(), *data, strategy='probe', cache=False, epochs=3)
    wa, wb = a.model.get_classifier().weight, b.model.get_classifier().weight
    torch.testing.assert_close(wa, wb, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(a.result.history.train_loss, b.result.history.train_loss, atol=1e-4)
    assert a.accounting['embed_s'] is not None and b.accounting['embed_s'] is None

def test_kd_loss_matches_reference():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), torch.tensor([0, 1, 2, 3, 4, 0])
    T, kw, cw = 3.0, 0.7, 0.3
    pt = np_softmax(t.numpy() / T, 1)
    kl = (pt * (np.log(pt) - np_log_softmax(s.numpy() / T, 1))).sum(1).mean()
    ce = -np_log_softmax(s.numpy(), 1)[np.arange(6), y.numpy()].mean()
    np.testing.assert_allclose(kd_loss(s, t, y, T, kw, cw).item(), kw * T * T * kl + cw * ce, rtol=1e-5)

def test_layer_decay_groups():
    m = vit()
    gs = _groups(m, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    lg = layer_groups(m)  # stem, block 0, block 1 (+ final norm), head
    assert len(lg) == 4
    by_param = {id(p): g['lr'] for g in gs for p in g['params']}
    named = dict(m.named_parameters())
    for depth, names in enumerate(lg):
        for n in names: assert by_param[id(named[n])] == 0.5 ** (len(lg) - 1 - depth), n

@pytest.mark.parametrize('strategy', ['lora', 'dora'])
def test_adapter_round_trip_save_load_merge(data, tmp_path, strategy):
    r = adapt(vit(), *data, strategy=strategy, r=4, epochs=2)
    path = save_adapter(r.model, tmp_path/'ad')
    model_bytes = sum(p.numel() * 4 for p in vit().parameters())
    assert path.stat().st_size < model_bytes / 2
    base = vit(); before = snapshot(base)
    back = load_adapter(base, path)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # the base itself is not modified
    x = torch.stack([data[1][i][0] for i in range(8)])
    merged = merge_adapter(back)
    with torch.no_grad(): a, b, c = r.model(x), back(x), merged(x)
    torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    assert (c - b).abs().max().item() <= 1e-5
    assert not any('lora' in n for n, _ in merged.named_modules())

def test_transformers_clip_tower_lora_merge(data):
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=16, patch_size=8)
    torch.manual_seed(0)
    r = adapt(create_model(cfg, num_classes=10), *data, strategy='lora', r=4, epochs=2)
    h = r.result.history
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
    leaves = {n.split('.')[-1] for n in adapted_modules(r.model)}
    assert {'q_proj', 'k_proj', 'v_proj', 'fc1', 'fc2'} <= leaves and 'classifier' not in leaves
    x = torch.stack([data[1][i][0] for i in range(4)])
    with torch.no_grad(): assert (merge_adapter(r.model)(x) - r.model(x)).abs().max().item() <= 1e-5

# Real-size backbones: timm's own configs (pretrained=False: random weights, nothing downloaded) and transformers configs
# built locally. Each has 20+ target modules, which peft rewrites into shared suffixes ('conv1', 'attn.qkv'); the adapter
# must still record its full module names, load onto a fresh base and merge, each within 1e-5 of the adapted logits.
HF_VIT = ViTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
HF_CONVNEXT = ConvNextConfig(num_channels=3, hidden_sizes=[8, 16, 24, 32], depths=[2, 2, 3, 2], image_size=32)
REAL = {'resnet18': (64, dict(convs=True)), 'regnetx_002': (64, dict(convs=True)), 'efficientnet_b0': (64, dict(convs=True)),
        'convnext_atto': (64, dict(convs=True)), 'vit_tiny_patch16_224': (224, {}), 'hf_vit': (32, {}),
        'hf_convnext': (32, dict(convs=True)), 'resnet18+norms': (64, dict(convs=True, norms=True))}

@pytest.fixture(scope='module')
def digits_at():
    "Four digits images at a given size (cached per size)."
    cache = {}
    def get(size):
        if size not in cache: cache[size] = digits(size=size, seed=0).split('train').subset(np.arange(4))
        return cache[size]
    return get

def real_model(key):
    torch.manual_seed(0)
    name = key.split('+')[0]
    arch = {'hf_vit': HF_VIT, 'hf_convnext': HF_CONVNEXT}.get(name, name)
    return create_model(arch, num_classes=10)

@pytest.mark.parametrize('key,strategy', [(k, s) for k in REAL for s in ('lora', 'dora') if not (k.endswith('+norms') and s == 'dora')])
def test_adapter_round_trip_on_real_backbones(digits_at, tmp_path, key, strategy):
    size, kw = REAL[key]
    ds = digits_at(size)
    names = find_target_modules(real_model(key), None, kw.get('convs', False))
    assert len(names) >= 20                                      # long enough for peft to rewrite the list
    r = adapt(real_model(key), ds, strategy=strategy, r=4, epochs=1, batch_size=2, **kw)
    assert adapted_modules(r.model) == names
    assert any(p.abs().max() > 0 for n, p in r.model.named_parameters() if 'lora_B' in n)  # the adapter trained
    path = save_adapter(r.model, tmp_path/'ad')
    meta = load_json(checkpoint_paths(path)[1])['meta']
    base = real_model(key); mods = dict(base.named_modules())
    assert meta['peft']['target_modules'] == names
    assert meta['target_shapes'] == {n: list(mods[n].weight.shape) for n in names}
    back = load_adapter(base, path)
    from peft import get_peft_model_state_dict
    want, got = get_peft_model_state_dict(r.model), get_peft_model_state_dict(back)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    merged = merge_adapter(back)
    x = torch.stack([ds[i][0] for i in range(2)])
    with torch.no_grad(): a, b, c, plain = r.model(x), back(x), merged(x), real_model(key)(x)
    assert (a - plain).abs().max().item() > 1e-4                 # adapting changed the outputs, so agreement means something
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, a, atol=1e-5, rtol=0)
    assert not any('lora' in n for n, _ in merged.named_modules())

def test_targets_are_exact_names_not_suffixes(digits_at, tmp_path):
    "peft's list form adapts every module whose name ends with a target; a full name must adapt that module alone."
    ds = digits_at(32)
    r = adapt(real_model('resnet18'), ds, strategy='lora', target_modules='conv1', convs=True, epochs=1, batch_size=4)
    assert adapted_modules(r.model) == ['conv1'] and r.options['n_targets'] == 1
    back = load_adapter(real_model('resnet18'), save_adapter(r.model, tmp_path/'stem'))
    assert adapted_modules(back) == ['conv1']
    x = torch.stack([ds[i][0] for i in range(4)])
    with torch.no_grad(): torch.testing.assert_close(back(x), r.model(x), atol=1e-5, rtol=0)
    # a dotted suffix in a list still means every module ending with it (documented in find_target_modules)
    r = adapt(real_model('resnet18'), ds, strategy='lora', target_modules=['conv1'], convs=True, epochs=1, batch_size=4)
    assert adapted_modules(r.model) == ['conv1'] + [f'layer{i}.{j}.conv1' for i in range(1, 5) for j in range(2)]

# bad input
def test_unknown_backbone_suggests_close_names(data):
    with pytest.raises(ValueError, match=r"Unknown model 'cvkit_cnn_smal'.*Did you mean 'cvkit_cnn_small'"):
        adapt('cvkit_cnn_smal', *data, strategy='full')
    with pytest.raises(ValueError, match=r"Did you mean .*'vit_small_patch16_224'"):
        adapt('vit_smal_patch16_224', *data)

def test_missing_weights_say_how_to_supply_them(data, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'nope\.safetensors.*never downloads'):
        adapt('cvkit_cnn_tiny', *data, pretrained=tmp_path/'nope.safetensors')

def test_unmatched_target_modules_list_available_names(data):
    with pytest.raises(ValueError, match=r"\['query'\] match no module.*'qkv' \(2 Linear\).*'fc1'"):
        adapt(vit(), *data, strategy='lora', target_modules=['query', 'qkv'])
    with pytest.raises(ValueError, match=r"pass convs=True.*'conv' \(4 Conv2d\)"):
        find_target_modules(cnn())
    hf = create_model(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=16, patch_size=8), 10)
    with pytest.raises(ValueError, match=r"'q_proj' \(2 Linear\)"):
        find_target_modules(hf, ['qkv'])

def test_adapter_on_wrong_base_names_mismatched_shapes(data, tmp_path):
    r = adapt(vit(), *data, strategy='lora', r=4, epochs=1)
    path = save_adapter(r.model, tmp_path/'ad')
    with pytest.raises(ValueError, match=r'blocks\.0\.attn\.qkv\.lora_A\.weight: adapter \(4, 32\) vs base \(4, 48\)'):
        load_adapter(vit(embed_dim=48), path)
    with pytest.raises(ValueError, match=r"targets modules \['blocks\.0\.attn\.qkv', 'blocks\.0\.attn\.proj'.*does not have"):
        load_adapter(cnn(), path)

def test_unknown_strategy_and_distill_without_teacher(data):
    with pytest.raises(ValueError, match="strategy='adapter' is not one of 'probe'"): adapt(vit(), *data, strategy='adapter')
    with pytest.raises(ValueError, match='needs teacher='): adapt(vit(), *data, strategy='distill')

def test_peak_memory_sees_an_allocation():
    with PeakMemory('cpu') as pm:
        buf = torch.ones(32 * 2**20); buf += 1; del buf  # 128 MiB, touched
    assert pm.kind == 'cpu_rss_growth' and 120 < pm.peak_mb < 400, pm.peak_mb

def test_lora_with_trained_norms_on_cnn_round_trip(data, tmp_path):
    "norms=True trains the BatchNorm layers (statistics too) beside conv LoRA; they travel with the adapter and merge."
    m = cnn(); before = snapshot(m)
    r = adapt(m, *data, strategy='lora', convs=True, norms=True, r=4, epochs=2)
    bn = [n for n in before if '.bn.' in n]
    assert frozen_unchanged(before, r.model, ['head.'] + bn) == []        # every conv kernel untouched
    trained = dict(r.model.named_buffers())
    key = next(k for k in trained if k.endswith('stem.bn.modules_to_save.default.running_mean'))
    assert not torch.equal(trained[key], before['stem.bn.running_mean'])  # statistics re-estimated on digits
    back = load_adapter(cnn(), save_adapter(r.model, tmp_path/'ad'))
    x = torch.stack([data[1][i][0] for i in range(8)])
    with torch.no_grad(): a, b, c = r.model(x), back(x), merge_adapter(back)(x)
    torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    assert (c - b).abs().max().item() <= 1e-5
