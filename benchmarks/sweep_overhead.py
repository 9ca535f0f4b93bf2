"""Benchmark: what the sweep machinery costs per run, and how 2 workers scale on 2 cores (issue 4 targets:
<= 3 s overhead per run on top of the notebook's own compute; >= 1.6x the throughput of 1 worker).

A light study notebook (a CPU-bound pure-Python loop of about `--work` seconds, then `log_metrics`) is swept
over `--runs` parameter values, first with 1 worker, then with 2, in the same process. Overhead per run is
(sweep wall time - the seconds papermill spent executing cells, summed over runs) / runs, measured in the
1-worker sweep: it covers kernel start, parameter injection, saving the executed notebook, the runner process,
status/lineage bookkeeping and the summary. Throughput is runs per minute of sweep wall time.

    .venv/bin/python benchmarks/sweep_overhead.py [--runs 8] [--work 2.0]
"""
import argparse, os, platform, subprocess, sys, tempfile, time
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

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--runs', type=int, default=8); ap.add_argument('--work', type=float, default=2.0)
    a = ap.parse_args()
    from cvkit.lab.sweep import Sweep
    from cvkit.lab.store import read_status
    tmp = Path(tempfile.mkdtemp()); nb = light_notebook(tmp/'light.ipynb', a.work)
    res = {}
    for workers in (1, 2):
        sw = Sweep(nb, grid=dict(x=list(range(a.runs))), params=dict(work=a.work), root=tmp, name=f'w{workers}', workers=workers, progress=False)
        t0 = time.perf_counter(); s = sw.run(); wall = time.perf_counter() - t0
        st = [read_status(sw.dir/r) for r in s.runs['run_id']]
        assert all(x['status'] == 'completed' for x in st), st
        compute = sum(x['compute_s'] for x in st)
        res[workers] = dict(wall=wall, compute=compute, per_run_wall=sum(x['wall_s'] for x in st) / a.runs)
    r1, r2 = res[1], res[2]
    overhead = (r1['wall'] - r1['compute']) / a.runs
    thr1, thr2 = a.runs / r1['wall'] * 60, a.runs / r2['wall'] * 60
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}, load average before/after {load[2]:.2f}/{load[0]:.2f}")
    print(f"command: .venv/bin/python benchmarks/sweep_overhead.py --runs {a.runs} --work {a.work}\n")
    print('| measure | value | target |'); print('|---|---|---|')
    print(f"| notebook compute per run (papermill cell time) | {r1['compute'] / a.runs:.2f} s | - |")
    print(f"| sweep overhead per run, 1 worker ((wall - compute) / runs) | **{overhead:.2f} s** | <= 3 s |")
    print(f"| throughput, 1 worker | {thr1:.1f} runs/min ({r1['wall']:.1f} s for {a.runs}) | - |")
    print(f"| throughput, 2 workers | {thr2:.1f} runs/min ({r2['wall']:.1f} s for {a.runs}) | - |")
    print(f"| speed-up, 2 workers vs 1 | **{thr2 / thr1:.2f}x** | >= 1.6x |")

if __name__ == '__main__': main()
