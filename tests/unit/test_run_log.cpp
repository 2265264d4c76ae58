// Tests of RunLog (train/run_log.hpp), the JSON-lines contract with the study
// tools (scripts/mpitrain_study): each line kind is written to a metrics file
// in a temporary run directory, read back, parsed as one flat JSON object and
// checked key by key against values worked out by hand; plus the run
// directory (config.ini on a fresh run only, summary.json), appending on
// resume, step_due and the metrics path defaults.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/train/run_log.hpp"

using namespace mpitrain;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One JSON object of scalar values (what every line but the header is),
// parsed strictly: keys in order with their raw value text (strings unescaped,
// kept with a leading '"' to tell them from numbers). nullopt if not valid.
struct FlatJson {
  std::vector<std::string> keys;
  std::map<std::string, std::string> raw;
  std::set<std::string> key_set() const { return {keys.begin(), keys.end()}; }
  bool has(const std::string& k) const { return raw.count(k) != 0; }
  // The value as text: a string's contents, or a literal (number, null, true, false).
  std::string text(const std::string& k) const {
    const auto it = raw.find(k);
    if (it == raw.end()) return "<absent>";
    return it->second.starts_with('"') ? it->second.substr(1) : it->second;
  }
  bool is_string(const std::string& k) const { return has(k) && raw.at(k).starts_with('"'); }
  double number(const std::string& k) const {
    const std::string t = text(k);
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    return (is_string(k) || t.empty() || *end != '\0') ? kNaN : v;
  }
};

std::optional<FlatJson> parse_flat(const std::string& s) {
  FlatJson out;
  size_t i = 0;
  const auto skip_ws = [&] { while (i < s.size() && s[i] == ' ') ++i; };
  const auto read_string = [&](std::string& into) {
    if (i >= s.size() || s[i] != '"') return false;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\') {
        if (++i >= s.size()) return false;
        const char e = s[i];
        into += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      } else {
        into += s[i];
      }
    }
    if (i >= s.size()) return false;
    ++i;
    return true;
  };
  skip_ws();
  if (i >= s.size() || s[i++] != '{') return std::nullopt;
  skip_ws();
  if (i < s.size() && s[i] == '}') return ++i == s.size() ? std::optional(out) : std::nullopt;
  while (true) {
    std::string key;
    skip_ws();
    if (!read_string(key)) return std::nullopt;
    skip_ws();
    if (i >= s.size() || s[i++] != ':') return std::nullopt;
    skip_ws();
    std::string value;
    if (i < s.size() && s[i] == '"') {
      value = "\"";
      if (!read_string(value)) return std::nullopt;
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '}') value += s[i++];
      const bool literal = value == "null" || value == "true" || value == "false";
      char* end = nullptr;
      std::strtod(value.c_str(), &end);
      // JSON numbers: no nan/inf words, no hex, no leading '+' or '.'.
      const bool number = !value.empty() && *end == '\0' && value.find_first_of("nNiIxX+") == std::string::npos &&
                          value[0] != '.';
      if (!literal && !number) return std::nullopt;
    }
    if (out.raw.count(key)) return std::nullopt;  // duplicate key
    out.keys.push_back(key);
    out.raw[key] = value;
    skip_ws();
    if (i >= s.size()) return std::nullopt;
    if (s[i] == ',') { ++i; continue; }
    if (s[i] == '}') { ++i; break; }
    return std::nullopt;
  }
  return i == s.size() ? std::optional(out) : std::nullopt;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

