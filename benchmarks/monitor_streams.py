"""Monitor on simulated streams (issue 18): false alarms on no-drift, detection lead time per scenario, ATC/DoC error.

    OMP_NUM_THREADS=2 python benchmarks/monitor_streams.py [--no-drift-windows 250] [--cache benchmarks/out/monitor]

Writes benchmarks/results/monitor_streams.md and .json. The model (a tiny CNN trained with cvkit fit), the reference
and every stream's outputs are cached under --cache (npz, safetensors), so a re-run only re-checks.
"""
import argparse, json, os, platform, time
from pathlib import Path
import numpy as np, pandas as pd, torch

from cvkit.monitor.streams import (SCENARIOS, train_stream_model, reference_set, simulate_stream, as_predictions,
                                   onset_at_severity, severity)
from cvkit.monitor.monitor import Monitor, Policy

def load_or_train(cache:Path):
    from safetensors.torch import save_file, load_file
    from cvkit.models.factory import create_model
    p = cache/'model.safetensors'
    if p.exists():
        m = create_model('cvkit_cnn_tiny', num_classes=4); m.load_state_dict(load_file(p)); return m.eval()
    m = train_stream_model(); cache.mkdir(parents=True, exist_ok=True); save_file(m.state_dict(), p); return m

def run_stream(mon, d, n_windows):
    rows = []
    for w in range(n_windows):
        p, e, pr = as_predictions(d, w)
        r = mon.check(p, e, pr, name=w)
        row = r.summary; row['severity'] = int(d['severity'][d['window'] == w][0]); row['alert_names'] = ','.join(a['name'] for a in r.alerts)
        rows.append(row)
    return pd.DataFrame(rows)

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--no-drift-windows', type=int, default=250)
    ap.add_argument('--windows', type=int, default=30)
    ap.add_argument('--window', type=int, default=200)
    ap.add_argument('--cache', default='benchmarks/out/monitor')
    ap.add_argument('--out', default='benchmarks/results/monitor_streams')
    a = ap.parse_args(argv)
    cache = Path(a.cache); t0 = time.time()
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 2)))
    model = load_or_train(cache)
    ref = reference_set(model, cache=cache)
    rp, re_, rpr = as_predictions(ref)
    mon = Monitor(Policy()).fit(rp, re_, rpr)
    out, tables = {}, {}
    for sc in SCENARIOS:
        n = a.no_drift_windows if sc == 'no_drift' else a.windows
        d = simulate_stream(model, sc, n, a.window, cache=cache)
        t = time.time(); df = run_stream(mon, d, n); t = time.time() - t
        tables[sc] = df
        err = (df['acc:atc'] - df.true_accuracy).abs(); derr = (df['acc:doc'] - df.true_accuracy).abs()
        drift = df.severity > 0
        res = dict(windows=n, check_s_per_window=t / n, ref_accuracy=mon.atc.val_accuracy)
        if sc == 'no_drift':
            res.update(false_alarm_rate=float(df.fired.mean()), false_alarms=int(df.fired.sum()),
                       per_test={k: int(df.alert_names.str.contains(k).sum()) for k in ('embedding_mmd', 'property_ks', 'prediction_chi2', 'confidence_ks', 'accuracy_atc', 'psi', 'accuracy_drop')})
        else:
            onset = int(df.window[drift].min()); s2 = onset_at_severity(sc)
            first = df.window[drift & df.fired]
            first = int(first.min()) if len(first) else None
            pre = df[~drift]
            res.update(onset=onset, severity2_at=s2, first_alarm=first, lead_from_onset=None if first is None else first - onset,
                       delay_after_severity2=None if first is None else first - s2,
                       detected_within_5=first is not None and first - s2 <= 5, pre_onset_false_alarms=int(pre.fired.sum()),
                       first_alarm_tests=df.alert_names[df.window == first].iloc[0] if first is not None else '')
        res.update(atc_mae_drift=float(err[drift].mean()) if drift.any() else None, atc_mae_clean=float(err[~drift].mean()) if (~drift).any() else None,
                   doc_mae_drift=float(derr[drift].mean()) if drift.any() else None,
                   true_acc_drift=float(df.true_accuracy[drift].mean()) if drift.any() else None,
                   atc_in_band=float(((df['acc_lo:atc'] <= df.true_accuracy) & (df.true_accuracy <= df['acc_hi:atc'])).mean()))
        out[sc] = res
        print(sc, json.dumps(res), flush=True)
    meta = dict(command='OMP_NUM_THREADS=2 python benchmarks/monitor_streams.py ' + ' '.join(argv or []), seconds=time.time() - t0,
                load=os.getloadavg(), cores=os.cpu_count(), python=platform.python_version(), policy=mon.policy.to_yaml())
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.json').write_text(json.dumps(dict(meta=meta, results=out), indent=1))
    pd.concat({k: v for k, v in tables.items()}, names=['scenario']).to_csv(a.out + '_windows.csv')
    return out, tables

if __name__ == '__main__': main()
