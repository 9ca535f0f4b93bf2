"""JupyterLab as the real client: a real `jupyter lab` server on a free localhost port, driven by headless Chromium.

The test copies the README quickstart (the first code cell of `nbs/index.ipynb`, unchanged) into a temporary root
folder, adds a cell with a cvkit progress bar, opens the notebook in JupyterLab, runs all cells through the UI
(Run > Run All Cells), waits for the kernel to go idle, and checks what a scientist would see: the `EvalReport`
rich HTML table in the output area, the progress bar drawn as a widget, and no cell with an error. It saves the
notebook through the UI and reads it back through the server's REST API to check every cell ran without an error
output. Screenshots go to test-artifacts/jupyterlab/; the docs show a copy (docs/assets/jupyterlab.png).

The server runs in its own process group; the fixture shuts it down through the REST API and then kills the
server, its kernels and anything left in its group, even when the test fails.
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from browser import chromium_driver

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT/'test-artifacts'/'jupyterlab'
DOCS_SHOT = ROOT/'docs'/'assets'/'jupyterlab.png'

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _quickstart_notebook(dst:Path):
    "The index quickstart cell as users read it, a report display, and a progress-bar cell."
    index = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    quick = next(c for c in index['cells'] if c['cell_type'] == 'code' and 'evaluate(' in ''.join(c['source']))
    code = lambda src: dict(cell_type='code', execution_count=None, metadata={}, outputs=[], source=src)
    cells = [dict(cell_type='markdown', metadata={}, source='# cvkit in JupyterLab\n\nThe README quickstart.'),
             code(''.join(quick['source'])),
             code('from cvkit.core import progress_bar\nfor _ in progress_bar(range(50), desc="cvkit"): pass')]
    nb = dict(cells=cells, metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3 (ipykernel)',
                                                    'language': 'python'}}, nbformat=4, nbformat_minor=5)
    dst.write_text(json.dumps(nb))

def _api(base, path, token, method='GET', timeout=10):
    req = urllib.request.Request(f'{base}{path}', method=method, headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(req, timeout=timeout) as r: return json.loads(r.read() or b'null')

def _stop(proc, base, token):
    "Shut the server and its kernels down; whatever survives (kernels run in their own sessions) is killed."
    import psutil
    try: kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess: kids = []
    try: _api(base, '/api/shutdown', token, method='POST', timeout=5)
    except Exception: pass
    try: proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try: os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        proc.wait(timeout=10)
    for k in kids:
        try: k.kill()
        except psutil.NoSuchProcess: pass
    psutil.wait_procs(kids, timeout=10)

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if shutil.which('jupyter-lab', path=str(Path(sys.executable).parent)) is None:
        msg = 'jupyterlab is not installed in this environment: `make install` (it is a dev dependency)'
        if os.environ.get('CI'): pytest.fail(msg)
        pytest.skip(msg)
    root = tmp_path_factory.mktemp('lab')
    _quickstart_notebook(root/'quickstart.ipynb')
    settings = root.parent/'lab-settings'   # user settings: every cell in the DOM, no news prompt (offline)
    (settings/'@jupyterlab'/'notebook-extension').mkdir(parents=True)
    (settings/'@jupyterlab'/'notebook-extension'/'tracker.jupyterlab-settings').write_text('{"windowingMode": "none"}')
    (settings/'@jupyterlab'/'apputils-extension').mkdir(parents=True)
    (settings/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings').write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    base = f'http://127.0.0.1:{port}'
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep),
           'JUPYTER_PLATFORM_DIRS': '1', 'OMP_NUM_THREADS': '1',
           'JUPYTERLAB_SETTINGS_DIR': str(settings), 'JUPYTERLAB_WORKSPACES_DIR': str(root.parent/'lab-workspaces')}
    env.pop('CI', None)  # the kernel must behave as on a scientist's machine (widgets, not CI text bars)
    log = open(root.parent/'jupyterlab.log', 'w')
    proc = subprocess.Popen([str(Path(sys.executable).parent/'jupyter-lab'), '--no-browser', '--allow-root',
                             f'--port={port}', '--ip=127.0.0.1', f'--ServerApp.token={token}', '--ServerApp.password=',
                             f'--ServerApp.root_dir={root}', '--LabApp.extension_manager=readonly',
                             '--ServerApp.port_retries=0', '--LabApp.news_url=None',  # offline: no news, no update check
                             '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try: _api(base, '/api/status', token, timeout=2); break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush(); pytest.fail(f'jupyter lab did not start:\n{(root.parent/"jupyterlab.log").read_text()[-3000:]}')
                time.sleep(0.5)
        yield dict(base=base, token=token, root=root, proc=proc)
    finally:
        _stop(proc, base, token)
        log.close()

@pytest.fixture(scope='module')
def browser():
    d = chromium_driver('the JupyterLab browser test', window='1400,1100')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()

def _until(cond, timeout, what, d=None):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = cond()
            if v: return v
        except Exception: pass
        time.sleep(0.5)
    if d is not None: d.save_screenshot(str(ARTIFACTS/'failure.png'))
    pytest.fail(f'timed out after {timeout} s waiting for {what} (screenshot: {ARTIFACTS/"failure.png"})')

def _click_menu(d, menu, item):
    from selenium.webdriver.common.by import By
    d.find_element(By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel') and text()='{menu}']").click()
    path = f"//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,'lm-Menu-itemLabel') and text()='{item}']]"
    _until(lambda: d.find_element(By.XPATH, path).is_displayed(), 10, f'{menu} > {item}', d)
    d.find_element(By.XPATH, path).click()

def test_quickstart_runs_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    d, base, token = browser, lab['base'], lab['token']
    d.get(f'{base}/lab/tree/quickstart.ipynb?token={token}')
    prompts = lambda: d.find_elements(By.CSS_SELECTOR, '.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')
    _until(lambda: len(prompts()) == 2, 90, 'the notebook to open with its 2 code cells', d)
    idle = lambda: [k['execution_state'] for k in _api(base, '/api/kernels', token)] == ['idle']
    _until(idle, 90, 'the kernel to start', d)

    _click_menu(d, 'Run', 'Run All Cells')
    done = lambda: all(p.text.strip() not in ('', '[ ]:', '[*]:') for p in prompts()) and idle()
    _until(done, 240, 'all cells to run and the kernel to go idle', d)

    outputs = d.find_elements(By.CSS_SELECTOR, '.jp-Cell .jp-OutputArea-output')
    report = [o for o in outputs if o.find_elements(By.CSS_SELECTOR, 'table') and 'accuracy' in o.text]
    assert report, 'no EvalReport HTML table in the output area'
    assert 'Calibration' in report[0].text or 'ECE' in report[0].text
    widgets = d.find_elements(By.CSS_SELECTOR, '.jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output progress')
    assert widgets, 'the progress bar did not render as a widget'
    errors = d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert not errors and 'Traceback' not in d.find_element(By.CSS_SELECTOR, '.jp-Notebook').text
    d.execute_script('arguments[0].scrollIntoView({block: "start"})', d.find_element(By.CSS_SELECTOR, '.jp-CodeCell'))
    time.sleep(0.5)
    d.save_screenshot(str(ARTIFACTS/'quickstart.png'))
    if os.environ.get('CVKIT_UPDATE_SCREENSHOT'): shutil.copy(ARTIFACTS/'quickstart.png', DOCS_SHOT)

    _click_menu(d, 'File', 'Save Notebook')
    saved = lambda: _api(base, '/api/contents/quickstart.ipynb?content=1', token)['content']
    _until(lambda: all(c.get('execution_count') for c in saved()['cells'] if c['cell_type'] == 'code'), 30,
           'the executed notebook to be saved', d)
    cells = [c for c in saved()['cells'] if c['cell_type'] == 'code']
    assert not [o for c in cells for o in c['outputs'] if o['output_type'] == 'error']
    mimes = {m for c in cells for o in c['outputs'] for m in o.get('data', {})}
    assert {'text/html', 'application/vnd.jupyter.widget-view+json'} <= mimes

def test_progress_bars_are_text_outside_a_notebook_frontend():
    "Under papermill (the sweep sets CVKIT_PROGRESS=text) and in CI logs the same bar prints plain text."
    code = 'from cvkit.core import progress_bar\nfor _ in progress_bar(range(3), desc="cvkit"): pass\nprint(type(progress_bar(range(1))).__module__)'
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode == 0 and r.stdout.strip() == 'tqdm.std' and 'cvkit: 100%' in r.stderr

def test_sweep_runs_log_text_bars_not_widgets(tmp_path):
    "A papermill run started by `cvkit sweep` is a notebook kernel too; its saved notebook holds a text bar."
    from test_sweep import study, cli
    from cvkit.lab.store import SweepDir
    nb = study(tmp_path/'s.ipynb', body='from cvkit.core import progress_bar\nfor _ in progress_bar(range(5), desc="cvkit"): pass')
    env = {k: v for k, v in os.environ.items() if k not in ('CI', 'CVKIT_PROGRESS')}   # as on a scientist's machine
    r = cli('sweep', nb, '-p', 'x=1', '--root', tmp_path, '--name', 'bars', env=env)
    assert r.returncode == 0, r.stderr
    run = next(iter(SweepDir(tmp_path/'bars').runs()))
    outputs = [o for c in json.loads(run.notebook.read_text())['cells'] for o in c.get('outputs', [])]
    assert any(o['output_type'] == 'stream' and 'cvkit: 100%' in ''.join(o['text']) for o in outputs)
    assert not any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outputs)
