"Bad-input and round-trip tests for cvkit.models: names, local weights, pickles refused, heads, HF configs and folders, embeddings, counts."
import copy, warnings
import pytest, timm, torch
from safetensors.torch import save_file
from transformers import AutoModelForImageClassification, ViTConfig
from cvkit.core import CheckpointError, save_checkpoint
from cvkit.models.factory import HFImageClassifier, count_params, create_model, embed, load_weights, param_summary
from cvkit.models.nets import CvkitCNN

X32 = torch.randn(2, 3, 32, 32)

pytestmark = pytest.mark.usefixtures('no_network')   # nothing here may download (tests/conftest.py)

@pytest.fixture
def no_unpickling(monkeypatch):
    "Fail the test if anything calls torch.load."
    def refuse(*args, **kwargs): raise AssertionError('torch.load was called on a user file')
    monkeypatch.setattr(torch, 'load', refuse)

def vit_cfg(num_labels=5):
    return ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     image_size=32, patch_size=8, num_labels=num_labels)

def saved_resnet(tmp_path, num_classes=5):
    torch.manual_seed(0)
    m = timm.create_model('test_resnet', num_classes=num_classes).eval()
    save_file(m.state_dict(), tmp_path/'w.safetensors')
    return m, tmp_path/'w.safetensors'

# names
def test_unknown_name_suggests_close_timm_names():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet81'.*Did you mean 'resnet18'"): create_model('resnet81', 10)

@pytest.mark.parametrize('name', ['google/vit-base-patch16-224', 'hf-hub:timm/resnet18.a1_in1k'])
def test_hub_names_refused(name):
    with pytest.raises(ValueError, match='never downloads'): create_model(name, 10)

def test_pretrained_true_refused():
    with pytest.raises(ValueError, match='never downloads'): create_model('test_resnet', 10, pretrained=True)
    with pytest.raises(ValueError, match='no published weights'): timm.create_model('cvkit_cnn_small', pretrained=True)

def test_timm_models_and_cvkit_cfg():
    m = create_model('test_resnet', num_classes=5)
    assert m.training  # like any new module; the caller switches to eval
    assert m.eval()(torch.randn(2, 3, 160, 160)).shape == (2, 5)
    cfg = m.cvkit_cfg
    assert (cfg['name'], cfg['source'], cfg['num_classes'], cfg['pretrained'], cfg['input_size']) == ('test_resnet', 'timm', 5, None, (3, 160, 160))
    c = create_model('cvkit_cnn_small', 10, in_chans=1)
    assert (c.cvkit_cfg['input_size'], c.cvkit_cfg['mean'], c.cvkit_cfg['std']) == ((1, 32, 32), (0.5,), (0.5,))
    assert isinstance(timm.create_model('cvkit_cnn_small', num_classes=10), CvkitCNN)

def test_cvkit_cnn_params_and_shapes():
    small, tiny = timm.create_model('cvkit_cnn_small'), timm.create_model('cvkit_cnn_tiny')
    assert 100_000 < count_params(small)['total'] < 500_000 and count_params(tiny)['total'] < 50_000
    assert small.eval()(X32).shape == (2, 10)
    small.reset_classifier(4); assert small(X32).shape == (2, 4) and small.get_classifier().out_features == 4

