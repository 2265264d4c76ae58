// `mpitrain inspect --model SPEC [--activation A] [--bucket-bytes N] [--json]`:
// the model's layout as the trainer builds it (layers, parameter tensors in
// the arena, FLOPs per sample, the gradient all-reduce's buckets), read from
// a built Model and plan_buckets. The study tools (scripts/mpitrain_study)
// read the JSON instead of re-deriving any of it. Private to src/cli.
#pragma once
#include <string>
#include <vector>

namespace mpitrain {

// True when the arguments ask for a model's layout rather than a file's contents.
bool is_model_query(const std::vector<std::string>& args);
// Prints the layout; UserError on a bad spec or option. Returns the exit code.
int inspect_model(const std::vector<std::string>& args);

}  // namespace mpitrain
