#!/usr/bin/env python3
r"""Side-by-side timing of seqgrad and PyTorch on the same workloads, in one go.

Runs build/bench/bench_compare (Google Benchmark, JSON output) and the same workloads in PyTorch,
interleaved, at 1 and 2 threads, and prints one table: workload, seqgrad time, PyTorch time
(its faster thread setting), ratio. PyTorch is optional (Debian's python3-torch, run with
/usr/bin/python3); without it the script says so and exits 0.

A libtorch column (PyTorch's C++ API, no interpreter) is added when the libtorch_compare binary
exists (--libtorch, default build-libtorch/bench/libtorch_compare): it runs the same benchmarks as
bench_compare, interleaved with the other two, and its ratio is libtorch's faster thread setting
over seqgrad's time. Build it once (needs libtorch-dev):

  cmake -S . -B build-libtorch -DCMAKE_BUILD_TYPE=Release -DSEQGRAD_BENCH_LIBTORCH=ON \
        -DSEQGRAD_BUILD_TESTS=OFF -DSEQGRAD_BUILD_EXAMPLES=OFF
  cmake --build build-libtorch -j1 --target libtorch_compare

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment of the PyTorch and
libtorch sides (their subprocesses run without them), because they force slower kernels: we
compare against PyTorch at its best. For the same reason OPENBLAS_NUM_THREADS is left as it is:
Debian's pthread OpenBLAS ignores torch.set_num_threads(), so unless it is set, the products of
PyTorch's "1T" run use every core (with OPENBLAS_NUM_THREADS=1 its single-core rows are slower).

  /usr/bin/python3 bench/compare_pytorch.py [--build build] [--libtorch PATH] [--repeats 3] [--only SUBSTR] [--bf16]
"""
import argparse
import json
import os
import subprocess
import sys
import time

WORKLOADS = [  # (name, kind, cell, hidden)
    ("tutorial 5 epochs", "tutorial", "rnn", 8),
    ("RNN train step H=256", "train", "rnn", 256),
    ("LSTM train step H=256", "train", "lstm", 256),
    ("GRU train step H=256", "train", "gru", 256),
    ("RNN train step H=512", "train", "rnn", 512),
    ("LSTM train step H=512", "train", "lstm", 512),
    ("GRU train step H=512", "train", "gru", 512),
    ("RNN forward H=256", "infer", "rnn", 256),
    ("LSTM forward H=256", "infer", "lstm", 256),
    ("GRU forward H=256", "infer", "gru", 256),
    ("RNN forward H=512", "infer", "rnn", 512),
    ("LSTM forward H=512", "infer", "lstm", 512),
    ("GRU forward H=512", "infer", "gru", 512),
    # A custom cell from ordinary ops (examples/peephole_lstm.h; PeepholeLSTM below in eager PyTorch).
    ("peephole train step H=256", "train", "peephole", 256),
    ("peephole forward H=256", "infer", "peephole", 256),
    # int8: seqgrad's quantize_dynamic against PyTorch's (qint8, its available engine: onednn on Debian)
    ("LSTM int8 forward H=256", "qinfer", "lstm", 256),
    ("GRU int8 forward H=256", "qinfer", "gru", 256),
    ("LSTM int8 forward H=512", "qinfer", "lstm", 512),
    ("GRU int8 forward H=512", "qinfer", "gru", 512),
    # streaming, one step at batch 1: seqgrad's step() (float32, then int8) against PyTorch eager
    # float32 (the faster of LSTMCell/GRUCell and nn.LSTM/GRU on one step for 1 layer; nn.* for 2)
    ("LSTM step H=256 L=1", "stream1", "lstm", 256),
    ("GRU step H=256 L=1", "stream1", "gru", 256),
    ("LSTM step H=1024 L=1", "stream1", "lstm", 1024),
    ("GRU step H=1024 L=1", "stream1", "gru", 1024),
    ("LSTM step H=256 L=2", "stream2", "lstm", 256),
    ("GRU step H=256 L=2", "stream2", "gru", 256),
    ("LSTM step H=1024 L=2", "stream2", "lstm", 1024),
    ("GRU step H=1024 L=2", "stream2", "gru", 1024),
    ("LSTM int8 step H=256 L=1", "stream1q", "lstm", 256),
    ("GRU int8 step H=256 L=1", "stream1q", "gru", 256),
    ("LSTM int8 step H=1024 L=1", "stream1q", "lstm", 1024),
    ("GRU int8 step H=1024 L=1", "stream1q", "gru", 1024),
    ("LSTM int8 step H=256 L=2", "stream2q", "lstm", 256),
    ("GRU int8 step H=256 L=2", "stream2q", "gru", 256),
    ("LSTM int8 step H=1024 L=2", "stream2q", "lstm", 1024),
    ("GRU int8 step H=1024 L=2", "stream2q", "gru", 1024),
]
CELLS = ["rnn", "lstm", "gru", "peephole"]
STREAM_STEPS = 200  # steps per timed PyTorch run
BATCH, STEPS, INPUT = 64, 100, 64


