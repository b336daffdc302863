#include "optim/optimizer.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace seqgrad::optim {

Optimizer::Optimizer(const char* name, std::vector<Tensor> params, double lr, std::vector<std::string> buffer_names,
                     bool counts_steps)
    : params_(std::move(params)),
      name_(name),
      lr_(lr),
      buffer_names_(std::move(buffer_names)),
      counts_steps_(counts_steps) {
  if (params_.empty()) throw std::invalid_argument(fmt::format("{}: got an empty parameter list", name_));
  check(lr >= 0, "learning rate", lr, "must be >= 0");
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.defined()) throw std::invalid_argument(fmt::format("{}: parameter {} is an undefined Tensor", name_, i));
    if (!p.is_leaf())
      throw std::invalid_argument(
          fmt::format("{}: parameter {} (shape {}) is not a leaf tensor; optimize the leaf it was computed from", name_,
                      i, p.shape()));
    for (size_t j = 0; j < i; ++j)
      if (params_[j].same(p))
        throw std::invalid_argument(fmt::format("{}: parameter {} is the same tensor as parameter {}", name_, i, j));
  }
  state_.resize(params_.size());
}

void Optimizer::check(bool ok, const char* what, double value, const char* rule) const {
  if (!ok) throw std::invalid_argument(fmt::format("{}: invalid {} {} ({})", name_, what, value, rule));
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) {
    if (set_to_none) {
      p.zero_grad();
    } else if (Tensor g = p.grad(); g.defined()) {
      g.fill_(0.0);
    }
  }
}

void Optimizer::set_lr(double lr) {
  check(lr >= 0, "learning rate", lr, "must be >= 0");
  lr_ = lr;
}

void Optimizer::set_initial_lr(double lr) {
  check(lr >= 0, "initial learning rate", lr, "must be >= 0");
  initial_lr_ = lr;
  has_initial_lr_ = true;
}

ParamState& Optimizer::init_state(size_t i, double fill) {
  ParamState& s = state_[i];
  if (!s.started) {
    for (size_t k = 0; k < buffer_names_.size(); ++k) s.buffers[k] = full(params_[i].shape(), fill, params_[i].dtype());
    s.started = true;
  }
  return s;
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out.emplace_back("lr", full({}, lr_, DType::f64));
  if (has_initial_lr_) out.emplace_back("initial_lr", full({}, initial_lr_, DType::f64));
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamState& s = state_[i];
    if (!s.started) continue;
    if (counts_steps_) out.emplace_back(fmt::format("{}.step", i), full({}, double(s.step), DType::f64));
    for (size_t k = 0; k < buffer_names_.size(); ++k)
      out.emplace_back(fmt::format("{}.{}", i, buffer_names_[k]), s.buffers[k]);
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& entries) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(fmt::format("{}::load_state: {}", name_, why));
  };
  auto scalar = [&](const std::string& key, const Tensor& t) {
    if (!t.defined() || t.numel() != 1) fail(fmt::format("'{}' must be a one-element tensor", key));
    return t.item();
  };
  // Slot k of entry (param i, field): -1 for "step".
  const size_t nb = buffer_names_.size();
  std::vector<std::array<const Tensor*, 4>> found(params_.size(), {nullptr, nullptr, nullptr, nullptr});
  double lr = lr_, initial = initial_lr_;
  bool has_initial = has_initial_lr_;
  for (const auto& [key, t] : entries) {
    if (key == "lr") {
      lr = scalar(key, t);
      if (!(lr >= 0)) fail(fmt::format("'lr' is {}, must be >= 0", lr));
      continue;
    }
    if (key == "initial_lr") {
      initial = scalar(key, t);
      has_initial = true;
      continue;
    }
    size_t dot = key.find('.');
    size_t index = 0;
    auto [end, ec] = std::from_chars(key.data(), key.data() + (dot == std::string::npos ? 0 : dot), index);
    if (dot == std::string::npos || dot == 0 || ec != std::errc() || end != key.data() + dot)
      fail(fmt::format("unknown entry '{}' (expected 'lr', 'initial_lr' or '<index>.<name>')", key));
    if (index >= params_.size())
      fail(fmt::format("entry '{}' names parameter {}, but there are {} parameters", key, index, params_.size()));
    std::string field = key.substr(dot + 1);
    size_t slot = nb;  // nb: the step count
    if (field != "step" || !counts_steps_) {
      slot = 0;
      while (slot < nb && buffer_names_[slot] != field) ++slot;
      if (slot == nb) {
        std::string known = counts_steps_ ? "step" : "";
        for (auto& b : buffer_names_) known += (known.empty() ? "" : ", ") + b;
        fail(fmt::format("unknown entry '{}': {} with these options keeps {}", key, name_,
                         known.empty() ? "no state" : known));
      }
    }
    if (found[index][slot]) fail(fmt::format("entry '{}' appears twice", key));
    if (!t.defined()) fail(fmt::format("entry '{}' is an undefined Tensor", key));
    if (slot == nb) {
      double step = scalar(key, t);
      if (!(step >= 0 && step <= 0x1p53) || step != std::floor(step)) fail(fmt::format("'{}' is {}, not a step count", key, step));
    } else if (t.shape() != params_[index].shape()) {
      fail(fmt::format("'{}' has shape {} but parameter {} has shape {}", key, t.shape(), index,
                       params_[index].shape()));
    }
    found[index][slot] = &t;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    size_t slots = nb + (counts_steps_ ? 1 : 0), present = 0;
    for (size_t k = 0; k < slots; ++k) present += found[i][k] != nullptr;
    if (present == 0 || present == slots) continue;
    for (size_t k = 0; k < slots; ++k)
      if (!found[i][k])
        fail(fmt::format("parameter {} has some state entries but not '{}.{}'", i, i,
                         k == nb ? "step" : buffer_names_[k]));
  }
  // Everything checked: commit.
  lr_ = lr;
  initial_lr_ = initial;
  has_initial_lr_ = has_initial;
  for (size_t i = 0; i < params_.size(); ++i) {
    ParamState& s = state_[i];
    s = ParamState{};
    if (!found[i][0] && !found[i][nb]) continue;
    s.started = true;
    if (counts_steps_) s.step = int64_t(found[i][nb]->item());
    for (size_t k = 0; k < nb; ++k) {
      s.buffers[k] = Tensor::empty(params_[i].shape(), params_[i].dtype());
      s.buffers[k].copy_(*found[i][k]);
    }
  }
}

}  // namespace seqgrad::optim
