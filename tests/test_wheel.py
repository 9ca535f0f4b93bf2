"""`cvkit demo` from a wheel, not a checkout: build the wheel, install it into a fresh virtual environment, run the
demo from a folder outside the repository, and check that neither the `cvkit` command, the sweep runner nor the
notebook's kernel imported the repository's cvkit.

The new environment gets the heavy dependencies (torch, timm, papermill, ...) by a `.pth` file that appends the test
interpreter's site-packages to `sys.path`, instead of a multi-GB install. Python processes `.pth` files only in site
directories, so the outer environment's editable install of cvkit (its own `.pth` and import finder) stays inactive,
and the wheel's cvkit comes first on the path anyway; the test checks where `cvkit` was imported from."""
import json, os, shutil, site, subprocess, sys, sysconfig, venv, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def _run(cmd, timeout=600, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f'{" ".join(map(str, cmd))} exited with {r.returncode}:\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}'
    return r

def _source_tree(dst:Path)->Path:
    "A copy of what a fresh checkout plus uncommitted work holds (no stale build/ folder can leak into the wheel)."
    try: files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): return ROOT          # not a git checkout (an unpacked sdist): build in place
    for f in filter(None, files.decode().split('\0')):
        if (ROOT/f).is_file(): (dst/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT/f, dst/f)
    return dst

@pytest.fixture(scope='module')
def wheel_env(tmp_path_factory):
    "Build the wheel, make a fresh venv that reuses this interpreter's site-packages, install the wheel there."
    tmp = tmp_path_factory.mktemp('wheel')
    src = _source_tree(tmp/'src')
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', tmp/'dist', src])
    whl, = (tmp/'dist').glob('cvkit-*.whl')
    env_dir = tmp/'venv'
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    py = env_dir/'bin'/'python'
    _run([sys.executable, '-m', 'pip', '--python', py, 'install', '--no-deps', '--no-index', '--no-warn-script-location', whl])
    purelib = Path(_run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    outer = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']])
    (purelib/'_outer_site_packages.pth').write_text(''.join(f'{p}\n' for p in outer if Path(p).is_dir() and Path(p) != ROOT))
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'JUPYTER_PATH', 'JUPYTER_DATA_DIR') and not k.startswith('CVKIT_')}
    env.update(PYTHONNOUSERSITE='1', VIRTUAL_ENV=str(env_dir), PATH=f'{py.parent}{os.pathsep}{env.get("PATH", "")}',
               JUPYTER_PREFER_ENV_PATH='1', OMP_NUM_THREADS='1')
    # papermill starts the notebook's kernel, `python3`, from a kernelspec: make it this environment's python
    _run([py, '-m', 'ipykernel', 'install', '--sys-prefix', '--name', 'python3'], env=env)
    work = tmp/'work'; work.mkdir()                 # every command runs here, outside the repository
    return dict(whl=whl, py=py, cvkit=py.parent/'cvkit', env=env, purelib=purelib, work=work, prefix=env_dir)

def test_wheel_ships_the_study_notebooks(wheel_env):
    names = zipfile.ZipFile(wheel_env['whl']).namelist()
    shipped = sorted(n for n in names if '/experiments/' in n or n.startswith('experiments/'))
    repo_nbs = sorted(p.name for p in (ROOT/'experiments').glob('*.ipynb'))
    assert shipped == [f'cvkit/experiments/{n}' for n in repo_nbs] and 'train_eval.ipynb' in repo_nbs, shipped
    for n in repo_nbs: assert zipfile.ZipFile(wheel_env['whl']).read(f'cvkit/experiments/{n}') == (ROOT/'experiments'/n).read_bytes(), n
    assert 'cvkit/cli.py' in names and 'cvkit/_modidx.py' in names

