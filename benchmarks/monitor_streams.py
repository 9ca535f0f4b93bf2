"""Monitor on simulated streams (issue 18): false alarms on no-drift, detection lead time per scenario, ATC/DoC error.

    OMP_NUM_THREADS=1 python benchmarks/monitor_streams.py [--no-drift-windows 250] [--cache benchmarks/out/monitor]

Writes benchmarks/results/monitor_streams.json (summary per scenario) and monitor_streams_windows.csv (every window).
The model (a tiny CNN trained with cvkit fit, safetensors), the reference, every stream's outputs (npz) and the reports
(JSON) are cached under --cache; nbs/monitor/06_in_practice.ipynb reads the same cache (`monitor.streams.run_streams`).
"""
import argparse, json, os, platform, sys, time
from pathlib import Path
import pandas as pd
from cvkit.monitor.streams import run_streams

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--no-drift-windows', type=int, default=250); ap.add_argument('--windows', type=int, default=30)
    ap.add_argument('--cache', default='benchmarks/out/monitor'); ap.add_argument('--out', default='benchmarks/results/monitor_streams')
    a = ap.parse_args(argv); t0 = time.time(); load0 = os.getloadavg()
    r = run_streams(a.cache, a.no_drift_windows, a.windows)
    for sc, s in r['summary'].items(): print(sc, json.dumps(s))
    mon = r['monitor']
    meta = dict(command='OMP_NUM_THREADS=1 python benchmarks/monitor_streams.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
                seconds=time.time() - t0, load_before=load0, load_after=os.getloadavg(), cores=os.cpu_count(),
                python=platform.python_version(), reference_accuracy=mon.atc.val_accuracy, policy=mon.policy.to_yaml())
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.json').write_text(json.dumps(dict(meta=meta, results=r['summary']), indent=1))
    pd.concat(r['tables'], names=['scenario']).to_csv(a.out + '_windows.csv')

if __name__ == '__main__': main()
