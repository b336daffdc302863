// Debugging tools: where an op ran (Scope), where a NaN came from (DetectAnomaly), where the time
// goes (Profiler). All three are per thread and cost one predictable branch per op while off.
//
//   { DetectAnomaly guard; loss = model.forward(x); loss.backward(); }
//   // throws AnomalyError: "... forward of "encoder.lstm layer 1 step 37: lstm_cell" produced ..."
//
//   Profiler prof;
//   train_step();
//   fmt::print("{}", prof.table());           // per op and per module path, sorted by self time
//   prof.save_chrome_trace("trace.json");     // open in Perfetto or chrome://tracing
//
// Scopes name what an op ran in. The layers push their module path (Module::path()), layer index
// and time step; a user model may push its own. Labels are views: they must outlive the Scope.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace seqgrad {

namespace detail {
enum DebugFlag : uint8_t { kAnomaly = 1, kProfile = 2 };
extern constinit thread_local uint8_t g_debug;        // DebugFlag bits active on this thread
extern constinit thread_local int64_t g_alloc_bytes;  // tensor storage allocated while profiling
void push_scope(std::string_view label, int64_t index, bool fine);
void pop_scope();
}  // namespace detail

// RAII: while alive, ops on this thread run "in" `label` (followed by `index` when >= 0):
// Scope("encoder.lstm"), Scope("layer", 1), Scope("step", 37) -> "encoder.lstm layer 1 step 37".
// A fine scope (a time step) is left out of the profiler's per-module totals. Nothing is stored
// unless anomaly detection or the profiler is on.
class Scope {
 public:
  explicit Scope(std::string_view label, int64_t index = -1, bool fine = false) {
    if (detail::g_debug) [[unlikely]] {
      detail::push_scope(label, index, fine);
      pushed_ = true;
    }
  }
  ~Scope() {
    if (pushed_) detail::pop_scope();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool pushed_ = false;
};

// The scopes open on this thread, joined: "encoder.lstm layer 1 step 37" (empty when none).
std::string current_scope();

// Thrown under DetectAnomaly by the first op whose output, or whose backward's gradient, holds a
// NaN or an infinity. The message names the op, its scope, the shapes, and for backward the
// forward op (and its scope) that recorded the node.
class AnomalyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// RAII: while alive, every op checks its output in forward (recorded or not, e.g. under
// NoGradGuard) and backward checks each gradient a node produces. Nests.
class DetectAnomaly {
 public:
  DetectAnomaly();
  ~DetectAnomaly();
  DetectAnomaly(const DetectAnomaly&) = delete;
  DetectAnomaly& operator=(const DetectAnomaly&) = delete;

 private:
  bool prev_;
};

// RAII: while alive, records every op run on this thread: calls, self time and bytes of tensor
// storage allocated, forward and backward separately, per module path. One at a time per thread.
class Profiler {
 public:
  Profiler();
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Totals per (op, pass) sorted by self time, then per (module path, pass); `rows` limits each
  // section (0: all). Like torch.profiler's key_averages().table().
  std::string table(size_t rows = 0) const;
  // Chrome trace-event JSON (one complete "X" event per op, args: scope and bytes), written
  // atomically. Throws std::runtime_error naming the file when it cannot be written.
  void save_chrome_trace(const std::string& path) const;
  size_t num_events() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace seqgrad
