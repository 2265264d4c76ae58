#include "mpitrain/data/augment.hpp"

#include <algorithm>
#include <cstddef>
#include <stdexcept>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"

namespace mpitrain {

namespace {

constexpr std::uint64_t kAugmentStream = 0x6175676d;  // "augm"

const char* const kAccepted = "none, flip, crop, crop+flip (or flip+crop)";

}  // namespace

AugmentOptions parse_augment(const std::string& text, int pad) {
  bool crop = false, flip = false;
  if (text == "none") {
  } else if (text == "flip") {
    flip = true;
  } else if (text == "crop") {
    crop = true;
  } else if (text == "crop+flip" || text == "flip+crop") {
    crop = flip = true;
  } else {
    throw UserError("--augment '" + printable(text) + "' is not one of " + kAccepted);
  }
  if (crop && pad < 1)
    throw UserError("--augment " + text + " needs --augment-pad of at least 1 (pixels of zero padding around the " +
                    "image before the random crop), got " + std::to_string(pad));
  AugmentOptions o;
  o.pad = crop ? pad : 0;  // the pad is the crop's: without crop it is ignored
  o.flip = flip;
  return o;
}

std::string augment_text(const AugmentOptions& o) {
  if (!o.enabled()) return "none";
  std::string text = o.pad > 0 ? "crop" + std::to_string(o.pad) : "";
  if (o.flip) text += text.empty() ? "flip" : "+flip";
  return text;
}

void augment_images(float* x, int rows, int c, int h, int w, const std::int64_t* row_ids, std::uint64_t seed,
                    long long epoch, const AugmentOptions& o, float* scratch) {
  if (rows < 0 || c < 1 || h < 1 || w < 1 || o.pad < 0)
    throw std::invalid_argument("augment_images: negative rows or pad, or an empty image");
  if (!o.enabled()) return;
  const std::uint64_t key = stream_key(seed, kAugmentStream);
  const std::ptrdiff_t pixel = c, line = static_cast<std::ptrdiff_t>(w) * c, image = line * h;
  const auto span = static_cast<std::uint64_t>(2 * o.pad + 1);
  for (int r = 0; r < rows; ++r) {
    Rng rng(stream_key(key, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(row_ids[r])));
    int dy = 0, dx = 0;  // the source shift: oy - pad, ox - pad
    if (o.pad > 0) {
      dy = static_cast<int>(rng.uniform_below(span)) - o.pad;
      dx = static_cast<int>(rng.uniform_below(span)) - o.pad;
    }
    const bool flipped = o.flip && rng.uniform_below(2) == 1;
    if (dy == 0 && dx == 0 && !flipped) continue;

    float* img = x + r * image;
    std::copy(img, img + image, scratch);
    for (int y = 0; y < h; ++y) {
      float* out = img + y * line;
      const int sy = y + dy;
      if (sy < 0 || sy >= h) {
        std::fill(out, out + line, o.fill);
        continue;
      }
      const float* in = scratch + sy * line;
      for (int xo = 0; xo < w; ++xo) {
        const int sx = (flipped ? w - 1 - xo : xo) + dx;
        float* px = out + xo * pixel;
        if (sx < 0 || sx >= w)
          std::fill(px, px + pixel, o.fill);
        else
          std::copy(in + sx * pixel, in + (sx + 1) * pixel, px);  // channels keep their order
      }
    }
  }
}

}  // namespace mpitrain
