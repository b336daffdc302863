// Module: the base of every layer and of user models. It owns named parameters and named
// submodules, both registered explicitly, and walks them recursively with PyTorch's dotted
// state_dict names ("encoder.weight_ih_l0"). It is not a layer itself and has no forward():
// each subclass declares the forward() signature that fits it.
//
//   struct Tagger : Module {
//     std::shared_ptr<LSTM> lstm =
//         register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 5, .hidden_size = 8}));
//   };  // Tagger().named_parameters() -> "lstm.weight_ih_l0", "lstm.weight_hh_l0", ...
//
// Parameters are leaf tensors with requires_grad set. A Tensor is a shared handle, so the
// handle a layer keeps, the one in the registry and the ones parameters() returns are one
// tensor: optimizers and loaders write through any of them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace seqgrad {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_parameters found: names the module has but the source lacks, names the source has
// but the module lacks, and names whose shapes differ ("weight_ih_l0: expected (32, 5), got (32, 6)").
struct LoadReport {
  std::vector<std::string> missing, unexpected, shape_mismatch;
  bool ok() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
  std::string summary() const;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // Copying would silently share (or, worse, half-share) parameters: not allowed. Moving is fine,
  // because submodules are held by shared_ptr and parameters by handle.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  // Depth first: this module's own parameters in registration order, then each submodule's.
  // A tensor reachable twice (a shared submodule, tied weights) is listed once, under its first name.
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  // The parameter with this dotted name; throws std::invalid_argument listing the valid names.
  Tensor parameter(std::string_view name) const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  int64_t num_parameters() const;  // total number of scalars
  // Dotted name under the root module ("encoder.lstm"; empty for a root): the layers open a Scope
  // with it, so anomaly messages and the profiler name the module an op ran in.
  const std::string& path() const { return path_; }
  // path(), or `type` ("LSTM") for a root module: what its forward's Scope shows.
  std::string_view scope_name(std::string_view type) const { return path_.empty() ? type : std::string_view(path_); }
  // Every random generator of this module and its submodules by dotted name ("lstm.dropout"):
  // the state a training checkpoint saves so that a run with dropout resumes bit-identically.
  std::vector<std::pair<std::string, std::shared_ptr<Generator>>> named_generators() const;

  void zero_grad();  // drops every parameter's gradient
  // Training mode (the default) enables dropout; eval() disables it. Recursive.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Converts every parameter in place (values kept, gradients dropped). Handles stay valid: the
  // tensors change dtype under the same identity, so a layer built in float32 can be gradchecked
  // in float64. Do not call it between a forward and its backward.
  void to(DType dtype);

  // Copies values by name (converting dtype if needed). strict: every name must match in both
  // directions with equal shapes, otherwise std::invalid_argument lists every problem at once and
  // nothing is copied. Non-strict: matching names are copied and the report lists the rest.
  LoadReport load_parameters(const NamedTensors& source, bool strict = true);

 protected:
  // Registers t (a leaf) as parameter `name`, marks it requires_grad and returns the handle.
  Tensor register_parameter(std::string name, Tensor t);
  // A generator owned by this module, seeded with `seed` (shared, so it survives a move).
  std::shared_ptr<Generator> register_generator(std::string name, uint64_t seed);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    add_child(std::move(name), m);
    return m;
  }

 private:
  void add_child(std::string name, std::shared_ptr<Module> m);
  void check_name(const std::string& name, const char* what) const;
  void set_path(std::string path);
  void collect(const std::string& prefix, NamedTensors& out, std::vector<const TensorImpl*>& seen) const;

  NamedTensors params_;
  std::vector<std::pair<std::string, std::shared_ptr<Generator>>> generators_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::string path_;
};

}  // namespace seqgrad
