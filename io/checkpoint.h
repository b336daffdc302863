// Model files and training checkpoints, both safetensors files (io/safetensors.h).
//
// Model files hold a Module's parameters under its dotted PyTorch state_dict names
// ("lstm.weight_ih_l0", "head.bias"), so torch.nn modules with the same structure read and write
// the same files (see README, "Checkpoints and data"):
//
//   io::save(model, "model.safetensors");
//   io::load(model, "model.safetensors");                 // strict: throws LoadError listing every problem
//   auto report = io::load(model, path, {.strict = false}); // copies what matches, returns the rest
//
// Training checkpoints add everything a run needs to continue bit-identically from an epoch
// boundary or from any batch within an epoch (with TrainingState::loader and step): the optimizer's state (moment buffers, step counts, lr) as tensors named
// "optim.<entry>", and as __metadata__ strings the epoch, the scheduler's scalars
// ("scheduler.last_epoch"), each listed Generator's state ("rng.loader" = four hex words), the
// model's own generators (dropout: "rng.model.lstm.dropout_generator") and user strings
// ("user.<key>"). Doubles are written in their shortest round-trip form, so they
// come back with the same bits.
//
//   io::TrainingState st{.optimizer = &opt, .scheduler = &sched,
//                        .generators = {{"loader", &loader.generator()}}};
//   st.epoch = epoch + 1;  io::save_checkpoint("ckpt.safetensors", model, st);
//   ...
//   io::load_checkpoint("ckpt.safetensors", model, st);     // fresh model/opt/sched, then resume
//   for (int64_t epoch = st.epoch; epoch < epochs; ++epoch) ...
//
// load_checkpoint validates the whole file against the objects first; on any error it throws and
// leaves the model, optimizer and schedulers as they were. A checkpoint also loads with load():
// the "optim." tensors are skipped, so the model part is an ordinary model file.
//
// Not saved: Generators you do not list and that are not the model's (Module::named_generators()).
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/dataloader.h"
#include "io/safetensors.h"
#include "layers/module.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"

namespace seqgrad::io {

// A strict load() whose names or shapes do not match: the message lists every problem at once
// ("m.safetensors: nothing was loaded: 1 missing: head.bias; 1 unexpected: head.b"); report()
// has the lists.
class LoadError : public std::runtime_error {
 public:
  LoadError(const std::string& msg, LoadReport report) : std::runtime_error(msg), report_(std::move(report)) {}
  const LoadReport& report() const { return report_; }

 private:
  LoadReport report_;
};

struct LoadOptions {
  bool strict = true;  // every name in both directions, equal shapes; otherwise nothing is loaded
  ReadOptions read;    // size limits, check_finite
};

// Writes module.named_parameters() (float32/float64 as stored) and `metadata`, plus
// "format": "pt" as PyTorch's safetensors writer does. Crash-safe (AtomicFile).
void save(const Module& module, const std::filesystem::path& path, const Metadata& metadata = {});
// Copies values by name into the module's parameters (converting dtype if they differ).
LoadReport load(Module& module, const std::filesystem::path& path, const LoadOptions& options = {});
// The same from tensors already read (e.g. a TensorFile, or Keras weights after conversion).
LoadReport load(Module& module, const NamedTensors& tensors, const LoadOptions& options = {},
                const std::string& source = "<tensors>");

// What a training checkpoint holds besides the model. Null pointers are skipped on save and on
// load (a checkpoint with optimizer state loads fine into a model alone).
struct TrainingState {
  optim::Optimizer* optimizer = nullptr;
  optim::LRScheduler* scheduler = nullptr;  // epoch-based schedulers (StepLR, SequentialLR, ...)
  optim::ReduceLROnPlateau* plateau = nullptr;
  // Generators to save and restore by name, e.g. {{"loader", &loader.generator()}}. On load every
  // listed name must be in the file.
  std::vector<std::pair<std::string, Generator*>> generators;
  int64_t epoch = 0;  // epochs completed: written by save_checkpoint, set by load_checkpoint
  // Mid-epoch checkpoints: the batches done in epoch `epoch` + 1 (0 at an epoch boundary; set it
  // from loader->state().position inside the loop), and the loader whose generator states to save
  // ("loader.rng", "loader.epoch_rng"): on load its next epoch() resumes at batch `step`.
  int64_t step = 0;
  DataLoader* loader = nullptr;
  Metadata user;      // free-form strings, saved as "user.<key>" and restored
};

void save_checkpoint(const std::filesystem::path& path, const Module& model, const TrainingState& state);
// Restores model, optimizer, schedulers, generators, epoch and user strings from the file.
void load_checkpoint(const std::filesystem::path& path, Module& model, TrainingState& state,
                     const ReadOptions& options = {});

// The metadata value of a Generator state: four 16-digit hex words "s0,s1,s2,s3", and back
// (throws FormatError naming `what` on anything else).
std::string format_generator_state(const std::array<uint64_t, 4>& s);
std::array<uint64_t, 4> parse_generator_state(const std::string& text, const std::string& what);

}  // namespace seqgrad::io