class RunLogTest : public ::testing::Test {
 protected:
  RunLogTest() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    tmp_ = fs::temp_directory_path() / ("mpitrain_run_log_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  ~RunLogTest() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  // A run directory that does not exist yet, one level below tmp_.
  fs::path run_dir() const { return tmp_ / "runs" / "r1"; }
  RunLogOptions options(long long every_steps = 0) const { return RunLogOptions{run_dir().string(), "", every_steps}; }
  fs::path metrics() const { return run_dir() / "metrics.jsonl"; }

  // The only line of the metrics file, parsed (fails the test if it is not one valid object).
  FlatJson only_line() const {
    const auto lines = read_lines(metrics());
    EXPECT_EQ(lines.size(), 1u);
    if (lines.empty()) return {};
    return parse(lines.back());
  }
  static FlatJson parse(const std::string& line) {
    const auto j = parse_flat(line);
    EXPECT_TRUE(j.has_value()) << "not a flat JSON object: " << line;
    return j.value_or(FlatJson{});
  }

  fs::path tmp_;
};

using Keys = std::set<std::string>;

// ---- the parser itself: it must reject what the study tools' json.loads would ----

TEST(RunLogJsonParser, RejectsInvalidLines) {
  EXPECT_TRUE(parse_flat(R"({"a":1,"b":"x","c":null,"d":true,"e":-1.5e-07})").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":nan})").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":inf})").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":1,"a":2})").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":1,})").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":1} )").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":"x)").has_value());
  EXPECT_FALSE(parse_flat(R"({"a":})").has_value());
}

// ---- run directory and metrics file ----

TEST_F(RunLogTest, FreshRunWritesConfigIniAndStartsTheMetricsFile) {
  // A metrics file left by an earlier run in the same directory is started anew.
  fs::create_directories(run_dir());
  write_text(metrics(), "{\"type\":\"old\"}\n");
  const std::string ini = "# effective configuration\nepochs = 3\nlr = 0.1\n";
  {
    RunLog log(options(), ini, /*resumed=*/false);
    EXPECT_EQ(read_text(run_dir() / "config.ini"), ini);
    log.checkpoint("ckpt-1.h5", 1, 10, 0.5, 2.0);
  }
  const auto lines = read_lines(metrics());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"type\":\"checkpoint\""), std::string::npos) << lines[0];
}

TEST_F(RunLogTest, FreshRunCreatesANestedRunDir) {
  ASSERT_FALSE(fs::exists(run_dir().parent_path()));
  RunLog log(options(), "epochs = 1\n", false);
  EXPECT_TRUE(fs::is_directory(run_dir()));
  EXPECT_EQ(read_text(run_dir() / "config.ini"), "epochs = 1\n");
  EXPECT_TRUE(fs::exists(metrics()));
  EXPECT_EQ(fs::file_size(metrics()), 0u);
}

TEST_F(RunLogTest, ResumedRunAppendsAndKeepsConfigIni) {
  fs::create_directories(run_dir());
  write_text(run_dir() / "config.ini", "epochs = 3\n");
  write_text(metrics(), "{\"type\":\"header\"}\n");
  {
    RunLog log(options(), "epochs = 99\n", /*resumed=*/true);
    log.checkpoint("ckpt-2.h5", 2, 20, 0.25, 1.0);
  }
  EXPECT_EQ(read_text(run_dir() / "config.ini"), "epochs = 3\n");
  const auto lines = read_lines(metrics());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "{\"type\":\"header\"}");
  EXPECT_NE(lines[1].find("\"file\":\"ckpt-2.h5\""), std::string::npos) << lines[1];
}

TEST_F(RunLogTest, ExplicitMetricsPathWithoutRunDirWritesNothingElse) {
  const fs::path m = tmp_ / "m.jsonl";
  {
    RunLog log(RunLogOptions{"", m.string(), 0}, "epochs = 1\n", false);
    TrainResult r;
    r.time_s = 1.0;
    log.summary({&r, 1, 10, 0.1, kNaN, false, nullptr, nullptr});
  }
  EXPECT_EQ(read_lines(m).size(), 1u);
  // No config.ini and no summary.json anywhere: the directory holds only the metrics file.
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(tmp_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"m.jsonl"});
}

