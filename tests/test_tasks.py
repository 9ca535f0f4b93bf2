"The task registry: a new task plugs into evaluate, compare, golden sets and report views by registering; classification is the default."
from dataclasses import dataclass
import numpy as np, pandas as pd, pytest
import cvkit.evaluate.tasks as registry
from cvkit.evaluate.predictions import Predictions
from cvkit.evaluate.report import evaluate, EvalReport, report_sections, predictions_hash, classification_hash
from cvkit.evaluate.compare import compare, compare_classification
from cvkit.evaluate.golden import content_hash, classification_content_hash, freeze_golden, load_golden, check_golden, GoldenError
from cvkit.evaluate.stats import Estimate, bootstrap_mean

@dataclass
class Scores:
    "Toy predictions of a toy 'scoring' task: one real-valued prediction per id."
    ids: np.ndarray; y: np.ndarray; yhat: np.ndarray
    info: dict = None
    def __post_init__(self): self.info = self.info or {}
    def __len__(self): return len(self.ids)

@pytest.fixture
def scoring():
    calls = []
    def ev(p, n_boot=100): calls.append('evaluate'); return dict(metrics=dict(mae=bootstrap_mean(np.abs(p.y - p.yhat), n_boot=n_boot).to_dict()))
    def sections(d): return [dict(level=2, title='MAE', text=None, head=['metric', 'value [CI]'],
                                  rows=[[k, format(Estimate.from_dict(v), '.3f')] for k, v in d['metrics'].items()])]
    def cmp(a, b, **kw): calls.append(('compare', kw)); return float(np.abs(b.yhat - a.yhat).max())
    def golden(p, g, tol=0.0): calls.append('check_golden'); return bool(np.all(np.abs(p.yhat - g.yhat) <= tol))
    registry.register_task('scoring', Scores, resample_unit='image', metrics=('mae',), evaluate=ev, sections=sections, compare=cmp,
                           check_golden=golden, predictions_hash=lambda p: f'h{len(p)}', content_hash=lambda p: 'c')
    yield calls
    del registry.TASKS['scoring']

def test_classification_is_the_default_task():
    t = registry.get_task('classification')
    assert t.predictions_type is Predictions and t.resample_unit == 'sample' and t.metrics == ('accuracy', 'macro_f1', 'nll')
    assert t.op('compare') is compare_classification and t.op('predictions_hash') is classification_hash
    assert t.op('content_hash') is classification_content_hash
    p = Predictions(['a', 'b'], np.eye(2), [0, 1])
    assert predictions_hash(p) == classification_hash(p) and content_hash(p) == classification_content_hash(p)

def test_a_registered_task_runs_through_the_generic_functions(scoring, tmp_path):
    rng = np.random.default_rng(0); y = rng.normal(size=50)
    a, b = Scores(np.arange(50).astype(str), y, y + .1), Scores(np.arange(50).astype(str), y, y + .3)
    rep = evaluate(a, n_boot=50, lineage=dict(seed=1))
    assert rep['task'] == 'scoring' and rep['n'] == 50 and rep['predictions']['sha256'] == 'h50'
    assert rep.metric('mae').value == pytest.approx(0.1)
    back = EvalReport.load(rep.save(tmp_path/'r.json'))                # a report read from disk renders by its task's name
    assert back.to_markdown() == '## MAE\n\n| metric | value [CI] |\n|---|---|\n| mae | 0.100 [0.100, 0.100] |\n'
    assert repr(back) == "EvalReport(n=50, mae=0.1000 [0.1000, 0.1000], slices=[])"
    assert compare(a, b, alpha=0.1) == pytest.approx(0.2) and scoring[-1] == ('compare', dict(alpha=0.1))
    assert check_golden(b, a, tol=0.25) is True and check_golden(b, a) is False
    assert scoring.count('check_golden') == 2

def test_mismatched_and_unknown_tasks_are_refused(scoring):
    p = Predictions(['a', 'b'], np.eye(2), [0, 1]); s = Scores(np.array(['a', 'b']), np.zeros(2), np.zeros(2))
    with pytest.raises(TypeError, match='different tasks'): compare(p, s)
    with pytest.raises(GoldenError, match='different tasks'): check_golden(s, p)
    with pytest.raises(TypeError, match='no task is registered for float'): registry.get_task(1.0)
    with pytest.raises(KeyError, match="no task 'ocr'"): report_sections(dict(task='ocr'))
    with pytest.raises(ValueError, match="already the predictions type of task 'scoring'"): registry.register_task('other', Scores)
    registry.register_task('partial', type('Partial', (), {'__len__': lambda self: 0, 'info': {}}))
    try:
        with pytest.raises(NotImplementedError, match="task 'partial' has no 'evaluate' operation"): evaluate(registry.TASKS['partial'].predictions_type())
    finally: del registry.TASKS['partial']
