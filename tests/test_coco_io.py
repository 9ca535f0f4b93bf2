"COCO export: `to_coco` -> `from_coco` round trips exactly, pycocotools reads the files, and `validate_detection` names every error."
import contextlib, io, json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from cvkit.data.coco import categories, to_coco, validate_detection
from cvkit.data.dataset import DatasetError, ImageDataset
from cvkit.data.scenes import object_columns, scenes
from cvkit.data.sources import coco_masks, from_coco

pytestmark = pytest.mark.usefixtures('no_network')


def _same(a, b):
    "Assert two detection datasets hold the same ids, classes, categories, per-object columns, metadata, pixels and masks."
    assert list(a.ids) == list(b.ids) and a.classes == b.classes and categories(a) == categories(b)
    assert set(object_columns(a.df)) == set(object_columns(b.df))
    for c in object_columns(b.df):
        for x, y in zip(a.df[c], b.df[c]):
            if c == 'segmentation': assert list(x) == list(y), c
            else: assert np.array_equal(np.asarray(x), np.asarray(y)), c
    meta = [c for c in b.df.columns if c not in object_columns(b.df) and c != 'image']
    for c in meta: assert a.df[c].astype(str).tolist() == b.df[c].astype(str).tolist(), c
    for i in range(len(a)):
        assert np.array_equal(a.load_image(i), b.load_image(i))
        assert np.array_equal(coco_masks(a, i), coco_masks(b, i))


def test_scenes_round_trip(tmp_path):
    ds = scenes(30, size=128, seed=2, category_ids=(3, 7, 11, 13, 17, 40))
    paths = to_coco(ds, tmp_path)
    assert {p.name for p in paths.values()} == {'instances_train.json', 'instances_valid.json', 'instances_test.json'}
    for split, p in paths.items(): _same(from_coco(p), ds.split(split))
    # twice round: what from_coco read writes the same files again
    again = to_coco(from_coco(paths['train']), tmp_path/'again')
    assert json.loads(again['train'].read_text())['annotations'] == json.loads(paths['train'].read_text())['annotations']
    assert json.loads(again['train'].read_text())['images'] == json.loads(paths['train'].read_text())['images']


def test_pycocotools_reads_it(tmp_path):
    ds = scenes(12, size=128, seed=3, category_ids=(3, 7, 11, 13, 17, 40))
    p = to_coco(ds, tmp_path)['train']
    with contextlib.redirect_stdout(io.StringIO()): gt = COCO(str(p))
    tr = ds.split('train')
    assert sorted(gt.getCatIds()) == [3, 7, 11, 13, 17, 40] and sorted(gt.getImgIds()) == sorted(tr.ids.tolist())
    assert len(gt.anns) == tr.df.n_objects.sum()
    for i in range(len(tr)):
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[int(tr.ids[i])]))
        assert [a['id'] for a in anns] == tr.df.ann_ids[i].tolist()
        assert np.array_equal(np.stack([gt.annToMask(a) for a in anns]), coco_masks(tr, i))
        b = tr.df.boxes[i]
        assert np.allclose([a['bbox'] for a in anns], np.c_[b[:, :2], b[:, 2:] - b[:, :2]])
        assert [a['area'] for a in anns] == tr.df.area[i].tolist()
        img = gt.imgs[int(tr.ids[i])]
        assert (img['lighting'], img['split']) == (str(tr.df.lighting[i]), 'train')
        assert np.array_equal(np.asarray(Image.open(p.parent/img['file_name']).convert('RGB')), tr.load_image(i))


def test_polygons_crowds_and_files_round_trip(tmp_path):
    "A COCO file with polygons, a crowd RLE, odd category ids and JPEG files: read, written, read again unchanged."
    src = tmp_path/'src'; src.mkdir()
    for name, size in [('a.jpg', (20, 30)), ('b.jpg', (24, 16))]:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).save(src/name, quality=90)
    coco = {'images': [{'id': 4, 'file_name': 'a.jpg', 'width': 30, 'height': 20, 'site': 'x'},
                       {'id': 9, 'file_name': 'b.jpg', 'width': 16, 'height': 24, 'site': 'y'}],
            'categories': [{'id': 11, 'name': 'dog', 'supercategory': 'animal'}, {'id': 3, 'name': 'cat', 'supercategory': 'animal'}],
            'annotations': [{'id': 100, 'image_id': 4, 'category_id': 11, 'bbox': [2, 3, 10, 8], 'area': 40.0, 'iscrowd': 0,
                             'segmentation': [[2, 3, 12, 3, 2, 11]]},
                            {'id': 7, 'image_id': 9, 'category_id': 3, 'bbox': [0, 12, 16, 8], 'area': 128.0, 'iscrowd': 1,
                             'segmentation': {'size': [24, 16], 'counts': [12] + [8, 16] * 15 + [8, 4]}}]}   # rows 12..19 of every column
    (src/'instances.json').write_text(json.dumps(coco))
    a = from_coco(src/'instances.json')
    p = to_coco(a, tmp_path/'out')
    b = from_coco(p['all'])
    _same(b, a)
    assert b.df.iscrowd.tolist()[1].tolist() == [1] and categories(b) == [{'id': 3, 'name': 'cat', 'supercategory': 'animal'},
                                                                        {'id': 11, 'name': 'dog', 'supercategory': 'animal'}]
    assert (tmp_path/'out'/json.loads(p['all'].read_text())['images'][0]['file_name']).read_bytes() == (src/'a.jpg').read_bytes()


