"The OCR peers (rapidocr PP-OCRv6 and Tesseract 5) on rendered lines and pages: CER/WER from jiwer, boxes, errors."
import os
import jiwer
import numpy as np
import pandas as pd
import pytest
from cvkit.models.ocr import (DEGRADATION_LEVELS, RAPIDOCR_PIP, TESSERACT_APT, OCREngine, RapidOCREngine, TesseractEngine, box_iou,
                              degrade, ocr_engine, rapidocr_model_files, render_line, render_page, _no_downloads)

pytestmark = pytest.mark.usefixtures('no_network')   # the engines must run with no network at all

LINES = ['The quick brown fox jumps over the lazy dog', 'Invoice 2026-11 total $17.50', 'Sphinx of black quartz, judge my vow',
         'Call 555-0142 before 9:30 am']
FONTS = ['DejaVu Sans', 'DejaVu Serif']
REFS = [t for f in FONTS for t in LINES]

def _engine(name):
    "The engine, or a skip (outside CI) / failure (in CI) naming what to install."
    try: return ocr_engine(name, threads=1)
    except (ModuleNotFoundError, FileNotFoundError) as e:
        if os.environ.get('CI'): pytest.fail(f'CI must run the {name} OCR tests. {e}')
        pytest.skip(str(e))

@pytest.fixture(scope='module')
def rapid(): return _engine('rapidocr')

@pytest.fixture(scope='module')
def tess(): return _engine('tesseract')

def _lines(level):
    return [degrade(render_line(t, f, 30), **DEGRADATION_LEVELS[level], seed=i) for i, (t, f) in enumerate((t, f) for f in FONTS for t in LINES)]

# Bounds: measured on these 8 lines (2026-11-30) with margin. rapidocr: CER 0.000 clean, 0.026 hard (WER 0.14);
# Tesseract: CER 0.000 clean and medium, 0.47 hard (WER 0.68).
@pytest.mark.parametrize('name,level,max_cer,max_wer', [('rapidocr', 'clean', 0.01, 0.05), ('rapidocr', 'hard', 0.10, 0.35),
                                                        ('tesseract', 'clean', 0.01, 0.05), ('tesseract', 'medium', 0.03, 0.15)])
def test_cer_bounds(name, level, max_cer, max_wer, request):
    e = request.getfixturevalue({'rapidocr': 'rapid', 'tesseract': 'tess'}[name])
    out = e.read_lines(_lines(level))
    assert list(out.columns) == ['text', 'confidence'] and len(out) == len(REFS)
    assert out.confidence.between(0, 1).all()
    cer, wer = jiwer.cer(REFS, list(out.text)), jiwer.wer(REFS, list(out.text))
    assert cer <= max_cer and wer <= max_wer, (name, level, cer, wer, list(out.text))

def test_hard_lines_separate_the_engines(rapid, tess):
    "Measured: under `hard` degradation Tesseract loses far more characters than PP-OCRv6, and says so in its confidence."
    imgs = _lines('hard')
    r, t = rapid.read_lines(imgs), tess.read_lines(imgs)
    cr, ct = jiwer.cer(REFS, list(r.text)), jiwer.cer(REFS, [h or ' ' for h in t.text])
    assert ct > 0.2 and ct > cr + 0.15, (cr, ct)
    assert t.confidence.mean() < tess.read_lines(_lines('clean')).confidence.mean() - 0.2

def test_grey_and_rgb_read_alike(rapid, tess):
    g = render_line('Grey 42 and RGB', 'DejaVu Sans Mono', 30)
    for e in (rapid, tess):
        a, b = e.read_lines([g]), e.read_lines([np.stack([g] * 3, -1)])
        assert a.text[0] == b.text[0] == 'Grey 42 and RGB', (e.name, a.text[0], b.text[0])

@pytest.mark.parametrize('name', ['rapidocr', 'tesseract'])
def test_page_mode_boxes(name, request):
    e = request.getfixturevalue({'rapidocr': 'rapid', 'tesseract': 'tess'}[name])
    lines = ['Quarterly results', 'Revenue grew 12% to $4.2M', 'See page 7 for details']
    page, truth = render_page(lines, 'DejaVu Sans', 26, indent=[0, 40, 80], gap=30)
    p = e.read_page(page)
    assert list(p.columns) == ['x1', 'y1', 'x2', 'y2', 'polygon', 'text', 'confidence'] and len(p) == len(lines)
    iou = box_iou(truth, p)
    assert (iou.max(1) > 0.5).all(), iou
    assert list(p.text[iou.argmax(1)]) == lines and list(p.text) == lines   # reading order, top to bottom
    for poly, (x1, y1, x2, y2) in zip(p.polygon, p[['x1', 'y1', 'x2', 'y2']].to_numpy()):
        a = np.asarray(poly)
        assert a.shape == (4, 2) and np.allclose(a.min(0), [x1, y1]) and np.allclose(a.max(0), [x2, y2])

def test_rapidocr_flags_do_not_carry_over(rapid):
    "rapidocr 3.10 keeps use_det/use_cls/use_rec from the previous call; the engine passes all three every time."
    line = render_line('Costs fell in every region', 'DejaVu Serif', 30)
    page, _ = render_page(['First line here', 'Second line'], 'DejaVu Sans', 26)
    before = rapid.read_lines([line])
    rapid.read_page(page)
    after = rapid.read_lines([line])
    assert after.text[0] == before.text[0] == 'Costs fell in every region'
    assert abs(after.confidence[0] - before.confidence[0]) < 1e-6
    assert rapid.engine.use_det is False and rapid.engine.use_rec is True

def test_rapidocr_uses_only_the_wheel(rapid):
    files = rapidocr_model_files()
    assert {k: str(v) for k, v in files.items()} == {k: str(rapid.engine.cfg[k].model_path) for k in files}
    assert {p.name for p in files['Rec'].parent.iterdir() if p.suffix == '.onnx'} == {p.name for p in files.values()}   # nothing fetched beside them
    from rapidocr.utils.download_file import DownloadFile, DownloadFileInput
    with _no_downloads(), pytest.raises(RuntimeError, match='never downloads'):
        DownloadFile.run(DownloadFileInput(file_url='https://example.invalid/x.onnx', sha256=None, save_path='/tmp/x.onnx', logger=None))

def test_missing_engines_say_what_to_install(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda n, *a: None if n == 'rapidocr' else real(n, *a))
    with pytest.raises(ModuleNotFoundError, match='pip install --no-deps rapidocr==3.10.0'): RapidOCREngine()
    with pytest.raises(FileNotFoundError, match='apt-get install tesseract-ocr tesseract-ocr-eng'): TesseractEngine(binary='/nonexistent/tesseract')
    monkeypatch.setenv('PATH', '/nonexistent')
    if not os.path.isfile('/usr/bin/tesseract'):
        with pytest.raises(FileNotFoundError, match='apt-get install tesseract-ocr'): TesseractEngine()

def test_bad_inputs():
    with pytest.raises(ValueError, match='uint8'): OCREngine().read_lines([np.zeros((10, 10))])
    with pytest.raises(ValueError, match=r'shape \(10, 10, 2\)'): OCREngine().read_page(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match='non-blank'): render_line(' ')
    with pytest.raises(ValueError, match='no OCR engine'): ocr_engine('easyocr')