GATES = {"rnn": 1, "lstm": 4, "gru": 3, "peephole": 4}


def workload_flops(kind, cell, hidden):
    """The matrix products' FLOPs of a workload (element-wise work is left out: it is a few percent).

    Forward: x W_ih^T over all steps, 2*B*T*G*H*I, and h W_hh^T per step, 2*B*T*G*H*H (G gates).
    Training adds the backward's products: dW_ih (x needs no gradient), and dW_hh and dh for the
    recurrence, so 2x the first and 3x the second. The Linear(H, 1) head is negligible."""
    if kind not in ("train", "infer"):
        return None  # the tutorial is too small to count; int8 and streaming rows are not float work
    g = GATES[cell]
    x_part = 2.0 * BATCH * STEPS * g * hidden * INPUT
    h_part = 2.0 * BATCH * STEPS * g * hidden * hidden
    return x_part + h_part if kind == "infer" else 2 * x_part + 3 * h_part


def bench_name(kind, cell, hidden):
    """The Google Benchmark run name of a workload in bench/bench_compare.cpp (and libtorch_compare.cpp)."""
    if kind == "tutorial":
        return "BM_tutorial/real_time"
    if kind.startswith("stream"):
        return (f"BM_stream/cell:{CELLS.index(cell)}/hidden:{hidden}/layers:{kind[6]}"
                f"/int8:{int(kind.endswith('q'))}/real_time")
    return f"BM_{kind}/cell:{CELLS.index(cell)}/hidden:{hidden}/real_time"


# ---------------------------------------------------------------- PyTorch side (child process)
def peephole_lstm_class(torch):
    """examples/peephole_lstm.h as an eager PyTorch module: the same ops in the same order."""
    class PeepholeLSTM(torch.nn.Module):
        def __init__(self, input_size, hidden_size, batch_first=True):
            super().__init__()
            k = hidden_size ** -0.5
            self.hidden = hidden_size
            self.weight_ih = torch.nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-k, k))
            self.weight_hh = torch.nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-k, k))
            self.bias = torch.nn.Parameter(torch.empty(4 * hidden_size).uniform_(-k, k))
            self.peephole = torch.nn.Parameter(torch.empty(3, hidden_size).uniform_(-k, k))

        def forward(self, x):
            H = self.hidden
            xw = torch.nn.functional.linear(x.transpose(0, 1), self.weight_ih, self.bias)
            h = x.new_zeros(x.shape[0], H)
            c = x.new_zeros(x.shape[0], H)
            hs = []
            for t in range(x.shape[1]):
                gates = xw[t] + torch.nn.functional.linear(h, self.weight_hh)
                i = torch.sigmoid(gates[:, :H] + self.peephole[0] * c)
                f = torch.sigmoid(gates[:, H:2 * H] + self.peephole[1] * c)
                g = torch.tanh(gates[:, 2 * H:3 * H])
                c = f * c + i * g
                o = torch.sigmoid(gates[:, 3 * H:] + self.peephole[2] * c)
                h = o * torch.tanh(c)
                hs.append(h)
            return torch.stack(hs, 1), None
    return PeepholeLSTM


