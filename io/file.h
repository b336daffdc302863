// The file plumbing under every seqgrad format: one error type for bad input, crash-safe writes,
// and bounded reads of untrusted files.
//
//   AtomicFile f("model.safetensors");   // writes "model.safetensors.tmp-<pid>-<n>" next to it
//   f.write(header.data(), header.size());
//   f.commit();                           // flush, fsync, rename over the target, fsync the directory
//
// A crash (or kill -9) at any moment before commit() returns leaves the previous file at the
// target path untouched; at worst a stale "*.tmp-*" file remains beside it. An AtomicFile
// destroyed without commit() removes its temporary file.
//
// Not here: locking (two processes saving to one path both succeed; the last rename wins). A
// target that is a symbolic link is replaced by a regular file, not written through.
#pragma once

#include <bit>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace seqgrad::io {

// The file formats are little-endian and the loaders copy bytes straight into tensors.
static_assert(std::endian::native == std::endian::little, "seqgrad::io assumes a little-endian host");

// A file (or buffer) that is not what its format says: the message names the file and where the
// problem is (a byte offset, a tensor name, a line), e.g.
// "m.safetensors: tensor 'w': data_offsets [0, 64] end past the data section (48 bytes) ...".
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AtomicFile {
 public:
  // Creates the temporary file in target's directory (so the rename cannot cross file systems),
  // with mode 0666 minus the umask. Throws std::system_error if it cannot.
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Buffered; throws std::system_error on a failed write (disk full, ...).
  void write(const void* data, size_t n);
  // Makes the new contents durable and visible at the target path, atomically.
  void commit();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  void flush_buffer();

  std::filesystem::path target_, temp_;
  int fd_ = -1;
  std::vector<uint8_t> buffer_;
  size_t used_ = 0;
};

// Writes `bytes` to `path` through an AtomicFile.
void write_file_atomic(const std::filesystem::path& path, std::span<const uint8_t> bytes);

// A read-only view of untrusted bytes, from memory or from an open file: the loaders check every
// range against size() before calling read(), and read() checks again.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Copies bytes [offset, offset + n) into dst; throws FormatError if the range is not inside.
  virtual void read(uint64_t offset, void* dst, size_t n) const = 0;
  const std::string& name() const { return name_; }

 protected:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}
  void check_range(uint64_t offset, size_t n) const;

 private:
  std::string name_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(std::span<const uint8_t> bytes, std::string name = "<memory>")
      : ByteSource(std::move(name)), bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, void* dst, size_t n) const override;

 private:
  std::span<const uint8_t> bytes_;
};

class FileSource : public ByteSource {
 public:
  // Opens `path` read-only; throws std::system_error naming the path if it cannot.
  explicit FileSource(const std::filesystem::path& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* dst, size_t n) const override;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace seqgrad::io
