// `mpitrain convert csv`: a numeric CSV file with a header row to the HDF5
// dataset layout. Features become float32 x [N, d] (scale 1, no mean/std);
// the label column becomes int32 class ids or float32 targets [N, 1]; a
// seeded, P-independent fraction of the rows is held out as /test.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/data/convert.hpp"
#include "mpitrain/data/dataset_writer.hpp"

namespace mpitrain {
namespace {

constexpr std::uint64_t kSplitStream = 0x637376;  // "csv": keeps the split independent of other seeded streams

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Splits on commas. Quotes are stripped from whole fields only (header
// names are often quoted); commas inside quotes are not supported because
// the data is numeric.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    std::string_view f = trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
    out.push_back(f);
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

struct Table {
  std::vector<std::string> columns;
  size_t label_index = 0;
  std::vector<float> features;  // (rows, columns-1), row-major
  std::vector<double> labels;   // (rows)
  size_t rows() const { return labels.size(); }
  size_t width() const { return columns.size() - 1; }
};

double parse_number(std::string_view field, const std::string& where, const std::string& column) {
  std::string_view s = field;
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);  // from_chars rejects a leading '+'
  double v = 0.0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (field.empty())
    throw UserError(where + ", column '" + column + "': empty value: fill in or drop missing values first");
  if (ec != std::errc() || end != s.data() + s.size())
    throw UserError(where + ", column '" + column + "': '" + std::string(field) +
                    "' is not a number: every column must be numeric");
  if (!std::isfinite(v))
    throw UserError(where + ", column '" + column + "': '" + std::string(field) + "' is not a finite number");
  return v;
}

Table read_csv(const std::string& path, const std::string& label_column) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot open CSV file '" + path + "': check --input");
  Table t;
  std::string line;
  long line_no = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 BOM from spreadsheet exports
    if (trim(line).empty()) continue;  // blank lines (often a trailing one) carry no row
    const std::vector<std::string_view> fields = split_fields(line);
    const std::string where = "'" + path + "' line " + std::to_string(line_no);
    if (!have_header) {
      have_header = true;
      for (auto f : fields) t.columns.emplace_back(f);
      const auto n_label = std::count(t.columns.begin(), t.columns.end(), label_column);
      if (n_label == 0) {
        std::string names;
        for (const auto& c : t.columns) names += (names.empty() ? "'" : ", '") + c + "'";
        throw UserError("CSV file '" + path + "' has no column '" + label_column +
                        "': choose --label-column from " + names);
      }
      if (n_label > 1)
        throw UserError("CSV file '" + path + "' has " + std::to_string(n_label) + " columns named '" +
                        label_column + "': rename them so the label column is unique");
      if (t.columns.size() < 2)
        throw UserError("CSV file '" + path + "' has only the label column: it needs at least one feature column");
      t.label_index = static_cast<size_t>(std::find(t.columns.begin(), t.columns.end(), label_column) -
                                          t.columns.begin());
      continue;
    }
    if (fields.size() != t.columns.size())
      throw UserError(where + ": expected " + std::to_string(t.columns.size()) + " fields like the header, found " +
                      std::to_string(fields.size()));
    for (size_t c = 0; c < fields.size(); ++c) {
      const double v = parse_number(fields[c], where, t.columns[c]);
      if (c == t.label_index) {
        t.labels.push_back(v);
      } else {
        if (std::abs(v) > std::numeric_limits<float>::max())
          throw UserError(where + ", column '" + t.columns[c] + "': " + std::string(fields[c]) +
                          " does not fit in float32: rescale the column");
        t.features.push_back(static_cast<float>(v));
      }
    }
  }
  if (in.bad()) throw SystemError("reading '" + path + "' failed");
  if (!have_header) throw UserError("CSV file '" + path + "' is empty: it needs a header row and data rows");
  if (t.rows() == 0) throw UserError("CSV file '" + path + "' has a header but no data rows");
  return t;
}

