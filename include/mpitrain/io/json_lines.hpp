// JSON lines: one JSON object per line, built with JsonObject and appended by
// MetricsWriter (rank 0 writes; numbers are already reduced over ranks by the
// caller). What the lines of a run's metrics file hold is train/run_log.hpp.
#pragma once
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace mpitrain {

// Builds one JSON object. Non-finite numbers become null.
class JsonObject {
 public:
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, long long value);
  JsonObject& add(const std::string& key, int value) { return add(key, static_cast<long long>(value)); }
  JsonObject& add(const std::string& key, bool value);
  JsonObject& add(const std::string& key, const std::string& value);
  JsonObject& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonObject& add_object(const std::string& key, const JsonObject& value);
  JsonObject& add_array(const std::string& key, const std::vector<JsonObject>& values);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

std::string json_escape(const std::string& s);

// Appends lines to a file, flushed after each line so a crash keeps every
// finished epoch. Opening fails with UserError naming the path.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  // append: continue an existing file (a resumed run) instead of starting it anew.
  explicit MetricsWriter(const std::string& path, bool append = false);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  MetricsWriter(MetricsWriter&& o) noexcept : file_(o.file_), path_(std::move(o.path_)) { o.file_ = nullptr; }
  MetricsWriter& operator=(MetricsWriter&& o) noexcept;
  bool is_open() const { return file_ != nullptr; }
  void write(const JsonObject& line);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace mpitrain
