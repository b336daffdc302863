#!/usr/bin/env python3
r"""Data-parallel scaling side by side: seqgrad over MPI and PyTorch DistributedDataParallel.

The workload of bench_compare's "LSTM train step H=256": LSTM(64 -> 256), Linear(256 -> 1) on every
one of 100 steps, MSE, Adam, a global batch of 64 sequences. Rows, interleaved and repeated
(medians reported):
  seqgrad 1 rank x 1 thread (batch 64)      build/bench/dist_bench
  seqgrad 2 ranks x 1 thread (batch 32)     mpirun -n 2 build/bench/dist_bench
  PyTorch 1 process x 1 thread (batch 64)
  PyTorch DDP, gloo, 2 processes x 1 thread (batch 32 each)
plus, for seqgrad's 2 ranks, the allreduce's time and bytes per step and its share of the step.
PyTorch is optional (Debian's python3-torch via /usr/bin/python3); its processes run without
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, as in compare_pytorch.py.

  /usr/bin/python3 bench/compare_dist.py [--build build] [--repeats 3] [--steps 20]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

GLOBAL_BATCH, STEPS_T, INPUT, HIDDEN = 64, 100, 64, 256


def torch_worker(rank, world, steps):
    import torch
    import torch.distributed as tdist
    torch.set_num_threads(1)
    torch.manual_seed(rank)
    batch = GLOBAL_BATCH // world

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(INPUT, HIDDEN, batch_first=True)
            self.head = torch.nn.Linear(HIDDEN, 1)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    net = Net()
    if world > 1:
        tdist.init_process_group("gloo", rank=rank, world_size=world)
        net = torch.nn.parallel.DistributedDataParallel(net)
    x, y = torch.randn(batch, STEPS_T, INPUT), torch.randn(batch, STEPS_T, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for s in range(3 + steps):
        if world > 1:
            tdist.barrier()
        start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()  # DDP averages the gradients during backward
        opt.step()
        opt.zero_grad()
        if s >= 3:
            times.append(1e3 * (time.perf_counter() - start))
    if rank == 0:
        print(json.dumps({"ms_per_step": statistics.median(times)}))
    if world > 1:
        tdist.destroy_process_group()


def run_torch(world, steps):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, __file__, "--torch-worker", str(r), str(world), str(steps)], env=env,
                              stdout=subprocess.PIPE, text=True) for r in range(world)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"PyTorch worker failed: {outs}")
    return json.loads(outs[0].strip().splitlines()[-1])


def run_seqgrad(build, world, steps):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [os.path.join(build, "bench", "dist_bench"), str(steps)]
    if world > 1:
        cmd = ["mpirun", "-n", str(world), "--bind-to", "core"] + cmd
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--torch-worker":
        return torch_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch not found (apt-get install python3-torch; run with /usr/bin/python3): seqgrad rows only")
    rows = {"seqgrad 1x1": [], "seqgrad 2x1": [], "torch 1x1": [], "torch DDP 2x1": []}
    ar_ms, ar_bytes, wait_ms = [], [], []
    for _ in range(a.repeats):
        rows["seqgrad 1x1"].append(run_seqgrad(a.build, 1, a.steps)["ms_per_step"])
        r = run_seqgrad(a.build, 2, a.steps)
        rows["seqgrad 2x1"].append(r["ms_per_step"])
        ar_ms.append(r["allreduce_ms_per_step"])
        ar_bytes.append(r["allreduce_bytes_per_step"])
        wait_ms.append(r["wait_ms_per_step"])
        if have_torch:
            rows["torch 1x1"].append(run_torch(1, a.steps)["ms_per_step"])
            rows["torch DDP 2x1"].append(run_torch(2, a.steps)["ms_per_step"])
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"LSTM({INPUT} -> {HIDDEN}) + Linear per step, T={STEPS_T}, global batch {GLOBAL_BATCH}, Adam; "
          f"medians of {a.repeats} runs x {a.steps} steps (all repeats: {json.dumps(rows)})")
    print(f"{'setup':<34} {'ms/step':>9} {'speed-up vs 1 process':>22}")
    for name, base in [("seqgrad 1x1", "seqgrad 1x1"), ("seqgrad 2x1", "seqgrad 1x1"),
                       ("torch 1x1", "torch 1x1"), ("torch DDP 2x1", "torch 1x1")]:
        if name in med:
            print(f"{name:<34} {med[name]:9.1f} {med[base] / med[name]:21.2f}x")
    if "torch DDP 2x1" in med:
        print(f"seqgrad 2 ranks vs PyTorch DDP 2 processes: {med['torch DDP 2x1'] / med['seqgrad 2x1']:.2f}x faster per step")
    share = statistics.median(ar_ms) / med["seqgrad 2x1"]
    print(f"seqgrad allreduce per step: {statistics.median(ar_ms):.2f} ms, {int(statistics.median(ar_bytes))} bytes sent "
          f"per rank, {100 * share:.1f}% of the step; waiting for the slower rank before it: "
          f"{statistics.median(wait_ms):.2f} ms ({100 * statistics.median(wait_ms) / med['seqgrad 2x1']:.1f}%)")


if __name__ == "__main__":
    main()
