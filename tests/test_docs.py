"""The docs site: the generator (discovery, nbdev processing, link checks) and the built site in a real browser.

The browser test serves site/ on localhost and drives headless Chromium (Debian's `chromium` and
`chromium-driver`) with Selenium. It reuses site/ when it is newer than every input (`make docs` ran),
otherwise it builds it. Screenshots go to test-artifacts/docs/.
"""
import functools, importlib.util, json, os, shutil, subprocess, sys, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest
from browser import chromium_driver

ROOT = Path(__file__).resolve().parent.parent
SITE, ARTIFACTS = ROOT/'site', ROOT/'test-artifacts'/'docs'

spec = importlib.util.spec_from_file_location('cvkit_docs_build', ROOT/'.ci'/'docs.py')
docs = importlib.util.module_from_spec(spec); spec.loader.exec_module(docs)

# ------------------------------------------------------------------ the generator, without a browser
def test_every_notebook_gets_a_page_grouped_by_stage():
    pages = docs.discover()
    srcs = {p['src'] for p in pages}
    expected = {p for p in (ROOT/'nbs').rglob('*.ipynb') if not docs._skip(p.relative_to(ROOT/'nbs'))}
    expected |= {p for p in (ROOT/'experiments').rglob('*.ipynb') if not docs._skip(p.relative_to(ROOT/'experiments'))}
    assert srcs == expected
    nav = docs.make_nav(pages)
    assert nav[0] == {'Home': 'index.ipynb'}
    sections = [next(iter(d)) for d in nav[1:]]
    order = [docs.STAGE_TITLES[s] for s in docs.STAGES if docs.STAGE_TITLES[s] in sections]
    assert [s for s in sections if s in order] == order            # lifecycle order
    evaluate = [list(d.items())[0] for d in next(d for d in nav if 'Evaluate' in d)['Evaluate']]
    titles = {docs.nb_title(ROOT/'nbs'/'evaluate'/'07_report.ipynb')[0]: 'evaluate/report.ipynb'}
    assert set(titles.items()) <= set(evaluate)                     # titled by the notebook's `# Title`
    in_order = [docs.page_rel(p).as_posix() for p in sorted((ROOT/'nbs'/'evaluate').glob('*.ipynb'))]
    assert [p for _, p in evaluate] == in_order                      # NN_ prefix order within a stage

def test_nav_places_new_stages_and_studies():
    P = lambda stage, rel, title: dict(src=None, rel=Path(rel), stage=stage, title=title)
    pages = [P('lab', 'lab/sweep.ipynb', 'Sweeps'), P(None, 'index.ipynb', 'cvkit'), P('zoo', 'zoo/a.ipynb', 'A'),
             P('core', 'core/core.ipynb', 'Core'), P(docs.STUDIES, 'studies/s.ipynb', 'Study'),
             P('robustness', 'robustness/suite.ipynb', 'Suite')]
    nav = docs.make_nav(pages)
    assert [next(iter(d)) for d in nav] == ['Home', 'Core', 'Robustness', 'Lab', 'Zoo', 'Studies']
    assert nav[2] == {'Robustness': [{'Suite': 'robustness/suite.ipynb'}]}

def test_page_paths_follow_nbdev_urls():
    assert docs.page_rel(ROOT/'nbs'/'evaluate'/'07_report.ipynb') == Path('evaluate/report.ipynb')
    assert docs.page_rel(ROOT/'nbs'/'data'/'03a_extra.ipynb') == Path('data/extra.ipynb')
    assert docs.page_rel(ROOT/'experiments'/'finetune.ipynb') == Path('studies/finetune.ipynb')

def _cell(kind, src, **kw): return {'cell_type': kind, 'metadata': {}, 'source': src, **({'outputs': [], 'execution_count': None} if kind == 'code' else {}), **kw}

