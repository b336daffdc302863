// The examples' one way to dist/: the real thing when seqgrad is built with MPI
// (SEQGRAD_WITH_MPI), otherwise the world of one process it reduces to when run without mpirun,
// so the examples build and behave the same either way.
#pragma once

#if SEQGRAD_WITH_MPI
#include "dist/dist.h"
#else
#include <span>

#include "io/checkpoint.h"
#include "layers/module.h"

namespace seqgrad::dist {
class Environment {
 public:
  Environment(int&, char**&) {}
  int rank() const { return 0; }
  int world_size() const { return 1; }
  int fail(int status) const { return status; }
};
inline int rank() { return 0; }
inline int world_size() { return 1; }
inline double allreduce_mean(double value) { return value; }
inline void allreduce_gradients(std::span<const Tensor>) {}
inline void broadcast_parameters(const Module&) {}
inline void broadcast_training_state(Module&, io::TrainingState&) {}
}  // namespace seqgrad::dist
#endif
