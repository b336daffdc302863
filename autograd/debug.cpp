// Scopes, anomaly detection and the profiler. The ops reach this file from two shared points
// (ops_internal.h): check_defined, every builder's first call, marks an op's start, and
// recording() hands over its output; Tape::backward calls debug_backward per node.
#include "autograd/debug.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "autograd/ops_internal.h"
#include "autograd/profiler_impl.h"

namespace seqgrad {
namespace detail {

constinit thread_local uint8_t g_debug = 0;
constinit thread_local int64_t g_alloc_bytes = 0;

namespace {
struct Part {
  std::string_view label;
  int64_t index;
  bool fine;
};
thread_local std::vector<Part> g_scopes;
thread_local Profiler::Impl* g_prof = nullptr;
thread_local bool g_in_backward = false;  // a node's backward reuses forward ops: they are part of it
thread_local int64_t g_mark_ns = 0, g_mark_bytes = 0;

// Annotations of the nodes of this thread's tape (Node::site - 1), dropped with the tape.
struct Sites {
  uint64_t epoch = 0;
  std::vector<std::string> scope, path;
};
thread_local Sites g_sites;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A submodule's path ("encoder.cell.gates") takes the place of its parent's ("encoder.cell"), so
// a step loop around it reads "encoder.cell.gates step 37", not "encoder.cell step 37 encoder.cell.gates".
std::string render(bool with_fine) {
  std::string s;
  std::vector<bool> shown(g_scopes.size(), true);
  for (size_t i = 0; i < g_scopes.size(); ++i) {
    const Part* p = &g_scopes[i];
    if (!shown[i] || p->label.empty() || (p->fine && !with_fine)) continue;
    for (size_t j = i + 1; j < g_scopes.size(); ++j) {
      std::string_view l = g_scopes[j].label;
      if (l.size() > p->label.size() && l.starts_with(p->label) && l[p->label.size()] == '.' && g_scopes[j].index < 0) {
        p = &g_scopes[j];
        shown[j] = false;
      }
    }
    if (!s.empty()) s += ' ';
    s += p->label;
    if (p->index >= 0) s += fmt::format(" {}", p->index);
  }
  return s;
}

// Number of NaN/Inf values of t and the first one's index (all bits of the exponent set).
template <class T, class U>
std::pair<int64_t, int64_t> count_nonfinite(const Tensor& t) {
  constexpr U mask = std::is_same_v<T, float> ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  int64_t cols = t.rank() ? t.size(-1) : 1, rows = cols ? t.numel() / cols : 0, bad = 0, first = -1;
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = static_cast<const T*>(t.raw_rows()) + r * t.row_stride();
    int64_t row_bad = 0;
    for (int64_t i = 0; i < cols; ++i) {
      U bits;
      std::memcpy(&bits, p + i, sizeof bits);
      row_bad += (bits & mask) == mask;
    }
    if (row_bad && first < 0)
      for (int64_t i = 0; i < cols && first < 0; ++i)
        if (!std::isfinite(p[i])) first = r * cols + i;
    bad += row_bad;
  }
  return {bad, first};
}

std::pair<int64_t, int64_t> nonfinite(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return {0, -1};
  return t.dtype() == DType::f32 ? count_nonfinite<float, uint32_t>(t) : count_nonfinite<double, uint64_t>(t);
}

std::string describe_bad(const Tensor& t, std::pair<int64_t, int64_t> bad) {
  int64_t cols = t.rank() ? t.size(-1) : 1;
  const char* base = static_cast<const char*>(t.raw_rows());
  int64_t r = bad.second / cols, c = bad.second % cols, at = r * t.row_stride() + c;
  double first = t.dtype() == DType::f32 ? double(reinterpret_cast<const float*>(base)[at])
                                          : reinterpret_cast<const double*>(base)[at];
  return fmt::format("{} {} holds {} NaN/Inf of {} (first: {} at flat index {})", t.shape(), t.dtype(), bad.first,
                     t.numel(), first, bad.second);
}

std::string shapes(std::initializer_list<const Tensor*> ins) {
  std::string s;
  for (const Tensor* t : ins)
    s += fmt::format("{}{}", s.empty() ? "" : ", ", t->defined() ? fmt::format("{}", t->shape()) : "-");
  return s.empty() ? "-" : s;
}

std::string where(const std::string& scope, const char* op) { return scope.empty() ? op : scope + ": " + op; }

void check_forward(const char* op, std::initializer_list<const Tensor*> ins, const Tensor& out, const Tensor* out2) {
  int k = 0;
  for (const Tensor* y : {&out, out2}) {
    if (y) {
      if (auto bad = nonfinite(*y); bad.first) {
        std::string msg =
            fmt::format("detect_anomaly: forward of \"{}\" produced a non-finite value: output {} {}; inputs {}",
                        where(render(true), op), k, describe_bad(*y, bad), shapes(ins));
        std::string bad_ins;
        int i = 0;
        for (const Tensor* x : ins) {
          if (nonfinite(*x).first) bad_ins += fmt::format("{}{}", bad_ins.empty() ? "" : ", ", i);
          ++i;
        }
        // Checked after the op: a cell has overwritten its xp step with the gates by then.
        if (!bad_ins.empty())
          msg += fmt::format("; inputs holding NaN/Inf after it: {} (one that held them before came from data or a "
                             "parameter)", bad_ins);
        throw AnomalyError(msg);
      }
    }
    ++k;
  }
}
}  // namespace

void push_scope(std::string_view label, int64_t index, bool fine) { g_scopes.push_back({label, index, fine}); }
void pop_scope() { g_scopes.pop_back(); }

void op_begin() {
  if (g_in_backward) return;
  g_mark_ns = now_ns();
  g_mark_bytes = g_alloc_bytes;
}

void op_end(const char* op, std::initializer_list<const Tensor*> ins, const Tensor& out, const Tensor* out2) {
  if (g_in_backward) return;
  if (g_debug & kAnomaly) check_forward(op, ins, out, out2);
  if (g_prof) {
    int64_t t = now_ns();
    g_prof->add(op, false, render(true), render(false), std::max(g_mark_ns, g_prof->last_end), t,
                g_alloc_bytes - g_mark_bytes);
    g_mark_ns = t;  // an op nested in another's builder is not counted twice
    g_mark_bytes = g_alloc_bytes;
  }
}

uint32_t note_site() {
  Sites& s = g_sites;
  if (s.epoch != Tape::current().epoch()) s = {Tape::current().epoch(), {}, {}};
  std::string scope = render(true);
  if (s.scope.empty() || s.scope.back() != scope) {
    s.scope.push_back(std::move(scope));
    s.path.push_back(render(false));
  }
  return uint32_t(s.scope.size());
}

void backward_node(const Node& n);

void debug_backward(const Node& n) {
  const bool have_site = n.site && g_sites.epoch == Tape::current().epoch() && n.site <= g_sites.scope.size();
  const std::string none;
  const std::string& scope = have_site ? g_sites.scope[n.site - 1] : none;
  int64_t t0 = now_ns(), b0 = g_alloc_bytes;
  struct Flag {
    Flag() { g_in_backward = true; }
    ~Flag() { g_in_backward = false; }
  } flag;
  backward_node(n);
  if (g_prof)
    g_prof->add(op_name(n.op), true, scope, have_site ? g_sites.path[n.site - 1] : none, t0, now_ns(),
                g_alloc_bytes - b0);
  if (!(g_debug & kAnomaly)) return;
  auto check = [&](const Tensor& x, size_t i) {
    if (!x.defined() || !x.impl().grad) return;
    Tensor g(x.impl().grad);
    // A cell reading step t of a whole sequence's xp wrote only that step's rows: checking all of
    // xp at every step would make the check quadratic in the sequence length.
    const bool cell = n.op == Op::RnnCell || n.op == Op::LstmCell || n.op == Op::GruCell;
    if (cell && i == 0 && g.rank() == 3 && g.contiguous()) {
      const int64_t t = n.iattr[1], GH = g.size(2), T = g.size(n.iattr[0]), B = g.size(1 - n.iattr[0]);
      g = n.iattr[0] == 1 ? row_view(g, t * GH, {B, GH}, T * GH) : row_view(g, t * B * GH, {B, GH}, GH);
    }
    if (auto bad = nonfinite(g); bad.first)
      throw AnomalyError(fmt::format(
          "detect_anomaly: backward of \"{}\" produced a non-finite gradient: the gradient of input {} {}; the "
          "forward op {} that recorded this node had inputs {} and output {}{}",
          where(scope, op_name(n.op)), i, describe_bad(g, bad), op_name(n.op),
          shapes({&n.in[0], &n.in[1], &n.in[2], &n.in[3]}), n.out.shape(),
          have_site ? "" : " (its scope was not kept: run the forward under DetectAnomaly too)"));
  };
  for (size_t i = 0; i < n.in.size(); ++i)
    if (n.needs_grad[i]) check(n.in[i], i);
  for (size_t i = 0; i < n.list.size(); ++i) check(n.list[i], i);
}

}  // namespace detail

