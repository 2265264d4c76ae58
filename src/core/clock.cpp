#include "mpitrain/core/clock.hpp"

#include <sys/resource.h>

namespace mpitrain {

double peak_rss_mb() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0.0;
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace mpitrain
