#include "autograd/memory.h"

#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace seqgrad::detail {

namespace {

// GCC says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSlabs = false;
#elif defined(__has_feature)
constexpr bool kSlabs = !__has_feature(address_sanitizer);
#else
constexpr bool kSlabs = true;
#endif

constexpr size_t kSlabBytes = size_t(1) << 20;
constexpr uintptr_t kMaxPrefault = uintptr_t(8) << 20;

uintptr_t page_size() {
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  return page;
}

// Maps the read-only segments (code, constants) of the object holding seqgrad's code and of libm.
// Reading every line of them crosses AddressSanitizer's redzones between globals: not checked.
__attribute__((no_sanitize("address"))) int populate_object(dl_phdr_info* info, size_t, void* ours) {
  const auto self = reinterpret_cast<uintptr_t>(ours);
  const bool libm = info->dlpi_name && std::strstr(info->dlpi_name, "/libm.so");
  bool mine = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && self >= begin && self < begin + ph.p_memsz) mine = true;
  }
  if (!mine && !libm) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W)) continue;  // writable data is touched anyway
    const uintptr_t begin = (info->dlpi_addr + ph.p_vaddr) & ~(page_size() - 1);
    const uintptr_t end = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
    if (end - begin > kMaxPrefault) continue;  // a huge program that links seqgrad in: not ours to map
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);  // EINVAL before Linux 5.14
    // One read per cache line brings the code into the CPU's caches too, ~20 GB/s in a stream,
    // where running it for the first time fetches it line by line from DRAM (measured: the first
    // step's backward 2x faster, the first epoch 30% faster).
    for (uintptr_t a = begin; a < end; a += 64) (void)*reinterpret_cast<const volatile char*>(a);
  }
  return 0;
}

// Maps the heap pages malloc hands out next (the tape's and the layers' small vectors): a block
// from the top of the heap, mapped in one call and given back, below glibc's trim threshold so
// that it stays mapped.
void populate_heap() {
  constexpr size_t kBytes = size_t(96) << 10;
  void* p = std::malloc(kBytes);
  if (!p) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page_size() - 1) & ~(page_size() - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + kBytes) & ~(page_size() - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
  std::free(p);
}

// Touches the 128 KiB of stack below the caller, where the GEMM kernels keep their packed panels:
// the stack grows one fault per page otherwise, in the first step.
[[gnu::noinline]] void populate_stack() {
  constexpr size_t kBytes = size_t(128) << 10;
  char frame[kBytes];
  for (size_t i = 0; i < kBytes; i += 4096) frame[i] = 0;
  asm volatile("" : : "r"(frame) : "memory");  // the writes must happen
}

struct Slab {
  char* next = nullptr;
  size_t left = 0;
};
thread_local Slab t_slab;

class BufferPool {
 public:
  static constexpr size_t kMaxCached = size_t(1) << 30;

  ~BufferPool() {
    release();
    alive_ = false;
  }
  static bool alive() { return alive_; }

  void* get(size_t bytes) {
    auto it = free_.find(bytes);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_ -= bytes;
      return p;
    }
    if (kSlabs && bytes <= kSlabBlock) return slab_block(bytes);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  // Small blocks stay cached whatever the total: they belong to a slab and cannot be freed.
  void put(void* p, size_t bytes) {
    const bool small = kSlabs && bytes <= kSlabBlock;
    if (!small && cached_ + bytes > kMaxCached) return std::free(p);
    free_[bytes].push_back(p);
    cached_ += bytes;
  }
  void release() {
    for (auto it = free_.begin(); it != free_.end();) {
      if (kSlabs && it->first <= kSlabBlock) {
        ++it;
        continue;
      }
      for (void* p : it->second) std::free(p);
      cached_ -= it->first * it->second.size();
      it = free_.erase(it);
    }
  }

 private:
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  static thread_local bool alive_;
};
thread_local bool BufferPool::alive_ = true;
thread_local BufferPool t_pool;

}  // namespace

void prefault_process() {
  static const bool done = [] {
    dl_iterate_phdr(populate_object, reinterpret_cast<void*>(&prefault_process));
    populate_heap();
    populate_stack();
    return true;
  }();
  (void)done;
}

bool slab_enabled() { return kSlabs; }

void* slab_block(size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (t_slab.left < bytes) {
    prefault_process();
    void* p = mmap(nullptr, kSlabBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    t_slab = {static_cast<char*>(p), kSlabBytes};
  }
  void* p = t_slab.next;
  t_slab.next += bytes;
  t_slab.left -= bytes;
  return p;
}

void* buffer_get(size_t bytes) { return t_pool.get(bytes); }

void buffer_put(void* p, size_t bytes) noexcept {
  if (BufferPool::alive()) {
    try {
      return t_pool.put(p, bytes);
    } catch (...) {  // no room to remember it
    }
  }
  if (!kSlabs || bytes > kSlabBlock) std::free(p);
}

void buffer_release() { t_pool.release(); }

}  // namespace seqgrad::detail
