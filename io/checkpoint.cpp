#include "io/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "layers/quantize.h"

namespace seqgrad::io {

namespace {

constexpr const char* kCheckpointFormat = "seqgrad.checkpoint";
constexpr const char* kCheckpointVersion = "1";
constexpr std::string_view kOptimPrefix = "optim.";

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// What load() would find, without copying anything: the same lists Module::load_parameters makes.
LoadReport compare(const Module& module, const NamedTensors& source) {
  LoadReport r;
  NamedTensors own = module.named_parameters();
  std::map<std::string_view, const Tensor*> by_name;
  for (auto& [n, t] : own) by_name.emplace(n, &t);
  std::map<std::string_view, int> given;
  for (auto& [name, src] : source) {
    if (given[name]++) {
      r.unexpected.push_back(name + " (given twice)");
      continue;
    }
    auto it = by_name.find(name);
    if (it == by_name.end())
      r.unexpected.push_back(name);
    else if (!src.defined() || src.shape() != it->second->shape())
      r.shape_mismatch.push_back(fmt::format("{}: expected {}, got {}", name, it->second->shape(),
                                             src.defined() ? fmt::format("{}", src.shape()) : "undefined"));
  }
  for (auto& [n, t] : own)
    if (!given.count(n)) r.missing.push_back(n);
  return r;
}

std::string format_double(double v) { return fmt::format("{}", v); }  // shortest round-trip form

double parse_double(const std::string& source, const std::string& key, const std::string& text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    throw FormatError(fmt::format("{}: __metadata__ '{}' is '{}', not a number", source, key, text));
  return v;
}

int64_t parse_count(const std::string& source, const std::string& key, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v < 0)
    throw FormatError(fmt::format("{}: __metadata__ {} '{}' is not a count", source, key, text));
  return v;
}

const std::string& require(const std::string& source, const Metadata& md, const std::string& key, const char* why) {
  auto it = md.find(key);
  if (it == md.end()) throw FormatError(fmt::format("{}: __metadata__ has no '{}' ({})", source, key, why));
  return it->second;
}

// Every "<prefix><name>" -> value entry of the metadata, as a scheduler state.
optim::SchedulerState scheduler_entries(const std::string& source, const Metadata& md, const std::string& prefix) {
  optim::SchedulerState out;
  for (auto& [k, v] : md)
    if (starts_with(k, prefix)) out.emplace_back(k.substr(prefix.size()), parse_double(source, k, v));
  return out;
}

}  // namespace

std::string format_generator_state(const std::array<uint64_t, 4>& s) {
  return fmt::format("{:016x},{:016x},{:016x},{:016x}", s[0], s[1], s[2], s[3]);
}

std::array<uint64_t, 4> parse_generator_state(const std::string& text, const std::string& what) {
  std::array<uint64_t, 4> s{};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (p == end || *p != ',') p = nullptr;
      else ++p;
    }
    const char* start = p;
    auto r = p ? std::from_chars(p, end, s[i], 16) : std::from_chars_result{nullptr, std::errc::invalid_argument};
    if (!p || r.ec != std::errc() || r.ptr - start != 16) {
      throw FormatError(fmt::format("{}: generator state '{}' is not four 16-digit hex words s0,s1,s2,s3", what,
                                    text.size() > 80 ? text.substr(0, 80) + "..." : text));
    }
    p = r.ptr;
  }
  if (p != end) throw FormatError(fmt::format("{}: generator state '{}' has trailing text", what, text));
  return s;
}

// ---- model files
void save(const Module& module, const std::filesystem::path& path, const Metadata& metadata) {
  Metadata md = metadata;
  md.emplace("format", "pt");
  NamedTensors tensors = module.named_parameters();
  Int8Names int8;
  // A quantized layer's weight is stored as its int8 values (I8) under the weight's own name, with
  // the per-output-channel scales (F32) under name + "_scale".
  for (auto& entry : quant::named_int8_weights(const_cast<Module&>(module))) {
    const std::string& name = entry.first;  // not a structured binding: clang 14 cannot capture one
    const auto& q = entry.second;
    auto it = std::find_if(tensors.begin(), tensors.end(), [&](auto& e) { return e.first == name; });
    if (it == tensors.end()) continue;  // a tied weight listed under another name
    std::vector<float> values(q->q.begin(), q->q.end());
    it->second = from_vector(values, {q->N, q->K});
    int8.insert(name);
    tensors.emplace_back(name + "_scale", from_vector(q->scale, {q->N}));
  }
  if (!int8.empty()) md.emplace("seqgrad.quantization", "int8 dynamic: I8 weights, F32 per-output-channel scales");
  save_safetensors(path, tensors, md, int8);
}

LoadReport load(Module& module, const NamedTensors& tensors, const LoadOptions& options, const std::string& source) {
  LoadReport report = compare(module, tensors);
  if (options.strict && !report.ok())
    throw LoadError(fmt::format("{}: nothing was loaded: {}", source, report.summary()), report);
  module.load_parameters(tensors, /*strict=*/false);
  return report;
}

