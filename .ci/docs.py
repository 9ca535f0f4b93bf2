"""Build the cvkit docs site (`make docs`).

    notebooks (nbs/**, experiments/*)
      --nbdev processors (hidden cells, directives, show_doc API entries)-->  _proc/docs/**.ipynb + nav.json
      --mkdocs-material + mkdocs-jupyter (saved outputs, never executed)-->   site/
      --checks: every internal link, anchor and asset resolves; nothing loads from the network

Notebooks are discovered, never listed: a new `nbs/<stage>/NN_topic.ipynb` or `experiments/*.ipynb`
appears in the navigation under its lifecycle stage, titled by its first `# Title` markdown cell.
Processing is cached in `_proc/` (a notebook is re-processed when it, this script or settings.ini
changes); `--force` rebuilds everything.

Usage: python .ci/docs.py [--force] [--jobs N] [--check-only]
"""
import argparse, base64, html, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
NBS, EXPERIMENTS = ROOT/'nbs', ROOT/'experiments'
PROC = ROOT/'_proc'
DOCS = PROC/'docs'           # mkdocs docs_dir (generated; gitignored); the navigation goes to _proc/nav.json
SITE = ROOT/'site'           # mkdocs site_dir (gitignored)
ASSETS = ROOT/'docs'         # hand-written assets copied into DOCS (CSS, ...)

# Lifecycle order of the navigation. Folders not listed here still appear (after these, A-Z), so a new
# stage never breaks the build; experiments/ become "Studies", always last.
STAGES = ['core', 'data', 'curate', 'models', 'train', 'adapt', 'evaluate', 'robustness', 'deploy', 'govern', 'monitor', 'lab', 'cli']
STAGE_TITLES = {'core': 'Core', 'data': 'Data', 'curate': 'Curate', 'models': 'Models', 'train': 'Train', 'adapt': 'Adapt', 'evaluate': 'Evaluate',
                'robustness': 'Robustness', 'deploy': 'Deploy', 'govern': 'Govern', 'monitor': 'Monitor',
                'lab': 'Lab', 'cli': 'Command line'}
STUDIES = 'Studies'
DOC_HOST = 'https://cvkit.github.io/cvkit/'   # nbdev's doc links (settings.ini doc_host + doc_baseurl)

# ---------------------------------------------------------------------------------------- discovery
def _skip(p):
    return any(part.startswith(('.', '_')) or part == 'ipynb_checkpoints' for part in p.parts)

def page_rel(src):
    "Where notebook `src` lands in the site: nbs/evaluate/07_report.ipynb -> evaluate/report.ipynb (nbdev's URLs)."
    src = Path(src)
    if src.is_relative_to(EXPERIMENTS): rel = Path('studies')/src.relative_to(EXPERIMENTS)
    else: rel = src.relative_to(NBS)
    return rel.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.name.lower()))

def nb_title(src):
    "Title and summary from the notebook's first `# Title` / `> summary` markdown cell."
    nb = json.loads(Path(src).read_text(encoding='utf-8'))
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        s = ''.join(c['source'])
        m = re.search(r'^#\s+(\S.*?)\s*$', s, flags=re.M)
        if m:
            d = re.search(r'^>\s+(\S.*?)\s*$', s, flags=re.M)
            return m.group(1), (d.group(1) if d else '')
    return Path(src).stem, ''

def discover():
    "Every notebook the site shows, as dicts: src, rel (page path), stage, title."
    srcs = [p for p in sorted(NBS.rglob('*.ipynb')) if not _skip(p.relative_to(NBS))]
    if EXPERIMENTS.exists(): srcs += [p for p in sorted(EXPERIMENTS.rglob('*.ipynb')) if not _skip(p.relative_to(EXPERIMENTS))]
    pages, seen = [], {}
    for src in srcs:
        rel = page_rel(src)
        if rel in seen:  # two notebooks whose names differ only by their number prefix: keep the prefix
            rel = src.relative_to(EXPERIMENTS if src.is_relative_to(EXPERIMENTS) else NBS)
        seen[rel] = src
        if src.is_relative_to(EXPERIMENTS): stage = STUDIES
        elif len(src.relative_to(NBS).parts) == 1: stage = None  # index.ipynb and other top-level pages
        else: stage = src.relative_to(NBS).parts[0]
        pages.append(dict(src=src, rel=rel, stage=stage, title=nb_title(src)[0]))
    return pages