def torch_worker(threads, names, repeats):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cells = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
             "peephole": peephole_lstm_class(torch)}
    results = {}

    def best_of(fn, reps):
        fn()  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    for name, kind, cell, hidden in WORKLOADS:
        if name not in names:
            continue
        if kind == "tutorial":
            # 100 sequences x 10 steps x 5 features, RNN(8), per-step Linear(8, 1), BCE-with-logits,
            # Adam, batch 10, 5 epochs: the example trainer's workload.
            x = torch.rand(100, 10, 5) * 2 - 1
            y = (torch.rand(100, 10, 1) > 0.5).float()

            def run():
                rnn, head = torch.nn.RNN(5, 8, batch_first=True), torch.nn.Linear(8, 1)
                opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=0.01)
                loss_fn = torch.nn.BCEWithLogitsLoss()
                for _ in range(5):
                    for b in range(0, 100, 10):
                        out, _ = rnn(x[b:b + 10])
                        loss = loss_fn(head(out), y[b:b + 10])
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
            results[name] = best_of(run, repeats)
            continue
        if kind.startswith("stream"):
            layers = int(kind[6])
            seq = cells[cell](INPUT, hidden, num_layers=layers)
            step_cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell](INPUT, hidden)
            x1 = torch.randn(1, 1, INPUT)

            def run_seq():
                with torch.no_grad():
                    state = None
                    for _ in range(STREAM_STEPS):
                        _, state = seq(x1, state)

            def run_cell():
                with torch.no_grad():
                    state = None
                    for _ in range(STREAM_STEPS):
                        state = step_cell(x1[0], state)
            t = best_of(run_seq, repeats)
            if layers == 1:
                t = min(t, best_of(run_cell, repeats))
            results[name] = t / STREAM_STEPS
            continue
        model = cells[cell](INPUT, hidden, batch_first=True)
        head = torch.nn.Linear(hidden, 1)
        if kind == "qinfer":
            engines = torch.backends.quantized.supported_engines
            torch.backends.quantized.engine = next(e for e in ("fbgemm", "onednn", "x86", "qnnpack") if e in engines)
            # quantize_dynamic swaps a model's children, never the model itself: wrap the layer.
            model = torch.quantization.quantize_dynamic(torch.nn.Sequential(model), {type(model)},
                                                        dtype=torch.qint8)[0]
        x = torch.randn(BATCH, STEPS, INPUT)
        target = torch.randn(BATCH, x.shape[1], 1)
        if kind == "train":
            opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=1e-3)

            def run():
                out, _ = model(x)
                loss = torch.nn.functional.mse_loss(head(out), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        else:
            def run():
                with torch.no_grad():
                    model(x)
        results[name] = best_of(run, repeats)
    # PyTorch's own GEMM rate: Debian's libblas.so.3 may be the reference BLAS (no libopenblas0
    # installed), which runs PyTorch's products ~25x slower than it can and makes every ratio meaningless.
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    results["__matmul_flops"] = 2 * 1024 ** 3 / best_of(lambda: a @ b, repeats)
    print(json.dumps(results))


# ---------------------------------------------------------------- seqgrad and libtorch sides
def run_gbench(binary, threads, names, repeats, env, peak=False):
    """Best-of-repeats seconds per workload from bench_compare or libtorch_compare; with peak, also
    the best FMA peak FLOP/s under the key "peak"."""
    env = dict(env, OMP_NUM_THREADS=str(threads))
    wanted = [bench_name(k, c, h) for n, k, c, h in WORKLOADS if n in names] + (["BM_fma_peak", "BM_bf16_peak"] if peak else [])
    filt = "^(" + "|".join(w.removesuffix("/real_time") for w in wanted) + ")(/real_time)?$"
    out = subprocess.run([binary, f"--benchmark_filter={filt}", "--benchmark_format=json",
                          f"--benchmark_repetitions={repeats}", "--benchmark_report_aggregates_only=false"],
                         env=env, check=True, capture_output=True, text=True).stdout
    times = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        t = b["real_time"] * scale
        key = b["run_name"]
        if key.startswith("BM_fma_peak"):
            times["peak"] = max(times.get("peak", 0), b["FLOP/s"])
            continue
        if key.startswith("BM_bf16_peak"):
            times["bf16_peak"] = max(times.get("bf16_peak", 0), b["FLOP/s"])
            continue
        times[key] = min(times.get(key, t), t)
    out = {n: times[bench_name(k, c, h)] for n, k, c, h in WORKLOADS if bench_name(k, c, h) in times}
    for key in ("peak", "bf16_peak"):
        if key in times:
            out[key] = times[key]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--libtorch", default=os.path.join("build-libtorch", "bench", "libtorch_compare"),
                    help="libtorch_compare binary (default: %(default)s); skipped when absent")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="substring filter on workload names")
    ap.add_argument("--bf16", action="store_true",
                    help="run seqgrad in the opt-in bfloat16 matmul mode (needs AVX512_BF16)")
    ap.add_argument("--torch-worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [w[0] for w in WORKLOADS if args.only.lower() in w[0].lower()]

    if args.torch_worker:
        torch_worker(int(args.torch_worker[0]), json.loads(args.torch_worker[1]), args.repeats)
        return 0

    binary = os.path.join(args.build, "bench", "bench_compare")
    if not os.path.exists(binary):
        print(f"{binary} not found: build first (bash scripts/build.sh)", file=sys.stderr)
        return 1
    try:
        subprocess.run([sys.executable, "-c", "import torch"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        print("PyTorch is not available to this interpreter (apt-get install python3-torch, run with "
              "/usr/bin/python3): nothing to compare against.")
        return 0

    have_libtorch = os.path.exists(args.libtorch)
    if not have_libtorch:
        print(f"{args.libtorch} not found: no libtorch column (build it as this script's --help says).\n")

    torch_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    ours, theirs, lt = {}, {}, {}
    for threads in (1, 2):  # interleaved: seqgrad, PyTorch, libtorch, at each thread count
        ours_env = dict(os.environ, SEQGRAD_MATMUL_PRECISION="bf16") if args.bf16 else os.environ
        ours[threads] = run_gbench(binary, threads, names, args.repeats, ours_env, peak=True)
        out = subprocess.run([sys.executable, __file__, "--repeats", str(args.repeats),
                              "--torch-worker", str(threads), json.dumps(names)],
                             env=torch_env, check=True, capture_output=True, text=True).stdout
        theirs[threads] = json.loads(out)
        if have_libtorch:
            lt[threads] = run_gbench(args.libtorch, threads, names, args.repeats, torch_env)

    print("PyTorch side run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; times are the best of "
          f"{args.repeats} runs; PyTorch column = its faster of 1 and 2 threads.")
    print(f"FMA peak measured in this run: {ours[1]['peak'] / 1e9:.0f} GFLOP/s on 1 thread, "
          f"{ours[2]['peak'] / 1e9:.0f} GFLOP/s on 2; GFLOP counts the matrix products only.")
    if ours[1].get("bf16_peak"):
        print(f"bf16 (vdpbf16ps) peak on one core: {ours[1]['bf16_peak'] / 1e9:.0f} GFLOP/s. "
              f"seqgrad's matmul precision in this run: {'bf16' if args.bf16 else 'float32'} "
              "(the peak column stays the float32 FMA's).")
    torch_mm = theirs[1]["__matmul_flops"]
    print(f"PyTorch's own 1024^3 matmul: {torch_mm / 1e9:.0f} GFLOP/s on 1 thread ({torch_mm / ours[1]['peak']:.0%} of the FMA peak).")
    if torch_mm < 0.3 * ours[1]["peak"]:
        print("WARNING: PyTorch's matmul is far below the FMA peak: its BLAS is probably the reference one\n"
              "(update-alternatives --display libblas.so.3-x86_64-linux-gnu). apt-get install libopenblas0-pthread\n"
              "for PyTorch at its best; the ratios below overstate seqgrad's lead.")
    print("Rows 'int8': PyTorch quantize_dynamic (qint8). Rows 'step': one streaming step at batch 1; the\n"
          "PyTorch column is eager float32 even for seqgrad's int8 rows (the baseline the targets name).\n")
    header = (f"| {'workload':<26} | {'seqgrad 1T':>11} | {'seqgrad 2T':>11} | {'PyTorch best':>13} | {'speed-up 1T':>11} |"
              f" {'speed-up 2T':>11} | {'GFLOP':>6} | {'GFLOP/s 1T (peak)':>17} | {'GFLOP/s 2T (peak)':>17} |")
    if have_libtorch:
        header += f" {'libtorch best':>16} | {'seqgrad/libtorch speed-up 1T':>28} | {'seqgrad/libtorch speed-up 2T':>28} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for n in names:
        if n not in ours[1] or n not in theirs[1]:
            continue
        t1, t2 = ours[1][n], ours[2][n]
        pt = min(theirs[1][n], theirs[2][n])
        pt_threads = 1 if theirs[1][n] <= theirs[2][n] else 2
        flops = next(workload_flops(k, c, h) for w, k, c, h in WORKLOADS if w == n)
        rate = lambda t, th: (f"{flops / t / 1e9:>7.1f} ({flops / t / ours[th]['peak']:>5.1%})" if flops else "")
        row = (f"| {n:<26} | {t1 * 1e3:>8.3f} ms | {t2 * 1e3:>8.3f} ms | {pt * 1e3:>7.3f} ms ({pt_threads}T) |"
               f" {pt / t1:>10.2f}x | {pt / t2:>10.2f}x | {flops / 1e9 if flops else 0:>6.2f} | {rate(t1, 1):>17} | {rate(t2, 2):>17} |")
        if have_libtorch and n in lt[1] and n in lt[2]:
            lbest = min(lt[1][n], lt[2][n])
            l_threads = 1 if lt[1][n] <= lt[2][n] else 2
            row += f" {lbest * 1e3:>8.2f} ms ({l_threads}T) | {lbest / t1:>27.2f}x | {lbest / t2:>27.2f}x |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