TEST_F(RunLogTest, UnwritableRunDirIsAUserError) {
  // A regular file where a directory is needed stops even root.
  write_text(tmp_ / "file", "x");
  try {
    RunLog log(RunLogOptions{(tmp_ / "file" / "run").string(), "", 0}, "epochs = 1\n", false);
    ADD_FAILURE() << "no UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--run-dir"), std::string::npos) << e.what();
  }
  // The directory exists but config.ini cannot be written (it is a directory).
  fs::create_directories(tmp_ / "run2" / "config.ini");
  EXPECT_THROW({ RunLog log(RunLogOptions{(tmp_ / "run2").string(), "", 0}, "epochs = 1\n", false); }, UserError);
}

TEST(RunLogMetricsPath, DefaultsExplicitAndNone) {
  EXPECT_EQ((RunLogOptions{"runs/a", "", 0}.metrics_path()), "runs/a/metrics.jsonl");
  EXPECT_EQ((RunLogOptions{"runs/a", "elsewhere/m.jsonl", 0}.metrics_path()), "elsewhere/m.jsonl");
  EXPECT_EQ((RunLogOptions{"", "m.jsonl", 0}.metrics_path()), "m.jsonl");
  EXPECT_EQ((RunLogOptions{"", "", 0}.metrics_path()), "");
}

TEST(RunLogStepDue, EveryStepsZeroNeverFiveEveryFifth) {
  const RunLog off(RunLogOptions{"", "", 0}, "", false);
  for (long long n : {1, 5, 10, 100}) EXPECT_FALSE(off.step_due(n)) << n;
  const RunLog five(RunLogOptions{"", "", 5}, "", false);
  for (long long n : {1, 2, 3, 4, 6, 9, 11}) EXPECT_FALSE(five.step_due(n)) << n;
  for (long long n : {5, 10, 15, 1000}) EXPECT_TRUE(five.step_due(n)) << n;
}

// ---- the lines ----

TEST_F(RunLogTest, StepLine) {
  {
    RunLog log(options(5), "", false);
    log.step({2, 15, 960, 0.05, 64, 0.5, 0.875, 1.25, kNaN, 3.5, 32});
  }
  const FlatJson j = only_line();
  EXPECT_EQ(j.key_set(), (Keys{"type", "epoch", "step", "samples", "lr", "global_batch", "loss", "acc", "grad_norm",
                               "noise_scale", "noise_small_sq", "noise_b_small", "noise_big_sq", "noise_b_big"}));
  ASSERT_FALSE(j.keys.empty());
  EXPECT_EQ(j.keys.front(), "type");
  EXPECT_EQ(j.text("type"), "step");
  EXPECT_EQ(j.text("epoch"), "2");
  EXPECT_EQ(j.text("step"), "15");
  EXPECT_EQ(j.text("samples"), "960");
  EXPECT_EQ(j.text("global_batch"), "64");
  EXPECT_DOUBLE_EQ(j.number("lr"), 0.05);
  EXPECT_DOUBLE_EQ(j.number("loss"), 0.5);
  EXPECT_DOUBLE_EQ(j.number("acc"), 0.875);
  EXPECT_DOUBLE_EQ(j.number("grad_norm"), 1.25);
  EXPECT_EQ(j.text("noise_scale"), "null");  // no estimate yet: NaN
  // The raw statistics, for re-averaging: |G_small|^2 at b_small, |G_big|^2 = grad_norm^2 at the global batch.
  EXPECT_DOUBLE_EQ(j.number("noise_small_sq"), 3.5);
  EXPECT_DOUBLE_EQ(j.number("noise_b_small"), 32);
  EXPECT_DOUBLE_EQ(j.number("noise_big_sq"), 1.5625);
  EXPECT_EQ(j.text("noise_b_big"), "64");
}

