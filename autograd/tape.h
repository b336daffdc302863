// The tape: a Wengert list of every op executed while grad mode is on, in execution order.
//
// Recording happens inside the op builders (ops_*.cpp): an op whose inputs require grad appends one
// Node holding its inputs, output and attributes. Tensor::backward() walks the nodes in reverse,
// so there is no graph and no topological sort; a recurrent layer's time loop simply leaves T
// steps of nodes behind and backpropagation through time is ordinary reverse-mode sweep.
//
// The tape is per thread. backward() frees it (unless retain_graph), so a training step records,
// backpropagates and starts over. For inference, hold a NoGradGuard: nothing is recorded.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/tensor.h"

namespace seqgrad {

enum class Op : uint8_t {
#define SEQGRAD_OP(name, str, n_in) name,
#include "autograd/ops.def"
#undef SEQGRAD_OP
};
inline constexpr int kNumOps = 0
#define SEQGRAD_OP(name, str, n_in) +1
#include "autograd/ops.def"
#undef SEQGRAD_OP
    ;
const char* op_name(Op op);

struct Node {
  Op op;
  std::array<bool, 4> needs_grad{};  // which of in[] want a gradient
  uint32_t site = 0;                 // its scope while debugging (autograd/debug.cpp), else 0
  std::array<Tensor, 4> in;          // inputs (undefined where unused)
  std::vector<Tensor> list;          // variadic inputs (concat only)
  Tensor out;
  Tensor out2;                       // a second output (lstm_cell's c), else undefined
  Tensor saved;                      // extra state for backward (a target, indices, activations)
  std::shared_ptr<void> shared;      // state shared by the nodes of one sequence (a cell's packed W_hh)
  std::array<int64_t, 3> iattr{};    // axes, indices
  double attr = 0;                   // a scalar operand
};

class Tape {
 public:
  static Tape& current();  // this thread's tape

  size_t size() const { return nodes_.size(); }
  const std::vector<Node>& nodes() const { return nodes_; }
  uint64_t epoch() const { return epoch_; }
  // Forgets every node; tensors recorded so far can no longer be backpropagated through.
  void clear();

  // Appends n (its out must be set) and links n.out (and n.out2) to it.
  void record(Node&& n);
  void backward(const Tensor& root, const Tensor& seed, bool retain_graph);
  // True while a backward(retain_graph = true) runs: saved tensors must then survive it.
  bool retains_graph() const { return retain_graph_; }

 private:
  std::vector<Node> nodes_;
  uint64_t epoch_ = 1;
  bool retain_graph_ = false;
};

bool grad_mode_enabled();

// RAII: nothing is recorded while one is alive (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace seqgrad
