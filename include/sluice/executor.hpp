// executor: N workers running tasks from one run queue, a sluice channel of
// task pointers (the design of seeds 000/001: the "Brain" keeps a sender and
// a receiver; a woken task sends itself back).
//
//   sluice::executor ex;                              // one worker per core
//   auto h = ex.spawn(work(42));                      // spawn_result<int>
//   if (h) { sluice::join_result<int> r = h->join(); }
//   int v = *sluice::block_on(ex, work(1));           // spawn + join
//   if (!ex.spawn_detached(work(2))) { /* refused */ } // fire and forget
//
// Scheduling. A task is on the run queue at most once (task_state.hpp), so a
// queue whose capacity is the maximum number of live tasks never fills: a
// wake's push cannot fail and never waits, which makes a wake safe from a
// signal or interrupt handler (the ring push is lock-free, the receivers'
// notification never blocks). spawn refuses a task beyond max_tasks (on a
// worker, up to a few dozen earlier: see "live tasks" below).
//
// Next-task slot. A task woken or spawned on a worker's own thread or core
// (by the task that worker runs; or woken by a handler interrupting it, as
// spawn is for threads and tasks only) goes to that worker's one-task slot
// instead of the run queue, and the worker runs it as soon as its current
// run ends: a task that wakes or spawns another hands over with hot caches
// and no queue traffic (ping-pong over a channel, spawn-and-join chains).
//
// Worker queue. A task woken while it runs (a yield, or a wake during its
// poll) goes to the back of the worker's own FIFO (detail/local_queue.hpp,
// 256 tasks; the run queue when that is full), which only that worker
// pushes to: a task that yields stays on its worker and in its cache, and
// two busy workers share no queue line. Other workers steal from it.
//
// Neither may starve anything:
//
//   event                                 where t goes / what W runs next
//   wake or spawn of t on worker W        W's slot; an empty slot notifies
//                                         one parked worker [X4]; a task
//                                         already there goes to the run queue
//   t woken while it ran on W (yield)     the back of W's FIFO, then notify
//                                         one parked worker [X7]; W's next
//                                         pick looks at the run queue first
//   W ends a run, < 8 slot runs in a row  the slot's task
//   W's pick after a yield (unless its    the run queue's head, else its
//     last pick was one of these), or     FIFO's
//     every 16th of its other picks
//   any other pick                        its FIFO's head, else the run
//                                         queue's
//   nothing in either                     the slot's task (passed over),
//                                         else one stolen from any FIFO
//   spinning idle                         the run queue's head, else (every
//                                         4th step) a task stolen from any
//                                         FIFO
//   about to park                         the run queue's head, else a task
//                                         stolen from any FIFO [X7], else
//                                         from any slot [X4]
//
// So the run queue is looked at at least every 16 picks, which is at most
// 16 * 9 runs (a pick after at most 8 slot runs each time), a task that
// yields runs again only after the run queue's head (unless the pick before
// was also the run queue's) and the tasks ahead of it in its FIFO, a task
// in a FIFO waits behind at most the tasks ahead of it there and about as
// many run queue tasks (every other pick, plus one in 16 other picks,
// which may follow a pick after a yield) (and while its worker is in a
// long run, a parked worker was woken to steal it), and a task in a slot
// waits for at most its worker's current run (and one pick after it,
// when that run was the 8th slot run in a row): if that run
// is long, a parked worker was woken when the slot filled, and steals the
// task before it parks again (stealing from slots only then, and not while
// spinning, keeps a chain of wakes on one worker instead of bouncing it
// between cores). A handler's wake never touches a FIFO (one producer: its
// worker), only the slot, which is exchanged.
//
// Idle workers. A worker looks at its slot, its FIFO and the run queue,
// steals from the FIFOs, then spins on the run queue and the FIFOs for a
// while (blocking_wait.hpp, Spinning), then steals from any worker's slot,
// then parks on its parker through the run queue's waiter list, which each
// push notifies once (notify_one: one new task wakes at most one sleeper;
// nothing spins while idle for longer than the spin). The wait ends at the
// earliest timer deadline, so expiries need no extra thread; every worker
// fires due timers before it takes its next task.
//
// Shutdown (shutdown() or the destructor) cancels: it stops accepting
// spawns, requests cancellation of every live task (a running task sees it
// when it next suspends; a queued, idle or sleeping one is destroyed when a
// worker next takes it), waits until none is left, then closes the run
// queue so that every worker returns, and joins them. Every join reports
// the value or `cancelled`; every frame is destroyed once. A task that never
// suspends keeps shutdown waiting. With worker_threads::none, shutdown also
// waits until every caller of run_worker / run_until_idle has returned, so
// the executor may be destroyed as soon as it returns.
//
// Memory. Task headers come from config.pool, or from the heap when it is
// null (through each thread's cache of freed blocks, detail/frame_cache.hpp);
// task frames come from the pool when the coroutine takes a frame_pool&
// first (see task.hpp). The run queue is a bounded channel
// engine of max_tasks slots: in config.run_queue when given (no heap at
// all, for bare metal), else allocated once, at construction.
//
//   constinit sluice::run_queue_slot queue[64];       // bare metal: .bss
//   sluice::executor ex{{.max_tasks = 64, .pool = &pool,
//                        .threads = sluice::worker_threads::none, .run_queue = queue}};
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <sluice/channel.hpp>
#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/local_queue.hpp>
#include <sluice/detail/spin_lock.hpp>
#include <sluice/detail/task_header.hpp>
#include <sluice/detail/timer_queue.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/detail/worker_port.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>
#include <sluice/result.hpp>
#include <sluice/sleep.hpp>
#include <sluice/task.hpp>
#include <sluice/time.hpp>

