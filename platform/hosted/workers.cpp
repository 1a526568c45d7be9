// The hosted port's workers: one std::thread each.
#include <new>
#include <thread>
#include <vector>

#include <sluice/detail/worker_port.hpp>

namespace sluice::port {

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
  try {
    for (unsigned i = 0; i < count; ++i)
      group->threads.emplace_back([entry, argument] { entry(argument); });
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

unsigned default_worker_count() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

}  // namespace sluice::port
