// Profiler::save_chrome_trace: the trace-event format (a "traceEvents" array of complete "X"
// events, times in microseconds) that Perfetto and chrome://tracing open.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "autograd/profiler_impl.h"
#include "io/file.h"

namespace seqgrad {

void Profiler::save_chrome_trace(const std::string& path) const {
  nlohmann::json events = nlohmann::json::array();
  const int pid = int(::getpid());
  for (const auto& e : impl_->events)
    events.push_back({{"name", e.op},
                      {"cat", e.backward ? "backward" : "forward"},
                      {"ph", "X"},
                      {"ts", double(e.start) / 1e3},
                      {"dur", double(e.end - e.start) / 1e3},
                      {"pid", pid},
                      {"tid", 1},  // a Profiler records the one thread that made it
                      {"args", {{"scope", impl_->strings[e.scope]}, {"bytes", e.bytes}}}});
  const std::string text = nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
  io::write_file_atomic(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

}  // namespace seqgrad