namespace {
// load() of a file into a model of which either may be quantized: they must agree, and then the
// int8 weights and their scales are checked in full before anything changes.
LoadReport load_quantized(Module& module, TensorFile& file, const LoadOptions& options, const std::string& source) {
  const auto int8 = quant::named_int8_weights(module);
  if (int8.empty()) {
    if (!file.int8.empty())
      throw LoadError(fmt::format("{}: holds int8 (quantized) weights ('{}', ...) but the model is float; run "
                                  "quantize_dynamic(model) before loading it",
                                  source, *file.int8.begin()), {});
    return load(module, file.tensors, options, source);
  }
  std::vector<std::pair<quant::QMatrix*, quant::QMatrix>> loaded;
  for (auto& [name, q] : int8) {
    const Tensor* w = file.find(name);
    if (!w) continue;  // missing: reported by load() below
    if (!file.int8.count(name))
      throw LoadError(fmt::format("{}: '{}' is a float tensor but the model is quantized (int8); load float weights "
                                  "before quantize_dynamic, or a file saved from a quantized model", source, name), {});
    const Tensor* scale = file.find(name + "_scale");
    if (!scale || scale->shape() != Shape{q->N} || scale->dtype() != DType::f32 || file.int8.count(name + "_scale"))
      throw LoadError(fmt::format("{}: int8 weight '{}' needs its scales '{}_scale', F32 of shape ({},)", source, name,
                                  name, q->N), {});
    if (w->shape() != Shape{q->N, q->K})
      throw LoadError(fmt::format("{}: int8 weight '{}' is {}; the model's is ({}, {})", source, name, w->shape(), q->N, q->K), {});
    std::vector<int8_t> values(w->span<float>().begin(), w->span<float>().end());
    std::vector<float> scales(scale->span<float>().begin(), scale->span<float>().end());
    try {
      loaded.emplace_back(q, quant::QMatrix::from_int8(std::move(values), std::move(scales), q->N, q->K));
    } catch (const std::invalid_argument& e) {
      throw LoadError(fmt::format("{}: '{}': {}", source, name, e.what()), {});
    }
  }
  std::erase_if(file.tensors, [&](auto& e) { return e.first.ends_with("_scale") && file.int8.count(e.first.substr(0, e.first.size() - 6)); });
  LoadReport report = load(module, file.tensors, options, source);
  for (auto& [q, m] : loaded) *q = std::move(m);
  quant::refresh_quantized(module);
  return report;
}
}  // namespace

LoadReport load(Module& module, const std::filesystem::path& path, const LoadOptions& options) {
  TensorFile file = load_safetensors(path, options.read);
  auto fmt_it = file.metadata.find("format");
  if (fmt_it != file.metadata.end() && fmt_it->second == kCheckpointFormat) {
    // The model part of a training checkpoint.
    std::erase_if(file.tensors, [](auto& e) { return starts_with(e.first, kOptimPrefix); });
  }
  return load_quantized(module, file, options, path.string());
}

// ---- training checkpoints
void save_checkpoint(const std::filesystem::path& path, const Module& model, const TrainingState& state) {
  NamedTensors tensors = model.named_parameters();
  for (auto& [name, t] : tensors)
    if (starts_with(name, kOptimPrefix))
      throw std::invalid_argument(fmt::format("save_checkpoint: parameter '{}' clashes with the optimizer's '{}' "
                                              "prefix; rename the submodule",
                                              name, kOptimPrefix));
  Metadata md;
  md["format"] = kCheckpointFormat;
  md["checkpoint_version"] = kCheckpointVersion;
  md["epoch"] = std::to_string(state.epoch);
  md["step"] = std::to_string(state.step);
  if (state.loader) {
    LoaderState l = state.loader->state();
    md["loader.rng"] = format_generator_state(l.rng);
    md["loader.epoch_rng"] = format_generator_state(l.epoch_rng);
  }
  if (state.optimizer) {
    md["optim.name"] = state.optimizer->name();
    for (auto& [name, t] : state.optimizer->state()) tensors.emplace_back(std::string(kOptimPrefix) + name, t);
  }
  if (state.scheduler)
    for (auto& [k, v] : state.scheduler->state()) md["scheduler." + k] = format_double(v);
  if (state.plateau)
    for (auto& [k, v] : state.plateau->state()) md["plateau." + k] = format_double(v);
  for (auto& [name, gen] : state.generators) {
    if (!gen) throw std::invalid_argument(fmt::format("save_checkpoint: generator '{}' is null", name));
    if (!md.emplace("rng." + name, format_generator_state(gen->state())).second)
      throw std::invalid_argument(fmt::format("save_checkpoint: generator name '{}' is given twice", name));
  }
  for (auto& [name, gen] : model.named_generators()) md["rng.model." + name] = format_generator_state(gen->state());
  for (auto& [k, v] : state.user) md["user." + k] = v;
  save_safetensors(path, tensors, md);
}