TEST_F(RunLogTest, EvalLinesCarryOnlyMeasuredMetrics) {
  const EpochMetrics val{{"val_loss", 0.4}, {"val_acc", 0.9}};
  const EpochMetrics test{{"test_loss", 0.375}, {"test_acc", kNaN}};  // regression: accuracy NaN
  {
    RunLog log(options(), "", false);
    log.eval({1, 40, 2560, 3.5, &val, std::nullopt});
    log.eval({2, 80, 5120, 7.25, &test, true});
    log.eval({2, 90, 5760, 8.0, &val, false});
  }
  const auto lines = read_lines(metrics());
  ASSERT_EQ(lines.size(), 3u);
  const FlatJson a = parse(lines[0]);
  EXPECT_EQ(a.key_set(), (Keys{"type", "epoch", "step", "samples", "time_s", "val_loss", "val_acc"}));
  EXPECT_EQ(a.text("type"), "eval");
  EXPECT_EQ(a.text("epoch"), "1");
  EXPECT_EQ(a.text("step"), "40");
  EXPECT_EQ(a.text("samples"), "2560");
  EXPECT_DOUBLE_EQ(a.number("time_s"), 3.5);
  EXPECT_DOUBLE_EQ(a.number("val_loss"), 0.4);
  EXPECT_DOUBLE_EQ(a.number("val_acc"), 0.9);

  const FlatJson b = parse(lines[1]);
  EXPECT_EQ(b.key_set(), (Keys{"type", "epoch", "step", "samples", "time_s", "test_loss", "test_acc",
                               "target_reached"}));
  EXPECT_DOUBLE_EQ(b.number("test_loss"), 0.375);
  EXPECT_EQ(b.text("test_acc"), "null");
  EXPECT_EQ(b.text("target_reached"), "true");

  const FlatJson c = parse(lines[2]);
  EXPECT_EQ(c.text("target_reached"), "false");
  EXPECT_EQ(c.text("step"), "90");
}

EpochRecord epoch_record(const EpochMetrics* m) {
  EpochRecord r;
  r.epoch = 3;
  r.step = 33;
  r.samples = 2112;
  r.global_batch = 64;
  r.steps_in_epoch = 11;
  r.lr = 0.1;
  r.train_loss = 0.625;
  r.train_acc = 0.75;
  r.metrics = m;
  r.time_s = 12.5;
  r.epoch_time_s = 4.0;
  r.samples_per_s = 176.0;
  r.eval_time_s = 0.5;
  r.time_max = {0.1, 0.6, 0.3, 1.2};  // data, compute, allreduce_wait, comm
  r.time_min = {0.05, 0.5, 0.2, 1.0};
  r.peak_rss_mb = 123.5;
  r.noise_scale = 512.0;
  r.noise_g2 = 0.25;
  r.noise_trace_s = 128.0;
  return r;
}

const Keys kEpochKeys = {"type", "epoch", "step", "samples", "lr", "global_batch", "steps_in_epoch", "train_loss",
                         "train_acc", "test_loss", "test_acc", "time_s", "epoch_time_s", "samples_per_s",
                         "time_data_s", "time_data_min_s", "time_compute_s", "time_compute_min_s",
                         "time_allreduce_s", "time_allreduce_min_s", "time_comm_s", "time_comm_min_s",
                         "comm_hidden_fraction", "peak_rss_mb", "eval_time_s", "noise_scale", "noise_g2",
                         "noise_trace_s"};

