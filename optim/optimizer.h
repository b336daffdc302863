// Optimizer: the base of SGD, Adam, AdamW, RMSprop and Adagrad (sgd.h, adam.h, rmsprop.h,
// adagrad.h). It holds the parameters (leaf tensors, usually module.parameters()), one learning
// rate that schedulers change (scheduler.h), and each parameter's named state: a step count and
// the buffers the algorithm needs ("exp_avg", "momentum_buffer", ...), allocated on the
// parameter's first step and updated in place afterwards, so a step after the first allocates
// nothing.
//
// Updates write the parameters' storage directly (p.data<T>()); they are never recorded on the
// tape. A parameter whose grad() is undefined (no gradient reached it) is skipped, as in PyTorch.
// Parameters may be float32 or float64; each is updated in its own precision.
//
//   Adam opt(model.parameters(), {.lr = 1e-3});
//   for (...) { opt.zero_grad(); loss(model).backward(); opt.step(); }
//   auto ckpt = opt.state();  // {"lr", "0.step", "0.exp_avg", "0.exp_avg_sq", "1.step", ...}
//   other.load_state(ckpt);   // validates names and shapes, copies the values
//
// Not here: parameter groups (one lr and one set of options per optimizer; build two optimizers
// for two groups), sparse gradients, closures.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace seqgrad::optim {

// Checkpoint entries: a name and a tensor. Optimizer::state() names per-parameter entries
// "<index>.<buffer>" (index into the parameter list), "<index>.step" (a 0-d float64 tensor), plus
// "lr" and, once a scheduler attached, "initial_lr".
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// One parameter's optimizer state.
struct ParamState {
  bool started = false;  // false until the parameter's first step (or a load_state entry)
  int64_t step = 0;      // updates applied to this parameter (Adam's t in the bias corrections)
  std::array<Tensor, 3> buffers;  // shaped like the parameter, named by Optimizer::buffer_names()
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient.
  virtual void step() = 0;
  // Drops every parameter's gradient (set_to_none, PyTorch's default), or zero-fills it in place
  // (keeps the gradient's storage; the next backward() accumulates into it).
  void zero_grad(bool set_to_none = true);

  double lr() const { return lr_; }
  // Throws std::invalid_argument for a negative or NaN lr.
  void set_lr(double lr);
  // The lr schedulers scale: the optimizer's lr when the first scheduler attached (PyTorch's
  // "initial_lr"); lr() before that.
  double initial_lr() const { return has_initial_lr_ ? initial_lr_ : lr_; }
  bool has_initial_lr() const { return has_initial_lr_; }
  void set_initial_lr(double lr);

  const char* name() const { return name_; }
  const std::vector<Tensor>& params() const { return params_; }
  // Names of the per-parameter buffers, in ParamState::buffers order (depends on the options:
  // Adam lists "max_exp_avg_sq" only with amsgrad).
  const std::vector<std::string>& buffer_names() const { return buffer_names_; }
  bool counts_steps() const { return counts_steps_; }  // false for SGD, which keeps no step count
  const ParamState& param_state(size_t i) const { return state_.at(i); }

  // Checkpoint. state() returns the live buffers (clone() them to snapshot while training goes
  // on); parameters that never stepped have no entries, like PyTorch's state_dict.
  NamedTensors state() const;
  // Replaces all state with `entries` (as returned by state(), possibly from another process).
  // Validates everything first and throws std::invalid_argument naming the bad entry, leaving the
  // optimizer unchanged: unknown names, indices out of range, shapes that differ from the
  // parameter's, a parameter with some of its entries missing. Values are copied (and converted to
  // the parameter's dtype) into buffers the optimizer owns.
  void load_state(const NamedTensors& entries);

 protected:
  // Validates the parameter list (non-empty, defined, leaves, no duplicates) and lr.
  Optimizer(const char* name, std::vector<Tensor> params, double lr, std::vector<std::string> buffer_names,
            bool counts_steps);

  // Parameter i's state, its buffers allocated (filled with `fill`) on the first call.
  ParamState& init_state(size_t i, double fill = 0);

  // Throws std::invalid_argument("<name>: invalid <what> <value> (<rule>)") unless ok.
  void check(bool ok, const char* what, double value, const char* rule) const;

  std::vector<Tensor> params_;
  std::vector<ParamState> state_;

 private:
  const char* name_;
  double lr_;
  double initial_lr_ = 0;
  bool has_initial_lr_ = false;
  std::vector<std::string> buffer_names_;
  bool counts_steps_;
};

// Calls f(float{}) or f(double{}) for the dtype: the optimizers' one switch into typed kernels.
template <class F>
void by_dtype(DType d, F&& f) {
  if (d == DType::f32)
    f(float{});
  else
    f(double{});
}

}  // namespace seqgrad::optim