using namespace detail;

std::string current_scope() { return render(true); }

DetectAnomaly::DetectAnomaly() : prev_(g_debug & kAnomaly) { g_debug |= kAnomaly; }
DetectAnomaly::~DetectAnomaly() {
  if (!prev_) g_debug &= uint8_t(~kAnomaly);
}

// ---------------------------------------------------------------- profiler
void Profiler::Impl::add(const char* op, bool backward, const std::string& scope, const std::string& path,
                         int64_t t0, int64_t t1, int64_t bytes) {
  auto intern = [&](const std::string& s) {
    auto [it, fresh] = names.try_emplace(s, uint32_t(strings.size()));
    if (fresh) strings.push_back(s);
    return it->second;
  };
  events.push_back({op, backward, intern(scope), intern(path), t0 - origin, t1 - origin, bytes});
  last_end = t1;
}

Profiler::Profiler() : impl_(std::make_unique<Impl>()) {
  if (g_prof) throw std::logic_error("Profiler: another Profiler is already recording on this thread");
  impl_->origin = now_ns();
  g_prof = impl_.get();
  g_debug |= kProfile;
}

Profiler::~Profiler() {
  g_prof = nullptr;
  g_debug &= uint8_t(~kProfile);
}

size_t Profiler::num_events() const { return impl_->events.size(); }

