// libFuzzer target: the whole training-checkpoint loader (io::load_checkpoint: safetensors, the
// metadata, model names and shapes, optimizer, schedulers, generators, DataLoader position) on
// arbitrary file contents. Any outcome but a load or a FormatError/LoadError is a bug, and so is
// a rejection whose message does not start with the file's name, or one that changed the model.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz/checkpoint_fixture.h"

using namespace seqgrad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("fuzz_checkpoint_" + std::to_string(::getpid()) + ".safetensors"))
          .string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  fuzz::CheckpointFixture f;
  io::TrainingState st = f.state();
  const NamedTensors before = f.model.named_parameters();
  std::vector<std::vector<double>> values;
  for (auto& [name, t] : before) values.push_back(t.to_vector());
  io::ReadOptions opt;
  opt.max_file_bytes = 1 << 20;
  opt.max_header_bytes = 1 << 16;
  opt.check_finite = size % 2 == 1;  // both modes, chosen by the input
  std::string error;
  try {
    io::load_checkpoint(path, f.model, st, opt);
  } catch (const io::FormatError& e) {
    error = e.what();
  } catch (const io::LoadError& e) {
    error = e.what();
  }
  if (error.empty()) return 0;
  if (error.rfind(path + ": ", 0) != 0) __builtin_trap();  // every rejection names the file first
  for (size_t i = 0; i < before.size(); ++i)
    if (before[i].second.to_vector() != values[i]) __builtin_trap();  // and changes nothing
  if (st.epoch != 0 || st.step != 0) __builtin_trap();
  return 0;
}
