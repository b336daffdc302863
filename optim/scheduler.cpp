#include "optim/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace seqgrad::optim {

namespace {

// Reads named values into the given slots; throws on unknown or missing names. Nothing is written
// unless every name checks out.
void read_state(const char* who, const SchedulerState& state,
                std::initializer_list<std::pair<const char*, double*>> slots) {
  std::vector<double> values(slots.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<bool> seen(slots.size(), false);
  for (const auto& [key, value] : state) {
    size_t k = 0;
    for (auto& s : slots) {
      if (key == s.first) break;
      ++k;
    }
    if (k == slots.size()) throw std::invalid_argument(fmt::format("{}::load_state: unknown entry '{}'", who, key));
    if (seen[k]) throw std::invalid_argument(fmt::format("{}::load_state: entry '{}' appears twice", who, key));
    seen[k] = true;
    values[k] = value;
  }
  size_t k = 0;
  for (auto& s : slots) {
    if (!seen[k]) throw std::invalid_argument(fmt::format("{}::load_state: missing entry '{}'", who, s.first));
    ++k;
  }
  k = 0;
  for (auto& s : slots) *s.second = values[k++];
}

int64_t as_count(const char* who, const char* key, double v) {
  if (!(v >= 0) || v != std::floor(v) || v > 9e15)
    throw std::invalid_argument(fmt::format("{}::load_state: '{}' is {}, not a count", who, key, v));
  return int64_t(v);
}

}  // namespace

// ---- LRScheduler
LRScheduler::LRScheduler(const char* name, Optimizer& optimizer)
    : name_(name), optimizer_(optimizer), base_lr_(optimizer.initial_lr()) {}

void LRScheduler::check(bool ok, const char* what, double value, const char* rule) const {
  if (!ok) throw std::invalid_argument(fmt::format("{}: invalid {} {} ({})", name_, what, value, rule));
}

void LRScheduler::start() {
  // The first scheduler to attach fixes the optimizer's initial_lr; later ones scale the same value.
  if (!optimizer_.has_initial_lr()) optimizer_.set_initial_lr(base_lr_);
  last_epoch_ = 0;
  optimizer_.set_lr(lr_at(0));
}

void LRScheduler::step() {
  ++last_epoch_;
  optimizer_.set_lr(lr_at(last_epoch_));
}

SchedulerState LRScheduler::state() const { return {{"last_epoch", double(last_epoch_)}, {"base_lr", base_lr_}}; }

void LRScheduler::load_state(const SchedulerState& state) {
  double epoch = 0, base = 0;
  read_state(name_, state, {{"last_epoch", &epoch}, {"base_lr", &base}});
  int64_t e = as_count(name_, "last_epoch", epoch);
  if (!(base >= 0))
    throw std::invalid_argument(fmt::format("{}::load_state: 'base_lr' is {}, must be >= 0", name_, base));
  last_epoch_ = e;
  base_lr_ = base;
  optimizer_.set_lr(lr_at(last_epoch_));
}

// ---- StepLR
StepLR::StepLR(Optimizer& optimizer, StepLROptions o) : LRScheduler("StepLR", optimizer), options_(o) {
  check(o.step_size >= 1, "step_size", double(o.step_size), "must be >= 1");
  check(o.gamma > 0 && std::isfinite(o.gamma), "gamma", o.gamma, "must be > 0");
  start();
}
double StepLR::lr_at(int64_t e) const { return base_lr() * std::pow(options_.gamma, double(e / options_.step_size)); }

// ---- ExponentialLR
ExponentialLR::ExponentialLR(Optimizer& optimizer, ExponentialLROptions o)
    : LRScheduler("ExponentialLR", optimizer), options_(o) {
  check(o.gamma > 0 && std::isfinite(o.gamma), "gamma", o.gamma, "must be > 0");
  start();
}
double ExponentialLR::lr_at(int64_t e) const { return base_lr() * std::pow(options_.gamma, double(e)); }

// ---- CosineAnnealingLR
CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, CosineAnnealingLROptions o)
    : LRScheduler("CosineAnnealingLR", optimizer), options_(o) {
  check(o.T_max >= 1, "T_max", double(o.T_max), "must be >= 1");
  check(o.eta_min >= 0, "eta_min", o.eta_min, "must be >= 0");
  start();
}
double CosineAnnealingLR::lr_at(int64_t e) const {
  const double eta_min = options_.eta_min;
  return eta_min + (base_lr() - eta_min) * (1 + std::cos(std::numbers::pi * double(e) / double(options_.T_max))) / 2;
}