def make_nav(pages):
    "mkdocs nav: Home, then one section per lifecycle stage in STAGES order, then Studies."
    top = [p for p in pages if p['stage'] is None]
    home = [p for p in top if p['rel'].name == 'index.ipynb']
    nav = [{'Home': p['rel'].as_posix()} for p in home]
    nav += [{p['title']: p['rel'].as_posix()} for p in top if p not in home]
    stages = [s for s in STAGES if any(p['stage'] == s for p in pages)]
    stages += sorted({p['stage'] for p in pages} - set(STAGES) - {None, STUDIES})
    if any(p['stage'] == STUDIES for p in pages): stages.append(STUDIES)
    for s in stages:
        nav.append({STAGE_TITLES.get(s, s.replace('_', ' ').title()):
                    [{p['title']: p['rel'].as_posix()} for p in pages if p['stage'] == s]})
    return nav

# ---------------------------------------------------------------------------------------- processing
_re_dir = re.compile(r'^\s*#\|\s*(.*?)\s*$')
_re_doclink = re.compile(re.escape(DOC_HOST) + r'([^)\s"\'#]+\.html)(#[^)\s"\']*)?')

def _directives(src):
    "nbdev/quarto `#| name: value` directives of a code cell, as {name: value}."
    d = {}
    for line in src.splitlines():
        m = _re_dir.match(line)
        if not m: continue
        k, _, v = m.group(1).partition(':') if ':' in m.group(1).split()[0] else (m.group(1).split()[0], '', '')
        d[k.strip()] = v.strip().lower()
    return d

def _strip_directives(src):
    return '\n'.join(l for l in src.splitlines() if not _re_dir.match(l)).strip('\n')

def _local_links(text, page):
    "nbdev's doc links (https://cvkit.github.io/cvkit/x/y.html#a) -> relative links inside this site."
    here = Path(page).parent
    def sub(m): return os.path.relpath(m.group(1), here if str(here) != '.' else '.') + (m.group(2) or '')
    return _re_doclink.sub(sub, text)

_re_srclink = re.compile(r'\[source\]\((\S+?)\)\{target="_blank"[^}]*\}')
def _showdoc_md(md):
    """show_doc markdown made portable: pandoc link attributes -> HTML (mistune does not read `{...}`), and
    nbdev's doc links taken out of the signature code block, where they would show as raw markdown."""
    md = _re_srclink.sub(lambda m: f'<a class="cvk-source" href="{m.group(1)}" target="_blank">source</a>', md)
    return re.sub(r'```.*?```', lambda m: re.sub(r'\[(`[^`\]]+`)\]\([^)\s]*\)', r'\1', m.group(0)), md, flags=re.S)

# Math: no CDN MathJax offline, so `$...$` / `$$...$$` in markdown is rendered at build time to SVG with
# matplotlib's mathtext (a TeX subset); anything it cannot parse stays as TeX in a code span.
_re_code = re.compile(r'(```.*?```|`[^`\n]*`)', flags=re.S)
_re_math = re.compile(r'\$\$(.+?)\$\$|(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<![\s\\])\$(?![\w$])', flags=re.S)
_MATH_PT = 11.0
_math_cache = {}
_TEX_ALIASES = [(r'\\le', r'\leq'), (r'\\ge', r'\geq'), (r'\\ne', r'\neq'), (r'\\lvert', '|'), (r'\\rvert', '|'),
                (r'\\lVert', r'\Vert'), (r'\\rVert', r'\Vert'), (r'\\tfrac', r'\frac'), (r'\\dfrac', r'\frac'),
                (r'\\operatorname', r'\mathrm'), (r'\\text', r'\mathrm'), (r'\\textrm', r'\mathrm'), (r'\\mid', '|')]

