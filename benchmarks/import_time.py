"""Benchmark: the cost of `import cvkit.evaluate.report` (target: <= 1.5 s, torch not imported), with `import torch` as the baseline.

Each round starts one fresh interpreter per (source tree, module), interleaved; inside it the import is timed with
`time.perf_counter()` (wall) and `time.process_time()` (CPU, less
sensitive to other processes on a shared machine), and the peak resident memory is read from `resource.getrusage` afterwards. The table gives the
median and the range over the rounds, and whether torch and matplotlib.pyplot ended up in `sys.modules`. One
untimed warm-up round runs first (the OS file cache). `--tree LABEL=DIR` adds another source tree (e.g. an older
commit unpacked with `git archive`), imported with PYTHONPATH=DIR, so a before/after comparison runs side by side.

    python benchmarks/import_time.py [--rounds 7] [--modules cvkit.evaluate.report torch] [--tree before=/tmp/old ...]
"""
import argparse, json, os, platform, statistics, subprocess, sys
from pathlib import Path

CHILD = ("import sys, time, resource; t, c = time.perf_counter(), time.process_time(); import {mod}; "
         "dt, dc = time.perf_counter() - t, time.process_time() - c; "
         "import json; print(json.dumps(dict(s=dt, cpu=dc, rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
         "torch='torch' in sys.modules, pyplot='matplotlib.pyplot' in sys.modules, file=getattr(sys.modules['{mod}'], '__file__', ''))))")

def once(mod, tree):
    "Import `mod` from source tree `tree` in a fresh interpreter: seconds, peak RSS (MiB), torch/pyplot loaded, file."
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, '-c', CHILD.format(mod=mod)], capture_output=True, text=True, env=env, cwd='/')
    if out.returncode: raise RuntimeError(f'importing {mod} from {tree} failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--modules', nargs='+', default=['cvkit.evaluate.report', 'cvkit.evaluate.compare', 'cvkit.evaluate.golden', 'torch'])
    ap.add_argument('--tree', action='append', default=[], help='LABEL=DIR: another cvkit source tree to time')
    a = ap.parse_args()
    trees = {'this tree': Path(__file__).resolve().parent.parent, **{t.split('=', 1)[0]: Path(t.split('=', 1)[1]).resolve() for t in a.tree}}
    jobs = [(label, tree, m) for label, tree in trees.items() for m in a.modules if not (m == 'torch' and label != 'this tree')]
    for _, tree, m in jobs: once(m, tree)                                    # warm-up: OS file cache
    res = {j[::2]: [] for j in jobs}
    for _ in range(a.rounds):
        for label, tree, m in jobs: res[label, m].append(once(m, tree))
    load = os.getloadavg()
    print(f'machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; '
          f'load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min) at the end of the run')
    print(f'{a.rounds} rounds of fresh interpreters, all imports interleaved; median [min, max]\n')
    print('| tree | import | wall s | CPU s | peak RSS MiB | torch loaded | pyplot loaded |'); print('|---|---|---|---|---|---|---|')
    for (label, m), rs in res.items():
        s, c, r = [x['s'] for x in rs], [x['cpu'] for x in rs], [x['rss_mib'] for x in rs]
        print(f'| {label if m != "torch" else "baseline"} | `{m}` | {statistics.median(s):.2f} [{min(s):.2f}, {max(s):.2f}] | '
              f'{statistics.median(c):.2f} [{min(c):.2f}, {max(c):.2f}] | '
              f'{statistics.median(r):.0f} [{min(r):.0f}, {max(r):.0f}] | {any(x["torch"] for x in rs)} | {any(x["pyplot"] for x in rs)} |')

if __name__ == '__main__': main()