// ---- LinearLR
LinearLR::LinearLR(Optimizer& optimizer, LinearLROptions o) : LRScheduler("LinearLR", optimizer), options_(o) {
  check(o.start_factor > 0 && o.start_factor <= 1, "start_factor", o.start_factor, "must be in (0, 1]");
  check(o.end_factor >= 0 && o.end_factor <= 1, "end_factor", o.end_factor, "must be in [0, 1]");
  check(o.total_iters >= 1, "total_iters", double(o.total_iters), "must be >= 1");
  start();
}
double LinearLR::lr_at(int64_t e) const {
  const LinearLROptions& o = options_;
  double t = double(std::min(e, o.total_iters)) / double(o.total_iters);
  return base_lr() * (o.start_factor + (o.end_factor - o.start_factor) * t);
}

// ---- SequentialLR
SequentialLR::SequentialLR(Optimizer& optimizer, std::vector<LRScheduler*> schedulers, std::vector<int64_t> milestones)
    : LRScheduler("SequentialLR", optimizer), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
  if (schedulers_.empty()) throw std::invalid_argument("SequentialLR: needs at least one scheduler");
  if (milestones_.size() + 1 != schedulers_.size())
    throw std::invalid_argument(fmt::format("SequentialLR: {} schedulers need {} milestones, got {}",
                                            schedulers_.size(), schedulers_.size() - 1, milestones_.size()));
  for (size_t k = 0; k < schedulers_.size(); ++k) {
    if (!schedulers_[k]) throw std::invalid_argument(fmt::format("SequentialLR: scheduler {} is null", k));
    if (&schedulers_[k]->optimizer() != &optimizer)
      throw std::invalid_argument(fmt::format("SequentialLR: scheduler {} drives a different optimizer", k));
  }
  for (size_t k = 0; k < milestones_.size(); ++k)
    if (milestones_[k] < 1 || (k > 0 && milestones_[k] <= milestones_[k - 1]))
      throw std::invalid_argument(fmt::format(
          "SequentialLR: milestones must be positive and increasing; milestone {} is {}", k, milestones_[k]));
  start();
}
double SequentialLR::lr_at(int64_t e) const {
  size_t k = size_t(std::upper_bound(milestones_.begin(), milestones_.end(), e) - milestones_.begin());
  return schedulers_[k]->lr_at(k == 0 ? e : e - milestones_[k - 1]);
}

// ---- ReduceLROnPlateau
ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions o)
    : optimizer_(optimizer), options_(o) {
  auto check = [](bool ok, const char* what, double v, const char* rule) {
    if (!ok) throw std::invalid_argument(fmt::format("ReduceLROnPlateau: invalid {} {} ({})", what, v, rule));
  };
  check(o.factor >= 0 && o.factor < 1, "factor", o.factor, "must be in [0, 1)");
  check(o.patience >= 0, "patience", double(o.patience), "must be >= 0");
  check(o.threshold >= 0, "threshold", o.threshold, "must be >= 0");
  check(o.cooldown >= 0, "cooldown", double(o.cooldown), "must be >= 0");
  check(o.min_lr >= 0, "min_lr", o.min_lr, "must be >= 0");
  check(o.eps >= 0, "eps", o.eps, "must be >= 0");
  best_ = o.mode == ReduceLROnPlateauOptions::Mode::min ? std::numeric_limits<double>::infinity()
                                                        : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double a) const {
  using M = ReduceLROnPlateauOptions::Mode;
  using TM = ReduceLROnPlateauOptions::ThresholdMode;
  const auto& o = options_;
  if (o.mode == M::min) return o.threshold_mode == TM::rel ? a < best_ * (1 - o.threshold) : a < best_ - o.threshold;
  return o.threshold_mode == TM::rel ? a > best_ * (1 + o.threshold) : a > best_ + o.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {  // in cooldown: bad epochs do not count
    --cooldown_counter_;
    num_bad_epochs_ = 0;
  }
  if (num_bad_epochs_ > options_.patience) {
    double old_lr = optimizer_.lr();
    double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
    if (old_lr - new_lr > options_.eps) optimizer_.set_lr(new_lr);
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
}

SchedulerState ReduceLROnPlateau::state() const {
  return {{"last_epoch", double(last_epoch_)},
          {"best", best_},
          {"num_bad_epochs", double(num_bad_epochs_)},
          {"cooldown_counter", double(cooldown_counter_)}};
}

void ReduceLROnPlateau::load_state(const SchedulerState& state) {
  const char* who = "ReduceLROnPlateau";
  double epoch = 0, best = 0, bad = 0, cool = 0;
  read_state(who, state,
             {{"last_epoch", &epoch}, {"best", &best}, {"num_bad_epochs", &bad}, {"cooldown_counter", &cool}});
  int64_t e = as_count(who, "last_epoch", epoch), b = as_count(who, "num_bad_epochs", bad),
          c = as_count(who, "cooldown_counter", cool);
  last_epoch_ = e;
  best_ = best;
  num_bad_epochs_ = b;
  cooldown_counter_ = c;
}

}  // namespace seqgrad::optim