namespace sluice {

enum class spawn_error : std::uint8_t {
  no_memory,       // the task's frame or header (or the run queue) could not be allocated
  too_many_tasks,  // max_tasks tasks are live
  shut_down,       // shutdown() has begun
};

constexpr const char* to_string(spawn_error e) noexcept {
  switch (e) {
    case spawn_error::no_memory:
      return "no memory";
    case spawn_error::too_many_tasks:
      return "too many tasks";
    case spawn_error::shut_down:
      return "shut down";
  }
  return "?";
}

template <class T>
using spawn_result = result<join_handle<T>, spawn_error>;

// What spawn_detached returns when it accepted the task: nothing to hold.
struct spawned {};
using detached_spawn_result = result<spawned, spawn_error>;

// What the executor reports to an executor_trace (tests assert on it).
enum class trace_event : std::uint8_t {
  spawn,     // a task was accepted
  schedule,  // a task was pushed on the run queue
  run,       // a worker took a task off the run queue and runs it
  complete,  // a task completed (finished or cancelled)
  park,      // a worker found no work and is about to wait
  unpark,    // a waiting worker returned from its wait
};

constexpr const char* to_string(trace_event e) noexcept {
  switch (e) {
    case trace_event::spawn:
      return "spawn";
    case trace_event::schedule:
      return "schedule";
    case trace_event::run:
      return "run";
    case trace_event::complete:
      return "complete";
    case trace_event::park:
      return "park";
    case trace_event::unpark:
      return "unpark";
  }
  return "?";
}

// Recording hooks. record() is called from workers, spawners and wakers
// (so possibly from a handler): it must be as safe as a wake.
class executor_trace {
 public:
  virtual void record(trace_event event, const void* task) noexcept = 0;

 protected:
  ~executor_trace() = default;
};

enum class worker_threads : std::uint8_t {
  start,  // the port starts the workers (hosted: threads)
  none,   // the caller drives: run_worker() on each core, or run_until_idle()
};

// One slot of an executor's run queue (a cache line), for run_queue storage.
using run_queue_slot = detail::array_slot<detail::task_header*>;

struct executor_config {
  unsigned workers = 0;                // 0: port::default_worker_count()
  std::uint32_t max_tasks = 1u << 14;  // live tasks at most (run queue capacity)
  frame_pool* pool = nullptr;          // task headers; null: the heap
  worker_threads threads = worker_threads::start;
  executor_trace* trace = nullptr;
  // max_tasks slots for the run queue, which must outlive the executor and
  // serve no other; null: allocated from the heap.
  run_queue_slot* run_queue = nullptr;
};

class executor final : private detail::task_scheduler {
 public:
  // Inline: a one-off with constant arguments folds to a few stores.
  [[gnu::always_inline]] explicit executor(const executor_config& config = {}) noexcept
      : queue_memory_(config, spare_slot_),
        queue_(queue_memory_.slots, queue_memory_.slot_count()),
        pool_(config.pool),
        trace_(config.trace),
        credit_batch_(detail::executor_slots
                          ? (queue_memory_.limit / 64 < 32 ? queue_memory_.limit / 64 : 32)
                          : 0) {
    if (config.threads == worker_threads::start) {
      const unsigned n = config.workers != 0 ? config.workers : port::default_worker_count();
      workers_ = port::start_workers(n, &worker_entry, this);
      SLUICE_ASSERT(workers_ != nullptr, "the port could not start any executor worker");
    }
  }
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;
  ~executor() {
    shutdown();
    // Tasks whose last reference a waker dropped after the last completion
    // (task_header.hpp): the workers are gone, so the destructor frees them.
    if constexpr (detail::retire_from_wakers) detail::destroy_retired_tasks();
  }

  // Spawns `t`: it starts when a worker takes it. Thread or task context.
  template <class T>
  spawn_result<T> spawn(task<T> t) noexcept {
    spawn_error refused{};
    detail::task_cell<T>* cell = admit(t, /*with_handle=*/true, refused);
    if (cell == nullptr) return refused;
    return join_handle<T>{cell};
  }

  // Spawns `t` with no join handle: fire and forget (its result, if any, is
  // destroyed by the worker that completes it). The same as spawn()
  // followed by detach(), two atomic read-modify-writes cheaper: the task
  // never has the handle's reference, and starts with its state saying so.
  // A refusal says why, as spawn's does; the task is then destroyed unrun.
  // shutdown() cancels a detached task like any other.
  template <class T>
  detached_spawn_result spawn_detached(task<T> t) noexcept {
    spawn_error refused{};
    if (admit(t, /*with_handle=*/false, refused) == nullptr) return refused;
    return spawned{};
  }

  // Runs worker duties on the calling thread (or core) until shutdown.
  // Requires: entered before shutdown() begins.
  void run_worker() noexcept {
    const driver_scope driving(*this);
    worker_local self(*this);
    for (;;) {
      fire_due_timers();
      detail::task_header* next = nullptr;
      if (!take(self, next)) return;  // shut down
      if (next != nullptr) run(*next);
    }
  }

