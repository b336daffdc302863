// The Profiler's records, shared by autograd/debug.cpp (which fills and tabulates them) and
// io/trace.cpp (which writes them as a Chrome trace). Internal.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/debug.h"

namespace seqgrad {

struct Profiler::Impl {
  struct Event {
    const char* op;
    bool backward;
    uint32_t scope, path;  // indices into strings
    int64_t start, end;    // ns since the Profiler began
    int64_t bytes;         // tensor storage allocated while it ran
  };
  int64_t origin = 0, last_end = 0;
  std::vector<Event> events;
  std::vector<std::string> strings;
  std::unordered_map<std::string, uint32_t> names;

  void add(const char* op, bool backward, const std::string& scope, const std::string& path, int64_t t0, int64_t t1,
           int64_t bytes);
};

}  // namespace seqgrad
