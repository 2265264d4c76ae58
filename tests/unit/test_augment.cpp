// Tests of image augmentation (augment.hpp): the --augment parsing, the crop
// and flip geometry on NHWC images, and the rule that a row's draws depend on
// (seed, epoch, row id) only, never on its place in the shard or on the other
// rows of the call (so never on the rank count P).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/core/rng.hpp"
#include "mpitrain/data/augment.hpp"

using namespace mpitrain;

namespace {

struct Shape {
  int c, h, w;
  size_t size() const { return static_cast<size_t>(c) * h * w; }
};

// Distinct non-zero values that say which row, pixel and channel they are.
std::vector<float> make_images(const Shape& s, const std::vector<std::int64_t>& ids) {
  std::vector<float> x;
  for (std::int64_t id : ids)
    for (size_t i = 0; i < s.size(); ++i) x.push_back(static_cast<float>(1 + id * 1000 + static_cast<long long>(i)));
  return x;
}

std::vector<float> augment(const Shape& s, std::vector<float> x, const std::vector<std::int64_t>& ids,
                           std::uint64_t seed, long long epoch, const AugmentOptions& o) {
  std::vector<float> scratch(s.size());
  augment_images(x.data(), static_cast<int>(ids.size()), s.c, s.h, s.w, ids.data(), seed, epoch, o, scratch.data());
  return x;
}

std::vector<float> row_of(const Shape& s, const std::vector<float>& x, size_t r) {
  return {x.begin() + static_cast<std::ptrdiff_t>(r * s.size()), x.begin() + static_cast<std::ptrdiff_t>((r + 1) * s.size())};
}

struct Draw {
  int oy = 0, ox = 0;
  bool flipped = false;
};

// The draws as the header documents them, written out independently.
Draw documented_draw(std::uint64_t seed, long long epoch, std::int64_t id, const AugmentOptions& o) {
  Rng rng(stream_key(stream_key(seed, 0x6175676d), static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(id)));
  Draw d;
  d.oy = d.ox = o.pad;
  if (o.pad > 0) {
    d.oy = static_cast<int>(rng.uniform_below(static_cast<std::uint64_t>(2 * o.pad + 1)));
    d.ox = static_cast<int>(rng.uniform_below(static_cast<std::uint64_t>(2 * o.pad + 1)));
  }
  if (o.flip) d.flipped = rng.uniform_below(2) == 1;
  return d;
}

// One image by the formula: out(y, x) = in(y + oy - pad, x' + ox - pad) or 0.
std::vector<float> reference(const Shape& s, const std::vector<float>& in, const Draw& d, int pad) {
  std::vector<float> out(s.size(), 0.0f);
  for (int y = 0; y < s.h; ++y)
    for (int x = 0; x < s.w; ++x) {
      const int sy = y + d.oy - pad, sx = (d.flipped ? s.w - 1 - x : x) + d.ox - pad;
      if (sy < 0 || sy >= s.h || sx < 0 || sx >= s.w) continue;
      for (int ch = 0; ch < s.c; ++ch)
        out[static_cast<size_t>((y * s.w + x) * s.c + ch)] = in[static_cast<size_t>((sy * s.w + sx) * s.c + ch)];
    }
  return out;
}

std::string message_of(const std::string& text, int pad) {
  try {
    parse_augment(text, pad);
  } catch (const UserError& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST(Augment, ParseAcceptedValues) {
  AugmentOptions o = parse_augment("none", 4);
  EXPECT_EQ(o.pad, 0);
  EXPECT_FALSE(o.flip);
  EXPECT_FALSE(o.enabled());
  EXPECT_FALSE(parse_augment("none", 0).enabled());

  o = parse_augment("flip", 4);  // the pad belongs to the crop: ignored without it
  EXPECT_EQ(o.pad, 0);
  EXPECT_TRUE(o.flip);
  EXPECT_TRUE(o.enabled());
  EXPECT_TRUE(parse_augment("flip", 0).flip);

  o = parse_augment("crop", 4);
  EXPECT_EQ(o.pad, 4);
  EXPECT_FALSE(o.flip);
  EXPECT_TRUE(o.enabled());

  for (const char* both : {"crop+flip", "flip+crop"}) {
    o = parse_augment(both, 2);
    EXPECT_EQ(o.pad, 2) << both;
    EXPECT_TRUE(o.flip) << both;
  }
  EXPECT_EQ(parse_augment("crop", 1).pad, 1);
}

TEST(Augment, ParseRefusedValues) {
  for (const char* bad : {"", "rotate", "Crop", "flip+", "crop+crop", "crop,flip", " flip", "none+flip"}) {
    const std::string m = message_of(bad, 4);
    EXPECT_NE(m.find("--augment"), std::string::npos) << "'" << bad << "': " << m;
    EXPECT_NE(m.find("none, flip, crop, crop+flip"), std::string::npos) << "'" << bad << "': " << m;
  }
  // A control byte in the value reaches the message escaped, not raw.
  EXPECT_NE(message_of("fl\nip", 4).find("fl\\x0aip"), std::string::npos) << message_of("fl\nip", 4);

  for (const char* crop : {"crop", "crop+flip", "flip+crop"})
    for (int pad : {0, -1}) {
      const std::string m = message_of(crop, pad);
      EXPECT_NE(m.find("--augment-pad"), std::string::npos) << crop << " pad " << pad << ": " << m;
      EXPECT_NE(m.find("at least 1"), std::string::npos) << crop << " pad " << pad << ": " << m;
    }
}

TEST(Augment, TextForTheHeader) {
  EXPECT_EQ(augment_text(AugmentOptions{}), "none");
  EXPECT_EQ(augment_text(AugmentOptions{0, true}), "flip");
  EXPECT_EQ(augment_text(AugmentOptions{4, false}), "crop4");
  EXPECT_EQ(augment_text(AugmentOptions{4, true}), "crop4+flip");
  EXPECT_EQ(augment_text(parse_augment("flip+crop", 12)), "crop12+flip");
}

TEST(Augment, NoneLeavesTheDataAndScratchAlone) {
  const Shape s{3, 4, 5};
  const std::vector<std::int64_t> ids = {0, 1, 2, 3, 4, 5, 6, 7};
  const auto x = make_images(s, ids);
  std::vector<float> y = x, scratch(s.size(), -7.0f);
  augment_images(y.data(), 8, s.c, s.h, s.w, ids.data(), 1, 0, AugmentOptions{}, scratch.data());
  EXPECT_EQ(y, x);
  EXPECT_EQ(scratch, std::vector<float>(s.size(), -7.0f));
}

TEST(Augment, MatchesTheDocumentedDrawsAndFormula) {
  // Covers odd sizes (h=5, w=7, c=3), a pad as large as the image (every
  // pixel may fall outside), and each combination of crop and flip.
  const Shape s{3, 5, 7};
  std::vector<std::int64_t> ids;
  for (std::int64_t id = 0; id < 60; ++id) ids.push_back(id * 37 + 5);
  const auto x = make_images(s, ids);
  for (const AugmentOptions o : {AugmentOptions{0, true}, AugmentOptions{1, false}, AugmentOptions{2, true},
                                 AugmentOptions{3, true}, AugmentOptions{7, true}}) {
    SCOPED_TRACE(augment_text(o));
    const auto y = augment(s, x, ids, 42, 3, o);
    size_t changed = 0;
    for (size_t r = 0; r < ids.size(); ++r) {
      const auto expected = reference(s, row_of(s, x, r), documented_draw(42, 3, ids[r], o), o.pad);
      ASSERT_EQ(row_of(s, y, r), expected) << "row id " << ids[r];
      changed += row_of(s, y, r) != row_of(s, x, r) ? 1 : 0;
    }
    EXPECT_GT(changed, ids.size() / 3);  // the augmentation did something
  }
}

TEST(Augment, RowDependsOnItsIdNotOnItsPlaceOrNeighbours) {
  const Shape s{2, 6, 6};
  const AugmentOptions o{2, true};
  const std::vector<std::int64_t> ids = {17, 3, 99, 0, 123456789012LL, 42, 8, 5, 61, 2};
  const auto x = make_images(s, ids);
  const auto whole = augment(s, x, ids, 7, 1, o);

  // Split as ranks would split the global batch (P = 3: shards of 3, 3, 4).
  std::vector<float> split;
  for (auto [b, e] : {std::pair{0, 3}, std::pair{3, 6}, std::pair{6, 10}}) {
    const std::vector<std::int64_t> part(ids.begin() + b, ids.begin() + e);
    const auto y = augment(s, make_images(s, part), part, 7, 1, o);
    split.insert(split.end(), y.begin(), y.end());
  }
  EXPECT_EQ(split, whole);

  // Each row alone, and the batch reversed, with other rows around it.
  std::vector<std::int64_t> reversed(ids.rbegin(), ids.rend());
  reversed.push_back(1000);
  const auto rev = augment(s, make_images(s, reversed), reversed, 7, 1, o);
  for (size_t r = 0; r < ids.size(); ++r) {
    const auto alone = augment(s, row_of(s, x, r), {ids[r]}, 7, 1, o);
    EXPECT_EQ(alone, row_of(s, whole, r)) << "row id " << ids[r];
    EXPECT_EQ(row_of(s, rev, ids.size() - 1 - r), row_of(s, whole, r)) << "row id " << ids[r];
  }
}

TEST(Augment, EpochAndSeedChangeTheDraws) {
  const Shape s{1, 8, 8};
  const AugmentOptions o{3, true};
  std::vector<std::int64_t> ids;
  for (std::int64_t id = 0; id < 32; ++id) ids.push_back(id);
  const auto x = make_images(s, ids);
  const auto e0 = augment(s, x, ids, 11, 0, o);
  EXPECT_EQ(augment(s, x, ids, 11, 0, o), e0);  // a resumed epoch repeats its draws
  for (auto [seed, epoch] : {std::pair<std::uint64_t, long long>{11, 1}, {11, 2}, {12, 0}}) {
    const auto other = augment(s, x, ids, seed, epoch, o);
    size_t differ = 0;
    for (size_t r = 0; r < ids.size(); ++r) differ += row_of(s, other, r) != row_of(s, e0, r) ? 1 : 0;
    // 49 crops x 2 flips: two draws of one row agree with probability 1/98.
    EXPECT_GT(differ, ids.size() / 2) << "seed " << seed << " epoch " << epoch;
  }
}

TEST(Augment, FlipMirrorsPixelsAndKeepsChannelOrder) {
  const Shape s{2, 2, 3};
  const AugmentOptions o{0, true};
  // Find a row id whose draw flips and one whose draw does not.
  std::int64_t flips = -1, stays = -1;
  for (std::int64_t id = 0; id < 64 && (flips < 0 || stays < 0); ++id)
    (documented_draw(5, 0, id, o).flipped ? flips : stays) = id;
  ASSERT_GE(flips, 0);
  ASSERT_GE(stays, 0);

  // (y, x, channel) -> 100y + 10x + channel.
  const std::vector<float> image = {0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121};
  const std::vector<float> mirrored = {20, 21, 10, 11, 0, 1, 120, 121, 110, 111, 100, 101};
  std::vector<float> x = image;
  x.insert(x.end(), image.begin(), image.end());
  const auto y = augment(s, x, {flips, stays}, 5, 0, o);
  EXPECT_EQ(row_of(s, y, 0), mirrored);
  EXPECT_EQ(row_of(s, y, 1), image);

  // About half the rows flip.
  int flipped = 0;
  for (std::int64_t id = 0; id < 1000; ++id) flipped += documented_draw(5, 0, id, o).flipped ? 1 : 0;
  EXPECT_GT(flipped, 400);
  EXPECT_LT(flipped, 600);
}

TEST(Augment, CropShiftsTheImageAndCoversEveryOffset) {
  const Shape s{2, 9, 10};
  const int pad = 3;
  const AugmentOptions o{pad, false};
  std::vector<std::int64_t> ids;
  for (std::int64_t id = 0; id < 300; ++id) ids.push_back(id);
  const auto x = make_images(s, ids);
  const auto y = augment(s, x, ids, 2024, 4, o);

  std::set<int> seen_oy, seen_ox;
  for (size_t r = 0; r < ids.size(); ++r) {
    const auto in = row_of(s, x, r), out = row_of(s, y, r);
    // Exactly one shift explains the output: every pixel is the input pixel
    // shifted by it, or 0 where that falls outside the image.
    int matches = 0;
    for (int oy = 0; oy <= 2 * pad; ++oy)
      for (int ox = 0; ox <= 2 * pad; ++ox)
        if (reference(s, in, Draw{oy, ox, false}, pad) == out) {
          ++matches;
          seen_oy.insert(oy);
          seen_ox.insert(ox);
          // The zero border has the width of the shift.
          const size_t zeros = static_cast<size_t>(std::count(out.begin(), out.end(), 0.0f));
          EXPECT_EQ(zeros, static_cast<size_t>(s.c) * (s.h * s.w - (s.h - std::abs(oy - pad)) * (s.w - std::abs(ox - pad))));
        }
    ASSERT_EQ(matches, 1) << "row id " << ids[r];
  }
  EXPECT_EQ(seen_oy.size(), static_cast<size_t>(2 * pad + 1));
  EXPECT_EQ(seen_ox.size(), static_cast<size_t>(2 * pad + 1));
  EXPECT_EQ(*seen_oy.begin(), 0);
  EXPECT_EQ(*seen_oy.rbegin(), 2 * pad);
}

TEST(Augment, UsesOnlyOneImageOfScratch) {
  const Shape s{3, 5, 7};
  const std::vector<std::int64_t> ids = {1, 2, 3, 4};
  auto x = make_images(s, ids);
  std::vector<float> scratch(s.size() + 16, -1.0f);
  augment_images(x.data(), 4, s.c, s.h, s.w, ids.data(), 3, 0, AugmentOptions{2, true}, scratch.data());
  for (size_t i = s.size(); i < scratch.size(); ++i) EXPECT_EQ(scratch[i], -1.0f) << "scratch[" << i << "]";
}