  // Runs tasks on the calling thread until the run queue is empty (firing
  // due timers too); returns how many runs it made. For executors built
  // with worker_threads::none and for tests.
  std::size_t run_until_idle() noexcept {
    const driver_scope driving(*this);
    std::size_t runs = 0;
    for (;;) {
      fire_due_timers();
      recv_result<detail::task_header*> r = detail::try_recv(queue_);
      if (!r) return runs;
      run(*r.value());
      ++runs;
    }
  }

  // Stops accepting spawns, cancels every live task, waits for them, stops
  // and joins the workers. Idempotent. Not from a task of this executor.
  void shutdown() noexcept {
    if (!stop_and_cancel_all()) return;
    // Waits until no task is left. Without started workers the
    // cancellations may have nobody else to run them (callers of run_worker
    // on other cores still may): this thread runs what is queued, and keeps
    // doing so every millisecond while tasks are left, since a wake that was
    // between its decision and its push when cancel_all looked pushes later.
    const bool drive = workers_ == nullptr;
    for (;;) {
      if (drive) (void)run_until_idle();
      const time_point until = drive ? deadline_after(duration{1'000'000}) : time_point::max();
      if (detail::wait_until(done_, until, [this]() noexcept {
            // Acquire [X2].
            return live_.load(std::memory_order_acquire) == 0;
          }))
        break;
    }
    detail::close(queue_);
    port::join_workers(std::exchange(workers_, nullptr));
    wait_until_zero(drivers_);
    wait_until_zero(foreign_pushes_);
  }

  // Live (spawned, not yet completed) tasks; may be stale.
  [[nodiscard]] std::uint32_t approx_live_tasks() const noexcept {
    // Relaxed: an observer.
    const std::uint32_t counted = live_.load(std::memory_order_relaxed);
    std::uint32_t held = 0;  // the workers' credits (see "live tasks" below)
    if constexpr (detail::executor_slots) {
      workers_lock_.lock();
      for (const worker_local* w = workers_head_; w != nullptr; w = w->link)
        held += w->credits.load(std::memory_order_relaxed);  // Relaxed: an observer.
      workers_lock_.unlock();
    }
    return counted > held ? counted - held : 0;
  }

 private:
  // --- task_scheduler --------------------------------------------------------
  // Any context: the slot exchange and the queue push are lock-free.
  void schedule(detail::task_header& t) noexcept override {
    record(trace_event::schedule, &t);
    auto* local =
        detail::executor_slots ? static_cast<worker_local*>(port::current_worker()) : nullptr;
    if (local == nullptr || local->owner != this) {
      // Not from one of this executor's drivers: the task may be popped,
      // completed, and shutdown return while this push still notifies, so
      // shutdown also waits for the count [X6]. Relaxed: the increment is
      // sequenced before the push, which the completion (and so shutdown's
      // acquire of the task count) happens after.
      foreign_pushes_.fetch_add(1, std::memory_order_relaxed);
      push(t);
      // Release [X6]: this push's last touch of the executor happens before
      // shutdown sees the count fall (acquire in wait_until_zero).
      foreign_pushes_.fetch_sub(1, std::memory_order_release);
      return;
    }
    // seq_cst [X4]: the exchange and the waiter check in the notify below
    // pair with a parking worker's enqueue ([W1] fence) and its look at the
    // slots: it sees t, or this notify sees it waiting. Release also
    // publishes t's header to whoever takes it (acquire in take_slot).
    detail::task_header* displaced = local->next.exchange(&t, std::memory_order_seq_cst);
    if (displaced == nullptr) {
      queue_.receivers_waiting().notify_one_after_seq_cst_rmw();  // [X4]
    } else {
      push(*displaced);
    }
  }
  // Only ever called by the worker that ran `t`, never from a handler: the
  // FIFO's one producer.
  void reschedule(detail::task_header& t) noexcept override {
    record(trace_event::schedule, &t);
    auto* local =
        detail::executor_slots ? static_cast<worker_local*>(port::current_worker()) : nullptr;
    if (local == nullptr || local->owner != this) {
      push(t);
      return;
    }
    local->after_yield = true;  // the next pick looks at the run queue first
    if (!local->fifo.push(&t)) {
      push(t);
      return;
    }
    // [X7] the FIFO push's seq_cst exchange of its tail ([L4]) and the
    // notify's seq_cst load pair with a parking worker's enqueue fence
    // ([W1']; its look after enqueueing reads that tail): it is woken, or
    // that look steals t.
    queue_.receivers_waiting().notify_one_after_seq_cst_rmw();
  }
  void task_completed(detail::task_header& t) noexcept override {
    record(trace_event::complete, &t);
    detail::task_header* const listed =
        !detail::task_lazy_listing || t.has_suspended() ? &t : nullptr;
    worker_local* const w = batching_worker();
    if (w == nullptr) {
      uncount(listed, 1);
      return;
    }
    // Its count becomes a credit of this worker; beyond two batches, one
    // goes back. Relaxed: the worker's own count (observers only read it).
    std::uint32_t credits = w->credits.load(std::memory_order_relaxed) + 1;
    std::uint32_t back = 0;
    if (credits > 2 * credit_batch_) {
      back = credit_batch_;
      credits -= back;
    }
    w->credits.store(credits, std::memory_order_relaxed);
    if (listed != nullptr || back != 0) uncount(listed, back);
  }
  void first_suspension(detail::task_header& t) noexcept override {
    if constexpr (!detail::task_lazy_listing) return;  // listed from its spawn
    lock_.lock();
    link_locked(t);
    // Relaxed: written only under the lock.
    const bool cancel = !accepting_.load(std::memory_order_relaxed);
    lock_.unlock();
    // Shutdown walked the list before we joined it: cancel it here. It is
    // running, so this only marks it (E10); its end_run then cancels (E7).
    if (cancel) (void)t.cancel();
  }
  detail::timer_queue& timers() noexcept override { return timers_; }
  executor* owner() noexcept override { return this; }

