"""Benchmark: how long `cvkit sweep --summary runs/<sweep>` takes (issue 13 target: <= 1.5 s), against the code
before the run-folder store (baseline: a git revision, extracted here and run side by side on a copy of the same
sweep folder).

The summary rebuilds summary.md/.html/.csv/.png from the run folders. Before, `cvkit.lab.summary` imported the
sweep runner and `cvkit.core` (torch) and drew the plot twice; now it imports only the store, numpy, pandas and
matplotlib's object API. Each command is a fresh process (what a user types), timed `--repeat` times; wall time and
user+sys CPU time of the child are reported (CPU time is the fairer figure on a loaded machine).

    .venv/bin/python benchmarks/summary_time.py --sweep runs/<sweep> [--baseline-rev ad89464] [--repeat 5]

Without `--sweep` it makes a small sweep of a light notebook (2 values x 2 seeds) first.
"""
import argparse, os, platform, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CMD = "import sys, cvkit; from cvkit.cli import main; print(cvkit.__file__, file=sys.stderr); sys.exit(main(sys.argv[1:]))"

def light_sweep(root:Path)->Path:
    import nbformat
    from cvkit.lab.sweep import Sweep
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1.0\nseed = 0", metadata=dict(tags=['parameters'])),
                nbformat.v4.new_code_cell("import random\nfrom cvkit.lab.track import log_metrics\nrandom.seed(seed)\n"
                                          "log_metrics(score=2 * x + random.gauss(0, 0.1), loss=1 / x)")]
    nb.metadata['kernelspec'] = dict(name='python3', display_name='python3', language='python')
    nbformat.write(nb, root/'light.ipynb')
    return Sweep(root/'light.ipynb', grid=dict(x=[1.0, 2.0]), seeds=[0, 1], root=root, name='light', workers=2, progress=False).run().dir

def timed(pythonpath:str, sweep:Path)->tuple[float, float]:
    "Wall seconds and child user+sys CPU seconds of one `cvkit sweep --summary` process."
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-c', CMD, 'sweep', '--summary', str(sweep)], capture_output=True, text=True, cwd=sweep.parent,
                       env={**os.environ, 'PYTHONPATH': pythonpath, 'OMP_NUM_THREADS': '1'})   # cwd: `-c` puts it first on sys.path
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0: raise SystemExit(f'summary failed ({pythonpath}):\n{r.stderr[-2000:]}')
    if not r.stderr.strip().splitlines()[0].startswith(pythonpath): raise SystemExit(f'imported the wrong cvkit: {r.stderr[:300]}')
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sweep', help='an existing sweep folder (e.g. from `cvkit demo --epochs 1`); default: a light sweep made here')
    ap.add_argument('--baseline-rev', default='ad89464', help='git revision of the baseline cvkit (before the store)')
    ap.add_argument('--repeat', type=int, default=5)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    src = Path(a.sweep) if a.sweep else light_sweep(tmp)
    base = tmp/'baseline'; base.mkdir()
    arc = subprocess.run(['git', '-C', str(REPO), 'archive', a.baseline_rev, 'cvkit'], capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(base)], input=arc, check=True)
    copies = {name: tmp/f'sweep-{name}' for name in ('cvkit', 'baseline')}
    for c in copies.values(): shutil.copytree(src, c)
    paths = dict(cvkit=str(REPO), baseline=str(base))
    res = {k: [] for k in paths}
    for _ in range(a.repeat):                                  # interleaved, so both see the same load
        for k in paths: res[k].append(timed(paths[k], copies[k]))
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}, load average (1 min) {load[0]:.2f}")
    print(f"command: .venv/bin/python benchmarks/summary_time.py {'--sweep ' + a.sweep if a.sweep else ''} --baseline-rev {a.baseline_rev} --repeat {a.repeat}")
    print(f"sweep folder: {src} ({len([p for p in src.iterdir() if p.is_dir() and not p.name.startswith('_')])} runs)\n")
    print('| code | wall, median (min-max) | user+sys CPU, median | target |'); print('|---|---|---|---|')
    for k, label in (('baseline', f'before (git {a.baseline_rev})'), ('cvkit', 'now')):
        w, c = [x[0] for x in res[k]], [x[1] for x in res[k]]
        print(f"| {label} | {statistics.median(w):.2f} s ({min(w):.2f}-{max(w):.2f}) | {statistics.median(c):.2f} s | <= 1.5 s |")
    shutil.rmtree(tmp)

if __name__ == '__main__': main()
