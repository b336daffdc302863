#include "layers/module.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace seqgrad {

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out;
}
}  // namespace

std::string LoadReport::summary() const {
  std::string out;
  auto part = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    out += fmt::format("{}{} {}: {}", out.empty() ? "" : "; ", v.size(), what, join(v));
  };
  part("missing", missing);
  part("unexpected", unexpected);
  part("shape mismatch", shape_mismatch);
  return out.empty() ? "ok" : out;
}

void Module::check_name(const std::string& name, const char* what) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument(fmt::format("Module: {} name '{}' must be non-empty and contain no '.'", what, name));
  bool taken = std::any_of(params_.begin(), params_.end(), [&](auto& p) { return p.first == name; }) ||
               std::any_of(children_.begin(), children_.end(), [&](auto& c) { return c.first == name; });
  if (taken) throw std::invalid_argument(fmt::format("Module: {} name '{}' is already registered", what, name));
}

Tensor Module::register_parameter(std::string name, Tensor t) {
  check_name(name, "parameter");
  if (!t.defined()) throw std::invalid_argument(fmt::format("Module: parameter '{}' is an undefined tensor", name));
  if (!t.is_leaf())
    throw std::invalid_argument(fmt::format("Module: parameter '{}' must be a leaf tensor; detach() it first", name));
  t.requires_grad_();
  params_.emplace_back(std::move(name), t);
  return t;
}

void Module::add_child(std::string name, std::shared_ptr<Module> m) {
  check_name(name, "submodule");
  if (!m) throw std::invalid_argument(fmt::format("Module: submodule '{}' is null", name));
  if (m.get() == this) throw std::invalid_argument(fmt::format("Module: submodule '{}' is the module itself", name));
  m->set_path(path_.empty() ? name : path_ + "." + name);
  children_.emplace_back(std::move(name), std::move(m));
}

// Children register before their parent is registered, so a parent's new path is passed down.
void Module::set_path(std::string path) {
  path_ = std::move(path);
  for (auto& [name, child] : children_) child->set_path(path_ + "." + name);
}

std::shared_ptr<Generator> Module::register_generator(std::string name, uint64_t seed) {
  for (auto& [n, g] : generators_)
    if (n == name) throw std::invalid_argument(fmt::format("register_generator: '{}' is already registered", name));
  generators_.emplace_back(std::move(name), std::make_shared<Generator>(seed));
  return generators_.back().second;
}

std::vector<std::pair<std::string, std::shared_ptr<Generator>>> Module::named_generators() const {
  auto out = generators_;
  for (auto& [name, child] : children_)
    for (auto& [n, g] : child->named_generators()) out.emplace_back(name + "." + n, g);
  return out;
}

void Module::collect(const std::string& prefix, NamedTensors& out, std::vector<const TensorImpl*>& seen) const {
  for (auto& [name, t] : params_) {
    const TensorImpl* id = t.impl_ptr().get();
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    out.emplace_back(prefix + name, t);
  }
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", out, seen);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  std::vector<const TensorImpl*> seen;
  collect("", out, seen);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

Tensor Module::parameter(std::string_view name) const {
  NamedTensors all = named_parameters();
  for (auto& [n, t] : all)
    if (n == name) return t;
  std::vector<std::string> names;
  for (auto& [n, t] : all) names.push_back(n);
  throw std::invalid_argument(
      fmt::format("Module: no parameter named '{}'; the parameters are: {}", name, join(names)));
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(DType dtype) {
  for (const Tensor& t : parameters()) {
    TensorImpl& impl = t.impl();
    if (impl.dtype == dtype) continue;
    Tensor converted = t.to(dtype);
    impl.storage = converted.impl().storage;
    impl.offset = 0;
    impl.dtype = dtype;
    impl.grad.reset();
  }
}

LoadReport Module::load_parameters(const NamedTensors& source, bool strict) {
  NamedTensors own = named_parameters();
  LoadReport report;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  std::vector<std::string> source_names;
  for (const auto& entry : source) {
    const std::string& name = entry.first;  // not a structured binding: clang 14 cannot capture those
    const Tensor& src = entry.second;
    bool duplicate = std::find(source_names.begin(), source_names.end(), name) != source_names.end();
    source_names.push_back(name);
    auto it = std::find_if(own.begin(), own.end(), [&](auto& p) { return p.first == name; });
    if (it == own.end() || duplicate) {
      report.unexpected.push_back(duplicate ? name + " (given twice)" : name);
    } else if (!src.defined() || src.shape() != it->second.shape()) {
      report.shape_mismatch.push_back(fmt::format("{}: expected {}, got {}", name, it->second.shape(),
                                                  src.defined() ? fmt::format("{}", src.shape()) : "undefined"));
    } else {
      copies.emplace_back(it->second, src);
    }
  }
  for (auto& [name, t] : own)
    if (std::find(source_names.begin(), source_names.end(), name) == source_names.end()) report.missing.push_back(name);
  if (strict && !report.ok())
    throw std::invalid_argument(fmt::format("load_parameters: nothing was loaded: {}", report.summary()));
  for (auto& [dst, src] : copies) dst.copy_(src);
  return report;
}

}  // namespace seqgrad