void load_checkpoint(const std::filesystem::path& path, Module& model, TrainingState& state, const ReadOptions& options) {
  const std::string source = path.string();
  TensorFile file = load_safetensors(path, options);
  const Metadata& md = file.metadata;

  // 1. Everything that can be checked without touching the objects.
  auto fmt_it = md.find("format");
  if (fmt_it == md.end() || fmt_it->second != kCheckpointFormat)
    throw FormatError(fmt::format("{}: not a seqgrad training checkpoint (__metadata__ format is '{}'); use load() "
                                  "for model files",
                                  source, fmt_it == md.end() ? "" : fmt_it->second));
  const std::string& version = require(source, md, "checkpoint_version", "written by save_checkpoint");
  if (version != kCheckpointVersion)
    throw FormatError(fmt::format("{}: checkpoint_version '{}' is not one this build reads ({})", source, version,
                                  kCheckpointVersion));
  const int64_t epoch = parse_count(source, "epoch", require(source, md, "epoch", "written by save_checkpoint"));
  const auto step_it = md.find("step");  // absent from checkpoints written before mid-epoch ones
  const int64_t step = step_it == md.end() ? 0 : parse_count(source, "step", step_it->second);
  LoaderState loader;
  if (state.loader) {
    const char* why = "a DataLoader is listed in TrainingState";
    loader.rng = parse_generator_state(require(source, md, "loader.rng", why), source + ": loader.rng");
    loader.epoch_rng =
        parse_generator_state(require(source, md, "loader.epoch_rng", why), source + ": loader.epoch_rng");
    loader.position = step;
    if (step > int64_t(state.loader->size()))
      throw FormatError(fmt::format("{}: __metadata__ step {} is past the {} batches of the loader's epoch (another "
                                    "dataset or batch size?)",
                                    source, step, state.loader->size()));
  }

  NamedTensors model_part, optim_part;
  for (auto& [name, t] : file.tensors) {
    if (starts_with(name, kOptimPrefix))
      optim_part.emplace_back(name.substr(kOptimPrefix.size()), t);
    else
      model_part.emplace_back(name, t);
  }
  LoadReport report = compare(model, model_part);
  if (!report.ok()) throw LoadError(fmt::format("{}: nothing was loaded: {}", source, report.summary()), report);

  if (state.optimizer) {
    const std::string& name = require(source, md, "optim.name", "the checkpoint was saved without an optimizer");
    if (name != state.optimizer->name())
      throw FormatError(fmt::format("{}: the checkpoint holds {} state, but the optimizer is {}", source, name,
                                    state.optimizer->name()));
  }
  optim::SchedulerState sched, plateau;
  if (state.scheduler) {
    sched = scheduler_entries(source, md, "scheduler.");
    if (sched.empty()) throw FormatError(fmt::format("{}: the checkpoint has no scheduler state", source));
  }
  if (state.plateau) {
    plateau = scheduler_entries(source, md, "plateau.");
    if (plateau.empty()) throw FormatError(fmt::format("{}: the checkpoint has no ReduceLROnPlateau state", source));
  }
  std::vector<std::array<uint64_t, 4>> gens, model_gens;
  auto model_generators = model.named_generators();
  for (auto& [name, gen] : model_generators) {
    const std::string key = "rng.model." + name;
    model_gens.push_back(parse_generator_state(require(source, md, key, "a generator of the model (dropout)"),
                                               source + ": " + key));
  }
  for (auto& [name, gen] : state.generators) {
    if (!gen) throw std::invalid_argument(fmt::format("load_checkpoint: generator '{}' is null", name));
    const std::string key = "rng." + name;
    gens.push_back(parse_generator_state(require(source, md, key, "a generator listed in TrainingState"),
                                         source + ": " + key));
  }

  // 2. The objects whose load_state validates before changing anything. If a later one rejects
  // its state, the earlier ones get their old state back (in reverse order), so a failed load
  // changes nothing.
  std::vector<std::function<void()>> undo;
  try {
    if (state.optimizer) {
      NamedTensors before = state.optimizer->state();
      for (auto& [n, t] : before) t = t.clone();
      state.optimizer->load_state(optim_part);
      undo.push_back([opt = state.optimizer, before] { opt->load_state(before); });
    }
    if (state.scheduler) {
      optim::SchedulerState before = state.scheduler->state();
      state.scheduler->load_state(sched);
      undo.push_back([s = state.scheduler, before] { s->load_state(before); });
    }
    if (state.plateau) state.plateau->load_state(plateau);
  } catch (const std::invalid_argument& e) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    throw FormatError(fmt::format("{}: {}", source, e.what()));
  }

  // 3. What cannot fail any more.
  model.load_parameters(model_part, /*strict=*/true);
  for (size_t i = 0; i < gens.size(); ++i) state.generators[i].second->set_state(gens[i]);
  for (size_t i = 0; i < model_gens.size(); ++i) model_generators[i].second->set_state(model_gens[i]);
  if (state.loader) state.loader->set_state(loader);
  state.epoch = epoch;
  state.step = step;
  state.user.clear();
  for (auto& [k, v] : md)
    if (starts_with(k, "user.")) state.user[k.substr(5)] = v;
}

}  // namespace seqgrad::io
