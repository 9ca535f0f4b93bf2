"""Monitor on simulated streams (issue 18): false alarms on no-drift, detection lead time per scenario, ATC/DoC error.

    OMP_NUM_THREADS=1 python benchmarks/monitor_streams.py [--no-drift-windows 250] [--cache benchmarks/out/monitor]

Writes benchmarks/results/monitor_streams.json (summary per scenario) and monitor_streams_windows.csv (every window).
The model (a tiny CNN trained with cvkit fit, safetensors), the reference, every stream's outputs (npz) and the reports
(JSON) are cached under --cache; nbs/monitor/06_in_practice.ipynb reads the same cache.
"""
import argparse, json, os, platform, time
from pathlib import Path
import numpy as np, pandas as pd, torch

from cvkit.monitor.streams import (SCENARIOS, train_stream_model, reference_set, simulate_stream, as_predictions,
                                   check_stream, stream_summary)
from cvkit.monitor.monitor import Monitor, Policy

def load_or_train(cache:Path):
    "The stream model: trained once with cvkit fit, then loaded from `cache/model.safetensors`."
    from safetensors.torch import save_file, load_file
    from cvkit.models.factory import create_model
    p = Path(cache)/'model.safetensors'
    if p.exists():
        m = create_model('cvkit_cnn_tiny', num_classes=4); m.load_state_dict(load_file(p)); return m.eval()
    m = train_stream_model(); p.parent.mkdir(parents=True, exist_ok=True); save_file(m.state_dict(), p); return m

def setup(cache):
    "Model, reference outputs and the fitted default monitor."
    torch.manual_seed(0)
    model = load_or_train(cache)
    ref = reference_set(model, cache=cache)
    return model, ref, Monitor(Policy()).fit(*as_predictions(ref))

def run(cache, no_drift_windows=250, windows=30):
    model, ref, mon = setup(cache)
    reports, tables, summ = {}, {}, {}
    for sc in SCENARIOS:
        n = no_drift_windows if sc == 'no_drift' else windows
        d = simulate_stream(model, sc, n, cache=cache)
        t = time.time()
        reports[sc], tables[sc] = check_stream(mon, d, cache=Path(cache)/f'reports-{sc}-{n}.json')
        summ[sc] = dict(stream_summary(tables[sc], sc), check_seconds=time.time() - t)
        print(sc, json.dumps(summ[sc]), flush=True)
    return model, mon, reports, tables, summ

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--no-drift-windows', type=int, default=250); ap.add_argument('--windows', type=int, default=30)
    ap.add_argument('--cache', default='benchmarks/out/monitor'); ap.add_argument('--out', default='benchmarks/results/monitor_streams')
    a = ap.parse_args(argv); t0 = time.time(); load0 = os.getloadavg()
    model, mon, reports, tables, summ = run(a.cache, a.no_drift_windows, a.windows)
    meta = dict(command='OMP_NUM_THREADS=1 python benchmarks/monitor_streams.py ' + ' '.join(__import__('sys').argv[1:] if argv is None else argv), seconds=time.time() - t0,
                load_before=load0, load_after=os.getloadavg(), cores=os.cpu_count(), python=platform.python_version(),
                reference_accuracy=mon.atc.val_accuracy, policy=mon.policy.to_yaml())
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.json').write_text(json.dumps(dict(meta=meta, results=summ), indent=1))
    pd.concat(tables, names=['scenario']).to_csv(a.out + '_windows.csv')

if __name__ == '__main__': main()
