"The guards `make test` relies on: pytest's exit code 5 is handled, and clean/export drift is caught."
import shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def test_pytest_exit_code_5_is_success(tmp_path):
    (tmp_path/'test_nothing.py').write_text('# no tests here\n')
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'pytest.py'), str(tmp_path), '-q', '-p', 'no:cacheprovider'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and 'exit code 5' in r.stdout

def test_pytest_failures_still_fail(tmp_path):
    (tmp_path/'test_bad.py').write_text('def test_bad(): assert 1 == 2\n')
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'pytest.py'), str(tmp_path), '-q', '-p', 'no:cacheprovider'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1

@pytest.fixture
def project_copy(tmp_path):
    "A throwaway copy of the nbdev project (notebooks, package, config, CI scripts)."
    dst = tmp_path/'proj'
    for p in ['nbs', 'cvkit', '.ci']: shutil.copytree(ROOT/p, dst/p, ignore=shutil.ignore_patterns('__pycache__'))
    for p in ['settings.ini', 'README.md']: shutil.copy(ROOT/p, dst/p)
    return dst

def _check(proj, what):
    return subprocess.run([sys.executable, str(proj/'.ci'/'check_sync.py'), what], capture_output=True, text=True, cwd=proj)

def test_sync_checks_pass_on_this_tree(project_copy):
    for what in ('clean', 'export'): assert _check(project_copy, what).returncode == 0

def test_hand_edited_module_is_caught(project_copy):
    f = project_copy/'cvkit'/'train.py'
    f.write_text(f.read_text().replace('def warmup_cosine(', '# edited by hand\ndef warmup_cosine(', 1))
    r = _check(project_copy, 'export')
    assert r.returncode == 1 and 'cvkit/train.py' in r.stdout and 'edit the notebook' in r.stdout

def test_uncleaned_notebook_is_caught(project_copy):
    import json
    nb = project_copy/'nbs'/'core'/'00_core.ipynb'
    d = json.loads(nb.read_text()); d['cells'][0]['metadata']['scrolled'] = True; d['cells'][0]['execution_count'] = 7
    nb.write_text(json.dumps(d))
    r = _check(project_copy, 'clean')
    assert r.returncode == 1 and 'nbs/core/00_core.ipynb' in r.stdout

def test_readme_out_of_date_is_caught(project_copy):
    (project_copy/'README.md').write_text('stale\n')
    r = subprocess.run([sys.executable, str(project_copy/'.ci'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode != 0 and 'out of date' in (r.stdout + r.stderr)
