// Fuzz target: mpitrain's dataset reader (data/dataset.hpp) on HDF5 files
// made from a structure-aware recipe (h5_recipe.hpp). It does what the
// trainer and `evaluate` do with a --data file: open and validate it
// (DatasetFile), then read rows of every split through a SplitReader, both
// consecutive ranges and scattered rows. A UserError or SystemError is the
// reader refusing the file (expected); anything else is a finding.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "dictionaries.hpp"
#include "h5_recipe.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/dataset.hpp"

namespace {

using namespace mpitrain;

const std::vector<std::string>& kDict = fuzz::kDatasetDict;

// The most input floats a read may stage: the trainer's model, bounded by its
// memory plan, caps the row width the same way.
constexpr double kMaxStageFloats = 1 << 22;

// How the reader is driven, from the input's first bytes (before the recipe).
struct ReadChoices {
  int capacity = 1;         // rows per read, as a rank's chunk
  int scattered = 1;        // rows in the scattered read
  std::uint32_t seed = 0;   // which rows
};

void read_split(const DatasetFile& file, const std::string& split, const ReadChoices& c) {
  const SplitInfo& info = file.split(split);
  const int capacity = c.capacity;
  if (static_cast<double>(info.x_width) * capacity > kMaxStageFloats ||
      static_cast<double>(std::max(info.y_width, 1)) * capacity > kMaxStageFloats)
    return;
  SplitReader reader(file, split, capacity);
  std::vector<float> x(static_cast<size_t>(capacity) * static_cast<size_t>(info.x_width));
  std::vector<int> labels(static_cast<size_t>(capacity));
  std::vector<float> targets(static_cast<size_t>(capacity) * static_cast<size_t>(std::max(info.y_width, 1)));
  const int first = static_cast<int>(std::min<long long>(info.rows, capacity));
  reader.read_range(0, first, x.data(), labels.data(), targets.data());
  // The last rows, then rows the input picks (in range, in any order, as a shuffled shard is).
  const int last = static_cast<int>(std::min<long long>(info.rows, capacity));
  reader.read_range(info.rows - last, last, x.data(), labels.data(), targets.data());
  std::vector<std::int64_t> rows;
  std::uint64_t state = c.seed;
  for (int i = 0, n = std::min(c.scattered, capacity); i < n; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto r = static_cast<std::int64_t>((state >> 33) % static_cast<std::uint64_t>(info.rows));
    if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
  }
  reader.read_rows(rows, x.data(), labels.data(), targets.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  fuzz::FuzzInput in(data, size);
  ReadChoices choices;
  choices.capacity = 1 + in.u8() % 8;
  choices.scattered = 1 + in.u8() % 8;
  choices.seed = in.u32();
  const std::string& path = fuzz::scratch_path("dataset");
  const std::uint8_t flags = fuzz::build_h5_file(in, path, kDict);
  // flags bit 1: scan labels up front only in splits of at most 2 rows, so
  // larger ones take the path of a huge dataset (checked as rows are read).
  const long long scan_rows = (flags & 2) ? 2 : DatasetFile::kLabelScanRows;
  try {
    const DatasetFile file(path, scan_rows);
    for (const char* split : {"train", "test", "val"})
      if (file.has_split(split)) read_split(file, split, choices);
    fuzz::report("accepted");
  } catch (const UserError& e) {
    fuzz::report(e.what());
  } catch (const SystemError& e) {
    fuzz::report(e.what());
  }
  return 0;
}
