// The broadcasts that make every rank start identical: each first checks (on every rank) that
// the ranks agree on what is being sent, so a mismatch is an exception naming it, never a hang or
// a buffer read with the wrong layout.
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "dist/dist.h"
#include "dist/internal.h"

namespace seqgrad::dist {

namespace {
using detail::check_mpi;

MPI_Datatype mpi_type(DType d) { return d == DType::f32 ? MPI_FLOAT : MPI_DOUBLE; }

void broadcast_values(const Tensor& t, int root) {
  if (t.numel() > INT32_MAX) throw std::invalid_argument(fmt::format("dist: a tensor of {} elements is too large to send", t.numel()));
  check_mpi(MPI_Bcast(t.raw(), int(t.numel()), mpi_type(t.dtype()), root, detail::comm()), "MPI_Bcast");
}

// One line per tensor, "name dtype (shape)": what broadcast_parameters compares.
std::vector<std::string> describe(const NamedTensors& named) {
  std::vector<std::string> lines;
  for (const auto& [name, t] : named) lines.push_back(fmt::format("{} {} {}", name, t.dtype(), t.shape()));
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += l + '\n';
  return s;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

void check_root(int root) {
  if (root < 0 || root >= world_size())
    throw std::invalid_argument(fmt::format("dist: root {} is not a rank (world size {})", root, world_size()));
}
}  // namespace

void broadcast_parameters(const Module& module, int root) {
  if (!detail::active()) return;
  check_root(root);
  NamedTensors named = module.named_parameters();
  std::vector<std::string> mine = describe(named);
  std::string theirs_text = join(mine);
  detail::broadcast_string(theirs_text, root);
  std::vector<std::string> theirs = split(theirs_text);
  std::string error;
  for (size_t i = 0; i < std::max(mine.size(), theirs.size()) && error.empty(); ++i) {
    if (i < mine.size() && i < theirs.size() && mine[i] == theirs[i]) continue;
    error = fmt::format("parameter {} is '{}' here but '{}' on rank {} ({} parameters here, {} there)", i,
                        i < mine.size() ? mine[i] : "(none)", i < theirs.size() ? theirs[i] : "(none)", root,
                        mine.size(), theirs.size());
  }
  detail::agree(error, "dist::broadcast_parameters");
  for (const auto& [name, t] : named) broadcast_values(t, root);
}

void broadcast_optimizer_state(optim::Optimizer& optimizer, int root) {
  if (!detail::active()) return;
  check_root(root);
  // Root's entries as lines "name dtype rank d0 d1 ..."; the others allocate them, receive the
  // values and load them (load_state validates against their own parameters).
  optim::NamedTensors entries;
  std::string text;
  if (rank() == root) {
    entries = optimizer.state();
    for (const auto& [name, t] : entries) {
      text += fmt::format("{} {} {}", name, int(t.dtype()), t.rank());
      for (int a = 0; a < t.rank(); ++a) text += fmt::format(" {}", t.size(a));
      text += '\n';
    }
  }
  detail::broadcast_string(text, root);
  if (rank() != root)
    for (const std::string& line : split(text)) {
      std::istringstream in(line);
      std::string name;
      int dtype = 0, r = 0;
      in >> name >> dtype >> r;
      std::vector<int64_t> dims;
      for (int64_t d = 0; int(dims.size()) < r && in >> d;) dims.push_back(d);
      entries.emplace_back(name, Tensor::empty(Shape(dims), DType(dtype)));
    }
  for (const auto& [name, t] : entries) broadcast_values(t, root);
  std::string error;
  if (rank() != root) try {
      optimizer.load_state(entries);
    } catch (const std::exception& e) {
      error = e.what();
    }
  detail::agree(error, "dist::broadcast_optimizer_state");
}

void broadcast_generators(std::span<Generator* const> generators, int root) {
  if (!detail::active()) return;
  check_root(root);
  uint64_t n = generators.size();
  check_mpi(MPI_Bcast(&n, 1, MPI_UINT64_T, root, detail::comm()), "MPI_Bcast");
  detail::agree(n == generators.size() ? "" : fmt::format("{} generators here, {} on rank {}", generators.size(), n, root),
                "dist::broadcast_generators");
  std::vector<uint64_t> words;
  for (Generator* g : generators) {
    auto s = g->state();
    words.insert(words.end(), s.begin(), s.end());
  }
  check_mpi(MPI_Bcast(words.data(), int(words.size()), MPI_UINT64_T, root, detail::comm()), "MPI_Bcast");
  for (size_t i = 0; i < generators.size(); ++i)
    generators[i]->set_state({words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]});
}

namespace {
// Scheduler scalars as "name hexfloat" lines (exact round trip).
optim::SchedulerState broadcast_scheduler_state(const optim::SchedulerState& state, int root) {
  std::string text;
  for (const auto& [k, v] : state) text += fmt::format("{} {:a}\n", k, v);
  detail::broadcast_string(text, root);
  optim::SchedulerState out;
  for (const std::string& line : split(text)) {
    size_t space = line.rfind(' ');
    out.emplace_back(line.substr(0, space), std::strtod(line.c_str() + space + 1, nullptr));
  }
  return out;
}
}  // namespace

void broadcast_training_state(Module& model, io::TrainingState& state, int root) {
  if (!detail::active()) return;
  broadcast_parameters(model, root);
  std::vector<Generator*> generators;
  for (auto& [name, g] : model.named_generators()) generators.push_back(g.get());
  for (auto& [name, g] : state.generators) generators.push_back(g);
  broadcast_generators(generators, root);
  if (state.optimizer) broadcast_optimizer_state(*state.optimizer, root);
  // Both broadcasts before either load, so a rank whose load throws still takes part in both.
  optim::SchedulerState scheduler, plateau;
  if (state.scheduler) scheduler = broadcast_scheduler_state(state.scheduler->state(), root);
  if (state.plateau) plateau = broadcast_scheduler_state(state.plateau->state(), root);
  std::string error;
  try {
    if (state.scheduler) state.scheduler->load_state(scheduler);
    if (state.plateau) state.plateau->load_state(plateau);
  } catch (const std::exception& e) {
    error = e.what();
  }
  detail::agree(error, "dist::broadcast_training_state");
  check_mpi(MPI_Bcast(&state.epoch, 1, MPI_INT64_T, root, detail::comm()), "MPI_Bcast");
  std::string user;
  for (const auto& [k, v] : state.user) user += fmt::format("{}\n{}\n", k.size(), k) + fmt::format("{}\n{}\n", v.size(), v);
  detail::broadcast_string(user, root);
  state.user.clear();
  for (size_t pos = 0; pos < user.size();) {  // length-prefixed: keys and values may hold newlines
    std::string field[2];
    for (std::string& f : field) {
      size_t nl = user.find('\n', pos), len = std::stoul(user.substr(pos, nl - pos));
      f = user.substr(nl + 1, len);
      pos = nl + 1 + len + 1;
    }
    state.user[field[0]] = field[1];
  }
}

DataParallel::DataParallel(Module& module, AllreduceOptions options)
    : module_(module), params_(module.parameters()), options_(options) {
  broadcast_parameters(module_);
}

}  // namespace seqgrad::dist
