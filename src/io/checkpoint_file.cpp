#include "mpitrain/io/checkpoint_file.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/h5.hpp"

#include "checkpoint_fields.hpp"

namespace mpitrain {
namespace {

using namespace checkpoint_fields;

namespace fs = std::filesystem;

uLong crc_bytes(uLong crc, const void* data, size_t bytes) {
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {  // crc32 takes a uInt length
    const auto n = static_cast<uInt>(std::min<size_t>(bytes, 1u << 30));
    crc = crc32(crc, p, n);
    p += n;
    bytes -= n;
  }
  return crc;
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw SystemError("open for fsync failed on " + path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw SystemError("fsync failed on " + path);
}

// Replaces `target` by a file holding `text`, atomically.
void write_text_atomic(const fs::path& target, const std::string& text) {
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw SystemError("writing " + tmp.string() + " failed");
  }
  fsync_path(tmp.string(), false);
  fs::rename(tmp, target);
  fsync_path(target.parent_path().string(), true);
}

void write_array(hid_t group, const ParamView& v, const float* data, const std::string& file) {
  std::vector<hsize_t> dims(v.shape.begin(), v.shape.end());
  const std::string leaf = v.name.substr(v.name.find('/') + 1);
  const std::string layer = v.name.substr(0, v.name.find('/'));
  if (!h5::path_exists(group, layer)) h5::create_group(group, layer, file);
  h5::Handle g(h5::check_id(H5Gopen2(group, layer.c_str(), H5P_DEFAULT), "H5Gopen2", file), H5Gclose);
  h5::write_dataset(g.get(), leaf, H5T_NATIVE_FLOAT, dims, data, dims.empty() ? 1 : dims[0], file);
}

// Test-only: MPITRAIN_TEST_KILL_IN_CHECKPOINT=N kills the process part-way
// through the N-th checkpoint write (after the data, before the rename), to
// prove an interrupted write leaves the previous checkpoint intact.
void maybe_die_in_write() {
  static int writes = 0;
  const char* n = std::getenv("MPITRAIN_TEST_KILL_IN_CHECKPOINT");
  if (n && ++writes == std::atoi(n)) std::raise(SIGKILL);
}

}  // namespace

std::uint32_t checkpoint_checksum(const float* params, long long count,
                                  const std::vector<std::pair<std::string, const float*>>& state,
                                  const TrainProgress& progress) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc_bytes(crc, params, static_cast<size_t>(count) * sizeof(float));
  // Buffers in name order, so the caller's order of state names does not matter.
  auto sorted = state;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [name, data] : sorted) {
    crc = crc_bytes(crc, name.data(), name.size());
    crc = crc_bytes(crc, data, static_cast<size_t>(count) * sizeof(float));
  }
  for (const auto& f : kIntFields) crc = crc_bytes(crc, &(progress.*f.field), sizeof(long long));
  for (const auto& f : kRealFields) crc = crc_bytes(crc, &(progress.*f.field), sizeof(double));
  // The added fields count only where their bits differ from the default, each
  // tagged with its name (NUL included) so that which field holds a value is
  // covered too. Why not always, or behind a version attribute: an older file
  // has none of them, is read with the defaults, and so gets exactly the CRC it
  // was written with -- no version logic needed -- while in a newer file any
  // change to an added attribute (or deleting a non-default one) alters the
  // CRC. And state_crc32, taken with a default progress, keeps its value.
  for_each_added_field(progress, [&](const char* name, const auto& value, const auto& def) {
    if (std::memcmp(&value, &def, sizeof value) == 0) return;
    crc = crc_bytes(crc, name, std::strlen(name) + 1);
    crc = crc_bytes(crc, &value, sizeof value);
  });
  return static_cast<std::uint32_t>(crc);
}

std::uint32_t checkpoint_meta_checksum(const CheckpointMeta& meta) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto text = [&crc](const char* name, const std::string& value) {
    crc = crc_bytes(crc, name, std::strlen(name) + 1);
    const std::uint64_t size = value.size();
    crc = crc_bytes(crc, &size, sizeof size);
    crc = crc_bytes(crc, value.data(), value.size());
  };
  const auto number = [&crc](const char* name, long long value) {
    crc = crc_bytes(crc, name, std::strlen(name) + 1);
    crc = crc_bytes(crc, &value, sizeof value);
  };
  text("model_spec", meta.model_spec);
  text("optimizer", meta.optimizer);
  text("config", meta.config_ini);
  number("world_size", meta.world_size);
  number("train_rows", meta.train_rows);
  number("x_width", meta.x_width);
  number("num_classes", meta.num_classes);
  number("y_width", meta.y_width);
  number("seed", static_cast<long long>(meta.seed));
  if (!meta.batch_changes.empty()) text("batch_changes", meta.batch_changes);  // older files: none
  return static_cast<std::uint32_t>(crc);
}

namespace {

// Creates the directory; removes temporary files left by a writer that died
// (the rename never happened, so they are garbage).
void prepare_checkpoint_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw SystemError("cannot create checkpoint directory '" + dir + "': " + ec.message());
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(".ckpt-") || n.starts_with(".final.h5.tmp") || n.starts_with(".best.h5.tmp"))
      if (n.find(".tmp.") != std::string::npos) fs::remove(e.path(), ec);
    if (n == ".latest.tmp") fs::remove(e.path(), ec);  // killed between a checkpoint's rename and latest's
  }
}

using NamedBuffers = std::vector<std::pair<std::string, const float*>>;

// The parameters and state buffers exactly as a reader reconstructs them:
// the parameter views, with the alignment padding between them as zeros.
// The checksum is taken over these.
struct AsRead {
  std::vector<float> params;
  std::vector<std::vector<float>> state_data;
  NamedBuffers state;  // names and state_data's buffers
};

