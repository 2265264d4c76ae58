// Fuzz target: the --model spec (nn/model_spec.cpp, nn/layer_registry.cpp):
// parse and summarize it as option validation does, plan its memory as the
// trainer does before it allocates, and when the plan fits a small budget
// (and a step is cheap) build the Model and run one forward and backward
// pass on a few rows, so a layer whose shapes the parser got wrong writes
// out of its buffers under AddressSanitizer.
//
// Input: byte 0 picks the --activation (relu, tanh, gelu) and the rows;
// the rest is the spec text.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/nn/activation.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/nn/model_spec.hpp"
#include "mpitrain/train/memory_plan.hpp"

namespace {

using namespace mpitrain;

constexpr double kMaxModelMb = 64;
constexpr double kMaxStepFlops = 2e7;  // a step of at most a few ms, so the fuzzer stays fast

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Activation activations[] = {Activation::kRelu, Activation::kTanh, Activation::kGelu};
  const Activation activation = activations[data[0] % 3];
  const int rows = 1 + (data[0] >> 2) % 4;
  const std::string spec(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const ModelSummary summary = summarize_model(spec, activation);
    (void)layer_table(summary);
    check_rank_memory(plan_rank_memory(summary, rows, 2, 0, false), 1, kMaxModelMb);
    double flops = 0;
    for (size_t i = 0; i < summary.layers.size(); ++i) flops += train_flops(summary.layers[i].forward_flops, i);
    if (flops * rows > kMaxStepFlops) return fuzz::report("parsed; too many FLOPs to run a step"), 0;
    Model model(spec, activation, rows);
    model.init(1);
    std::vector<float> x(static_cast<size_t>(rows) * static_cast<size_t>(model.input_width()));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
    model.pass().training = true;
    model.pass().seed = 1;
    const float* out = model.forward(rows, x.data());
    const size_t out_count = static_cast<size_t>(rows) * static_cast<size_t>(model.output_width());
    std::copy_n(out, out_count, model.output_grad());
    model.backward(rows);
    fuzz::report("built, forward and backward run");
  } catch (const UserError& e) {
    fuzz::report(e.what());
  }
  return 0;
}