std::string Profiler::table(size_t rows) const {
  struct Total {
    int64_t calls = 0, ns = 0, bytes = 0;
  };
  int64_t all_ns = 0;
  std::map<std::pair<std::string, bool>, Total> by_op, by_path;
  for (const auto& e : impl_->events) {
    for (auto* m : {&by_op, &by_path}) {
      const std::string& key = m == &by_op ? std::string(e.op) : impl_->strings[e.path];
      Total& t = (*m)[{key.empty() ? "(no module)" : key, e.backward}];
      t.calls++;
      t.ns += e.end - e.start;
      t.bytes += e.bytes;
    }
    all_ns += e.end - e.start;
  }
  std::string out;
  auto section = [&](const char* title, const auto& m) {
    std::vector<std::pair<std::pair<std::string, bool>, Total>> v(m.begin(), m.end());
    std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.ns > b.second.ns; });
    if (rows && v.size() > rows) v.resize(rows);
    size_t w = std::string_view(title).size();
    for (auto& [k, t] : v) w = std::max(w, k.first.size());
    out += fmt::format("{:<{}}  {:<8}  {:>8}  {:>12}  {:>7}  {:>12}  {:>14}\n", title, w, "pass", "calls", "self time",
                       "self %", "avg", "bytes alloc");
    for (auto& [k, t] : v)
      out += fmt::format("{:<{}}  {:<8}  {:>8}  {:>10.3f}ms  {:>6.1f}%  {:>10.3f}us  {:>14}\n", k.first, w,
                         k.second ? "backward" : "forward", t.calls, t.ns / 1e6, all_ns ? 100.0 * t.ns / all_ns : 0.0,
                         t.ns / 1e3 / t.calls, t.bytes);
  };
  section("op", by_op);
  out += '\n';
  section("module path", by_path);
  out += fmt::format("\n{} op events, self time total {:.3f}ms\n", impl_->events.size(), all_ns / 1e6);
  return out;
}

}  // namespace seqgrad