def test_nbdev_processing_hides_strips_and_documents(tmp_path):
    nb = {'cells': [_cell('markdown', '# Tiny module\n> One line summary.\n\nWhy it exists.'),
                    _cell('code', '#| default_exp tiny'),
                    _cell('code', '#| hide\nfrom fastcore.test import *'),
                    _cell('code', '#| export\ndef area(w:float, # width in pixels\n         h:float=2.0 # height in pixels\n        )->float:\n    "Area of a `w` by `h` box."\n    return w*h'),
                    _cell('code', '#| slow\narea(3)', outputs=[{'output_type': 'execute_result', 'execution_count': 1, 'metadata': {}, 'data': {'text/plain': ['6.0']}}]),
                    _cell('markdown', 'Inline math $\\hat p_i = \\max_k p_{ik}$ and code `$x$`.')],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    src = ROOT/'nbs'/'_tmp_docs_test'/'00_tiny.ipynb'   # inside nbs/ for nbdev's config; `_` dirs are never pages
    src.parent.mkdir(exist_ok=True)
    try:
        src.write_text(json.dumps(nb))
        dst = tmp_path/'tiny.ipynb'
        cwd = os.getcwd(); os.chdir(ROOT)
        try: docs.process_nb(str(src), str(dst), 'tiny/tiny.ipynb')
        finally: os.chdir(cwd)
    finally: shutil.rmtree(src.parent)
    cells = json.loads(dst.read_text())['cells']
    text = json.dumps(cells)
    assert cells[0]['source'].startswith('# Tiny module\n\n> One line summary.') and 'Why it exists.' in cells[0]['source']
    assert 'fastcore.test' not in text and 'default_exp' not in text and '#|' not in text   # hidden cells, directives gone
    api = [c for c in cells if 'cvk-api' in c['metadata'].get('tags', [])]
    assert len(api) == 1 and '### area' in api[0]['source']                                  # show_doc API entry
    assert 'width in pixels' in api[0]['source'] and 'Area of a `w` by `h` box.' in api[0]['source']
    assert 'return w*h' not in text and '```python\ndef area(' in api[0]['source']         # source hidden, signature shown
    code = [c for c in cells if c['cell_type'] == 'code']
    assert [c['source'] for c in code] == ['area(3)'] and code[0]['outputs'][0]['data']['text/plain'] == ['6.0']
    assert 'data:image/svg+xml;base64,' in cells[-1]['source'] and '`$x$`' in cells[-1]['source']  # math offline

def test_link_check_catches_broken_links_and_network_assets(tmp_path):
    (tmp_path/'a').mkdir()
    (tmp_path/'index.html').write_text('<h1 id="top">x</h1><a href="a/b.html#ok">fine</a><a href="a/b.html#nope">bad anchor</a>'
                                       '<a href="missing.html">gone</a><a href="https://example.org/">external link is fine</a>')
    (tmp_path/'a'/'b.html').write_text('<h2 id="ok">ok</h2><img src="../index.html"><script src="https://cdn.jsdelivr.net/x.js"></script>')
    _, problems = docs.check_site(tmp_path)
    text = '\n'.join(problems)
    assert "broken anchor 'a/b.html#nope'" in text and "broken link 'missing.html'" in text
    assert 'loads <script src="https://cdn.jsdelivr.net/x.js">' in text
    assert 'a/b.html#ok' not in text and 'example.org' not in text and len(problems) == 4  # + the CDN mention

# ------------------------------------------------------------------ the built site, in Chromium
def _inputs_mtime():
    files = [ROOT/'mkdocs.yml', ROOT/'.ci'/'docs.py', *(ROOT/'docs').rglob('*'), *(p['src'] for p in docs.discover())]
    return max(f.stat().st_mtime for f in files if f.is_file() and '__pycache__' not in f.parts)

@pytest.fixture(scope='module')
def site():
    "site/, rebuilt when any notebook, the generator or its config is newer; then link-checked."
    fresh = (SITE/'index.html').exists() and (SITE/'index.html').stat().st_mtime >= _inputs_mtime()
    cmd = [sys.executable, str(ROOT/'.ci'/'docs.py')] + (['--check-only'] if fresh else [])
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}'
    return SITE

