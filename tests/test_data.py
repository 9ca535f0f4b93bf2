"Bad-input suite for the data layer: each broken dataset fails with a `DatasetError` that names the offender."
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cvkit.data.builtin import shapes, shape_mask
from cvkit.data.dataset import DatasetError, ImageDataset, fingerprint, make_loader, validate
from cvkit.data.sources import from_folder, from_manifest


def _png(path, seed=0, size=(12, 12)):
    "Write a random RGB PNG to `path` and return its pixels."
    a = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return a


def _table(images, targets=None, splits=None, ids=None):
    n = len(images)
    return pd.DataFrame({'id': ids or [f's{i}' for i in range(n)], 'image': images,
                         'target': targets or ['cat'] * n, 'split': splits or ['train'] * n})


@pytest.fixture
def folder(tmp_path):
    "A class-per-folder tree: cat/a.png, cat/b.png, dog/c.png."
    for i, p in enumerate(['cat/a.png', 'cat/b.png', 'dog/c.png']): _png(tmp_path/p, seed=i)
    return tmp_path


def test_truncated_image_file(folder):
    raw = (folder/'cat/b.png').read_bytes()
    (folder/'cat/b.png').write_bytes(raw[:len(raw)//2])
    ds = from_folder(folder)
    with pytest.raises(DatasetError, match=r'undecodable: 1 image file\(s\) could not be decoded .*truncated.*files: cat/b\.png'):
        ds.validate()
    with pytest.raises(DatasetError, match=r"could not decode image file .*cat/b\.png \(sample 'cat/b\.png'\)"):
        ds[1]
    assert validate(ds).problems[0].ids == ['cat/b.png']


def test_not_an_image(folder):
    (folder/'dog/d.png').write_text('not a png')
    with pytest.raises(DatasetError, match=r'cannot identify image file.*files: dog/d\.png'):
        from_folder(folder).validate()


def test_missing_file(folder):
    ds = from_manifest(pd.DataFrame({'image': ['cat/a.png', 'cat/gone.png'], 'target': ['cat', 'cat']}), root=folder)
    with pytest.raises(DatasetError, match=r'missing_file: 1 image file\(s\) not found .*files: cat/gone\.png'):
        ds.validate()
    with pytest.raises(DatasetError, match=r"image file not found: .*cat/gone\.png \(sample 'cat/gone\.png'\)"):
        ds[1]
    with pytest.raises(DatasetError, match=r'cannot fingerprint: image file not found: .*gone\.png'):
        fingerprint(ds)


def test_unknown_label(folder):
    man = pd.DataFrame({'file': ['cat/a.png', 'cat/b.png', 'dog/c.png'], 'label': ['cat', 'cta', 'dog'], 'name': ['a', 'b', 'c']})
    with pytest.raises(DatasetError, match=r"labels not in the class list: 'cta' \(ids 'b'\); classes are 'cat', 'dog'"):
        from_manifest(man, root=folder, columns={'id': 'name', 'image': 'file', 'target': 'label'}, classes=['cat', 'dog'])
    with pytest.raises(DatasetError, match=r"target indices outside 0\.\.1 .*: 5 at ids 's1'"):
        ImageDataset(_table([np.zeros((4, 4, 3), np.uint8)] * 2, targets=[0, 5]), ['cat', 'dog'])


def test_unknown_label_after_construction():
    ds = ImageDataset(_table([np.full((4, 4, 3), i, np.uint8) for i in range(3)]), ['cat'])
    ds.df.loc[2, 'target'] = 3
    with pytest.raises(DatasetError, match=r"unknown_label: 1 sample\(s\) have targets outside the 1 classes \(values 3\); ids: 's2'"):
        ds.validate()


def test_same_image_in_train_and_test(tmp_path):
    a = _png(tmp_path/'a.png', seed=1)
    Image.fromarray(a).save(tmp_path/'copy_of_a.png', compress_level=1)  # same pixels, different bytes
    _png(tmp_path/'b.png', seed=2)
    ds = ImageDataset(_table(['a.png', 'b.png', 'copy_of_a.png'], splits=['train', 'train', 'test']), ['cat'], root=tmp_path)
    with pytest.raises(DatasetError, match=r"split_leak: 1 image\(s\) appear in more than one split \(2 rows\): "
                                           r"'s0' \(train\) = 's2' \(test\); files: a\.png, copy_of_a\.png"):
        ds.validate()
    arrays = ImageDataset(_table([a, a.copy()], splits=['train', 'test']), ['cat'])
    assert validate(arrays).kinds == ['split_leak'] and validate(arrays).problems[0].ids == ['s0', 's1']


def test_duplicate_ids():
    imgs = [np.full((4, 4, 3), i, np.uint8) for i in range(4)]
    ds = ImageDataset(_table(imgs, ids=['x', 'y', 'x', 'z']), ['cat'])
    with pytest.raises(DatasetError, match=r"duplicate_id: 1 id\(s\) are used by more than one row \(2 rows\); ids: 'x'"):
        ds.validate()


def test_empty_dataset(tmp_path):
    ds = ImageDataset(_table([]), ['cat'])
    assert len(ds) == 0 and validate(ds).kinds == ['empty']
    with pytest.raises(DatasetError, match='empty: the dataset has no samples'):
        ds.validate()
    with pytest.raises(DatasetError, match='cannot make a loader over an empty dataset'):
        make_loader(ds)
    (tmp_path/'cat').mkdir()
    (tmp_path/'cat/readme.txt').write_text('no images here')
    with pytest.raises(DatasetError, match=r'no images with extensions .* under .*files found: cat/readme\.txt'):
        from_folder(tmp_path)


def test_missing_split_name():
    ds = ImageDataset(_table([np.zeros((4, 4, 3), np.uint8)] * 2, splits=['train', 'test']), ['cat'])
    with pytest.raises(DatasetError, match=r"no samples have split 'valid'; the splits are 'train' \(1\), 'test' \(1\)"):
        ds.split('valid')


def test_manifest_missing_column(tmp_path):
    pd.DataFrame({'path': ['a.png'], 'label': ['cat']}).to_csv(tmp_path/'m.csv', index=False)
    with pytest.raises(DatasetError, match=r"manifest .*m\.csv has no column 'target'; columns present: 'path', 'label'"):
        from_manifest(tmp_path/'m.csv', columns={'image': 'path'})
    with pytest.raises(DatasetError, match=r"has no column 'fold'; columns present: 'path', 'label'"):
        from_manifest(tmp_path/'m.csv', columns={'image': 'path', 'target': 'label', 'split': 'fold'})
    with pytest.raises(DatasetError, match=r"has no column 'image'; columns present: 'id', 'path', 'target'.*image_col="):
        ImageDataset(pd.DataFrame({'id': ['a'], 'path': ['a.png'], 'target': [0]}), ['cat'])


def test_bad_image_array():
    ds = ImageDataset(_table([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)]), ['cat'])
    with pytest.raises(DatasetError, match=r"image array of sample 's1' has dtype float32"):
        ds[1]
    assert validate(ds).kinds == ['bad_image'] and validate(ds).problems[0].ids == ['s1']


def test_fingerprint_stable(folder):
    fp = fingerprint(from_folder(folder))
    assert fp == fingerprint(from_folder(folder)) and len(fp) == 64
    shuffled = from_manifest(from_folder(folder).df.sample(frac=1, random_state=0).assign(target=lambda d: d.target.map({0: 'cat', 1: 'dog'})),
                             root=folder)
    assert fingerprint(shuffled) == fp  # row order does not matter
    a = np.asarray(Image.open(folder/'cat/a.png')).copy()
    a[0, 0, 0] ^= 1
    Image.fromarray(a).save(folder/'cat/a.png')
    assert fingerprint(from_folder(folder)) != fp


def test_shapes_deterministic():
    a, b = shapes(40, size=32, seed=3), shapes(40, size=32, seed=3)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(shapes(40, size=32, seed=4))
    np.testing.assert_array_equal(np.stack(a.df.image[:10]), np.stack(shapes(10, size=32, seed=3).df.image))
    for i in range(len(a)):
        ys, xs = np.nonzero(shape_mask(a, i)[0])
        np.testing.assert_array_equal(a.df.boxes[i], [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])


def test_loader_seeding():
    ds = shapes(24, size=16)
    first = lambda seed: next(iter(make_loader(ds, batch_size=8, shuffle=True, seed=seed)))
    (x0, y0), (x1, y1), (x2, y2) = first(0), first(0), first(1)
    assert (x0 == x1).all() and (y0 == y1).all() and not (x0 == x2).all()


def test_loader_workers_seed_numpy():
    "A numpy-drawing transform differs between workers and repeats across runs."
    ds = ImageDataset(_table([np.zeros((2, 2, 3), np.uint8)] * 4), ['cat'], transform=_NumpyDraw())
    draws = lambda: [float(x[0, 0, 0, 0]) for x, _ in make_loader(ds, batch_size=1, num_workers=2, seed=7)]
    d1, d2 = draws(), draws()
    assert d1 == d2 and d1[0] != d1[1]


class _NumpyDraw:
    def __call__(self, x): return x.float() + float(np.random.rand())
