"""What the govern stage costs: importing MLflow, creating and reopening the SQLite registry, registering, promoting.

The baseline is MLflow itself, measured in the same run: `import mlflow` and a bare `MlflowClient` creating the same
SQLite database, against `import cvkit.govern.registry` (which does not import MLflow) and `Registry(path)`.
Each figure is the median of `--repeat` fresh subprocesses (import times are cold-process times).

    python benchmarks/govern_registry.py --repeat 3
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, textwrap, time

def _child(code:str)->dict:
    "Run `code` in a fresh interpreter; it prints a JSON dict of timings."
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY='true', DO_NOT_TRACK='true')
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, env=env)
    if out.returncode: raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])

IMPORTS = """
import time, json; t = time.perf_counter()
import {mod}
print(json.dumps(dict(s=time.perf_counter() - t)))
"""

MLFLOW_DB = """
import time, json; t0 = time.perf_counter()
from mlflow import MlflowClient
t1 = time.perf_counter()
uri = 'sqlite:///{d}/mlflow.db'
c = MlflowClient(tracking_uri=uri, registry_uri=uri); c.create_experiment('x', artifact_location='file://{d}/artifacts')
t2 = time.perf_counter()
c = MlflowClient(tracking_uri=uri, registry_uri=uri); c.get_experiment_by_name('x')
print(json.dumps(dict(import_s=t1 - t0, create_s=t2 - t1, reopen_s=time.perf_counter() - t2)))
"""

CVKIT = """
import time, json, sys
sys.path.insert(0, {nbs!r})
t0 = time.perf_counter()
from cvkit.govern.registry import Registry
t1 = time.perf_counter()
reg = Registry('{d}/reg')
t2 = time.perf_counter()
Registry('{d}/reg').champion('m')
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, create_s=t2 - t1, reopen_s=t3 - t2)))
"""

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--repeat', type=int, default=3); a = ap.parse_args()
    rows = {}
    for mod in ('mlflow', 'cvkit.govern.registry', 'cvkit.govern.card'):
        rows[f'import {mod}'] = statistics.median(_child(IMPORTS.format(mod=mod))['s'] for _ in range(a.repeat))
    ml, cv = [], []
    for _ in range(a.repeat):
        with tempfile.TemporaryDirectory() as d: ml.append(_child(MLFLOW_DB.format(d=d)))
        with tempfile.TemporaryDirectory() as d: cv.append(_child(CVKIT.format(d=d, nbs=os.getcwd())))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f'load average {os.getloadavg()[0]:.2f} (2 cores, shared); median of {a.repeat} fresh processes\n')
    print('| step | MLflow (baseline) s | cvkit s |\n|---|---|---|')
    print(f"| import | {rows['import mlflow']:.2f} (`import mlflow`) | {rows['import cvkit.govern.registry']:.2f} (`import cvkit.govern.registry`; card {rows['import cvkit.govern.card']:.2f}) |")
    print(f"| fresh process to a new, usable SQLite registry (import + schema migrations) | {med(ml, 'import_s') + med(ml, 'create_s'):.2f} "
          f"(import {med(ml, 'import_s'):.2f} + create {med(ml, 'create_s'):.2f}) | {med(cv, 'import_s') + med(cv, 'create_s'):.2f} "
          f"(`Registry(path)`, MLflow imported inside) |")
    print(f"| reopen an existing registry (same process) | {med(ml, 'reopen_s'):.2f} | {med(cv, 'reopen_s'):.2f} |")

if __name__ == '__main__': main()
