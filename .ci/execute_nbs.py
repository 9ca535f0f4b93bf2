"""Execute notebooks in place so their outputs are saved for the docs: `python .ci/execute_nbs.py [NB ...]`.

Cells flagged `#| cuda` are skipped (their outputs cleared) when no GPU is present; `#| eval: false` cells are
never run. With no arguments every notebook under nbs/ is executed. Run `nbdev_clean` afterwards.
"""
import copy, os, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent

def _skip(src, cuda):
    flags = [l.strip().replace(' ', '') for l in src.splitlines() if l.strip().startswith('#|')]
    return '#|eval:false' in flags or (not cuda and '#|cuda' in flags)

def execute(path, cuda):
    nb = nbformat.read(path, as_version=4)
    run = copy.deepcopy(nb)
    keep = [i for i, c in enumerate(run.cells) if not (c.cell_type == 'code' and _skip(c.source, cuda))]
    run.cells = [run.cells[i] for i in keep]
    NotebookClient(run, timeout=900, kernel_name='python3', resources={'metadata': {'path': str(Path(path).parent)}}).execute()
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    for i, c in zip(keep, run.cells): nb.cells[i] = c
    nbformat.write(nb, path)
    print(f'executed {path}' + ('' if len(keep) == len(nb.cells) else f' ({len(nb.cells) - len(keep)} flagged cells skipped)'))

if __name__ == '__main__':
    import torch
    nbs = sys.argv[1:] or sorted(str(p) for p in (ROOT/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    for p in nbs: execute(p, torch.cuda.is_available())