@pytest.fixture(scope='module')
def server(site):
    handler = functools.partial(type('Quiet', (SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}), directory=str(site))
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown(); httpd.server_close()

@pytest.fixture(scope='module')
def browser():
    d = chromium_driver('the docs browser test')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()

def _wait(cond, timeout=20):
    t = time.time()
    while time.time() - t < timeout:
        r = cond()
        if r: return r
        time.sleep(0.2)
    return cond()

def _visible_plots(d):
    "Rendered plot images in notebook outputs: loaded (naturalWidth > 0), displayed, with a real size."
    return d.execute_script("""
        return [...document.querySelectorAll('.jp-OutputArea-output img')].filter(i =>
            i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 100 &&
            getComputedStyle(i).display !== 'none' && getComputedStyle(i).visibility !== 'hidden'
        ).map(i => [i.naturalWidth, i.naturalHeight]);""")

def _offsite_requests(d, base):
    return d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                            ".filter(n => !n.startsWith(arguments[0]) && !n.startsWith('data:'))", base)

def test_landing_page(browser, server):
    d = browser
    d.get(server + 'index.html')
    assert d.title.startswith('cvkit')
    h1 = d.find_element('css selector', 'article h1')
    assert h1.is_displayed() and h1.text.strip().rstrip('¶').strip() == 'cvkit'
    nav = [e.get_attribute('textContent').strip() for e in d.find_elements('css selector', '.md-nav--primary .md-nav__item--section > label, .md-nav--primary .md-nav__item--section > .md-nav__link')]
    assert {'Core', 'Data', 'Models', 'Evaluate'} <= {n.split('\n')[0].strip() for n in nav}, nav
    assert _offsite_requests(d, server) == []          # nothing but the local server: the page works offline
    d.save_screenshot(str(ARTIFACTS/'landing.png'))

def test_module_page_shows_api_and_plots(browser, server):
    d = browser
    d.get(server + 'evaluate/report.html')
    title = docs.nb_title(ROOT/'nbs'/'evaluate'/'07_report.ipynb')[0]
    assert d.title.startswith(title)
    h1 = d.find_element('css selector', 'article h1')
    assert h1.is_displayed() and title in h1.text
    api = d.find_element('id', 'evaluate')             # the show_doc entry of cvkit.evaluate.report.evaluate
    assert api.tag_name == 'h3' and api.text.startswith('evaluate')
    d.execute_script('arguments[0].scrollIntoView({block: "start"})', api)
    assert api.is_displayed()
    sig = api.find_element('xpath', 'following::pre[1]')     # its signature, with the docments comments
    assert 'preds' in sig.text and 'def evaluate(' in sig.text
    d.save_screenshot(str(ARTIFACTS/'module_api.png'))
    plots = _wait(lambda: _visible_plots(d))
    assert plots, 'no rendered plot image on evaluate/report.html'
    img = d.find_element('css selector', '.jp-OutputArea-output img')
    d.execute_script('arguments[0].scrollIntoView({block: "center"})', img)
    assert img.is_displayed()
    assert _offsite_requests(d, server) == []
    d.save_screenshot(str(ARTIFACTS/'module_plot.png'))
    d.execute_script('window.scrollTo(0, 0)')
    d.save_screenshot(str(ARTIFACTS/'module.png'))

def test_search_works_offline(browser, server):
    d = browser
    d.get(server + 'index.html')
    box = d.find_element('css selector', 'input.md-search__input')
    d.execute_script('arguments[0].focus()', box)
    box.send_keys('calibration')
    hits = _wait(lambda: [e.text for e in d.find_elements('css selector', '.md-search-result__item') if e.text.strip()])
    assert hits and any('alibration' in h for h in hits), hits
    d.save_screenshot(str(ARTIFACTS/'search.png'))