TEST_F(RunLogTest, EpochLineWithNothingMeasuredHasNullTestValues) {
  const EpochMetrics none;
  std::string returned;
  {
    RunLog log(options(), "", false);
    returned = log.epoch(epoch_record(&none));
  }
  const auto lines = read_lines(metrics());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(returned, lines[0]);  // checkpoints keep the line as written
  const FlatJson j = parse(lines[0]);
  EXPECT_EQ(j.key_set(), kEpochKeys);
  EXPECT_EQ(j.text("type"), "epoch");
  EXPECT_EQ(j.text("test_loss"), "null");
  EXPECT_EQ(j.text("test_acc"), "null");
  EXPECT_EQ(j.text("epoch"), "3");
  EXPECT_EQ(j.text("step"), "33");
  EXPECT_EQ(j.text("samples"), "2112");
  EXPECT_EQ(j.text("global_batch"), "64");
  EXPECT_EQ(j.text("steps_in_epoch"), "11");
  EXPECT_DOUBLE_EQ(j.number("lr"), 0.1);
  EXPECT_DOUBLE_EQ(j.number("train_loss"), 0.625);
  EXPECT_DOUBLE_EQ(j.number("train_acc"), 0.75);
  EXPECT_DOUBLE_EQ(j.number("time_s"), 12.5);
  EXPECT_DOUBLE_EQ(j.number("epoch_time_s"), 4.0);
  EXPECT_DOUBLE_EQ(j.number("samples_per_s"), 176.0);
  // The time split: max over ranks, and the *_min_s keys the min.
  EXPECT_DOUBLE_EQ(j.number("time_data_s"), 0.1);
  EXPECT_DOUBLE_EQ(j.number("time_data_min_s"), 0.05);
  EXPECT_DOUBLE_EQ(j.number("time_compute_s"), 0.6);
  EXPECT_DOUBLE_EQ(j.number("time_compute_min_s"), 0.5);
  EXPECT_DOUBLE_EQ(j.number("time_allreduce_s"), 0.3);
  EXPECT_DOUBLE_EQ(j.number("time_allreduce_min_s"), 0.2);
  EXPECT_DOUBLE_EQ(j.number("time_comm_s"), 1.2);
  EXPECT_DOUBLE_EQ(j.number("time_comm_min_s"), 1.0);
  // 1 - 0.3 / 1.2: three quarters of the communication hidden behind backward.
  EXPECT_NEAR(j.number("comm_hidden_fraction"), 0.75, 1e-9);
  EXPECT_DOUBLE_EQ(j.number("peak_rss_mb"), 123.5);
  EXPECT_DOUBLE_EQ(j.number("eval_time_s"), 0.5);
  EXPECT_DOUBLE_EQ(j.number("noise_scale"), 512.0);
  EXPECT_DOUBLE_EQ(j.number("noise_g2"), 0.25);
  EXPECT_DOUBLE_EQ(j.number("noise_trace_s"), 128.0);
}

TEST_F(RunLogTest, EpochLineWithValAndTestAndTarget) {
  const EpochMetrics all{{"val_loss", 0.5}, {"val_acc", 0.8125}, {"test_loss", 0.55}, {"test_acc", 0.8}};
  {
    RunLog log(options(), "", false);
    EpochRecord r = epoch_record(&all);
    r.target_reached = false;
    log.epoch(r);
    r.epoch = 4;
    r.target_reached = true;
    r.time_max.comm = 0;  // one rank: no communication, the fraction is undefined
    r.noise_scale = kNaN;
    log.epoch(r);
  }
  const auto lines = read_lines(metrics());
  ASSERT_EQ(lines.size(), 2u);
  Keys keys = kEpochKeys;
  keys.insert({"val_loss", "val_acc", "target_reached"});
  const FlatJson a = parse(lines[0]);
  EXPECT_EQ(a.key_set(), keys);
  EXPECT_DOUBLE_EQ(a.number("val_loss"), 0.5);
  EXPECT_DOUBLE_EQ(a.number("val_acc"), 0.8125);
  EXPECT_DOUBLE_EQ(a.number("test_loss"), 0.55);
  EXPECT_DOUBLE_EQ(a.number("test_acc"), 0.8);
  EXPECT_EQ(a.text("target_reached"), "false");
  const FlatJson b = parse(lines[1]);
  EXPECT_EQ(b.text("epoch"), "4");
  EXPECT_EQ(b.text("target_reached"), "true");
  EXPECT_EQ(b.text("comm_hidden_fraction"), "null");
  EXPECT_EQ(b.text("noise_scale"), "null");
}