def test_installed_cvkit_is_the_wheel(wheel_env):
    w = wheel_env
    r = _run([w['py'], '-c', 'import cvkit, torch, papermill; from cvkit.cli import flagship_notebook, _checkout_root; '
              'print(cvkit.__file__); print(flagship_notebook()); print(_checkout_root())'], env=w['env'], cwd=w['work'])
    cv, nb, root = r.stdout.split('\n')[:3]
    assert Path(cv).resolve() == (w['purelib']/'cvkit'/'__init__.py').resolve(), r.stdout
    assert Path(nb).resolve() == (w['purelib']/'cvkit'/'experiments'/'train_eval.ipynb').resolve() and root == 'None', r.stdout

def _probe_notebook(path:Path):
    "A study notebook that records which python ran its kernel and where it imported cvkit from."
    import nbformat
    nb = nbformat.v4.new_notebook(metadata=dict(kernelspec=dict(name='python3', display_name='Python 3', language='python')))
    nb.cells = [nbformat.v4.new_code_cell('seed = 0', metadata=dict(tags=['parameters'])),
                nbformat.v4.new_code_cell('import sys, cvkit\nfrom cvkit.lab.track import log_params\n'
                                          'log_params(kernel_python=sys.executable, kernel_prefix=sys.prefix, kernel_cvkit=cvkit.__file__)')]
    nbformat.write(nb, path)

def test_kernel_runs_in_the_new_environment(wheel_env):
    w = wheel_env
    _probe_notebook(w['work']/'probe.ipynb')
    _run([w['cvkit'], 'sweep', 'probe.ipynb', '--root', 'runs', '--name', 'probe', '--no-progress'], env=w['env'], cwd=w['work'])
    run, = [p for p in (w['work']/'runs'/'probe').iterdir() if p.is_dir() and not p.name.startswith('_')]
    p = json.loads((run/'params.json').read_text())
    assert Path(p['kernel_prefix']).resolve() == w['prefix'].resolve(), p
    assert Path(p['kernel_cvkit']).resolve() == (w['purelib']/'cvkit'/'__init__.py').resolve(), p

def test_demo_from_the_wheel_outside_the_repository(wheel_env):
    w = wheel_env
    pkg_nbs = w['purelib']/'cvkit'/'experiments'
    before = sorted(p.name for p in pkg_nbs.iterdir())
    r = _run([w['cvkit'], 'demo', '--backbones', 'cvkit_cnn_tiny', '--seeds', '0', '--epochs', '1', '--workers', '1', '--no-progress',
              '--root', w['work']/'runs', '--name', 'demo'], env=w['env'], cwd=w['work'])
    sweep = w['work']/'runs'/'demo'
    run, = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith('_')]
    status = json.loads((run/'status.json').read_text())
    assert status['status'] == 'completed', status
    from cvkit.lab.store import RunDir
    rd = RunDir(run)   # the run-folder contract names every file
    for f in (rd.notebook, rd.metrics_json, rd.report_json, rd.predictions, rd.lineage_json, rd.estimates_json, rd.checkpoint()):
        assert Path(f).is_file() and Path(f).stat().st_size > 0, f
    meta = json.loads((sweep/'sweep.json').read_text())
    assert Path(meta['notebook']).resolve() == (pkg_nbs/'train_eval.ipynb').resolve(), meta['notebook']   # the packaged copy ran
    assert (sweep/'source.ipynb').read_bytes() == (ROOT/'experiments'/'train_eval.ipynb').read_bytes()
    assert sorted(p.name for p in pkg_nbs.iterdir()) == before                  # nothing was written next to the installed notebook
    from cvkit.evaluate.predictions import Predictions
    m, est = rd.metrics(), rd.estimates()['accuracy']
    assert m['accuracy'] == pytest.approx(Predictions.load(rd.predictions).accuracy, abs=1e-12)
    assert 0.0 <= est['lo'] <= m['accuracy'] == est['value'] <= est['hi'] <= 1.0
    assert '| cvkit_cnn_tiny |' in r.stdout and str(sweep) in r.stdout
