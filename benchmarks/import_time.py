"""Benchmark: the cost of `import cvkit.evaluate.report` (target: <= 1.5 s, torch not imported), with `import torch` as the baseline.

Each round starts fresh interpreters, one per module, interleaved; inside each, the import is timed with
`time.perf_counter()` and the peak resident memory read from `resource.getrusage` afterwards. The table gives the
median and the range over the rounds, and whether torch ended up in `sys.modules`. A module's first import also
pays the OS file cache: one untimed warm-up round runs first.

    python benchmarks/import_time.py [--rounds 7] [--modules cvkit.evaluate.report torch ...]
"""
import argparse, json, os, platform, statistics, subprocess, sys

CHILD = ("import sys, time, resource; t = time.perf_counter(); import {mod}; dt = time.perf_counter() - t; "
         "import json; print(json.dumps(dict(s=dt, rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
         "torch='torch' in sys.modules, matplotlib_pyplot='matplotlib.pyplot' in sys.modules)))")

def once(mod):
    "Import `mod` in a fresh interpreter; its import time (s), peak RSS (MiB) and whether torch / pyplot were loaded."
    out = subprocess.run([sys.executable, '-c', CHILD.format(mod=mod)], capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--modules', nargs='+', default=['cvkit.evaluate.report', 'cvkit.evaluate.compare', 'cvkit.evaluate.golden', 'torch'])
    a = ap.parse_args()
    for m in a.modules: once(m)                                       # warm-up: OS file cache
    res = {m: [] for m in a.modules}
    for _ in range(a.rounds):
        for m in a.modules: res[m].append(once(m))
    load = os.getloadavg()
    print(f'machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; '
          f'load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min) after the run')
    print(f'{a.rounds} rounds of fresh interpreters, modules interleaved; median [min, max]')
    print('| import | seconds | peak RSS MiB | torch loaded | pyplot loaded |'); print('|---|---|---|---|---|')
    for m, rs in res.items():
        s, r = [x['s'] for x in rs], [x['rss_mib'] for x in rs]
        print(f'| `{m}` | {statistics.median(s):.2f} [{min(s):.2f}, {max(s):.2f}] | {statistics.median(r):.0f} [{min(r):.0f}, {max(r):.0f}] '
              f'| {any(x["torch"] for x in rs)} | {any(x["matplotlib_pyplot"] for x in rs)} |')

if __name__ == '__main__': main()