bool is_class_id(double v) {
  return v >= 0.0 && v < static_cast<double>(std::numeric_limits<std::int32_t>::max()) && v == std::floor(v);
}

// Copies the given table rows into one split.
SplitArrays make_split(const Table& t, const std::vector<std::int64_t>& rows, bool classification) {
  SplitArrays s;
  const size_t d = t.width();
  s.x_dims = {rows.size(), d};
  s.x_f32.reserve(rows.size() * d);
  s.target_width = classification ? 0 : 1;
  for (std::int64_t r : rows) {
    const auto row = static_cast<size_t>(r);
    s.x_f32.insert(s.x_f32.end(), t.features.begin() + static_cast<std::ptrdiff_t>(row * d),
                   t.features.begin() + static_cast<std::ptrdiff_t>((row + 1) * d));
    if (classification)
      s.y_class.push_back(static_cast<std::int32_t>(t.labels[row]));
    else
      s.y_target.push_back(static_cast<float>(t.labels[row]));
  }
  s.scale = 1.0;
  return s;
}

}  // namespace

void convert_csv(const CsvConvertOptions& options) {
  if (options.task != "auto" && options.task != "classify" && options.task != "regress")
    throw UserError("--task '" + options.task + "' is not one of auto, classify, regress");
  if (!(options.test_fraction >= 0.0 && options.test_fraction < 1.0))
    throw UserError("--test-fraction " + std::to_string(options.test_fraction) + " must be in [0, 1)");
  if (options.label_column.empty()) throw UserError("--label-column must name the label column of the CSV header");
  std::error_code ec;
  if (std::filesystem::equivalent(options.input, options.output, ec))
    throw UserError("--output '" + options.output + "' is the input CSV file: choose another output path");

  const Table t = read_csv(options.input, options.label_column);

  const bool all_class_ids = std::all_of(t.labels.begin(), t.labels.end(), is_class_id);
  const bool classification = options.task == "classify" || (options.task == "auto" && all_class_ids);
  if (options.task == "classify" && !all_class_ids) {
    const auto bad = std::find_if_not(t.labels.begin(), t.labels.end(), is_class_id);
    std::ostringstream v;
    v << *bad;
    throw UserError("--task classify needs non-negative integer labels, but column '" + options.label_column +
                    "' holds " + v.str() + ": use --task regress or fix the labels");
  }

  const auto n = static_cast<std::int64_t>(t.rows());
  const auto n_test = static_cast<std::int64_t>(std::llround(static_cast<double>(n) * options.test_fraction));
  if (n - n_test < 1)
    throw UserError("--test-fraction " + std::to_string(options.test_fraction) + " leaves no training rows out of " +
                    std::to_string(n) + ": lower it");
  // The split is a pure function of (seed, N), like every other random choice
  // that shapes a run, so re-converting gives the same file.
  std::vector<std::int64_t> perm = random_permutation(n, stream_key(options.seed, kSplitStream));
  std::vector<std::int64_t> train_rows(perm.begin(), perm.end() - n_test);
  std::vector<std::int64_t> test_rows(perm.end() - n_test, perm.end());
  // File order inside each split makes the output easy to compare with the CSV.
  std::sort(train_rows.begin(), train_rows.end());
  std::sort(test_rows.begin(), test_rows.end());

  DatasetArrays data;
  data.train = make_split(t, train_rows, classification);
  data.test = make_split(t, test_rows, classification);
  if (classification)
    data.num_classes = static_cast<int>(*std::max_element(t.labels.begin(), t.labels.end())) + 1;
  data.source = options.input;
  data.description = "CSV converted by mpitrain convert csv; x is float32 [N, " + std::to_string(t.width()) +
                     "] (the non-label columns in header order), y is " +
                     (classification ? std::string("int32 class ids") : std::string("float32 targets [N, 1]")) +
                     " from column '" + options.label_column + "'; test split: fraction " +
                     std::to_string(options.test_fraction) + ", seed " + std::to_string(options.seed);
  write_dataset_file(data, options.output);
}

}  // namespace mpitrain
