// Data-parallel training over MPI (Open MPI), namespace seqgrad::dist. Built when CMake finds MPI
// (option SEQGRAD_WITH_MPI, which also defines the SEQGRAD_WITH_MPI macro for users). The header
// does not include <mpi.h>: programs that use it need no MPI include paths.
//
// Every rank runs the same program on its own shard of the data (io::DataLoaderOptions
// .num_shards/.shard); gradients are averaged after each backward, so all ranks take the same
// optimizer step and their parameters stay identical, as with PyTorch's DistributedDataParallel.
//
//   int main(int argc, char** argv) {
//     dist::Environment env(argc, argv);              // mpirun -np 4 ./train, or plain ./train
//     Model model;  optim::Adam opt(model.parameters(), {.lr = 1e-3});
//     dist::broadcast_parameters(model);               // every rank starts from rank 0's values
//     io::DataLoader loader(data, {.batch_size = 32, .seed = 7, .num_shards = env.world_size(), .shard = env.rank()});
//     for (const io::Batch& b : loader.epoch()) {
//       Tensor loss = ...;  loss.backward();
//       dist::allreduce_gradients(model.parameters());  // the mean over ranks, identical bits everywhere
//       opt.step();  opt.zero_grad();
//       double logged = dist::allreduce_mean(loss.item());
//       if (env.rank() == 0) fmt::print("loss {}\n", logged);
//     }
//   }
//
// A program started without mpirun (no launcher variables in its environment) does not
// initialise MPI at all: rank 0 of 1, every call below returns at once and changes nothing.
//
// Determinism: allreduce_gradients does not use MPI_Allreduce, whose summation order is up to
// the library. Each bucket is cut into one chunk per rank; rank r receives chunk r from every rank
// (MPI_Alltoallv), adds them in rank order, ((g_0 + g_1) + g_2) + ..., divides by the world size
// and sends the result to all (MPI_Allgatherv). The averaged gradient therefore has the same bits
// on every rank, in every run, and equals what one process computes when it adds the N ranks'
// gradients in rank order and divides by N.
//
// Failure: an exception that escapes on one rank (std::terminate) prints that rank's message and
// ends the whole job with MPI_Abort. Collectives that check their inputs (the broadcasts) throw
// the same exception on every rank, naming the rank and the first mismatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "io/checkpoint.h"
#include "layers/module.h"
#include "optim/optimizer.h"

namespace seqgrad::dist {

// RAII MPI_Init_thread (MPI_THREAD_FUNNELED: the OpenMP kernels never call MPI) and
// MPI_Finalize. One per program, in main(), before any other call here. Installs a
// std::terminate handler that aborts the job with the exception's message.
class Environment {
 public:
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  int rank() const;
  int world_size() const;
  // For a main() that catches its errors and returns a status: alone, returns `status`; under
  // mpirun, ends the whole job with it (MPI_Abort), since the other ranks would wait forever.
  int fail(int status) const;

 private:
  int uncaught_at_start_;
};

// 0 and 1 when no Environment is active.
int rank();
int world_size();
// Ends the job with `status` (MPI_Abort under mpirun, std::exit alone).
[[noreturn]] void abort(int status);
void barrier();

// The mean of one value per rank (a logged loss or accuracy), summed in rank order: the same
// bits on every rank.
double allreduce_mean(double value);

struct AllreduceOptions {
  size_t bucket_bytes = size_t(16) << 20;  // parameters are packed into buckets of about this size
};

// Replaces each parameter's gradient by its mean over the ranks (see "Determinism" above). float32
// and float64 parameters go in separate buckets, in parameter order; one MPI_Alltoallv and one
// MPI_Allgatherv per bucket, after one small exchange of which parameters have a gradient. A
// parameter without a gradient on some ranks counts as zeros there and gets the mean everywhere;
// one without a gradient on every rank keeps none. All ranks must pass the same list (names,
// shapes, dtypes: broadcast_parameters checks that).
void allreduce_gradients(std::span<const Tensor> params, const AllreduceOptions& options = {});

// Totals since the start (or reset_stats()) of the time spent in allreduce_gradients, the bytes
// this rank sent, and the MPI calls it made: the figures bench/ reports.
struct Stats {
  double seconds = 0;
  int64_t bytes_sent = 0;
  int64_t calls = 0;
};
Stats stats();
void reset_stats();

// Copies root's parameter values to every rank. First checks that every rank has the same
// parameter names, shapes and dtypes in the same order; otherwise throws std::invalid_argument on
// every rank naming the first rank and parameter that differ from root's.
void broadcast_parameters(const Module& module, int root = 0);
// Copies root's optimizer state (moment buffers, step counts, lr) to every rank, so ranks that
// did not load a checkpoint continue like root. Throws on every rank if any rank rejects it.
void broadcast_optimizer_state(optim::Optimizer& optimizer, int root = 0);
// Copies root's generator states (the loader's shuffling, dropout): every rank's draws follow root's.
void broadcast_generators(std::span<Generator* const> generators, int root = 0);
// Everything io::load_checkpoint restores, from root to every rank: parameters, the model's
// generators, optimizer, schedulers, listed generators, epoch and user strings. The way to resume
// when only root read the checkpoint.
void broadcast_training_state(Module& model, io::TrainingState& state, int root = 0);

// DistributedDataParallel's shape: broadcasts the parameters on construction; call
// sync_gradients() between backward() and the optimizer's step().
class DataParallel {
 public:
  explicit DataParallel(Module& module, AllreduceOptions options = {});
  void sync_gradients() const { allreduce_gradients(params_, options_); }
  Module& module() const { return module_; }

 private:
  Module& module_;
  std::vector<Tensor> params_;
  AllreduceOptions options_;
};

}  // namespace seqgrad::dist