def _tex_svg(tex, display):
    key = (tex, display)
    if key in _math_cache: return _math_cache[key]
    import io
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import figure, font_manager, mathtext
    matplotlib.rcParams['mathtext.fontset'] = 'cm'
    matplotlib.rcParams['svg.fonttype'] = 'path'
    prop = font_manager.FontProperties(size=_MATH_PT)
    t = ' '.join(tex.split())
    t = re.sub(r'\\frac\s*(\w)\s*(\w)', r'\\frac{\1}{\2}', t)  # \frac1n (TeX shorthand) -> \frac{1}{n}
    for a, b in _TEX_ALIASES: t = re.sub(a + r'(?![a-zA-Z])', lambda m: b, t)  # LaTeX names mathtext lacks
    w, h, d, _, _ = mathtext.MathTextParser('path').parse(f'${t}$', dpi=72, prop=prop)
    fig = figure.Figure(figsize=(w/72, h/72))
    fig.text(0, d/h, f'${t}$', fontproperties=prop)
    buf = io.BytesIO(); fig.savefig(buf, format='svg', dpi=72, transparent=True)
    svg = base64.b64encode(buf.getvalue()).decode()
    em = lambda v: f'{v/_MATH_PT:.3f}em'
    cls = 'cvk-math cvk-math-display' if display else 'cvk-math'
    img = (f'<img class="{cls}" alt="{html.escape(tex.strip())}" src="data:image/svg+xml;base64,{svg}" '
           f'style="height:{em(h)};vertical-align:-{em(d)}">')
    if display: img = f'<span class="cvk-math-block">{img}</span>'
    _math_cache[key] = img
    return img

def _render_math(md):
    def one(m):
        tex, display = (m.group(1), True) if m.group(1) is not None else (m.group(2), False)
        try: return _tex_svg(tex, display)
        except Exception:  # shown as TeX; backslashes as entities so markdown does not eat them
            return f'<code class="cvk-tex">{html.escape(tex.strip()).replace(chr(92), "&#92;").replace("*", "&#42;")}</code>'
    parts = _re_code.split(md)  # leave code spans and fences alone
    return ''.join(p if i % 2 else _re_math.sub(one, p) for i, p in enumerate(parts))

def _out_markdown(o):
    d = o.get('data', {}).get('text/markdown')
    return None if d is None else (''.join(d) if isinstance(d, list) else d)

def _title_cell(nb, fm, orig):
    "The page heading: `# Title`, the summary as a lead, and any prose that shared the title cell."
    title = fm.get('title') or nb_title(orig)[0]
    s = f'# {title}\n'
    if fm.get('description'): s += f'\n> {fm["description"]}\n'
    src = json.loads(Path(orig).read_text(encoding='utf-8'))
    for c in src['cells']:
        if c['cell_type'] == 'markdown' and re.search(r'^#\s+\S', ''.join(c['source']), flags=re.M):
            lines = ''.join(c['source']).splitlines()
            yml = [l for l in lines if re.match(r'^-\s+\S.*:.*\S\s*$', l)]
            try: import yaml; yaml.safe_load('\n'.join(l[1:].strip() for l in yml)); drop = set(yml)  # nbdev read them as metadata
            except Exception: drop = set()                                                     # ... or they are prose
            rest = [l for l in lines if not re.match(r'^(#\s+\S|>\s+\S)', l) and l not in drop]
            if '\n'.join(rest).strip(): s += '\n' + '\n'.join(rest).strip() + '\n'
            break
    return {'cell_type': 'markdown', 'metadata': {}, 'source': s}

