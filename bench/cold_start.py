#!/usr/bin/env python3
r"""Cold start: the tutorial's epochs in fresh processes, seqgrad (examples/seed_trace) and PyTorch.

Each run is a new process, so its first epoch pays for whatever a process does once (page faults,
code fetched from memory, pools growing, lazy initialisation); epochs 2-5 are warm. Runs alternate
between the two, and the figures are medians over the runs:
  first epoch (and the best run's, since one scheduler tick on a busy machine is 4 ms, longer
  than the epoch), warm epoch (median of epochs 2-5), their ratio, the median of each run's own
  ratio (first / that run's warm epoch: the host's clock speed drifts between processes by up to
  40%, which the ratio of two medians mixes in), and the 5 epochs' total.
PyTorch is optional (Debian's python3-torch, run with /usr/bin/python3); it runs without
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, at its best.

  /usr/bin/python3 bench/cold_start.py [--build build] [--runs 15]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

TORCH_SIDE = r"""
import sys, time, torch
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.rand(100, 10, 5) * 2 - 1
y = (torch.rand(100, 10, 1) > 0.5).float()
rnn, head = torch.nn.RNN(5, 8, batch_first=True), torch.nn.Linear(8, 1)
opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=0.13)
loss_fn = torch.nn.BCEWithLogitsLoss()
for epoch in range(5):
    t0 = time.perf_counter()
    perm = torch.randperm(100)
    for b in range(0, 100, 25):
        idx = perm[b:b + 25]
        out, _ = rnn(x[idx])
        loss = loss_fn(head(out), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(time.perf_counter() - t0)
"""


def seqgrad_epochs(binary):
    with tempfile.NamedTemporaryFile(suffix=".csv") as f:
        subprocess.run([binary, "--metrics-csv", f.name], check=True, capture_output=True)
        rows = open(f.name).read().split("\n")[1:]
    return [float(r.split(",")[3]) for r in rows if r]


def torch_epochs():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run([sys.executable, "-c", TORCH_SIDE], env=env, check=True, capture_output=True, text=True)
    return [float(v) for v in out.stdout.split()]


def summary(name, runs):
    first = statistics.median(r[0] for r in runs)
    best = min(r[0] for r in runs)
    warm = statistics.median(t for r in runs for t in r[1:])
    ratio = statistics.median(r[0] / statistics.median(r[1:]) for r in runs)
    total = statistics.median(sum(r) for r in runs)
    print(f"| {name:<8} | {first * 1e3:>9.3f} ms | {best * 1e3:>9.3f} ms | {warm * 1e3:>9.3f} ms | {first / warm:>10.2f}x |"
          f" {ratio:>10.2f}x | {total * 1e3:>11.3f} ms |")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    binary = os.path.join(args.build, "examples", "seed_trace")
    if not os.path.exists(binary):
        print(f"{binary} not found: build first (bash scripts/build.sh)", file=sys.stderr)
        return 1
    have_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    ours, theirs = [], []
    for _ in range(args.runs):
        ours.append(seqgrad_epochs(binary))
        if have_torch:
            theirs.append(torch_epochs())
    print(f"medians over {args.runs} fresh processes each; warm = epochs 2-5\n")
    print(f"| {'':<8} | {'first epoch':>12} | {'(best run)':>12} | {'warm epoch':>12} | {'first/warm':>11} |"
          f" {'per run':>11} | {'5 epochs cold':>14} |")
    print("|----------|--------------|--------------|--------------|-------------|-------------|----------------|")
    total = summary("seqgrad", ours)
    if have_torch:
        total_torch = summary("PyTorch", theirs)
        print(f"\n5 epochs run cold: seqgrad {total_torch / total:.1f}x faster than PyTorch")
    else:
        print("\nPyTorch is not available to this interpreter: no comparison.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
