"""Fail when `nbdev_clean` would change a notebook, or `nbdev_export` would change `cvkit/`.

Works on any checkout (not only a clean git tree): it hashes the files, runs the tool, and
compares. Files the tool changed are listed, and left changed so that a commit fixes them.
"""
import hashlib, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def _snapshot(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}

def _check(name, cmd, files, hint):
    before = _snapshot(files())
    subprocess.run([str(BIN/cmd)], cwd=ROOT, check=True)
    after = _snapshot(files())
    changed = sorted(str(p.relative_to(ROOT)) for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        print(f'{name}: {cmd} changed {len(changed)} file(s): ' + ', '.join(changed) + f'\n  Fix: {hint}')
        sys.exit(1)
    print(f'{name}: ok ({len(after)} files unchanged by {cmd})')

nbs = lambda: [p for p in (ROOT/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts]
lib = lambda: list((ROOT/'cvkit').rglob('*.py'))
what = sys.argv[1] if len(sys.argv) > 1 else 'both'
if what in ('clean', 'both'):
    _check('clean check', 'nbdev_clean', nbs, 'run `nbdev_clean` and commit the cleaned notebooks.')
if what in ('export', 'both'):
    _check('export sync check', 'nbdev_export', lib, 'edit the notebook, not cvkit/*.py; run `nbdev_export` and commit.')