def _bad_coco():
    return {'images': [{'id': 1, 'file_name': 'a.png', 'width': 10, 'height': 10}, {'id': 2, 'file_name': 'b.png', 'width': 10, 'height': 10},
                       {'id': 2, 'file_name': 'b2.png', 'width': 10, 'height': 10}],
            'categories': [{'id': 3, 'name': 'x'}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 3, 'bbox': [1, 1, 3, 3], 'area': 9}]}


@pytest.mark.parametrize('kind, change, image, ann', [
    ('degenerate_box', {'bbox': [5, 5, 0, 3]}, 1, 1),
    ('degenerate_box', {'bbox': [5, 5, 3, -2]}, 1, 1),
    ('box_outside_image', {'bbox': [-2, 1, 3, 3]}, 1, 1),
    ('box_outside_image', {'bbox': [8, 8, 3, 3]}, 1, 1),
    ('zero_area', {'area': 0}, 1, 1),
    ('unknown_category', {'category_id': 5}, 1, 1),
    ('unknown_image', {'image_id': 8}, 8, 1),
])
def test_validate_each_error(kind, change, image, ann):
    coco = _bad_coco(); coco['images'].pop()
    coco['annotations'][0] |= change
    rep = validate_detection(coco)
    assert rep.kinds == [kind]
    p = rep.errors[0]
    assert (p.ids, p.ann_ids) == ([image], [ann])
    assert f"image {image} (" in p.message and f"annotation {ann}" in p.message and p.fix
    with pytest.raises(DatasetError, match=kind): rep.raise_if_errors()


def test_validate_collects_everything():
    coco = _bad_coco()
    coco['annotations'] += [{'id': 1, 'image_id': 2, 'category_id': 9, 'bbox': [1, 1, 30, 0], 'area': 0}]
    rep = validate_detection(coco)
    assert set(rep.kinds) == {'duplicate_image_id', 'duplicate_ann_id', 'unknown_category', 'degenerate_box', 'zero_area'}
    dup = next(p for p in rep.errors if p.kind == 'duplicate_ann_id')
    assert (dup.ids, dup.files, dup.ann_ids) == ([1, 2], ['a.png', 'b.png'], [1, 1])
    assert next(p for p in rep.errors if p.kind == 'duplicate_image_id').files == ['b.png', 'b2.png']
    assert rep.warnings == [] and not rep.ok
    assert 'image 2 (b.png) annotation 1: category 9' in rep.summary()


def test_empty_images_are_warnings(tmp_path):
    coco = _bad_coco(); coco['images'].pop()
    rep = validate_detection(coco)
    assert rep.ok and rep.errors == [] and [(w.kind, w.ids, w.files) for w in rep.warnings] == [('no_annotations', [2], ['b.png'])]
    assert rep.raise_if_errors() is rep
    (tmp_path/'c.json').write_text(json.dumps(coco))
    assert validate_detection(tmp_path/'c.json').to_dict()['warnings'][0]['ids'] == ['2']


def test_to_coco_refuses_bad_dataset(tmp_path):
    ds = scenes(6, size=64, seed=0)
    df = ds.df.copy(); df['boxes'] = [b.copy() for b in df.boxes]
    df.boxes[2][0, 3] = df.boxes[2][0, 1]      # y2 == y1
    with pytest.raises(DatasetError, match=rf"degenerate_box.*image 3 \(in memory\) annotation {ds.df.ann_ids[2][0]}"):
        to_coco(ImageDataset(df, ds.classes), tmp_path/'x')
    assert not (tmp_path/'x').exists()


def test_misaligned_columns_are_named():
    ds = scenes(4, size=64, seed=0)
    df = ds.df.copy(); df['area'] = [a[:-1] if i == 2 else a for i, a in enumerate(df.area)]
    with pytest.raises(DatasetError, match=r"column 'area' holds a different number of objects than `boxes` in 1 row\(s\), e.g. row 2"):
        validate_detection(ImageDataset(df, ds.classes))
