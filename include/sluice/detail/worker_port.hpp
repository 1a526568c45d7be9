// The executor's part of the port contract: how workers start, and where a
// worker keeps its own state. Hosted, a worker is a thread
// (platform/hosted/workers.cpp); on bare metal the secondary cores call
// executor::run_worker() themselves and the start/join functions are not
// needed (an executor built with worker_threads::none never calls them).
#pragma once

namespace sluice::port {

struct worker_group;  // opaque, owned by the port

using worker_entry = void (*)(void* argument) noexcept;

// Starts `count` workers, each running entry(argument); if the platform
// cannot start them all it keeps those it started. Returns null if it
// started none.
[[nodiscard]] worker_group* start_workers(unsigned count, worker_entry entry,
                                          void* argument) noexcept;

// Waits until every worker of `group` has returned from its entry, then
// frees the group.
void join_workers(worker_group* group) noexcept;

// The number of workers an executor starts by default: the cores available
// (hosted: to the calling thread, by its affinity mask).
[[nodiscard]] unsigned default_worker_count() noexcept;

// One pointer of storage for the calling thread (hosted) or core (bare
// metal), null until set. executor::run_worker keeps its worker's state
// there for as long as it runs, so that a task woken on that thread or core
// can go to the worker's next-task slot. Read from any context, including a
// signal or interrupt handler on that thread or core.
[[nodiscard]] void*& current_worker() noexcept;

}  // namespace sluice::port
