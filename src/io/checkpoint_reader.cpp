// Reading checkpoints (layout in checkpoint_file.hpp): the `latest` pointer,
// the metadata, and the whole state with its checksum verified.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/io/h5.hpp"

#include "checkpoint_fields.hpp"

namespace mpitrain {
namespace {

namespace fs = std::filesystem;
using namespace checkpoint_fields;

}  // namespace

std::string latest_checkpoint(const std::string& dir) {
  const fs::path latest = fs::path(dir) / "latest";
  const std::string fix = ": it must be the one-line pointer mpitrain writes; remove it, or resume from a named "
                          "checkpoint with --resume FILE";
  std::error_code ec;
  const fs::file_status st = fs::status(latest, ec);  // stat only: a FIFO is never opened
  if (!fs::exists(st)) return "";
  if (!fs::is_regular_file(st)) throw UserError("'" + latest.string() + "' is not a regular file" + fix);
  if (fs::file_size(latest, ec) > 4096) throw UserError("'" + latest.string() + "' is too long for a pointer" + fix);
  std::ifstream in(latest, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) throw UserError("'" + latest.string() + "' is empty" + fix);
  const bool plain_name = text.find_first_of("/\\") == std::string::npos && text != "." && text != ".." &&
                          printable(text, text.size()) == text && text.find(' ') == std::string::npos;
  if (!plain_name)
    throw UserError("'" + latest.string() + "' holds '" + printable(text) + "', not the name of a file in " + dir + fix);
  const fs::path target = fs::path(dir) / text;
  if (!fs::is_regular_file(fs::status(target, ec)))
    throw UserError("'" + latest.string() + "' names '" + text + "', which is not a regular file in " + dir + fix);
  return target.string();
}

namespace {

std::string need_string(hid_t obj, const char* name, const std::string& path) {
  auto v = h5::read_attr_string(obj, name);
  if (!v) throw UserError("checkpoint '" + path + "' is missing the field '" + name + "': it is incomplete or not a checkpoint");
  return *v;
}

long long need_int(hid_t obj, const char* name, const std::string& path) {
  auto v = h5::read_attr_int(obj, name);
  if (!v) throw UserError("checkpoint '" + path + "' is missing the field '" + name + "': it is incomplete or not a checkpoint");
  return *v;
}

void read_array(hid_t file, const std::string& dset, const ParamView& v, float* out, const std::string& path) {
  if (!h5::path_exists(file, dset))
    throw UserError("checkpoint '" + path + "' is missing '" + dset + "': it was written for another model or is incomplete");
  h5::Handle d = h5::open_dataset(file, dset, path);
  const auto dims = h5::dataset_dims(d.get(), path + ":" + dset);
  const std::vector<hsize_t> want(v.shape.begin(), v.shape.end());
  if (dims != want)
    throw UserError("checkpoint '" + path + "': '" + dset + "' has a different shape than the model's " + v.name);
  if ((h5::has_fletcher32(d.get()) && !h5::fletcher32_chunks_intact(d.get(), 0, dims.empty() ? 1 : dims[0])) ||
      H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    throw UserError("checkpoint '" + path + "': reading '" + dset + "' failed: the file is truncated or corrupted");
}

h5::Handle open_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError("checkpoint '" + path + "' does not exist");
  if (!fs::is_regular_file(fs::status(path, ec)))  // stat only: a FIFO or device is never opened
    throw UserError("checkpoint '" + path + "' is not a regular file: pass a checkpoint file (ckpt-*.h5)");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw UserError("checkpoint '" + path + "' is not an HDF5 file (truncated or corrupted?)");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw UserError("checkpoint '" + path + "' cannot be opened: it is truncated or corrupted");
  h5::Handle f(id, H5Fclose);
  if (h5::read_attr_string(f.get(), "format").value_or("") != kCheckpointFormat)
    throw UserError("'" + path + "' is not an mpitrain checkpoint (no format attribute '" + kCheckpointFormat + "')");
  return f;
}

CheckpointMeta read_meta(hid_t f, const std::string& path) {
  CheckpointMeta m;
  m.version = need_string(f, "version", path);
  m.model_spec = need_string(f, "model_spec", path);
  m.optimizer = need_string(f, "optimizer", path);
  m.config_ini = need_string(f, "config", path);
  m.last_metrics = need_string(f, "last_metrics", path);
  m.batch_changes = h5::read_attr_string(f, "batch_changes").value_or("");
  m.world_size = static_cast<int>(need_int(f, "world_size", path));
  m.train_rows = need_int(f, "train_rows", path);
  m.x_width = static_cast<int>(need_int(f, "x_width", path));
  m.num_classes = static_cast<int>(need_int(f, "num_classes", path));
  m.y_width = static_cast<int>(need_int(f, "y_width", path));
  m.seed = static_cast<std::uint64_t>(need_int(f, "seed", path));
  return m;
}

}  // namespace

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  h5::silence_errors();
  try {
    h5::Handle f = open_checkpoint(path);
    return read_meta(f.get(), path);
  } catch (const SystemError& e) {  // damaged HDF5 structure: a user-facing error, not a crash
    throw UserError("checkpoint '" + path + "' is corrupted (" + e.what() + "): resume from an older checkpoint");
  }
}

