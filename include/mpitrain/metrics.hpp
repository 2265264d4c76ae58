// Metrics: a JSON-lines file written by rank 0 (one object per line: a
// header, then epoch lines), and a monotonic clock. Numbers written here are
// already reduced over ranks by the caller.
#pragma once
#include <chrono>
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

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// This process's peak resident set size so far, in MB (getrusage).
double peak_rss_mb();

}  // namespace mpitrain
