// The executor's part of the port contract: how workers start. Hosted, a
// worker is a thread (platform/hosted/workers.cpp); on bare metal the
// secondary cores call executor::run_worker() themselves and these
// functions are not needed (an executor built with worker_threads::none
// never calls them).
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

// The number of workers an executor starts by default: the cores available.
[[nodiscard]] unsigned default_worker_count() noexcept;

}  // namespace sluice::port
