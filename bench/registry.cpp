#include "registry.hpp"

namespace sluice::bench {

std::vector<suite_entry>& registered_suites() {
  static std::vector<suite_entry> suites;  // filled during static initialisation
  return suites;
}

}  // namespace sluice::bench