AsRead copy_as_read(const Arena& arena, const NamedBuffers& state) {
  const auto count = static_cast<size_t>(arena.param_count());
  auto as_read = [&](const float* data) {
    std::vector<float> out(count, 0.0f);
    for (const ParamView& v : arena.views())
      std::copy_n(data + v.offset, static_cast<size_t>(v.size), out.begin() + v.offset);
    return out;
  };
  AsRead r;
  r.params = as_read(arena.params());
  for (const auto& [sname, data] : state) r.state_data.push_back(as_read(data));
  for (size_t i = 0; i < state.size(); ++i) r.state.emplace_back(state[i].first, r.state_data[i].data());
  return r;
}

// The whole checkpoint into `file` (flushed, not yet synced or renamed).
void write_checkpoint_file(const std::string& file, const Arena& arena, const NamedBuffers& state,
                           const TrainProgress& progress, const CheckpointMeta& meta, const AsRead& as_read) {
  h5::Handle f = h5::create_file_truncate(file);
  h5::Handle params = h5::create_group(f.get(), "params", file);
  for (const ParamView& v : arena.views()) write_array(params.get(), v, arena.params() + v.offset, file);
  h5::Handle opt = h5::create_group(f.get(), "optimizer", file);
  for (const auto& [sname, data] : state) {
    h5::Handle g = h5::create_group(opt.get(), sname, file);
    for (const ParamView& v : arena.views()) write_array(g.get(), v, data + v.offset, file);
  }
  h5::Handle prog = h5::create_group(f.get(), "progress", file);
  for (const auto& fld : kIntFields) h5::write_attr_int(prog.get(), fld.name, progress.*fld.field);
  for (const auto& fld : kRealFields) h5::write_attr_double(prog.get(), fld.name, progress.*fld.field);
  for_each_added_field(progress, [&](const char* attr, const auto& value, const auto&) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, long long>)
      h5::write_attr_int(prog.get(), attr, value);
    else
      h5::write_attr_double(prog.get(), attr, value);
  });
  const hid_t root = f.get();
  h5::write_attr_string(root, "format", kCheckpointFormat);
  h5::write_attr_string(root, "version", meta.version);
  h5::write_attr_string(root, "model_spec", meta.model_spec);
  h5::write_attr_string(root, "optimizer", meta.optimizer);
  h5::write_attr_string(root, "config", meta.config_ini);
  h5::write_attr_string(root, "last_metrics", meta.last_metrics);
  if (!meta.batch_changes.empty()) h5::write_attr_string(root, "batch_changes", meta.batch_changes);
  h5::write_attr_int(root, "world_size", meta.world_size);
  h5::write_attr_int(root, "train_rows", meta.train_rows);
  h5::write_attr_int(root, "x_width", meta.x_width);
  h5::write_attr_int(root, "num_classes", meta.num_classes);
  h5::write_attr_int(root, "y_width", meta.y_width);
  h5::write_attr_int(root, "seed", static_cast<long long>(meta.seed));
  h5::write_attr_string(root, "rng", "counter-based: epoch order = f(seed, epoch), init = f(seed)");
  h5::write_attr_int(root, "meta_crc32", checkpoint_meta_checksum(meta));
  h5::write_attr_int(root, "checksum_crc32",
                     checkpoint_checksum(as_read.params.data(), arena.param_count(), as_read.state, progress));
  // The weights and optimizer state alone: equal in two runs that reached
  // the same state bitwise (the full checksum also covers timings).
  h5::write_attr_int(root, "state_crc32",
                     checkpoint_checksum(as_read.params.data(), arena.param_count(), as_read.state, {}));
  h5::check(H5Fflush(f.get(), H5F_SCOPE_GLOBAL), "H5Fflush", file);
}

// keep_last > 0: removes the oldest ckpt-*.h5 beyond the last keep_last
// (`name`, just written, counts as one of them).
void prune_old_checkpoints(const std::string& dir, const std::string& name, int keep_last) {
  std::error_code ec;
  std::vector<std::string> old;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("ckpt-") && n.ends_with(".h5") && n != name) old.push_back(n);
  }
  std::sort(old.begin(), old.end());  // zero-padded names: oldest first
  const long long extra = static_cast<long long>(old.size()) + 1 - keep_last;
  for (long long i = 0; i < extra; ++i) fs::remove(fs::path(dir) / old[static_cast<size_t>(i)], ec);
}

}  // namespace

long long write_checkpoint(const std::string& dir, const std::string& name, const Arena& arena,
                           Optimizer& optimizer, const TrainProgress& progress, const CheckpointMeta& meta,
                           int keep_last, bool update_latest) {
  prepare_checkpoint_dir(dir);
  const fs::path target = fs::path(dir) / name;
  const fs::path tmp = fs::path(dir) / ("." + name + ".tmp." + std::to_string(getpid()));
  const std::string file = tmp.string();
  NamedBuffers state;
  for (const auto& [sname, data] : optimizer.state_buffers()) state.emplace_back(sname, data);
  const AsRead as_read = copy_as_read(arena, state);
  h5::silence_errors();
  std::error_code ec;
  try {
    write_checkpoint_file(file, arena, state, progress, meta, as_read);
    maybe_die_in_write();
    fsync_path(file, false);
    fs::rename(tmp, target);
    fsync_path(dir, true);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  if (update_latest) write_text_atomic(fs::path(dir) / "latest", name + "\n");
  const long long bytes = static_cast<long long>(fs::file_size(target, ec));
  if (keep_last > 0 && name.starts_with("ckpt-")) prune_old_checkpoints(dir, name, keep_last);
  return bytes;
}

}  // namespace mpitrain
