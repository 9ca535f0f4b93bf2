"""Write README.md from nbs/index.ipynb (Quarto cannot be installed here, so nbdev_readme is not used).

Hidden cells (`#| hide`, `#| include: false`) are dropped, `#|` directives are stripped from code,
and text outputs are kept; image links to the docs' `assets/` point at `docs/assets/`. `--check` fails when README.md is out of date instead of writing it.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HIDE = {'#| hide', '#|hide', '#| include: false', '#| echo: false'}

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def render(nb_path):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    out = ['<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->', '']
    for c in nb['cells']:
        src = _src(c)
        lines = src.splitlines()
        if any(l.strip() in HIDE for l in lines): continue
        if c['cell_type'] == 'markdown':   # the docs site serves docs/assets/ at assets/; README.md sits at the root
            out += [src.strip().replace('](assets/', '](docs/assets/'), '']; continue
        if c['cell_type'] != 'code': continue
        code = '\n'.join(l for l in lines if not l.strip().startswith('#|')).strip()
        if 'output: false' in src: c['outputs'] = []
        if code: out += ['```python', code, '```', '']
        for o in c.get('outputs', []):
            txt = ''.join(o.get('text', '')) if o['output_type'] == 'stream' else ''.join(o.get('data', {}).get('text/markdown', o.get('data', {}).get('text/plain', '')))
            if txt.strip(): out += ['```', txt.rstrip(), '```', '']
    return '\n'.join(out).rstrip() + '\n'

if __name__ == '__main__':
    txt, readme = render(ROOT/'nbs'/'index.ipynb'), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != txt:
            sys.exit('README.md is out of date with nbs/index.ipynb. Fix: make readme, then commit README.md.')
        print('readme check: ok')
    else: readme.write_text(txt, encoding='utf-8'); print('wrote README.md')
