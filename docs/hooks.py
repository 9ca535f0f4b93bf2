"mkdocs hooks for the cvkit site: navigation from the notebook scan, nbdev-style heading ids, offline pages."
import html as _html, json, re
from pathlib import Path
from mkdocs.exceptions import PluginError

def on_config(config):
    "Navigation comes from .ci/docs.py, which discovers notebooks and groups them by lifecycle stage."
    nav = Path(config['docs_dir']).parent/'nav.json'
    if not nav.exists():
        raise PluginError(f'{nav} is missing: build the docs with `make docs` (python .ci/docs.py), '
                          'which processes the notebooks first.')
    config['nav'] = json.loads(nav.read_text())
    return config

def heading_id(text):
    "nbdev's anchors: lower case, dots kept (`predictions.accuracy`), spaces -> '-', other punctuation dropped."
    t = re.sub(r'<[^>]+>', '', text)
    t = re.sub(r'&[a-z]+;|&#\d+;', '', t).strip().lower()
    t = re.sub(r'[^\w.\- ]', '', t)
    return re.sub(r'[\s-]+', '-', t).strip('-') or 'section'

def _subseq(a, b):
    "Is word list `a` a subsequence of `b`? (TOC titles lose code spans: 'The command' ~ 'The `cvkit` command')"
    it = iter(b)
    return all(w in it for w in a)

class _Ids:
    def __init__(self): self.seen = {}
    def __call__(self, text):
        i = heading_id(text); n = self.seen.get(i, 0); self.seen[i] = n + 1
        return i if n == 0 else f'{i}_{n}'

_re_h = re.compile(r'<h([1-6]) id="([^"]*)">(.*?)</h\1>', re.S)
_re_anchor = re.compile(r'<a class="anchor-link" href="#[^"]*">(.*?)</a>', re.S)

def on_page_content(html, page, config, files):
    "Heading ids that match the table of contents and nbdev's doc links; no CDN scripts."
    if not page.file.src_uri.endswith('.ipynb'): return html
    # API entries (show_doc, marked by .ci/docs.py) claim their nbdev anchor first (`#evaluate` is the function,
    # not a section that happens to be called "evaluate"); other headings get ids in page order.
    ms = list(_re_h.finditer(html))
    api = {m.start() for m in (next((h for h in ms if h.start() > k.start()), None)
                               for k in re.finditer('cvk-api-marker', html)) if m is not None}
    ids, new_id = _Ids(), {}
    for m in sorted(ms, key=lambda m: (m.start() not in api, m.start())):
        new_id[m.start()] = ids(_re_anchor.sub('', m.group(3)))
    heads = []
    def fix(m):
        level, text, i = m.group(1), _re_anchor.sub('', m.group(3)), new_id[m.start()]
        heads.append((int(level), i, re.sub(r'<[^>]+>', '', text).strip(), heading_id(text)))
        cls = ' class="cvk-api-name"' if m.start() in api else ''
        return f'<h{level} id="{i}"{cls}>{text}<a class="headerlink" href="#{i}" title="Permanent link">&para;</a></h{level}>'
    html = _re_h.sub(fix, html)
    # The table of contents (built by mkdocs-jupyter from markdown headings) points at the same ids; its
    # titles lose linked words, so they are taken from the headings too.
    pos = 0
    def walk(items):
        nonlocal pos
        for it in items:
            t = re.sub(r'<[^>]+>', '', it.title).strip()
            want = heading_id(t).split('-') if t else []   # '## `ship`' has an empty TOC title
            for j in range(pos, len(heads)):  # TOC items in page order, matched to the next fitting heading
                if heads[j][0] == it.level and _subseq(want, heads[j][3].split('-')):
                    it.id, it.title, pos = heads[j][1], _html.escape(heads[j][2]), j + 1
                    break
            walk(it.children)
    walk(page.toc)
    # nbconvert's head: MathJax and mermaid from cdnjs. Math is pre-rendered to SVG by .ci/docs.py.
    html = html.replace('<span class="notice" hidden>', '<span class="notice" data-search-exclude hidden>')  # not 'Copied!' in search
    html = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', '', html)
    html = re.sub(r'<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->', '', html, flags=re.S)
    html = re.sub(r'<script type="module">(?:(?!</script>).)*?cdnjs(?:(?!</script>).)*</script>', '', html, flags=re.S)
    return html