TEST_F(RunLogTest, CheckpointLine) {
  {
    RunLog log(options(), "", false);
    log.checkpoint("runs/r1/checkpoints/ckpt-e0002.h5", 2, 30, 0.125, 1.5);
  }
  const FlatJson j = only_line();
  EXPECT_EQ(j.key_set(), (Keys{"type", "file", "epoch", "step", "seconds", "mb"}));
  EXPECT_EQ(j.text("type"), "checkpoint");
  EXPECT_TRUE(j.is_string("file"));
  EXPECT_EQ(j.text("file"), "runs/r1/checkpoints/ckpt-e0002.h5");
  EXPECT_EQ(j.text("epoch"), "2");
  EXPECT_EQ(j.text("step"), "30");
  EXPECT_DOUBLE_EQ(j.number("seconds"), 0.125);
  EXPECT_DOUBLE_EQ(j.number("mb"), 1.5);
}

TEST_F(RunLogTest, DivergedLineAndSummaryFile) {
  {
    RunLog log(options(), "", false);
    log.diverged({2, 17, 128, 4, 0.4, kNaN, 3.5, "the loss or gradient is \"not\" finite"});
  }
  // The metrics file gets the diverged line only.
  const FlatJson j = only_line();
  EXPECT_EQ(j.key_set(), (Keys{"type", "epoch", "step", "lr", "loss", "grad_norm", "reason"}));
  EXPECT_EQ(j.text("type"), "diverged");
  EXPECT_EQ(j.text("epoch"), "2");
  EXPECT_EQ(j.text("step"), "17");
  EXPECT_DOUBLE_EQ(j.number("lr"), 0.4);
  EXPECT_EQ(j.text("loss"), "null");
  EXPECT_DOUBLE_EQ(j.number("grad_norm"), 3.5);
  EXPECT_EQ(j.text("reason"), "the loss or gradient is \"not\" finite");  // escaped and back

  // summary.json says the run diverged, for sweep tools that read only it.
  const auto s_lines = read_lines(run_dir() / "summary.json");
  ASSERT_EQ(s_lines.size(), 1u);
  const FlatJson s = parse(s_lines[0]);
  EXPECT_EQ(s.key_set(), (Keys{"type", "stop_reason", "ranks", "global_batch", "lr", "epochs", "steps",
                               "target_reached"}));
  EXPECT_EQ(s.text("type"), "summary");
  EXPECT_EQ(s.text("stop_reason"), "diverged");
  EXPECT_EQ(s.text("ranks"), "4");
  EXPECT_EQ(s.text("global_batch"), "128");
  EXPECT_DOUBLE_EQ(s.number("lr"), 0.4);
  EXPECT_EQ(s.text("epochs"), "2");
  EXPECT_EQ(s.text("steps"), "17");
  EXPECT_EQ(s.text("target_reached"), "false");
}

TrainResult finished_result() {
  TrainResult r;
  r.epochs_done = 5;
  r.steps = 55;
  r.samples = 6000;
  r.time_s = 2.5;
  r.train_loss = 0.25;
  r.train_acc = 0.9;
  r.eval_loss = 0.3;
  r.eval_acc = 0.875;
  r.val_loss = kNaN;  // no validation split
  r.val_acc = kNaN;
  r.stop_reason = "epochs";
  return r;
}

const Keys kSummaryKeys = {"type", "stop_reason", "ranks", "global_batch", "lr", "noise_scale", "samples_per_s",
                           "epochs", "steps", "samples", "time_s", "train_loss", "val_loss", "val_acc",
                           "test_loss", "test_acc"};

