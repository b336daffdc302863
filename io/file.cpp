#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

namespace seqgrad::io {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// Writes all n bytes, retrying short writes and EINTR.
void write_all(int fd, const uint8_t* p, size_t n, const std::filesystem::path& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, fmt::format("writing {}", path.string()));
    }
    p += w;
    n -= size_t(w);
  }
}

void fsync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, fmt::format("opening directory {} to fsync it", dir.string()));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory (EINVAL); the rename itself has happened.
  if (rc != 0 && err != EINVAL) throw_errno(err, fmt::format("fsync of directory {}", dir.string()));
}

constexpr size_t kBufferBytes = size_t(1) << 20;

}  // namespace

// ---- AtomicFile
AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  static std::atomic<uint64_t> counter{0};
  if (target_.filename().empty())
    throw std::invalid_argument(fmt::format("AtomicFile: '{}' names a directory, not a file", target_.string()));
  for (int attempt = 0;; ++attempt) {
    temp_ = target_;
    temp_ += fmt::format(".tmp-{}-{}", ::getpid(), counter.fetch_add(1));
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) break;
    if (errno != EEXIST || attempt > 100) throw_errno(errno, fmt::format("creating {}", temp_.string()));
  }
  buffer_.resize(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void AtomicFile::flush_buffer() {
  write_all(fd_, buffer_.data(), used_, temp_);
  used_ = 0;
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd_ < 0) throw std::logic_error("AtomicFile: write after commit");
  auto p = static_cast<const uint8_t*>(data);
  if (used_ + n <= buffer_.size()) {
    std::memcpy(buffer_.data() + used_, p, n);
    used_ += n;
    return;
  }
  flush_buffer();
  if (n >= buffer_.size()) {
    write_all(fd_, p, n, temp_);  // large tensors go straight to the file
  } else {
    std::memcpy(buffer_.data(), p, n);
    used_ = n;
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw std::logic_error("AtomicFile: commit called twice");
  flush_buffer();
  // The data must be on disk before the rename makes it visible: otherwise a power loss right
  // after the rename can leave an empty or partial file under the target name.
  if (::fsync(fd_) != 0) throw_errno(errno, fmt::format("fsync of {}", temp_.string()));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int err = errno;
    ::unlink(temp_.c_str());
    throw_errno(err, fmt::format("closing {}", temp_.string()));
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    int err = errno;
    ::unlink(temp_.c_str());
    throw_errno(err, fmt::format("renaming {} to {}", temp_.string(), target_.string()));
  }
  // The rename is durable once the directory entry is.
  fsync_directory(target_.parent_path());
}

void write_file_atomic(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

// ---- ByteSource
void ByteSource::check_range(uint64_t offset, size_t n) const {
  if (offset > size() || n > size() - offset)
    throw FormatError(fmt::format("{}: read of {} bytes at byte offset {} is past the end ({} bytes)", name(), n,
                                  offset, size()));
}

void MemorySource::read(uint64_t offset, void* dst, size_t n) const {
  check_range(offset, n);
  if (n) std::memcpy(dst, bytes_.data() + offset, n);
}

FileSource::FileSource(const std::filesystem::path& path) : ByteSource(path.string()) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_errno(errno, fmt::format("opening {}", path.string()));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    int err = errno;
    ::close(fd_);
    throw_errno(err, fmt::format("stat of {}", path.string()));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw FormatError(fmt::format("{}: not a regular file", path.string()));
  }
  size_ = uint64_t(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read(uint64_t offset, void* dst, size_t n) const {
  check_range(offset, n);
  auto p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd_, p, n, off_t(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, fmt::format("reading {}", name()));
    }
    // The file shrank under us since fstat: report it like any truncated file.
    if (r == 0) throw FormatError(fmt::format("{}: file ended at byte {} while reading (it shrank?)", name(), offset));
    p += r;
    n -= size_t(r);
    offset += uint64_t(r);
  }
}

}  // namespace seqgrad::io
