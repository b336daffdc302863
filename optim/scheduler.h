// Learning-rate schedulers, as torch.optim.lr_scheduler: StepLR, ExponentialLR, CosineAnnealingLR,
// LinearLR (linear warmup), SequentialLR (e.g. warmup then cosine) and ReduceLROnPlateau.
//
// Call step() once per epoch (or per iteration, if that is your unit), after the optimizer's
// step(). Constructing a scheduler sets the optimizer's lr to the epoch-0 value, as PyTorch does.
// Epoch-based schedulers compute lr = f(base_lr, last_epoch) in closed form, with base_lr the
// optimizer's initial_lr (its lr when the first scheduler attached): restoring last_epoch restores
// the lr exactly. (PyTorch updates these recursively, lr_t from lr_{t-1}; the values agree to
// rounding.) With e = last_epoch and b = base_lr:
//
//   StepLR             b * gamma^floor(e / step_size)
//   ExponentialLR      b * gamma^e
//   CosineAnnealingLR  eta_min + (b - eta_min) * (1 + cos(pi * e / T_max)) / 2
//   LinearLR           b * (start_factor + (end_factor - start_factor) * min(e, total_iters) / total_iters)
//   SequentialLR       schedulers[k].lr_at(e - milestones[k-1]) for milestones[k-1] <= e < milestones[k]
//
// ReduceLROnPlateau instead watches a metric: step(metric) multiplies lr by factor (not below
// min_lr) once the metric has not improved for more than `patience` epochs, then waits `cooldown`
// epochs before counting again.
//
//   CosineAnnealingLR sched(opt, {.T_max = 100});
//   for (int epoch = 0; epoch < 100; ++epoch) { train_one_epoch(opt); sched.step(); }
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "optim/optimizer.h"

namespace seqgrad::optim {

// Scheduler checkpoints: named scalars ("last_epoch", "best", ...).
using SchedulerState = std::vector<std::pair<std::string, double>>;

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances one epoch and sets the optimizer's lr to lr_at(last_epoch()).
  void step();
  // The closed form: the lr at `epoch` (>= 0).
  virtual double lr_at(int64_t epoch) const = 0;

  int64_t last_epoch() const { return last_epoch_; }
  double base_lr() const { return base_lr_; }
  double last_lr() const { return optimizer_.lr(); }
  Optimizer& optimizer() const { return optimizer_; }

  // {"last_epoch", "base_lr"}. load_state checks the names and sets the optimizer's lr to
  // lr_at(last_epoch).
  SchedulerState state() const;
  void load_state(const SchedulerState& state);

 protected:
  LRScheduler(const char* name, Optimizer& optimizer);
  // Derived constructors call this last: sets the epoch-0 lr.
  void start();
  void check(bool ok, const char* what, double value, const char* rule) const;
  const char* name_;

 private:
  Optimizer& optimizer_;
  double base_lr_;
  int64_t last_epoch_ = 0;
};

struct StepLROptions {
  int64_t step_size = 1;  // epochs between decays, >= 1
  double gamma = 0.1;     // > 0
};
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, StepLROptions options);
  double lr_at(int64_t epoch) const override;

 private:
  StepLROptions options_;
};

struct ExponentialLROptions {
  double gamma = 0.9;  // > 0
};
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, ExponentialLROptions options);
  double lr_at(int64_t epoch) const override;

 private:
  ExponentialLROptions options_;
};

struct CosineAnnealingLROptions {
  int64_t T_max = 1;   // half-period in epochs, >= 1
  double eta_min = 0;  // >= 0
};
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, CosineAnnealingLROptions options);
  double lr_at(int64_t epoch) const override;

 private:
  CosineAnnealingLROptions options_;
};

// Linear warmup: scales base_lr from start_factor to end_factor over total_iters epochs, then holds.
struct LinearLROptions {
  double start_factor = 1.0 / 3;  // in (0, 1]
  double end_factor = 1.0;        // in [0, 1]
  int64_t total_iters = 5;        // >= 1
};
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, LinearLROptions options);
  double lr_at(int64_t epoch) const override;

 private:
  LinearLROptions options_;
};

// Runs schedulers[0] until milestones[0], then schedulers[1] from its epoch 0, and so on. The
// schedulers must drive the same optimizer and outlive this one; only their lr_at() is used.
//   LinearLR warmup(opt, {.start_factor = 0.1, .total_iters = 5});
//   CosineAnnealingLR cosine(opt, {.T_max = 95});
//   SequentialLR sched(opt, {&warmup, &cosine}, {5});
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<LRScheduler*> schedulers, std::vector<int64_t> milestones);
  double lr_at(int64_t epoch) const override;

 private:
  std::vector<LRScheduler*> schedulers_;
  std::vector<int64_t> milestones_;
};

struct ReduceLROnPlateauOptions {
  enum class Mode { min, max };
  enum class ThresholdMode { rel, abs };
  Mode mode = Mode::min;  // min: lower metric is better
  double factor = 0.1;    // new_lr = max(lr * factor, min_lr); in [0, 1)
  int64_t patience = 10;  // bad epochs tolerated before a reduction, >= 0
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::rel;
  int64_t cooldown = 0;  // epochs after a reduction during which bad epochs are not counted
  double min_lr = 0;
  double eps = 1e-8;  // a reduction smaller than eps is skipped
};

// Improvement test (PyTorch's is_better): rel/min: metric < best * (1 - threshold);
// rel/max: metric > best * (1 + threshold); abs/min: metric < best - threshold;
// abs/max: metric > best + threshold. A NaN metric never improves.
class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  void step(double metric);

  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  int64_t last_epoch() const { return last_epoch_; }
  double last_lr() const { return optimizer_.lr(); }

  // {"last_epoch", "best", "num_bad_epochs", "cooldown_counter"}; the lr itself lives in the
  // optimizer's state().
  SchedulerState state() const;
  void load_state(const SchedulerState& state);

 private:
  bool is_better(double metric) const;
  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  int64_t last_epoch_ = 0;
};

}  // namespace seqgrad::optim
