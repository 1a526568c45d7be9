#include "harness.hpp"

#include <pthread.h>
#include <sched.h>

namespace sluice::bench {

std::vector<suite_entry>& registered_suites() {
  static std::vector<suite_entry> suites;  // built during static initialisation
  return suites;
}

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

bool pin_to_slot(const std::vector<int>& cpus, int slot) {
  if (cpus.empty()) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus[static_cast<std::size_t>(slot) % cpus.size()], &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

std::string describe_leftovers(std::uint64_t n) {
  return std::to_string(n) +
         " item(s) were still queued after every consumer got its poison pill (FIFO order "
         "broken: a later item overtook an earlier one)";
}

std::string verify_exact_once(const std::vector<std::uint64_t>& sent,
                              const std::vector<tally>& received) {
  for (std::size_t p = 0; p < sent.size(); ++p) {
    std::uint64_t count = 0, sum = 0;
    for (const tally& t : received) {
      count += t.count[p];
      sum += t.sum[p];
    }
    // Sum over seq in [0, n) of make_item(p, seq) = n * ((p+1) << 40) + n(n+1)/2, mod 2^64.
    const std::uint64_t n = sent[p];
    const std::uint64_t expected_sum = n * (static_cast<std::uint64_t>(p + 1) << seq_bits) +
                                       (n % 2 == 0 ? n / 2 * (n + 1) : (n + 1) / 2 * n);
    if (count != n) {
      return "producer " + std::to_string(p) + " sent " + std::to_string(n) + " items but " +
             std::to_string(count) + " were received (" +
             (count < n ? std::to_string(n - count) + " lost)"
                        : std::to_string(count - n) + " duplicated)");
    }
    if (sum != expected_sum) {
      return "producer " + std::to_string(p) + ": received " + std::to_string(count) +
             " items but their checksum is wrong (duplicates hiding losses or corrupted values)";
    }
  }
  for (const tally& t : received) {
    if (t.foreign != 0) {
      return std::to_string(t.foreign) + " received item(s) named no producer (corrupted values)";
    }
    if (t.out_of_order != 0) {
      return std::to_string(t.out_of_order) +
             " item(s) arrived before an earlier item of the same producer (per-producer order "
             "broken)";
    }
  }
  return {};
}

}  // namespace sluice::bench
