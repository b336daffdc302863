// Where tensors' memory comes from (internal to the library).
//
// A training step allocates the same sizes every iteration, so freed tensor buffers, TensorImpls
// and Storages are kept per thread and handed to the next request of the same size: from the
// second step on no tensor touches malloc. That was the largest cost of the small models' steps.
//
// The first step used to pay differently: on virtual machines a page fault costs 10-50 us
// (measured here: 12 us idle, 50 us under load), and a fresh process took ~40 of them in its
// first step: the code of every op run for the first time, libm's, and every fresh heap page
// handed out for the step's tensors and tape. That made the tutorial's first epoch 5-7x a warm
// one. So blocks of up to kSlabBlock bytes are carved from 1 MiB slabs that are mapped in one
// call (MAP_POPULATE), and the first allocation maps seqgrad's and libm's code and constants with
// one madvise each (prefault_process). Slabs are never unmapped: their blocks live on in the
// per-thread free lists, bounded by the peak of small blocks in use. Under AddressSanitizer every
// block comes from malloc so that overflows are still caught.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace seqgrad::detail {

inline constexpr size_t kSlabBlock = size_t(32) << 10;

// Maps the code and read-only data of seqgrad and libm. Idempotent, thread-safe, best effort.
void prefault_process();

// A block of `bytes` (<= kSlabBlock, 64-byte aligned) from this thread's slab. Never freed.
void* slab_block(size_t bytes);
bool slab_enabled();

// Tensor buffers: 64-byte aligned, `bytes` a multiple of 64.
void* buffer_get(size_t bytes);
void buffer_put(void* p, size_t bytes) noexcept;
void buffer_release();  // returns the cached large buffers to malloc

// Keeps freed blocks of one type per thread for reuse; allocate_shared's allocator for TensorImpl
// and Storage (each with its shared_ptr control block).
template <class T>
struct Recycler {
  using value_type = T;
  Recycler() = default;
  template <class U>
  Recycler(const Recycler<U>&) noexcept {}

  T* allocate(size_t n) {
    auto& blocks = list().blocks;
    if (n == 1 && !blocks.empty()) {
      void* p = blocks.back();
      blocks.pop_back();
      return static_cast<T*>(p);
    }
    if (n == 1 && slab_enabled()) return static_cast<T*>(slab_block(sizeof(T)));
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1 && alive_) {
      try {
        list().blocks.push_back(p);
        return;
      } catch (...) {  // no room to remember it: give it back instead
      }
    }
    if (n != 1 || !slab_enabled()) ::operator delete(p);
  }
  friend bool operator==(const Recycler&, const Recycler&) { return true; }

 private:
  struct FreeList {
    std::vector<void*> blocks;
    ~FreeList() {
      if (!slab_enabled())
        for (void* p : blocks) ::operator delete(p);
      alive_ = false;
    }
  };
  static FreeList& list() {
    thread_local FreeList fl;
    return fl;
  }
  static thread_local bool alive_;  // trivially destructible: still readable after FreeList is gone
};
template <class T>
thread_local bool Recycler<T>::alive_ = true;

}  // namespace seqgrad::detail
