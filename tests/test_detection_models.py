"Detectors: every registered one builds offline and trains a step; a light one overfits; checkpoints, resume, predict_detections."
import numpy as np, pytest, torch
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from cvkit.core import load_checkpoint
from cvkit.data.scenes import DetectionView, collate_detection, objects, scenes
from cvkit.evaluate.coco import coco_metrics
from cvkit.evaluate.detect import predict_detections
from cvkit.evaluate.detection import DetectionPredictions
from cvkit.models.detection import create_detector, list_detectors
from cvkit.models.factory import create_model
from cvkit.train import fit

TORCHVISION = ['fcos_resnet50_fpn', 'retinanet_resnet50_fpn', 'retinanet_resnet50_fpn_v2',
               'fasterrcnn_mobilenet_v3_large_320_fpn', 'ssdlite320_mobilenet_v3_large']

@pytest.fixture(scope='module')
def two():
    ds = scenes(2, size=128, seed=0)
    return ds, collate_detection([DetectionView(ds, masks=False)[i] for i in range(2)])

@pytest.fixture(scope='module')
def six():
    return scenes(6, size=96, seed=1, splits=(1.0, 0.0, 0.0))

@pytest.mark.parametrize('name', TORCHVISION + ['fcos_timm_resnet18', 'retinanet_timm_resnet18', 'fcos_cvkit_small'])
def test_builds_offline_and_trains_one_step(name, two):
    ds, (imgs, tgts) = two
    torch.manual_seed(0)
    m = create_model(name, num_classes=ds.num_classes, size=128)
    assert m.cvkit_cfg['task'] == 'detection' and m.cvkit_cfg['input_size'] == (3, 128, 128) and m.cvkit_cfg['num_classes'] == 6
    assert m.transform.min_size == (128,) and m.transform.max_size == 128   # no resize of 128-px images
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    losses = m(imgs, tgts)
    loss = sum(losses.values())
    assert torch.isfinite(loss) and loss.item() > 0, losses
    loss.backward(); opt.step()
    assert all(torch.isfinite(p).all() for p in m.parameters())
    m.eval()
    with torch.no_grad(): out = m(imgs)
    assert len(out) == 2 and all(set(o) >= {'boxes', 'scores', 'labels'} for o in out)

def test_registry_names_and_errors():
    assert set(TORCHVISION) <= set(list_detectors())
    with pytest.raises(ValueError, match="Did you mean"): create_detector('fcos_resnet18', 3)
    with pytest.raises(ValueError, match='at least one object class'): create_model('fcos_cvkit_small')
    with pytest.raises(ValueError, match='3-channel'): create_model('fcos_cvkit_small', num_classes=2, in_chans=1)
    with pytest.raises(ValueError, match='never downloads'): create_model('fcos_resnet50_fpn', num_classes=2, pretrained=True)

def _det(ds, name='fcos_timm_resnet18'):
    torch.manual_seed(0)
    return create_model(name, num_classes=ds.num_classes, size=96)

def test_light_detector_overfits_and_checkpoint_round_trips(six, tmp_path):
    r = fit(_det(six), six, six, epochs=24, lr=2e-3, batch_size=6, warmup_epochs=2, ckpt_dir=tmp_path, progress=False)
    h = r.history
    assert h.train_loss.iloc[-3:].mean() < 0.5 * h.train_loss.iloc[0], h
    p = predict_detections(r.model, six)
    m = coco_metrics(p)
    assert m['AP50'] > 0.6 and m['AP50'] == pytest.approx(h.valid_map50.max()), (m, h)   # best weights restored
    st, info = load_checkpoint(r.best_checkpoint)
    assert info['meta']['monitor'] == 'valid_map50' and info['meta']['model']['name'] == 'fcos_timm_resnet18'
    assert info['meta']['classes'] == list(six.classes)
    m2 = create_model('fcos_timm_resnet18', num_classes=six.num_classes, size=96, pretrained=r.best_checkpoint)
    p2 = predict_detections(m2, six)
    pd_cols = ['image_id', 'x1', 'y1', 'x2', 'y2', 'score', 'label']
    assert p2.detections[pd_cols].equals(p.detections[pd_cols])

class _Interrupt(nn.Module):
    def __init__(self, m, at=None): super().__init__(); self.m, self.at, self.calls, self.cvkit_cfg = m, at, 0, m.cvkit_cfg
    def forward(self, *a):
        self.calls += self.training
        if self.at is not None and self.calls == self.at: raise KeyboardInterrupt
        return self.m(*a)