# local weights
def test_missing_weights_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No weight file at .*nope\.safetensors.*safetensors\.torch\.save_file\(model\.state_dict\(\)"):
        create_model('test_resnet', 5, pretrained=tmp_path/'nope.safetensors')

def test_pickled_pth_refused_without_loading(tmp_path, no_unpickling):
    path = tmp_path/'w.pth'
    torch.save(timm.create_model('test_resnet', num_classes=5).state_dict(), path)  # a real pickle; torch.load is patched after
    with pytest.raises(CheckpointError, match=r"never unpickles.*convert_checkpoint\('.*w\.pth'"): create_model('test_resnet', 5, pretrained=path)

def test_pickle_renamed_to_safetensors_refused(tmp_path, monkeypatch):
    path = tmp_path/'w.safetensors'
    torch.save({'a': torch.zeros(2)}, path)
    monkeypatch.setattr(torch, 'load', lambda *a, **k: pytest.fail('torch.load was called'))
    with pytest.raises(CheckpointError, match='cannot be read as safetensors'): load_weights(timm.create_model('test_resnet'), path)

def test_safetensors_round_trip_and_cvkit_checkpoint(tmp_path):
    src, path = saved_resnet(tmp_path)
    m = create_model('test_resnet', 5, pretrained=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): assert torch.equal(m(x), src(x))
    assert m.cvkit_cfg['pretrained'] == str(path) and m.cvkit_cfg['load_report']['skipped'] == []
    save_checkpoint(tmp_path/'ck', {'model': {f'module.{k}': v for k, v in src.state_dict().items()}, 'epoch': 1})  # DDP-style keys
    c = create_model('test_resnet', 5, pretrained=tmp_path/'ck.safetensors').eval()
    with torch.no_grad(): assert torch.equal(c(x), src(x))

def test_plain_safetensors_beside_unrelated_json(tmp_path):
    src, path = saved_resnet(tmp_path)
    (tmp_path/'w.json').write_text('{"labels": ["a", "b"]}')  # the user's own notes, not a cvkit checkpoint
    m = create_model('test_resnet', 5, pretrained=path).eval()
    assert torch.equal(m.fc.weight, src.fc.weight)

def test_head_mismatch_reinitialised_and_reported(tmp_path):
    src, path = saved_resnet(tmp_path)
    torch.manual_seed(1)
    fresh_fc = timm.create_model('test_resnet', num_classes=3).fc.weight.detach().clone()
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match=r'classifier head tensors not loaded: fc\.bias \(file \(5,\), model \(3,\)\)'):
        m = create_model('test_resnet', 3, pretrained=path)
    assert m.cvkit_cfg['load_report']['skipped'] == [('fc.bias', (5,), (3,)), ('fc.weight', (5, 96), (3, 96))]
    assert torch.equal(m.conv1[0].weight, src.conv1[0].weight)  # the body loaded
    assert torch.equal(m.fc.weight, fresh_fc)                   # the head kept its fresh initialisation
    with pytest.warns(UserWarning, match='not loaded'):
        f = create_model('test_resnet', 0, pretrained=path)  # features only: the file's head has nowhere to go
    assert f.cvkit_cfg['load_report']['skipped'] == [('fc.bias', (5,), None), ('fc.weight', (5, 96), None)]

def test_body_mismatch_names_the_tensors(tmp_path):
    _, path = saved_resnet(tmp_path)
    with pytest.raises(ValueError, match=r'do not fit VisionTransformer outside its classifier head \(missing from the file: cls_token'):
        create_model('test_vit', 5, pretrained=path)
    torch.manual_seed(0)
    save_file(timm.create_model('cvkit_cnn_tiny').state_dict(), tmp_path/'tiny.safetensors')
    with pytest.raises(ValueError, match=r'shape mismatches: stages\.0\.0\.bn\.bias: file \(16,\) vs model \(32,\).*\(20 in all\); missing from the file: stages\.1\.2'):
        create_model('cvkit_cnn_small', 10, pretrained=tmp_path/'tiny.safetensors')

# transformers
def test_hf_config_wrapper_matches_raw_model():
    torch.manual_seed(0)
    raw = AutoModelForImageClassification.from_config(vit_cfg()).eval()
    w = HFImageClassifier(raw)
    with torch.no_grad():
        ref = raw(pixel_values=X32).logits
        assert torch.equal(w(X32), ref)
        torch.testing.assert_close(w.forward_head(w.forward_features(X32)), ref)
    cfg = vit_cfg()
    m = create_model(cfg, num_classes=4)
    assert (m.num_classes, m.num_features, cfg.num_labels) == (4, 32, 5)  # the caller's config is not modified
    assert m.cvkit_cfg['source'] == 'transformers' and m.cvkit_cfg['input_size'] == (3, 32, 32)
    with pytest.raises(ValueError, match='has no setting hidden_dropout'): create_model(cfg, 4, hidden_dropout=0.1)
    assert create_model(cfg, 4, hidden_dropout_prob=0.2).model.config.hidden_dropout_prob == 0.2

def _hf_configs():
    from transformers import ConvNextConfig, DeiTConfig, Dinov2Config, ResNetConfig
    small = dict(num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32, patch_size=8)
    return dict(resnet=ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]),
                convnext=ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=32),
                dinov2=Dinov2Config(hidden_size=16, **small), deit=DeiTConfig(hidden_size=16, **small))

