// Fuzz target: mpitrain's checkpoint reader (io/checkpoint_file.hpp) on HDF5
// files made from a structure-aware recipe (h5_recipe.hpp). It does what a
// resume, `evaluate` and `inspect` do: read the metadata, list the optimizer
// state, build the model the checkpoint names (after the memory plan says it
// fits, as the trainer checks before it allocates) and read the whole state
// into its arena, checksums verified. UserError and SystemError are refusals
// (expected); anything else is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "dictionaries.hpp"
#include "h5_recipe.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/memory_plan.hpp"

namespace {

using namespace mpitrain;

// A model the fuzzer may build: 256 MB, far below what libFuzzer allows.
constexpr double kMaxModelMb = 256;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  fuzz::FuzzInput in(data, size);
  const std::string& path = fuzz::scratch_path("checkpoint");
  // flags bit 1: read the state buffers an SGD run has (a resume), else the
  // ones the file lists (evaluate, inspect).
  const std::uint8_t flags = fuzz::build_h5_file(in, path, fuzz::kCheckpointDict);
  try {
    const CheckpointMeta meta = read_checkpoint_meta(path);
    const std::vector<std::string> listed = checkpoint_state_names(path);
    const std::vector<std::string> names = (flags & 2) ? std::vector<std::string>{"velocity"} : listed;
    const ModelSummary summary = summarize_model(meta.model_spec, Activation::kRelu);
    check_rank_memory(plan_rank_memory(summary, 1, static_cast<int>(names.size()), 0, false), 1, kMaxModelMb);
    Model model(meta.model_spec, Activation::kRelu, 1);
    const Checkpoint ck = read_checkpoint(path, model.arena(), names);
    if (ck.params.size() != static_cast<size_t>(model.arena().param_count())) __builtin_trap();
    std::copy(ck.params.begin(), ck.params.end(), model.arena().params());
    fuzz::report("accepted");
  } catch (const UserError& e) {
    fuzz::report(e.what());
  } catch (const SystemError& e) {
    fuzz::report(e.what());
  }
  return 0;
}
