"The `scenes` detection dataset: determinism, object counts, size buckets, occlusion and truncation against the masks, the torchvision adapter."
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from cvkit.data.dataset import fingerprint
from cvkit.data.dataset import ImageDataset
from cvkit.data.scenes import (SCENE_CLASSES, DetectionView, coco_size, detection_fingerprint, detection_loader, objects,
                               scenes, semantic_mask, _render)
from cvkit.data.sources import coco_masks

pytestmark = pytest.mark.usefixtures('no_network')


@pytest.fixture(scope='module')
def ds(): return scenes(200, size=128, seed=1)


def test_deterministic():
    a, b = scenes(15, size=96, seed=5), scenes(15, size=96, seed=5)
    assert fingerprint(a) == fingerprint(b)
    for c in ('boxes', 'labels', 'area', 'ann_ids', 'occluded', 'truncated', 'visible_frac'):
        assert all(np.array_equal(x, y) for x, y in zip(a.df[c], b.df[c])), c
    assert list(a.df.segmentation) == list(b.df.segmentation)
    assert fingerprint(a) != fingerprint(scenes(15, size=96, seed=6))
    assert detection_fingerprint(a) == detection_fingerprint(b)
    df = a.df.copy(); df['labels'] = [l.copy() for l in df.labels]; df.labels[0][0] = (df.labels[0][0] + 1) % 6
    relabelled = ImageDataset(df, a.classes)
    assert fingerprint(relabelled) == fingerprint(a) and detection_fingerprint(relabelled) != detection_fingerprint(a)


def test_counts_sizes_and_conditions(ds):
    n = ds.df.n_objects.to_numpy()
    assert n.min() >= 1 and n.max() <= 8 and set(n) == set(range(1, 9))
    assert (n == ds.df.labels.map(len)).all()
    ob = objects(ds)
    assert set(ob.size_bucket) == {'small', 'medium', 'large'}
    for col, levels in [('lighting', {'dark', 'normal', 'bright'}), ('background', {'plain', 'gradient', 'noise', 'stripes'}),
                        ('clutter', {'none', 'low', 'high'}), ('density', {'sparse', 'moderate', 'crowded'})]:
        assert set(ds.df[col].astype(str)) == levels, col
    assert set(ds.df.split) == {'train', 'valid', 'test'}
    assert set(ob.category) == set(SCENE_CLASSES)
    assert ob.occluded.mean() > 0.1 and ob.truncated.mean() > 0.1
    with pytest.raises(ValueError, match='max_objects'): scenes(2, max_objects=0)
    with pytest.raises(ValueError, match='unknown shape'): scenes(2, classes=('circle', 'hexagon'))


def test_masks_boxes_and_flags_agree(ds):
    "Boxes are tight to the visible masks (pycocotools' toBbox), area is the mask's pixel count, flags follow from the masks."
    touching, trunc = 0, 0
    for i in range(0, len(ds), 7):
        row, m = ds.df.iloc[i], coco_masks(ds, i)
        assert m.sum(0).max() == 1                       # visible masks are disjoint
        rle = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0)))
        xywh = mask_utils.toBbox(rle)
        assert np.array_equal(row.boxes, np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]].astype(np.float32))
        assert np.array_equal(row.area, m.reshape(len(m), -1).sum(1).astype(np.float32))
        assert list(row.size_bucket) == list(coco_size(row.area))
        assert np.array_equal(row.occluded, row.visible_frac < 0.9)
        assert (row.visible_frac > 0).all() and (row.visible_frac <= 1).all()
        for k in range(len(m)):
            edge = m[k][0].any() or m[k][-1].any() or m[k][:, 0].any() or m[k][:, -1].any()
            if not row.truncated[k]: assert not edge, (i, k)
            else: trunc += 1; touching += edge
    assert touching >= 0.8 * trunc       # a truncated object's visible mask touches the border unless a nearer one covers it


def test_visible_fraction_from_render():
    "visible_frac is the visible share of each object's in-frame pixels, recomputed here from the renderer's amodal shapes."
    from cvkit.data.scenes import _layout, _compose, _rasterise, _clip
    for i in range(5):
        rng = np.random.default_rng([2, i])
        o = _layout(rng, 96, SCENE_CLASSES, 8, (0.45, 0.4, 0.15))
        idmap, keep, vis, n_in, _ = _compose(o, 96, SCENE_CLASSES, 16)
        for k in np.flatnonzero(keep):
            m, x0, y0 = _rasterise(SCENE_CLASSES[o['kind'][k]], o['cx'][k], o['cy'][k], o['r'][k], o['angle'][k], o['aspect'][k])
            c, ys, xs = _clip(m, x0, y0, 96)
            full = np.zeros((96, 96), bool); full[ys, xs] = c
            assert vis[k] == (idmap == k + 1).sum() and n_in[k] == full.sum()
            assert not ((idmap == k + 1) & ~full).any()    # visible pixels lie inside the shape
            covered = full & (idmap > k + 1)                # hidden only by objects drawn later
            assert covered.sum() + vis[k] == full.sum()


def test_semantic_mask(ds):
    for i in (0, 1, 2):
        _, ann, _, idmap = _render(i, 1, 128, SCENE_CLASSES, 8, (0.45, 0.4, 0.15), 0.9, 16)
        lut = np.zeros(256, np.uint8); lut[np.unique(idmap[idmap > 0])] = ann['labels'] + 1
        assert np.array_equal(semantic_mask(ds, i), lut[idmap])


def test_detection_view_feeds_torchvision(ds):
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    v = ds.split('valid')
    xs, ts = next(iter(detection_loader(v, batch_size=2, seed=0)))
    assert [t['labels'].dtype for t in ts] == [torch.int64] * 2 and ts[0]['labels'].min() >= 1
    assert torch.equal(ts[0]['labels'], torch.as_tensor(v.df.labels[0] + 1))
    assert ts[0]['boxes'].dtype == torch.float32 and ts[0]['masks'].shape[1:] == (128, 128)
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(SCENE_CLASSES) + 1,
                                  min_size=128, max_size=128)
    model.train()
    losses = model(xs, ts)
    assert {'loss_classifier', 'loss_box_reg', 'loss_mask'} <= set(losses) and all(torch.isfinite(l) for l in losses.values())
    assert len(DetectionView(v, masks=False).target(0)) == 5 and 'masks' not in DetectionView(v, masks=False).target(0)
    from torchvision.transforms import v2
    crop = v2.Compose([v2.RandomCrop(64), v2.SanitizeBoundingBoxes(min_size=1), v2.ToDtype(torch.float32, scale=True)])
    torch.manual_seed(0)
    for i in range(len(v)):
        x, t = DetectionView(v, transform=crop)[i]
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and len(t['boxes']) == len(t['labels']) == len(t['masks'])
        assert ((t['boxes'][:, 2:] > t['boxes'][:, :2]).all() and (t['boxes'] >= 0).all() and (t['boxes'] <= 64).all())
        assert len(t['area']) == len(t['iscrowd']) == len(t['boxes']) and torch.equal(t['area'], t['masks'].flatten(1).sum(1).float())