  static void worker_entry(void* self) noexcept { static_cast<executor*>(self)->run_worker(); }

  // A task armed a timer earlier than any other: a worker parked until a
  // later deadline (or none) must wait for this one instead. Wakes one; it
  // sees the new deadline in its last look before parking again (take).
  // [X5] notify_one's seq_cst fence pairs with the parked worker's enqueue
  // fence: it is woken, or its look reads the timer list after arm's unlock.
  static void earliest_timer_moved(void* self) noexcept {
    static_cast<executor*>(self)->queue_.receivers_waiting().notify_one();
  }

  // Reads the clock only when some timer is armed. The expired sleepers go
  // to the run queue in deadline order, not to this worker's slot.
  void fire_due_timers() noexcept {
    if (timers_.approx_size() == 0) return;
    if constexpr (detail::executor_slots) {
      void*& current = port::current_worker();
      void* const self = std::exchange(current, nullptr);
      (void)timers_.fire_expired(port::now());
      current = self;
    } else {
      (void)timers_.fire_expired(port::now());
    }
  }

  // Makes the task's header, links it as live and schedules it. Null, with
  // `refused` set, when it is not accepted (the task is destroyed unrun).
  // Without a handle the task holds only the scheduler's reference, so the
  // pointer returned may already be gone: compare it with null, no more.
  template <class T>
  detail::task_cell<T>* admit(task<T>& t, bool with_handle, spawn_error& refused) noexcept {
    refused = spawn_error::no_memory;
    if (!t.valid()) return nullptr;  // its frame allocation failed
    detail::task_cell<T>* cell = detail::task_cell<T>::create(t, *this, pool_);
    if (cell == nullptr) return nullptr;
    if (!with_handle) cell->forgo_handle_reference();
    if (!count_in(*cell, refused)) {
      cell->discard_unstarted();
      return nullptr;
    }
    record(trace_event::spawn, cell);
    schedule(*cell);  // the initial state is `scheduled`
    return cell;
  }

  void push(detail::task_header& t) noexcept {
    send_result<detail::task_header*> r = detail::try_send(queue_, &t);
    // Cannot fail: at most max_tasks live tasks, each queued at most once,
    // and the queue is closed only after the last task completed.
    SLUICE_ASSERT(static_cast<bool>(r), "executor run queue full or closed on a push");
  }

  void run(detail::task_header& t) noexcept {
    record(trace_event::run, &t);
    // Shutting down: a task that has never suspended is not in the list
    // that shutdown cancelled; it is cancelled here, before its run (E4).
    // Relaxed: a stale `true` lets it run, and it is cancelled when it first
    // suspends (first_suspension reads the flag under the lock).
    if constexpr (detail::task_lazy_listing) {
      if (!accepting_.load(std::memory_order_relaxed)) (void)t.cancel();
    }
    detail::run_task(t);
  }

  // A worker's FIFO where slots are left out (one core): never holds a task.
  struct no_fifo {
    static bool push(detail::task_header*) noexcept { return false; }
    static detail::task_header* pop() noexcept { return nullptr; }
    static bool approx_empty() noexcept { return true; }
  };

  // A worker's own state, on its stack for as long as run_worker runs:
  // registered in the executor's list (for thieves) and in
  // port::current_worker() (for schedule on its thread or core).
  struct alignas(detail::cache_line) worker_local {
    explicit worker_local(executor& ex) noexcept : owner(&ex) {
      if constexpr (!detail::executor_slots) return;
      outer = port::current_worker();
      ex.workers_lock_.lock();
      link = ex.workers_head_;
      ex.workers_head_ = this;
      ex.workers_lock_.unlock();
      port::current_worker() = this;
    }
    ~worker_local() {
      if constexpr (!detail::executor_slots) return;
      owner->give_back_credits(*this);
      port::current_worker() = outer;
      owner->workers_lock_.lock();
      worker_local** at = &owner->workers_head_;
      while (*at != this)
        at = &(*at)->link;
      *at = link;
      owner->workers_lock_.unlock();
      // Relaxed: a check; the queue was closed after the last task ended.
      SLUICE_ASSERT(next.load(std::memory_order_relaxed) == nullptr,
                    "an executor worker left with a task in its slot");
      SLUICE_ASSERT(fifo.approx_empty(), "an executor worker left with tasks in its queue");
    }
    worker_local(const worker_local&) = delete;
    worker_local& operator=(const worker_local&) = delete;

