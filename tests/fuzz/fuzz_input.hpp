// Reading a fuzz input as a stream of small decisions (what libFuzzer's
// FuzzedDataProvider does, but portable to the gcc replay build): every read
// past the end gives zeros, so any byte string decodes to something.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace mpitrain::fuzz {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }
  size_t remaining() const { return empty() ? 0 : static_cast<size_t>(end_ - p_); }
  std::uint8_t u8() { return empty() ? 0 : *p_++; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u16()) | (static_cast<std::uint32_t>(u16()) << 16); }
  std::uint64_t u64() { return static_cast<std::uint64_t>(u32()) | (static_cast<std::uint64_t>(u32()) << 32); }
  // A length-prefixed byte string of at most 255 bytes.
  std::string blob() {
    const size_t n = std::min<size_t>(u8(), remaining());
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// The other direction, for the seed generator: the bytes that decode to a
// chosen description.
class FuzzOutput {
 public:
  FuzzOutput& u8(unsigned v) { bytes.push_back(static_cast<char>(v & 0xff)); return *this; }
  FuzzOutput& u16(unsigned v) { return u8(v).u8(v >> 8); }
  FuzzOutput& u32(std::uint32_t v) { return u16(v & 0xffff).u16(v >> 16); }
  FuzzOutput& u64(std::uint64_t v) { return u32(static_cast<std::uint32_t>(v)).u32(static_cast<std::uint32_t>(v >> 32)); }
  FuzzOutput& blob(const std::string& s) { u8(static_cast<unsigned>(s.size())); bytes += s.substr(0, 255); return *this; }
  std::string bytes;
};

}  // namespace mpitrain::fuzz

#include <cstdio>
#include <cstdlib>

namespace mpitrain::fuzz {

// MPITRAIN_FUZZ_VERBOSE=1: each input's outcome on stderr ("accepted" or
// the refusal), to check what a seed or a regression file reaches.
inline void report(const char* outcome) {
  static const bool verbose = std::getenv("MPITRAIN_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  -> %s\n", outcome);
}

}  // namespace mpitrain::fuzz
