// The hosted port's workers: one std::thread each.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <new>
#include <thread>
#include <vector>

#include <sluice/detail/worker_port.hpp>

namespace sluice::port {

// port.cpp: inside a critical_section, the signal mask it will restore
// (true); outside one, false.
bool signal_mask_outside_critical(sigset_t& mask) noexcept;

struct worker_group {
  std::vector<std::thread> threads;
};

worker_group* start_workers(unsigned count, worker_entry entry, void* argument) noexcept {
  worker_group* group = nullptr;
  try {
    group = new worker_group;
  } catch (...) {
    return nullptr;
  }
  try {
    group->threads.reserve(count);
  } catch (...) {
    // More threads than could even be counted in memory: one worker, so
    // that the executor still runs its tasks.
    count = 1;
  }
  // A thread starts with its creator's signal mask. Created inside a
  // critical_section, that blocks every signal: the workers take the mask
  // from outside it instead, or no handler would ever run on them.
  sigset_t mask{};
  const bool set_mask = signal_mask_outside_critical(mask);
  try {
    for (unsigned i = 0; i < count; ++i)
      group->threads.emplace_back([entry, argument, set_mask, mask] {
        if (set_mask) pthread_sigmask(SIG_SETMASK, &mask, nullptr);
        entry(argument);
      });
  } catch (...) {
    // Keep the workers already running (fewer than asked); none at all is
    // a failure.
  }
  if (group->threads.empty()) {
    delete group;
    return nullptr;
  }
  return group;
}

void join_workers(worker_group* group) noexcept {
  if (group == nullptr) return;
  for (std::thread& t : group->threads)
    t.join();
  delete group;
}

namespace {
thread_local void* this_thread_worker = nullptr;
}  // namespace

void*& current_worker() noexcept {
  return this_thread_worker;
}

// The CPUs the calling thread may run on (its affinity mask, which a
// thread inherits from its creator, and which taskset and container CPU
// sets narrow for a whole process), else every CPU the system has.
unsigned default_worker_count() noexcept {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) {
    const int n = CPU_COUNT(&cpus);
    if (n > 0) return static_cast<unsigned>(n);
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

}  // namespace sluice::port