    // Read by thieves walking the list: apart from what the worker writes
    // on every run, or each look of a spinning thief would take that line.
    executor* owner;
    void* outer = nullptr;         // port::current_worker() before this
    worker_local* link = nullptr;  // the executor's list of workers (workers_lock_)
    // The next-task slot (see the table at the top), only ever exchanged.
    alignas(detail::cache_line) detail::atomic<detail::task_header*> next{nullptr};
    unsigned slot_runs = 0;  // slot runs in a row; the worker's own
    // Live-task credits (see "live tasks"); written only by the worker,
    // read by approx_live_tasks().
    detail::atomic<std::uint32_t> credits{0};
    unsigned picks = 0;            // picks from the queues; the worker's own
    bool after_yield = false;      // a run ended in reschedule; the worker's own
    bool queue_was_first = false;  // the last pick looked there first; the worker's own
    // The worker's FIFO (see the table at the top); empty when slots are
    // left out (one core).
    [[no_unique_address]] std::conditional_t<detail::executor_slots,
                                             detail::local_queue<detail::task_header, 256>, no_fifo>
        fifo;
  };

  static constexpr unsigned slot_runs_in_a_row = 8;
  static constexpr unsigned picks_per_run_queue_look = 16;

  static detail::task_header* take_slot(worker_local& w) noexcept {
    // Relaxed: an empty slot costs a load, no write; the exchange decides.
    if (w.next.load(std::memory_order_relaxed) == nullptr) return nullptr;
    // Acquire [X4]: pairs with the release of schedule's exchange.
    return w.next.exchange(nullptr, std::memory_order_acquire);
  }

  // A task from any worker's FIFO (the oldest there), else, with
  // `slots_too` (a worker about to park), from any worker's slot; or null.
  detail::task_header* steal(bool slots_too) noexcept {
    if constexpr (!detail::executor_slots) return nullptr;
    detail::task_header* t = nullptr;
    workers_lock_.lock();  // a worker's FIFO and slot live as long as it is listed
    for (worker_local* w = workers_head_; w != nullptr && t == nullptr; w = w->link)
      t = w->fifo.pop();
    for (worker_local* w = workers_head_; slots_too && w != nullptr && t == nullptr; w = w->link)
      t = take_slot(*w);
    workers_lock_.unlock();
    return t;
  }

  // Takes the next task into `out`, waiting (parked) while there is none,
  // until the earliest timer is due (`out` stays null). False on shutdown.
  // Inlined into run_worker, its one caller (a Cortex-M image is
  // smaller that way).
  [[gnu::always_inline]] bool take(worker_local& self, detail::task_header*& out) noexcept {
    constexpr bool slots = detail::executor_slots;
    if (slots && self.slot_runs < slot_runs_in_a_row && (out = take_slot(self)) != nullptr) {
      ++self.slot_runs;
      return true;
    }
    self.slot_runs = 0;
    // Nobody ever waits to send on the run queue (push is try_send), so a
    // pop notifies no sender.
    detail::raw_storage<detail::task_header*> popped;
    detail::op_status status = detail::op_status::would_block;
    if constexpr (!slots) {
      status = queue_.pop(popped);  // one core: the run queue is all there is
    } else {
      // After a yield the run queue goes first, but not twice in a row for
      // that reason: a stream of queued tasks that yield must not hold up
      // the FIFO. (The look every 16 other picks may follow such a pick.)
      const bool queue_first = (std::exchange(self.after_yield, false) && !self.queue_was_first) ||
                               ++self.picks % picks_per_run_queue_look == 0;
      self.queue_was_first = queue_first;
      if (queue_first) status = queue_.pop(popped);
      if (status == detail::op_status::would_block && (out = self.fifo.pop()) != nullptr)
        return true;
      if (!queue_first) status = queue_.pop(popped);
      // The slot was passed over for the queues, which are empty; else a
      // task from another worker's FIFO.
      if (status == detail::op_status::would_block &&
          ((out = take_slot(self)) != nullptr || (out = steal(false)) != nullptr))
        return true;
    }
    if (status == detail::op_status::would_block) {
      // An idle worker holds no credits: shutdown waits for live_ to reach
      // zero, and a parked worker would keep it from doing so.
      if constexpr (slots) give_back_credits(self);
      record(trace_event::park, nullptr);
      const time_point deadline = timers_.next_deadline();
      unsigned spins = 0;
      (void)detail::wait_until(
          queue_.receivers_waiting(), deadline,
          [&]() noexcept {
            status = queue_.pop(popped);
            if (status != detail::op_status::would_block) return true;
            // Spinning: the FIFOs every 4th step (their lock is shared by
            // every idle worker; the look below always steals).
            return slots && ++spins % 4 == 0 && (out = steal(false)) != nullptr;
          },
          [&]() noexcept {
            if (!slots) return false;  // one worker: it armed any new timer itself
            if ((out = steal(true)) != nullptr) return true;  // [X7], [X4]
            return timers_.next_deadline() < deadline;        // [X5] a sooner timer
          });
      record(trace_event::unpark, nullptr);
      // Nothing popped: the deadline passed, a sooner timer was armed, or a
      // task was stolen into `out`.
      if (status == detail::op_status::would_block) return true;
    }
    if (status == detail::op_status::closed) return false;
    out = popped.get();
    popped.destroy();
    return true;
  }