std::vector<std::string> checkpoint_state_names(const std::string& path) {
  h5::silence_errors();
  try {
    h5::Handle f = open_checkpoint(path);
    if (!h5::path_exists(f.get(), "/optimizer")) return {};
    h5::Handle g(h5::check_id(H5Gopen2(f.get(), "/optimizer", H5P_DEFAULT), "H5Gopen2", path), H5Gclose);
    return h5::child_names(g.get(), path + ":/optimizer");
  } catch (const SystemError& e) {
    throw UserError("checkpoint '" + path + "' is corrupted (" + e.what() + ")");
  }
}

namespace {
Checkpoint read_checkpoint_unchecked(const std::string& path, const Arena& arena,
                                     const std::vector<std::string>& state_names);
}

Checkpoint read_checkpoint(const std::string& path, const Arena& arena, const std::vector<std::string>& state_names) {
  try {
    return read_checkpoint_unchecked(path, arena, state_names);
  } catch (const SystemError& e) {  // damaged HDF5 structure: a user-facing error, not a crash
    throw UserError("checkpoint '" + path + "' is corrupted (" + e.what() + "): resume from an older checkpoint");
  }
}

namespace {
Checkpoint read_checkpoint_unchecked(const std::string& path, const Arena& arena,
                                     const std::vector<std::string>& state_names) {
  h5::silence_errors();
  h5::Handle f = open_checkpoint(path);
  Checkpoint c;
  c.meta = read_meta(f.get(), path);
  const auto n = static_cast<size_t>(arena.param_count());
  c.params.assign(n, 0.0f);
  for (const ParamView& v : arena.views()) read_array(f.get(), "/params/" + v.name, v, c.params.data() + v.offset, path);
  for (const auto& sname : state_names) {
    std::vector<float> buf(n, 0.0f);
    for (const ParamView& v : arena.views())
      read_array(f.get(), "/optimizer/" + sname + "/" + v.name, v, buf.data() + v.offset, path);
    c.state.emplace_back(sname, std::move(buf));
  }
  if (!h5::path_exists(f.get(), "/progress")) throw UserError("checkpoint '" + path + "' is missing /progress");
  h5::Handle prog(h5::check_id(H5Gopen2(f.get(), "/progress", H5P_DEFAULT), "H5Gopen2", path), H5Gclose);
  for (const auto& fld : kIntFields) c.progress.*fld.field = need_int(prog.get(), fld.name, path);
  for (const auto& fld : kRealFields) {
    auto v = h5::read_attr_double(prog.get(), fld.name);
    if (!v) throw UserError("checkpoint '" + path + "' is missing the field '" + std::string(fld.name) + "'");
    c.progress.*fld.field = *v;
  }
  // Optional: absent in checkpoints written before these fields existed.
  for_each_added_field(c.progress, [&](const char* name, auto& value, const auto&) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, long long>) {
      if (auto v = h5::read_attr_int(prog.get(), name)) value = *v;
    } else {
      if (auto v = h5::read_attr_double(prog.get(), name)) value = *v;
    }
  });
  // Absent in checkpoints written before it existed (they still load).
  if (const auto meta_crc = h5::read_attr_int(f.get(), "meta_crc32");
      meta_crc && static_cast<std::uint32_t>(*meta_crc) != checkpoint_meta_checksum(c.meta))
    throw UserError("checkpoint '" + path + "' fails the checksum of its metadata (model, optimizer, config, data "
                    "shape or seed were changed after it was written): resume from another checkpoint");
  c.checksum = static_cast<std::uint32_t>(need_int(f.get(), "checksum_crc32", path));
  std::vector<std::pair<std::string, const float*>> state;
  for (const auto& [sname, buf] : c.state) state.emplace_back(sname, buf.data());
  if (checkpoint_checksum(c.params.data(), arena.param_count(), state, c.progress) != c.checksum)
    throw UserError("checkpoint '" + path + "' fails its checksum: the file is corrupted; resume from an older checkpoint");
  return c;
}

}  // namespace

}  // namespace mpitrain