TEST_F(RunLogTest, SummaryLineAlsoWrittenAsSummaryJson) {
  const TrainResult r = finished_result();
  {
    RunLog log(options(), "", false);
    log.summary({&r, 2, 128, 0.2, 640.0, /*has_test=*/true, nullptr, nullptr});
  }
  const auto lines = read_lines(metrics());
  ASSERT_EQ(lines.size(), 1u);
  const FlatJson j = parse(lines[0]);
  EXPECT_EQ(j.key_set(), kSummaryKeys);  // no best_* and no target* without early stopping and --target
  EXPECT_EQ(j.text("type"), "summary");
  EXPECT_EQ(j.text("stop_reason"), "epochs");
  EXPECT_EQ(j.text("ranks"), "2");
  EXPECT_EQ(j.text("global_batch"), "128");
  EXPECT_DOUBLE_EQ(j.number("lr"), 0.2);
  EXPECT_DOUBLE_EQ(j.number("noise_scale"), 640.0);
  EXPECT_DOUBLE_EQ(j.number("samples_per_s"), 2400.0);  // 6000 / 2.5
  EXPECT_EQ(j.text("epochs"), "5");
  EXPECT_EQ(j.text("steps"), "55");
  EXPECT_EQ(j.text("samples"), "6000");
  EXPECT_DOUBLE_EQ(j.number("time_s"), 2.5);
  EXPECT_DOUBLE_EQ(j.number("train_loss"), 0.25);
  EXPECT_EQ(j.text("val_loss"), "null");
  EXPECT_EQ(j.text("val_acc"), "null");
  EXPECT_DOUBLE_EQ(j.number("test_loss"), 0.3);
  EXPECT_DOUBLE_EQ(j.number("test_acc"), 0.875);
  // summary.json holds the same line.
  EXPECT_EQ(read_text(run_dir() / "summary.json"), lines[0] + "\n");
}

TEST_F(RunLogTest, SummaryWithoutTestSplitHasNullTestValues) {
  const TrainResult r = finished_result();  // eval_* hold the val split's values here
  {
    RunLog log(options(), "", false);
    log.summary({&r, 1, 64, 0.1, kNaN, /*has_test=*/false, nullptr, nullptr});
  }
  const FlatJson j = only_line();
  EXPECT_EQ(j.text("test_loss"), "null");
  EXPECT_EQ(j.text("test_acc"), "null");
  EXPECT_EQ(j.text("noise_scale"), "null");
}

TEST_F(RunLogTest, SummaryWithEarlyStoppingAndTargetReached) {
  TrainResult r = finished_result();
  r.stop_reason = "target";
  r.best_epoch = 4;
  r.best_value = 0.28;
  r.target_reached = true;
  r.target_epoch = 3;
  r.target_step = 33;
  r.target_samples = 3960;
  r.target_time_s = 1.75;
  const EarlyStopping early("val_acc", 2, 0.0);
  const Target target = parse_target("val_acc>=0.85");
  {
    RunLog log(options(), "", false);
    log.summary({&r, 2, 120, 0.2, 640.0, true, &early, &target});
  }
  const FlatJson j = only_line();
  Keys keys = kSummaryKeys;
  keys.insert({"best_epoch", "best_metric", "best_value", "target", "target_reached", "target_epoch", "target_step",
               "target_samples", "target_time_s", "target_train_time_s"});
  EXPECT_EQ(j.key_set(), keys);
  EXPECT_EQ(j.text("stop_reason"), "target");
  EXPECT_EQ(j.text("best_epoch"), "4");
  EXPECT_EQ(j.text("best_metric"), "val_acc");
  EXPECT_DOUBLE_EQ(j.number("best_value"), 0.28);
  EXPECT_EQ(j.text("target"), "val_acc>=0.85");
  EXPECT_EQ(j.text("target_reached"), "true");
  EXPECT_EQ(j.text("target_epoch"), "3");
  EXPECT_EQ(j.text("target_step"), "33");
  EXPECT_EQ(j.text("target_samples"), "3960");
  EXPECT_DOUBLE_EQ(j.number("target_time_s"), 1.75);
}

TEST_F(RunLogTest, SummaryWithTargetNotReachedHasNoTargetPosition) {
  const TrainResult r = finished_result();
  const Target target = parse_target("val_loss<=0.1");
  {
    RunLog log(options(), "", false);
    log.summary({&r, 1, 64, 0.1, 1.0, true, nullptr, &target});
  }
  const FlatJson j = only_line();
  Keys keys = kSummaryKeys;
  keys.insert({"target", "target_reached"});
  EXPECT_EQ(j.key_set(), keys);
  EXPECT_EQ(j.text("target"), "val_loss<=0.1");
  EXPECT_EQ(j.text("target_reached"), "false");
}

}  // namespace