  // Counts the callers inside run_worker / run_until_idle, so that shutdown
  // (and so the destructor) returns only after the last of them left: a
  // worker on another core completes the last task (live_ reaches 0) and
  // still touches done_, the timers and the queue before it returns.
  class driver_scope {
   public:
    explicit driver_scope(executor& ex) noexcept : ex_(ex) {
      // Relaxed: the count only has to reach shutdown's wait; the caller
      // was already allowed to use the executor.
      const std::uint32_t before = ex_.drivers_.fetch_add(1, std::memory_order_relaxed);
      SLUICE_ASSERT(detail::executor_slots || before == 0,
                    "executor: a build with SLUICE_EXECUTOR_SLOTS=0 runs one worker (run_worker "
                    "or run_until_idle) at a time; a second would sleep through timers that the "
                    "first arms");
      (void)before;
    }
    ~driver_scope() {
      // Release [X3]: every use of the executor by this driver happens
      // before shutdown sees the count drop (acquire in
      // wait_until_zero), after which the executor may be destroyed.
      // The driver touches nothing of it after this.
      ex_.drivers_.fetch_sub(1, std::memory_order_release);
    }
    driver_scope(const driver_scope&) = delete;
    driver_scope& operator=(const driver_scope&) = delete;

   private:
    executor& ex_;
  };

  // Waits (a 1 ms timed wait per round, no notify: the last one out must
  // not touch the executor after its decrement) until `count` is zero:
  // drivers_ (callers inside run_worker or run_until_idle, which return as
  // soon as their current step ends once the queue is closed) or
  // foreign_pushes_ (wakes from other threads still inside their push).
  static void wait_until_zero(const detail::atomic<std::uint32_t>& count) noexcept {
    for (;;) {
      // Acquire [X3] / [X6].
      const std::uint32_t n = count.load(std::memory_order_acquire);
      if (n == 0) return;
      (void)port::wait_until(count, n, deadline_after(duration{1'000'000}));
    }
  }

  void record(trace_event e, const void* task) noexcept {
    if (trace_ != nullptr) trace_->record(e, task);
  }

  // --- live tasks: the count, the workers' credits, the suspended list ----
  //
  // live_ bounds the live tasks (the run queue holds max_tasks, and each
  // live task is on it at most once) and tells shutdown when none is left.
  // It counts every live task plus the credits the workers hold, so that a
  // task that spawns the next on a worker, and completes there, takes no
  // lock (W: a worker of this executor, when credit_batch_ is not 0):
  //
  //   event                                live_          W's credits  tasks
  //   spawn elsewhere (a thread, a driver  +1 (lock)      -            +1
  //     of run_until_idle) or no batching
  //   spawn on W                           -              -1           +1
  //   ... W has no credit: refill first    +k (lock)      +k           -
  //   completion elsewhere                 -1 (lock)      -            -1
  //   completion on W                      -              +1           -1
  //   ... W holds 2 * batch + 1: give one  -batch (lock)  -batch       -
  //   W finds no work (before it parks),   -all (lock)    0            -
  //     or stops being a worker
  //
  // Hence live_ = live tasks + credits held <= max_tasks (a refill takes at
  // most the room left). A spawn can be refused while other workers hold
  // credits: up to 2 * credit_batch_ per worker (max_tasks / 64, at most
  // 32; 0, so exact, below 64 tasks or without worker slots). Only the lock
  // holder changes live_; the credits are their worker's own.
  //
  // The list holds the tasks that have suspended at least once (linked by
  // first_suspension, unlinked at completion): only those can sit idle,
  // held by nothing but wakers. shutdown() sets accepting_ false and
  // cancels the list's tasks under the lock; a task not in the list is
  // queued or in its first run, and is cancelled when a worker takes it
  // (run()) or, if that worker read the flag too early, when it first
  // suspends (first_suspension reads it under the lock). A spawn on a
  // worker reads the flag without the lock: one that races with shutdown
  // may get in, and its task is cancelled the same way. Without
  // task_lazy_listing (config.hpp: one-core images) every task is listed
  // from its spawn, under the lock that counts it, as shutdown then finds.
  //
  // Under lock_, a spin lock: spawners and workers only, never handlers.
  // (The workers' list is under workers_lock_, likewise never in a handler.)

  // This thread's worker of this executor, if the count batches credits.
  worker_local* batching_worker() noexcept {
    if constexpr (!detail::executor_slots) return nullptr;
    if (credit_batch_ == 0) return nullptr;
    auto* local = static_cast<worker_local*>(port::current_worker());
    return local != nullptr && local->owner == this ? local : nullptr;
  }

