#include "autograd/tape.h"

#include "autograd/debug.h"


namespace seqgrad {

namespace detail {
// ops_common.cpp: the switch over every op's backward, and grad(t) += g.
void backward_node(const Node& n);
void accumulate_grad(const Tensor& t, const Tensor& g);
void debug_backward(const Node& n);  // debug.cpp: backward_node, timed and checked
}  // namespace detail

namespace {
thread_local bool g_grad_mode = true;
}

const char* op_name(Op op) {
  static constexpr const char* names[] = {
#define SEQGRAD_OP(name, str, n_in) str,
#include "autograd/ops.def"
#undef SEQGRAD_OP
  };
  return names[size_t(op)];
}

bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : prev_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = prev_; }

Tape& Tape::current() {
  thread_local Tape tape;
  return tape;
}

void Tape::clear() {
  nodes_.clear();
  ++epoch_;
}

void Tape::record(Node&& n) {
  for (Tensor* t : {&n.out, &n.out2}) {
    if (!t->defined()) continue;
    TensorImpl& out = t->impl();
    out.requires_grad = true;
    out.node = int64_t(nodes_.size());
    out.epoch = epoch_;
  }
  nodes_.push_back(std::move(n));
}

void Tape::backward(const Tensor& root, const Tensor& seed, bool retain_graph) {
  if (!root.requires_grad())
    throw std::invalid_argument(
        "backward: the tensor does not require grad: no input of its computation was marked requires_grad_(), or it "
        "was computed under NoGradGuard");
  if (!root.is_leaf() && root.impl().epoch != epoch_)
    throw std::invalid_argument(
        "backward: the tape that recorded this tensor was already freed by an earlier backward(); pass "
        "retain_graph=true to the first call to backpropagate twice");
  if (seed.shape() != root.shape() || seed.dtype() != root.dtype())
    throw std::invalid_argument(fmt::format("backward: seed gradient is {} {} but the tensor is {} {}", seed.shape(),
                                            seed.dtype(), root.shape(), root.dtype()));
  detail::accumulate_grad(root, seed);
  if (root.is_leaf()) return;
  TensorImpl& r = root.impl();

  NoGradGuard no_grad;  // backward formulas reuse forward ops; they must not record
  retain_graph_ = retain_graph;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{retain_graph_};  // also when a node's backward throws
  for (int64_t i = r.node; i >= 0; --i) {
    const Node& n = nodes_[size_t(i)];
    bool has_grad2 = n.out2.defined() && n.out2.impl().grad;
    if (!n.out.impl().grad && !has_grad2) continue;  // nothing downstream of the root used this node
    if (detail::g_debug) [[unlikely]]
      detail::debug_backward(n);
    else
      detail::backward_node(n);
    // Only leaves keep their gradient, as in PyTorch; this also makes a retained second pass exact.
    n.out.impl().grad.reset();
    if (has_grad2) n.out2.impl().grad.reset();
  }
  if (!retain_graph) clear();
}

}  // namespace seqgrad
