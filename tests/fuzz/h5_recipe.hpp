// Structure-aware fuzzing of mpitrain's HDF5 readers: a fuzz input is decoded
// as a *recipe* for an HDF5 file (which groups, datasets and attributes exist,
// their types, shapes, layouts, filters and values), the file is written with
// the HDF5 C API, and the real reader then opens it. Mutating the recipe
// changes an attribute's shape or type, a dataset's rank or chunking, or
// damages a chunk, all in files libhdf5 itself considers well-formed, so the
// fuzzer spends its time in mpitrain's checks rather than in libhdf5's
// parser of raw bytes (docs/fuzzing.md).
//
// The encoding (every read past the end of the input gives 0):
//   recipe    := flags:u8 op*                     flags bit 0: latest file format;
//                                                 bits 1-7: the target's own options
//   op        := kind:u8 (mod 4) then
//     0 group     path:name
//     1 dataset   path:name type space layout:u8 chunk:u8 x rank filters:u8 values
//     2 attribute owner:name attr:name type space values
//     3 rawchunk  path:name index:u16 filter_mask:u8 size_mode:u8 bytes:blob
//   name      := b:u8   b < 0xf0: dictionary[b mod size], else a blob (any text)
//   type      := code:u8 (mod kTypeCount; see TypeCode) [fixed string: size:u16 pad:u8]
//   space     := kind:u8 (mod 8: 0 scalar, 1 null, 2-5 rank 1-4, 6-7 rank 1-2) dim x rank
//   dim       := b:u8   b < 0x80: b, else a u32 extent
//   layout    := bits 0-1: contiguous, chunked, compact, chunked; 2: dim 0 unlimited;
//                3: leave unwritten; 4: allocate early; 5: fill value 7
//   filters   := bit 0 shuffle, 1 deflate, 2 fletcher32, 3 scale-offset (chunked only)
//   values    := mode:u8 (mod 6) then 0 zeros | 1 f64 bits:u64 | 2 int:u64 | 3 ramp mod:u8 |
//                4 bytes:blob (raw, repeated) | 5 dictionary text:name
// A step the HDF5 library refuses (a chunk larger than its extent, a name
// with a slash) is skipped: the recipe describes what could be made.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.hpp"

namespace mpitrain::fuzz {

enum TypeCode : unsigned {
  kU8, kI8, kI16, kU16, kI32, kU32, kI64, kU64, kF32, kF64, kF32BE, kI32BE, kU8BE, kF64BE,
  kFixedString, kVarString, kCompound, kOpaque, kEnum, kArrayF32, kVlenI32, kBitfield, kTypeCount
};

enum ValueMode : unsigned { kZeros, kDoubleBits, kInteger, kRamp, kRawBytes, kDictText, kModeCount };

enum Layout : unsigned {
  kContiguous = 0, kChunked = 1, kCompact = 2,
  kUnlimited = 1u << 2, kUnwritten = 1u << 3, kEarlyAlloc = 1u << 4, kFillValue = 1u << 5
};

enum Filter : unsigned { kShuffle = 1, kDeflate = 2, kFletcher32 = 4, kScaleOffset = 8 };

// Fixed-string size code meaning "one byte more than mpitrain's 16 MiB limit".
inline constexpr unsigned kHugeStringCode = 0xffff;

// Writes the file `path` (truncated) from the recipe in `in`; names and
// dictionary texts index `dict`. Returns the flags byte.
std::uint8_t build_h5_file(FuzzInput& in, const std::string& path, const std::vector<std::string>& dict);

// A per-process scratch path (in /dev/shm when it exists), removed at exit.
const std::string& scratch_path(const std::string& stem);

// The encoder, for seeds: each call appends one op.
class RecipeWriter {
 public:
  RecipeWriter(const std::vector<std::string>& dict, unsigned flags) : dict_(dict) { out_.u8(flags); }
  struct Space {
    std::vector<std::uint32_t> dims;  // empty: scalar
  };
  struct Values {
    ValueMode mode = kZeros;
    std::uint64_t number = 0;  // kDoubleBits, kInteger, kRamp (the modulus)
    std::string text;          // kRawBytes bytes, kDictText dictionary entry
  };
  static Values doubles(double v);
  static Values integer(long long v);
  static Values ramp(unsigned mod) { return {kRamp, mod, {}}; }
  static Values text(const std::string& dict_entry) { return {kDictText, 0, dict_entry}; }

  void group(const std::string& path);
  void dataset(const std::string& path, TypeCode type, const Space& space, unsigned layout,
               const std::vector<unsigned>& chunk, unsigned filters, const Values& values);
  void attribute(const std::string& owner, const std::string& name, TypeCode type, const Space& space,
                 const Values& values, unsigned string_size = 0);
  void raw_chunk(const std::string& path, unsigned index, unsigned filter_mask, bool whole_chunk,
                 const std::string& bytes);
  const std::string& bytes() const { return out_.bytes; }

 private:
  void name(const std::string& n);
  void type(TypeCode t, unsigned string_size);
  void space(const Space& s);
  void values(const Values& v);
  const std::vector<std::string>& dict_;
  FuzzOutput out_;
};

}  // namespace mpitrain::fuzz