def test_resume_is_bitwise_identical(six, tmp_path):
    kw = dict(epochs=3, lr=3e-3, batch_size=3, progress=False, restore_best=False)
    m1 = _Interrupt(_det(six, 'fcos_cvkit_small')); fit(m1, six, ckpt_dir=tmp_path/'a', **kw)
    m2 = _Interrupt(_det(six, 'fcos_cvkit_small'), at=4)
    with pytest.raises(KeyboardInterrupt): fit(m2, six, ckpt_dir=tmp_path/'b', **kw)
    assert load_checkpoint(tmp_path/'b'/'last')[1]['meta']['epoch'] == 0
    m3 = _Interrupt(_det(six, 'fcos_cvkit_small')); r = fit(m3, six, ckpt_dir=tmp_path/'b', resume=True, **kw)
    assert list(r.history.epoch) == [0, 1, 2]
    for (k, a), b in zip(m1.state_dict().items(), m3.state_dict().values()): assert torch.equal(a, b), k

def test_fit_refuses_a_classifier_as_detector(six):
    with pytest.raises(TypeError, match='dict of losses'):
        fit(create_model('cvkit_cnn_tiny', num_classes=6), six, epochs=1, progress=False, task='detection')

class _Stub(nn.Module):
    "Detects fixed boxes in a 2x-resized frame and maps them back with torchvision's transform, like every torchvision detector."
    def __init__(self, size, boxes, scores, labels):
        super().__init__(); self.w = nn.Parameter(torch.zeros(1))
        self.t = GeneralizedRCNNTransform(2 * size, 2 * size, [0.5] * 3, [0.25] * 3)
        self.out = dict(boxes=torch.tensor(boxes, dtype=torch.float32), scores=torch.tensor(scores), labels=torch.tensor(labels))
    def forward(self, imgs):
        il, _ = self.t(imgs)
        return self.t.postprocess([dict(self.out) for _ in il.image_sizes], il.image_sizes, [x.shape[-2:] for x in imgs])

def test_predict_detections_content_and_frame(tmp_path):
    ds = scenes(5, size=64, seed=3)
    stub = _Stub(64, [[20., 40, 100, 120], [0, 0, 128, 128], [2, 2, 6, 6]], [0.9, 0.5, 0.7], [3, 6, 0])
    p = predict_detections(stub, ds, batch_size=2, name='stub')
    assert list(p.ids) == [str(i) for i in ds.ids] and p.info['name'] == 'stub' and p.info['dropped_background'] == 5
    d = p.detections
    want = np.tile([[10., 20, 50, 60], [0, 0, 64, 64]], (5, 1))
    np.testing.assert_array_equal(d[['x1', 'y1', 'x2', 'y2']].to_numpy(), want)    # halved back to the 64-px frame
    assert d.label.tolist() == [2, 5] * 5 and d.image_id.tolist() == np.repeat(p.ids, 2).tolist()
    np.testing.assert_allclose(d.score.to_numpy(), np.tile([0.9, 0.5], 5), rtol=1e-6)
    obj = objects(ds)
    assert p.gt.image_id.tolist() == obj.id.astype(str).tolist() and p.gt.label.tolist() == obj.label.tolist()
    np.testing.assert_array_equal(p.gt[['x1', 'y1', 'x2', 'y2']].to_numpy(), obj[['x1', 'y1', 'x2', 'y2']].to_numpy())
    for c in ('size_bucket', 'occluded', 'truncated', 'visible_frac', 'area', 'ann_id'):
        np.testing.assert_array_equal(p.gt[c].to_numpy(), obj[c].to_numpy())
    assert p.meta.columns.tolist() == [c for c in ds.df.columns if c in p.meta.columns] and 'lighting' in p.meta
    assert not {'id', 'image', 'boxes', 'labels', 'target', 'segmentation'} & set(p.meta.columns)
    assert p.info['dataset'] and p.info['lineage']['seed'] is None
    q = DetectionPredictions.load(p.save(tmp_path/'p.parquet'))
    assert q.detections.equals(p.detections) and len(q.gt) == len(p.gt)
    # detections exactly on image 0's true boxes (given in the 2x frame) score AP 1 there
    g = p.gt[p.gt.image_id == p.ids[0]]
    exact = _Stub(64, (2 * g[['x1', 'y1', 'x2', 'y2']].to_numpy()).tolist(), [0.9] * len(g), (g.label + 1).tolist())
    assert coco_metrics(predict_detections(exact, ds.subset(np.array([0]))))['AP'] == pytest.approx(1.0)

def test_predict_detections_refuses_boxes_outside_the_image():
    ds = scenes(2, size=64, seed=3)
    class Unmapped(_Stub):
        def forward(self, imgs): return [dict(self.out) for _ in imgs]
    with pytest.raises(ValueError, match=r"image '1' \(64×64 px\).*outside the image"):
        predict_detections(Unmapped(64, [[20., 40, 100, 120]], [0.9], [1]), ds)