  // Counts a new task as live; false, with why in `refused`, if it may not
  // start.
  [[nodiscard]] bool count_in(detail::task_header& t, spawn_error& refused) noexcept {
    worker_local* const w = batching_worker();
    if (w == nullptr) return take_live(1, refused, detail::task_lazy_listing ? nullptr : &t) == 1;
    // Relaxed: see the table (a racing spawn's task is cancelled later).
    if (!accepting_.load(std::memory_order_relaxed)) {
      refused = spawn_error::shut_down;
      return false;
    }
    // Relaxed: the worker's own count (observers only read it).
    std::uint32_t credits = w->credits.load(std::memory_order_relaxed);
    if (credits == 0 && (credits = take_live(credit_batch_, refused)) == 0) return false;
    w->credits.store(credits - 1, std::memory_order_relaxed);
    return true;
  }
  // Adds up to `n` (at least 1) to live_, and links `t` if not null;
  // returns how many, 0 with why in `refused` when there is no room or
  // spawning has stopped.
  std::uint32_t take_live(std::uint32_t n, spawn_error& refused,
                          detail::task_header* t = nullptr) noexcept {
    lock_.lock();
    // Relaxed: both written only under the lock.
    const std::uint32_t live = live_.load(std::memory_order_relaxed);
    const bool open = accepting_.load(std::memory_order_relaxed);
    const std::uint32_t room = queue_memory_.limit - live;
    const std::uint32_t k = !open ? 0 : room < n ? room : n;
    if (k == 0) {
      refused = open ? queue_memory_.full : spawn_error::shut_down;
    } else {
      // Relaxed: the bound; shutdown waits for the count to fall ([X2]).
      live_.store(live + k, std::memory_order_relaxed);
      if (t != nullptr) link_locked(*t);
    }
    lock_.unlock();
    return k;
  }
  // Under one turn of the lock: unlinks `listed` (if not null) and takes
  // `n` off live_.
  void uncount(detail::task_header* listed, std::uint32_t n) noexcept {
    lock_.lock();
    if (listed != nullptr) unlink_locked(*listed);
    // Relaxed: written only under the lock.
    const std::uint32_t left = live_.load(std::memory_order_relaxed) - n;
    // Release [X2]: a completed task's effects (a worker's, before it gave
    // back the credit its completion made) happen before shutdown sees the
    // count reach zero (acquire in shutdown).
    if (n != 0) live_.store(left, std::memory_order_release);
    lock_.unlock();
    if (n != 0 && left == 0) done_.notify_all();
  }
  void give_back_credits(worker_local& w) noexcept {
    // Relaxed: the worker's own count.
    const std::uint32_t credits = w.credits.load(std::memory_order_relaxed);
    if (credits == 0) return;
    w.credits.store(0, std::memory_order_relaxed);
    uncount(nullptr, credits);
  }
  void link_locked(detail::task_header& t) noexcept {
    t.live_prev = nullptr;
    t.live_next = live_head_;
    if (live_head_ != nullptr) live_head_->live_prev = &t;
    live_head_ = &t;
  }
  void unlink_locked(detail::task_header& t) noexcept {
    if (t.live_prev != nullptr) {
      t.live_prev->live_next = t.live_next;
    } else {
      live_head_ = t.live_next;
    }
    if (t.live_next != nullptr) t.live_next->live_prev = t.live_prev;
    t.live_prev = t.live_next = nullptr;
  }
  // Stops spawning and cancels every listed task; true if this call
  // stopped it.
  bool stop_and_cancel_all() noexcept {
    lock_.lock();
    // Relaxed: written only under the lock; readers outside it tolerate a
    // stale value (see the table).
    const bool was = accepting_.load(std::memory_order_relaxed);
    accepting_.store(false, std::memory_order_relaxed);
    // A listed task has not run task_completed (which unlinks under this
    // lock), so it is alive; cancel never blocks.
    if (was) {
      for (detail::task_header* t = live_head_; t != nullptr; t = t->live_next)
        (void)t->cancel();
    }
    lock_.unlock();
    return was;
  }

  // The run queue's slots: the caller's, or a heap block this owns. Declared
  // before queue_, so it is freed after the engine is destroyed. A release
  // build given max_tasks 0 refuses every spawn (too_many_tasks); one whose
  // run queue cannot be allocated refuses every spawn with no_memory. Both
  // keep a queue of one slot (`spare`) that no task ever enters, so that
  // the workers have a queue to look at.
  struct queue_memory {
    queue_memory(const executor_config& config, void* spare) noexcept {
      SLUICE_ASSERT(config.max_tasks >= 1, "executor max_tasks must be at least 1");
      limit = config.max_tasks;
      slots = config.run_queue;
      if (slots == nullptr && limit != 0) {
        slots = allocate(limit);
        if (slots == nullptr) full = spawn_error::no_memory;
      }
      if (slots == nullptr || limit == 0) {
        slots = static_cast<run_queue_slot*>(spare);
        limit = 0;
      }
      // Fresh slots: a heap block holds none yet, and the caller's storage
      // may hold the sequence numbers of an executor that used it before.
      for (std::uint32_t i = 0; i < slot_count(); ++i)
        ::new (static_cast<void*>(slots + i)) run_queue_slot();
    }
    run_queue_slot* allocate(std::uint32_t n) noexcept {
      // The slots are cache-line aligned: over-allocate and align by hand
      // (the plain nothrow operator new is the one allocation function a
      // bare-metal runtime is asked for; see frame_pool.hpp). A size that
      // does not fit in size_t (32-bit targets) is no memory.
      std::size_t bytes = 0;
      const bool counted =
          !__builtin_mul_overflow(sizeof(run_queue_slot), std::size_t{n}, &bytes) &&
          !__builtin_add_overflow(bytes, alignof(run_queue_slot), &bytes);
      SLUICE_ASSERT(counted,
                    "executor: a run queue of max_tasks slots is more bytes than size_t counts "
                    "(lower max_tasks)");
      if (!counted) return nullptr;
      block = ::operator new(bytes, std::nothrow);
      SLUICE_ASSERT(block != nullptr,
                    "executor: no memory for a run queue of max_tasks slots (lower max_tasks or "
                    "pass run_queue storage)");
      if (block == nullptr) return nullptr;
      const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(block);
      const std::uintptr_t aligned =
          (at + alignof(run_queue_slot) - 1) & ~std::uintptr_t{alignof(run_queue_slot) - 1};
      return reinterpret_cast<run_queue_slot*>(aligned);
    }
    ~queue_memory() {
      static_assert(std::is_trivially_destructible_v<run_queue_slot>);
      // run_queue_slot is trivially destructible (an atomic word and raw
      // storage of a pointer): nothing to destroy but the block.
      if (block != nullptr) ::operator delete(block, std::nothrow);
    }
    queue_memory(const queue_memory&) = delete;
    queue_memory& operator=(const queue_memory&) = delete;