def process_nb(src, dst, rel):
    "nbdev-process one notebook into a plain .ipynb mkdocs-jupyter renders as nbdev/quarto would."
    os.environ['IN_TEST'] = '1'
    from execnb.nbio import read_nb, nb2dict
    import ast
    from nbdev.process import Processor
    from nbdev.processors import FilterDefaults, exec_show_docs, _is_showdoc, cell_lang
    from execnb.shell import CaptureShell

    class exec_api(Processor):
        """nbdev's exec_show_docs, made safe for docs builds: it runs exported cells and only the *import
        statements* of other cells (never a notebook's test code), then every show_doc after all exported
        cells, so forward references in signatures resolve."""
        def begin(self):
            self.k, self.deferred = CaptureShell(), []
            self.k.run_cell('from nbdev.showdoc import show_doc')
        def _run(self, cell, code=None):
            if code is None: self.k.cell(cell)
            else: self.k.run_cell(code)
            if self.k.exc:
                raise Exception(f'cell {cell.idx_} failed while building its API entries:\n{cell.source}') from self.k.exc
        def __call__(self, cell):
            if not self.nb.has_docs_ or cell.cell_type != 'code' or not cell.source or cell_lang(cell) != 'python': return
            if cell.directives_.get('eval:', [''])[0].lower() == 'false': return
            if cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}: return self._run(cell)
            if _is_showdoc(cell): return self.deferred.append(cell)
            try: tree = ast.parse(cell.source)
            except SyntaxError: return  # magics etc.: not needed for API entries
            imps = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            if imps: self._run(cell, '\n'.join(imps))
        def end(self):
            for cell in self.deferred: self._run(cell)

    class Filter(FilterDefaults):
        def base_procs(self):
            return [exec_api if p is exec_show_docs else p for p in super().base_procs()]

    nb = read_nb(src)
    Filter()(nb)
    fm = getattr(nb, 'frontmatter_', {}) or {}
    cells = []
    for c in nb2dict(nb)['cells']:
        src_text = c.get('source')
        if src_text is None: continue                     # #| hide, #| export, default_exp: gone, outputs too
        src_text = ''.join(src_text) if isinstance(src_text, list) else src_text
        if c['cell_type'] == 'raw':
            if src_text.lstrip().startswith('---'): continue  # nbdev frontmatter: rebuilt as the title cell
            cells.append(c); continue
        if c['cell_type'] == 'markdown':
            c['source'] = _local_links(_render_math(src_text), rel)
            c['metadata'] = {}
            cells.append(c); continue
        d = _directives(src_text)
        if d.get('include') == 'false': continue
        outputs = c.get('outputs', [])
        if d.get('output') == 'false': outputs = []
        if d.get('output') == 'asis':                     # show_doc and friends: the output *is* the page text
            mds = [m for m in map(_out_markdown, outputs) if m]
            if mds:
                md = _local_links(_showdoc_md('\n\n'.join(mds)), rel)
                cells.append({'cell_type': 'markdown', 'metadata': {'tags': ['cvk-api']},
                              'source': f'<div class="cvk-api-marker"></div>\n\n{md}'})
            continue
        for o in outputs:
            m = _out_markdown(o)
            if m is not None: o['data']['text/markdown'] = _local_links(m, rel)
        code = _strip_directives(src_text)
        tags = list(c.get('metadata', {}).get('tags', []))
        if d.get('echo') == 'false' or not code.strip(): tags.append('remove_input')
        if not code.strip() and not outputs: continue
        c.update(source=code, outputs=outputs, metadata={'tags': tags} if tags else {})
        cells.append(c)
    cells.insert(0, _title_cell(nb, fm, src))
    out = {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
                                        'language_info': {'name': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    dst = Path(dst); dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix('.tmp'); tmp.write_text(json.dumps(out, indent=1), encoding='utf-8'); tmp.replace(dst)

def _hooks():
    import importlib.util
    spec = importlib.util.spec_from_file_location('cvkit_docs_hooks', ASSETS/'hooks.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

_re_mdhead = re.compile(r'^#{1,6}\s+(.+?)\s*#*\s*$', flags=re.M)
_re_mdlink = re.compile(r'\[([^\]]*)\]\([^)]*\)')
_re_relanchor = re.compile(r'(\]\(|href=")((?![a-z]+:)[^)"\s#]*\.html)#([^)"\s]+)(?=[)"])')

def fix_doc_anchors(pages):
    """nbdev links every backticked name it knows (`_helper`, `Class.method`) to an anchor on the page that
    defines it; a name without an API entry there has no anchor. Those links point at the page instead."""
    heading_id = _hooks().heading_id
    nbs = {p['rel'].as_posix(): json.loads((DOCS/p['rel']).read_text(encoding='utf-8')) for p in pages}
    def texts(nb):
        for c in nb['cells']:
            if c['cell_type'] == 'markdown': yield c['source']
            for o in c.get('outputs', []):
                m = _out_markdown(o)
                if m: yield m
    ids = {}
    for rel, nb in nbs.items():
        ids[rel] = s = set()
        for t in texts(nb):
            s.update(heading_id(_re_mdlink.sub(r'\1', h)) for h in _re_mdhead.findall(t))
            s.update(re.findall(r'\bid="([^"]+)"', t))
    fixed = 0
    for rel, nb in nbs.items():
        here = Path(rel).parent
        def sub(m):
            nonlocal fixed
            target = os.path.normpath(here/m.group(2)).replace('.html', '.ipynb')
            if target in ids and m.group(3) not in ids[target]:
                fixed += 1
                return m.group(1) + m.group(2)
            return m.group(0)
        changed = False
        for c in nb['cells']:
            if c['cell_type'] == 'markdown':
                new = _re_relanchor.sub(sub, c['source'])
                changed |= new != c['source']; c['source'] = new
            for o in c.get('outputs', []):
                m = _out_markdown(o)
                if m:
                    new = _re_relanchor.sub(sub, m)
                    changed |= new != m; o['data']['text/markdown'] = new
        if changed: (DOCS/rel).write_text(json.dumps(nb, indent=1), encoding='utf-8')
    return fixed

def _process_batch(batch):
    done = []
    for src, dst, rel in batch:
        t = time.time()
        try: process_nb(src, dst, rel)
        except Exception as e:
            cause = f'\n  caused by: {type(e.__cause__).__name__}: {e.__cause__}' if e.__cause__ else ''
            return done, f'{Path(src).relative_to(ROOT)}: {e}{cause}'
        done.append((str(Path(src).relative_to(ROOT)), time.time() - t))
    return done, None

def process_all(pages, force=False, jobs=2):
    "Process the notebooks whose output is missing or older than the notebook (or this script, settings.ini)."
    dep_mtime = max(Path(__file__).stat().st_mtime, (ROOT/'settings.ini').stat().st_mtime)
    todo = []
    for p in pages:
        dst = DOCS/p['rel']
        if force or not dst.exists() or dst.stat().st_mtime < max(p['src'].stat().st_mtime, dep_mtime):
            todo.append((str(p['src']), str(dst), p['rel'].as_posix()))
    keep = {DOCS/p['rel'] for p in pages}
    for old in DOCS.rglob('*.ipynb'):  # a notebook that was removed or renamed leaves no stale page
        if old not in keep: old.unlink()
    if not todo: return []
    jobs = max(1, min(jobs, len(todo)))
    batches = [todo[i::jobs] for i in range(jobs)]  # one import of torch & co. per worker, not per notebook
    errors, done = [], []
    with ProcessPoolExecutor(jobs) as ex:
        for d, err in ex.map(_process_batch, batches):
            done += d
            if err: errors.append(err)
    if errors: sys.exit('docs: nbdev processing failed (fix the notebook, then `make docs`):\n' + '\n'.join(errors))
    return done

# ---------------------------------------------------------------------------------------- site checks
class _Refs:
    "Collect ids and the URLs in href/src attributes of one HTML page."
    def __init__(self, text):
        from html.parser import HTMLParser
        self.ids, self.refs, self.external = set(), [], []
        refs, ids, ext = self.refs, self.ids, self.external
        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if a.get('id'): ids.add(a['id'])
                if tag == 'a' and a.get('name'): ids.add(a['name'])
                for k in ('href', 'src'):
                    v = a.get(k)
                    if not v: continue
                    refs.append((tag, v))
                    loads = tag in ('script', 'img', 'iframe', 'source', 'video', 'audio') or (
                        tag == 'link' and 'stylesheet' in (a.get('rel') or '') + ' ' + (a.get('as') or ''))
                    if loads and re.match(r'^(https?:)?//', v): ext.append(f'<{tag} {k}="{v}">')
        P(convert_charrefs=True).feed(text)

_CDN = re.compile(r'https?://[^"\'\s)]*(cdnjs|jsdelivr|unpkg|googleapis|gstatic|mathjax|polyfill)[^"\'\s)]*')

def check_site(site=SITE):
    "Every internal href/src resolves (file and #anchor); no page loads anything from the network."
    # 404.html is served at any depth, so mkdocs gives it root-absolute links; it is not a content page.
    pages = {p: _Refs(p.read_text(encoding='utf-8', errors='replace')) for p in sorted(site.rglob('*.html'))
             if p.relative_to(site).as_posix() != '404.html'}
    problems = []
    for page, r in pages.items():
        rel = page.relative_to(site)
        for e in r.external: problems.append(f'{rel}: loads {e} from the network (vendor it or drop it)')
        for m in set(_CDN.findall(page.read_text(encoding='utf-8', errors='replace'))):
            problems.append(f'{rel}: refers to a CDN ({m}): pages must show offline')
        for tag, url in r.refs:
            u = urlsplit(url)
            if u.scheme or url.startswith('//') or url.startswith(('data:', 'mailto:', 'javascript:')): continue
            target = page if not u.path else (page.parent/unquote(u.path)).resolve()
            if u.path.endswith('/') or target.is_dir(): target = target/'index.html'
            if not target.exists():
                problems.append(f'{rel}: broken link {url!r} (<{tag}>): {target.relative_to(site.resolve()) if target.is_relative_to(site.resolve()) else target} does not exist')
                continue
            frag = unquote(u.fragment)
            if frag and target.suffix == '.html' and target in pages and frag not in pages[target].ids:
                problems.append(f'{rel}: broken anchor {url!r}: no id "{frag}" in {target.relative_to(site.resolve())}')
    return pages, problems

# ---------------------------------------------------------------------------------------- main
def build(force=False, jobs=2, check_only=False):
    t0 = time.time()
    os.chdir(ROOT)
    if not check_only:
        pages = discover()
        if not any(p['rel'].as_posix() == 'index.ipynb' for p in pages):
            sys.exit('docs: nbs/index.ipynb (the landing page) is missing')
        DOCS.mkdir(parents=True, exist_ok=True)
        done = process_all(pages, force=force, jobs=jobs)
        for name, dt in done: print(f'  processed {name} ({dt:.1f}s)')
        fix_doc_anchors(pages)
        (PROC/'nav.json').write_text(json.dumps(make_nav(pages), indent=1))
        if (DOCS/'assets').exists(): shutil.rmtree(DOCS/'assets')
        shutil.copytree(ASSETS/'assets', DOCS/'assets')
        t1 = time.time()
        print(f'docs: {len(pages)} notebooks, {len(done)} processed in {t1-t0:.1f}s; rendering with mkdocs')
        if (DOCS/'nav.json').exists(): (DOCS/'nav.json').unlink()
        r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--clean', '-q',
                            '-f', str(ROOT/'mkdocs.yml'), '-d', str(SITE)], cwd=ROOT,
                           env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
        if r.returncode: sys.exit(f'docs: mkdocs build failed (exit {r.returncode}; see above)')
        print(f'docs: mkdocs rendered site/ in {time.time()-t1:.1f}s')
    pages, problems = check_site()
    if problems:
        sys.exit(f'docs: {len(problems)} problem(s) in site/:\n  ' + '\n  '.join(problems[:200]))
    print(f'docs: site/ OK ({len(pages)} HTML pages; internal links, anchors and offline assets checked) '
          f'in {time.time()-t0:.1f}s total')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--force', action='store_true', help='re-process every notebook (ignore the _proc cache)')
    ap.add_argument('--jobs', '-j', type=int, default=2, help='notebook processing workers (default 2)')
    ap.add_argument('--check-only', action='store_true', help='only check an existing site/ (links, offline)')
    a = ap.parse_args()
    build(a.force, a.jobs, a.check_only)
