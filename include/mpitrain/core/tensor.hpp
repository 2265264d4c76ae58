// Owning, 64-byte aligned float buffers. Shapes are documented where the
// buffers are used ("// (rows, width)"); there are no per-sample vectors.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace mpitrain {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) { std::free(data_); data_ = o.data_; size_ = o.size_; o.data_ = nullptr; o.size_ = 0; }
    return *this;
  }
  ~AlignedBuffer() { std::free(data_); }

  // Discards the contents; the new buffer is zero-filled.
  void resize(std::size_t n) {
    std::free(data_);
    data_ = nullptr;
    size_ = n;
    if (n == 0) return;
    const std::size_t bytes = ((n * sizeof(T) + kAlign - 1) / kAlign) * kAlign;
    data_ = static_cast<T*>(std::aligned_alloc(kAlign, bytes));
    if (!data_) throw std::bad_alloc();
    std::memset(static_cast<void*>(data_), 0, bytes);
  }
  void zero() { if (size_) std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T)); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

 private:
  static constexpr std::size_t kAlign = 64;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mpitrain