    run_queue_slot* slots = nullptr;
    void* block = nullptr;
    // The run queue's slots: limit, or the spare one.
    [[nodiscard]] std::uint32_t slot_count() const noexcept { return limit != 0 ? limit : 1; }

    std::uint32_t limit = 0;  // live tasks at most: max_tasks, or 0 (above)
    // Why a spawn is refused when `limit` tasks are live.
    spawn_error full = spawn_error::too_many_tasks;
  };
  using run_queue = detail::channel_core<
      detail::array_engine<detail::task_header*, detail::span_slots<detail::task_header*>>>;

  // Read-mostly (every spawn and run reads them), apart from the lines that
  // spawns and completions write.
  queue_memory queue_memory_;
  run_queue queue_;
  // With one worker (no slots) the worker that arms a timer parks next and
  // sees it then: no wake needed.
  detail::timer_queue timers_{detail::executor_slots ? &executor::earliest_timer_moved : nullptr,
                              this};
  frame_pool* pool_;
  executor_trace* trace_;
  const std::uint32_t credit_batch_;  // see the live tasks' table
  port::worker_group* workers_ = nullptr;
  detail::atomic<std::uint32_t> drivers_{0};
  // Written by every wake from outside the drivers (a thread spawning, a
  // channel fed by a thread): a line of its own.
  alignas(detail::cache_line) detail::atomic<std::uint32_t> foreign_pushes_{0};  // [X6]
  detail::waiter_list done_;
  // Written under the lock by spawns and completions that are not on a
  // worker, by first suspensions and by credit refills and returns.
  alignas(detail::cache_line) detail::spin_lock lock_;  // [SL1] guards what follows
  detail::atomic<std::uint32_t> live_{0};
  detail::task_header* live_head_ = nullptr;
  detail::atomic<bool> accepting_{true};  // also read without the lock (relaxed)
  // Taken by idle workers that steal, when a worker starts or leaves, and
  // by approx_live_tasks: apart from the spawns' lock. [SL1] guards what
  // follows.
  alignas(detail::cache_line) mutable detail::spin_lock workers_lock_;
  worker_local* workers_head_ = nullptr;
  // The run queue's one slot where it has no other (see queue_memory).
  alignas(run_queue_slot) std::byte spare_slot_[sizeof(run_queue_slot)];
};

// co_await sluice::current_executor() -> executor&: the executor running
// this task (to spawn siblings). Requires: the task runs on an executor.
class current_executor_awaiter {
 public:
  bool await_ready() noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> coroutine) noexcept {
    detail::task_header* header = coroutine.promise().context().header;
    SLUICE_ASSERT(header != nullptr && header->scheduler().owner() != nullptr,
                  "current_executor() awaited outside a task spawned on an executor");
    executor_ = header->scheduler().owner();
    return false;  // never suspends
  }
  executor& await_resume() noexcept { return *executor_; }

 private:
  executor* executor_ = nullptr;
};

[[nodiscard]] inline current_executor_awaiter current_executor() noexcept {
  return {};
}

// Destroys the tasks whose last reference a waker dropped (hosted: such a
// drop, which may be in a signal handler, only retires the task; see
// task_header.hpp). The next completion on any worker and every executor's
// destructor do it as well; a program that drops wakers after its last
// executor is gone calls it to free those tasks. Thread context only.
inline void destroy_retired_tasks() noexcept {
  detail::destroy_retired_tasks();
}

namespace detail {
constexpr join_error refused_spawn(spawn_error e) noexcept {
  switch (e) {
    case spawn_error::no_memory:
      return join_error::no_memory;
    case spawn_error::too_many_tasks:
      return join_error::too_many_tasks;
    case spawn_error::shut_down:
      break;
  }
  return join_error::shut_down;
}
}  // namespace detail

// Spawns `t` on `ex` and blocks the calling thread until it completes. A
// refused spawn answers at once with the join_error of the same name
// (no_memory, too_many_tasks, shut_down), and `t` is destroyed unrun.
// Requires: `ex` has workers (worker_threads::start); a thread, not a task.
template <class T>
join_result<T> block_on(executor& ex, task<T> t) {
  spawn_result<T> h = ex.spawn(std::move(t));
  if (!h) return detail::refused_spawn(h.error());
  return h->join();
}

}  // namespace sluice
