"""Benchmark: what the sweep machinery costs per run, and how 2 workers scale on 2 cores, for the warm runners
(issue 19 targets: <= 1 s overhead per run with 1 worker; 2 workers >= 1.8x the throughput of 1 worker) side by side
with the cold runners they replace (`warm=False`: a fresh `python -m cvkit.lab.sweep RUN_DIR` per run, which imports
papermill and starts and stops a kernel on the critical path; issue 4: 2.9 s a run).

A light study notebook (a CPU-bound pure-Python loop of about `--work` seconds, then `log_metrics`) is swept over
`--runs` parameter values with 1 worker, then with 2, for each runner kind, in the same process. Overhead per run is
(sweep wall time - the seconds papermill spent executing cells, summed over runs) / runs, in the 1-worker sweep: it
covers runner start, papermill's import, kernel start, parameter injection, saving the executed notebook, kernel
shutdown, status/lineage bookkeeping and the summary. Throughput is runs per minute of sweep wall time. On a shared
machine wall times move with the load, so the CPU seconds the machinery burns per run are reported too: CPU time of
this process and of all its reaped descendants (runners, kernels) during the sweep, less the CPU time the notebook
itself measured (`cpu_s`), divided by the runs. It hardly depends on the load, and on 2 cores it bounds the scaling.

    .venv/bin/python benchmarks/sweep_overhead.py [--runs 8] [--work 2.0] [--kinds cold,warm]
"""
import argparse, os, platform, resource, sys, tempfile, time
from pathlib import Path
import nbformat

def light_notebook(path, work):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 0\nwork = 2.0", metadata=dict(tags=['parameters'])),
                nbformat.v4.new_code_cell("import time\nfrom cvkit.lab.track import log_metrics\nt0 = time.process_time(); s = 0\n"
                                          "while time.process_time() - t0 < work: s += sum(i * i for i in range(10_000))\n"
                                          "log_metrics(x=x, cpu_s=time.process_time() - t0)")]
    nb.metadata['kernelspec'] = dict(name='python3', display_name='python3', language='python')
    nbformat.write(nb, path); return path

def _cpu():
    "CPU seconds of this process and of every descendant reaped so far (runners, and the kernels they reaped)."
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

def sweep(nb, root, runs, work, workers, warm):
    from cvkit.lab.sweep import Sweep
    from cvkit.lab.store import read_status
    sw = Sweep(nb, grid=dict(x=list(range(runs))), params=dict(work=work), root=root, name=f"{'warm' if warm else 'cold'}-w{workers}",
               workers=workers, progress=False, warm=warm)
    c0, t0 = _cpu(), time.perf_counter(); s = sw.run(); wall, cpu = time.perf_counter() - t0, _cpu() - c0
    st = [read_status(sw.dir/r) for r in s.runs['run_id']]
    assert all(x['status'] == 'completed' for x in st), st
    nb_cpu = sum(sw.files.run(p).metrics()['cpu_s'] for p in sw.runs)       # the notebook's own CPU time, as it measured it
    return dict(wall=wall, compute=sum(x['compute_s'] for x in st), machinery_cpu=(cpu - nb_cpu) / runs)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--runs', type=int, default=8); ap.add_argument('--work', type=float, default=2.0)
    ap.add_argument('--kinds', default='cold,warm', help='runner kinds to measure: cold (warm=False), warm (the default)')
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp()); nb = light_notebook(tmp/'light.ipynb', a.work)
    load0, rows = os.getloadavg(), []
    for kind in a.kinds.split(','):
        r1 = sweep(nb, tmp, a.runs, a.work, 1, kind == 'warm'); r2 = sweep(nb, tmp, a.runs, a.work, 2, kind == 'warm')
        rows.append((kind, r1, r2))
    load1 = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}; "
          f"load average (1 min) before/after {load0[0]:.2f}/{load1[0]:.2f} (5 min: {load0[1]:.2f}/{load1[1]:.2f})")
    print(f"command: .venv/bin/python benchmarks/sweep_overhead.py --runs {a.runs} --work {a.work} --kinds {a.kinds}\n")
    print('| runners | compute per run (papermill cell time) | overhead per run, 1 worker ((wall - compute) / runs) | '
          'machinery CPU per run, 1 worker | throughput, 1 worker | throughput, 2 workers (compute per run) | speed-up, 2 workers vs 1 |')
    print('|---|---|---|---|---|---|---|')
    for kind, r1, r2 in rows:
        thr1, thr2 = a.runs / r1['wall'] * 60, a.runs / r2['wall'] * 60
        print(f"| {kind}{' (warm=False)' if kind == 'cold' else ''} | {r1['compute'] / a.runs:.2f} s | **{(r1['wall'] - r1['compute']) / a.runs:.2f} s** | "
              f"{r1['machinery_cpu']:.2f} s | {thr1:.1f} runs/min ({r1['wall']:.1f} s) | {thr2:.1f} runs/min ({r2['wall']:.1f} s; {r2['compute'] / a.runs:.2f} s) | **{thr2 / thr1:.2f}x** |")
    print('\ntargets (issue 19, warm runners): overhead <= 1 s a run with 1 worker; 2 workers >= 1.8x one worker')

if __name__ == '__main__': main()
