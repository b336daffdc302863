// Sequential: runs its modules in order, each one's output feeding the next. Children are named
// "0", "1", ... as in PyTorch, so parameters read "0.weight", "2.bias". Any module with a
// forward(const Tensor&) fits; for a recurrent layer (whose forward returns a struct) the
// per-step output (.output) is passed on and the final state dropped.
//
//   auto mlp = Sequential(std::make_shared<Linear>(LinearOptions{.in_features = 4, .out_features = 8}),
//                         std::make_shared<Tanh>(),
//                         std::make_shared<Linear>(LinearOptions{.in_features = 8, .out_features = 1}));
//   Tensor y = mlp.forward(x);
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace seqgrad {

class Sequential : public Module {
 public:
  Sequential() = default;
  template <class... M>
  explicit Sequential(std::shared_ptr<M>... modules) {
    (push_back(std::move(modules)), ...);
  }

  template <class M>
  Sequential& push_back(std::shared_ptr<M> m) {
    M* p = m.get();
    register_module(std::to_string(steps_.size()), std::move(m));
    steps_.push_back([p](const Tensor& x) -> Tensor {
      if constexpr (requires { p->forward(x).output; })
        return p->forward(x).output;
      else
        return p->forward(x);
    });
    return *this;
  }

  Tensor forward(const Tensor& x) const;
  size_t size() const { return steps_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return children().at(i).second; }

 private:
  std::vector<std::function<Tensor(const Tensor&)>> steps_;
};

}  // namespace seqgrad