@pytest.mark.parametrize('arch,width', [('resnet', 16), ('convnext', 16), ('dinov2', 32), ('deit', 16)])
def test_hf_architectures_split_at_the_classifier(arch, width):
    "Each pools differently (flattened map, mean, CLS+mean tokens, CLS); the wrapper's split is exact for all."
    m = create_model(_hf_configs()[arch], 3).eval()
    with torch.no_grad():
        e = embed(m, X32)
        assert e.shape == (2, width) == (2, m.num_features)
        torch.testing.assert_close(m.forward_head(e), m(X32))

def test_hf_local_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    m = create_model(vit_cfg(), 4).eval()
    m.model.save_pretrained(tmp_path/'vit', safe_serialization=True)
    back = create_model(tmp_path/'vit').eval()
    with torch.no_grad(): assert torch.equal(back(X32), m(X32))
    assert back.cvkit_cfg['name'] == str(tmp_path/'vit') and back.num_classes == 4
    with pytest.warns(UserWarning, match='model.classifier'):
        two = create_model(str(tmp_path/'vit'), num_classes=2)
    assert [k for k, *_ in two.cvkit_cfg['load_report']['skipped']] == ['model.classifier.bias', 'model.classifier.weight']
    # the wrapper's own state dict loads back as pretrained weights too
    save_file(m.state_dict(), tmp_path/'wrapped.safetensors')
    again = create_model(vit_cfg(), 4, pretrained=tmp_path/'wrapped.safetensors').eval()
    with torch.no_grad(): assert torch.equal(again(X32), m(X32))

def test_hf_folder_with_only_pickles_refused(tmp_path, no_unpickling):
    m = create_model(vit_cfg(), 4)
    m.model.save_pretrained(tmp_path/'vit')
    (tmp_path/'vit'/'model.safetensors').unlink()
    (tmp_path/'vit'/'pytorch_model.bin').write_bytes(b'\x80\x04 a pickle, never opened')
    with pytest.raises(CheckpointError, match=r'pytorch_model\.bin \(pickle files\).*save_pretrained'): create_model(tmp_path/'vit', 4)
    (tmp_path/'vit'/'pytorch_model.bin').unlink()
    with pytest.raises(FileNotFoundError, match='has no model.safetensors'): create_model(tmp_path/'vit', 4)

def test_timm_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    src = timm.create_model('test_resnet', num_classes=5).eval()
    timm.models.save_for_hf(src, tmp_path/'rn', safe_serialization=True)
    m = create_model(tmp_path/'rn').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): assert torch.equal(m(x), src(x))
    assert m.cvkit_cfg['source'] == 'timm' and m.num_classes == 5

# embeddings and counts
@pytest.mark.parametrize('name,x', [('test_vit', torch.randn(2, 3, 160, 160)), ('test_resnet', torch.randn(2, 3, 64, 64)),
                                    ('cvkit_cnn_small', X32), ('vit_config', X32)])
def test_embed_shapes(name, x):
    m = create_model(vit_cfg() if name == 'vit_config' else name, 5).eval()
    with torch.no_grad():
        e = embed(m, x)
        assert e.shape == (2, m.num_features) == (2, m.cvkit_cfg['embed_dim'])
        torch.testing.assert_close(m.get_classifier()(e), m(x))  # the embedding is what the classifier reads

def test_embed_needs_split_model():
    with pytest.raises(TypeError, match='forward_features'): embed(torch.nn.Linear(3, 2), torch.randn(1, 3))

@pytest.mark.parametrize('name', ['test_vit', 'cvkit_cnn_tiny', 'vit_config'])
def test_param_counts_match_numel(name):
    m = create_model(vit_cfg() if name == 'vit_config' else name, 5)
    total = sum(p.numel() for p in m.parameters())
    s = param_summary(m)
    assert s['params'].sum() == s.attrs['total'] == count_params(m)['total'] == total
    first = next(iter(m.parameters())); first.requires_grad_(False)
    assert count_params(m)['trainable'] == param_summary(m)['trainable'].sum() == total - first.numel()

def test_shared_parameters_counted_once():
    lin = torch.nn.Linear(4, 4)
    m = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    assert count_params(m)['total'] == 20 == param_summary(m)['params'].sum()
