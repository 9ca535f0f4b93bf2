"""Parity of cvkit's TIDE breakdown (hotcoco's oracles) with tidecv 1.0.1, the authors' reference, on synthetic detectors.

tidecv is not a cvkit dependency (it needs opencv and seaborn for plots only, stubbed here). Run:
    pip download --no-deps -d /tmp/tide tidecv==1.0.1 && python -m zipfile -e /tmp/tide/tidecv-1.0.1-py3-none-any.whl /tmp/tide/pkg
    PYTHONPATH=.:/tmp/tide/pkg python benchmarks/tide_parity.py
Measured (2026-11-30): |dAP difference| <= 1.5e-4 over the six error types on three detectors (<= 3e-17 on two of them).
"""
"One-off parity check of cvkit's TIDE breakdown (hotcoco) against tidecv 1.0.1 (unpacked from its wheel, cv2/appdirs stubbed: only its plotting and dataset paths use them)."
import sys, types, warnings
warnings.filterwarnings('ignore')
cv2 = types.ModuleType('cv2'); cv2.FONT_HERSHEY_SIMPLEX = 0; sys.modules['cv2'] = cv2
ad = types.ModuleType('appdirs'); ad.user_data_dir = lambda *a, **k: '/tmp/tide/data'; sys.modules['appdirs'] = ad
sns = types.ModuleType('seaborn'); sns.__getattr__ = lambda name: (lambda *a, **k: [(0, 0, 0)] * 10); sys.modules['seaborn'] = sns
import numpy as np
for _n, _v in (('float', float), ('int', int)):
    if _n not in np.__dict__: setattr(np, _n, _v)
from tidecv import TIDE, Data
from cvkit.evaluate.detection import synthetic_detections
from cvkit.evaluate.det_analysis import tide_errors
for seed, skill in [(0, 0.6), (1, 0.3), (2, 0.85)]:
    p = synthetic_detections(200, seed=seed, skill=skill)
    gt, pr = Data('gt'), Data('pred')
    for r in p.gt.itertuples(): gt.add_ground_truth(r.image_id, int(r.label), [r.x1, r.y1, r.x2 - r.x1, r.y2 - r.y1])
    for r in p.detections.itertuples(): pr.add_detection(r.image_id, int(r.label), float(r.score), [r.x1, r.y1, r.x2 - r.x1, r.y2 - r.y1])
    t = TIDE(); t.evaluate(gt, pr, mode=TIDE.BOX, name='x')
    ref = {k: v / 100 for k, v in t.get_main_errors()['x'].items()}
    ours = tide_errors(p).set_index('error').dAP
    print(f'seed={seed} skill={skill}', {k: (round(ours[k], 4), round(ref[k], 4)) for k in ref}, 'max |diff|', max(abs(ours[k] - ref[k]) for k in ref))
    sp = {k: v / 100 for k, v in t.get_special_errors()['x'].items()}
    print('   special', {k: (round(ours[k2], 4), round(sp[k], 4)) for k, k2 in (('FalsePos', 'FP'), ('FalseNeg', 'FN'))})
