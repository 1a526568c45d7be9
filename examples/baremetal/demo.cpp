// The bare-metal demo: sluice's executor, channels and packet buffer on a
// board with no operating system and no heap, on one core or several. It
// talks to the hardware only through board.hpp, so every port boots this
// same source.
//
// The scenario runs twice in one boot, once per packet buffer policy
// (overwrite = drop_oldest, then no-overwrite = reject_new). Each run spawns
// its tasks on the executor, whose workers run on every core (the calling
// core and board::start_cores):
//   - a pipeline: source -> double -> increment -> sink over three bounded
//     channels, closed stage by stage; the sink checks 2i+1 for i = 1..N in
//     order;
//   - a fan-in: three producers into one channel; the collector checks that
//     each producer's messages arrive exactly once and in order;
//   - a sleeper, which checks that each sleep_for ends no earlier than asked
//     (the source and the producers sleep too);
//   - deferred logging: the tick interrupt (board::start_tick) allocates and
//     commits a packet {sequence number, tick count} with try_alloc (never
//     waiting in the handler); its commit wakes the logger task suspended
//     in claim_async (the waker runs in the interrupt handler), which prints
//     `log seq=N tick=N` and frees the packet. The logger waits with no
//     timeout, so a wake-up lost between the handler and the task hangs the
//     run. It pauses now and then so the buffer fills and packets are lost by
//     the policy under test. After the last packet the handler commits an
//     end-of-run packet (retrying on later ticks while there is no room),
//     on which the logger finishes.
// After each run one line:
//   summary mode=M sent=N received=N produced=N claimed=N dropped=N tasks=N
//     sent / received   channel messages sent and received (every channel,
//                       pipeline stages included); must be equal and equal
//                       to the scenario's total
//     produced          packets the tick handler tried to allocate
//     claimed           packets the logger claimed (= `log` lines printed)
//     dropped           packets lost: overwritten by drop_oldest (counted by
//                       the buffer's drop callback), or refused by try_alloc
//                       for want of room (no-overwrite; also counted in
//                       overwrite mode, where it does not happen)
//     tasks             tasks of the run that completed successfully
// checks produced == claimed + dropped, sent == received and the buffer's own
// counters, then at the end prints `demo: PASS` (or `demo: FAIL <reason>`)
// and exits with status 0 (or 1) through board::exit.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <sluice/channel.hpp>
#include <sluice/executor.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/packet_buffer.hpp>
#include <sluice/port.hpp>
#include <sluice/sleep.hpp>
#include <sluice/task.hpp>

#include "board.hpp"

namespace {

constexpr sluice::duration milliseconds(std::int64_t n) {
  return sluice::duration{n * 1'000'000};
}

// ---- the scenario's sizes ---------------------------------------------------

constexpr std::uint32_t pipeline_messages = 200;
constexpr std::uint32_t fan_in_producers = 3;
constexpr std::uint32_t fan_in_messages = 100;  // per producer
// Every message crosses each of the pipeline's three channels once.
constexpr std::uint32_t messages_per_run =
    3 * pipeline_messages + fan_in_producers * fan_in_messages;
constexpr std::uint32_t packets_per_run = 96;
constexpr std::uint32_t packet_words = 3;  // header word, sequence number, tick count
constexpr std::uint32_t buffer_words = 32;
constexpr std::uint32_t log_burst = 16;  // the logger pauses after this many packets
// Long enough for about twice as many ticks as the buffer holds packets.
constexpr std::int64_t log_pause_ms = 20;
constexpr std::uint32_t tick_hz = 1000;
constexpr std::uint32_t sleeps = 5;
constexpr std::int64_t sleep_ms = 2;
// logger, source, two stages, sink, producers, collector, sleeper
constexpr std::uint32_t tasks_per_run = 5 + fan_in_producers + 2;

// Tasks alive at once: one run's tasks, the run itself and the demo task.
constexpr std::uint32_t max_tasks = tasks_per_run + 2;
// Each task takes two blocks (header and frame); nested task frames one.
constexpr std::size_t frame_block = 512;
constexpr std::size_t frame_blocks = 2 * max_tasks + 4;

// ---- console ----------------------------------------------------------------

// One line built in place and written with one board::write.
class line {
 public:
  line& text(const char* s) noexcept {
    while (*s != '\0' && length_ < sizeof buffer_ - 1)
      buffer_[length_++] = *s++;
    return *this;
  }
  line& number(std::uint32_t value) noexcept {
    char digits[10];
    std::size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (n != 0 && length_ < sizeof buffer_ - 1)
      buffer_[length_++] = digits[--n];
    return *this;
  }
  void put() noexcept {
    buffer_[length_++] = '\n';
    board::write(buffer_, length_);
  }

 private:
  char buffer_[120];
  std::size_t length_ = 0;
};

// The first failure wins; later ones are consequences.
std::atomic<const char*> first_failure{nullptr};

bool fail(const char* reason) noexcept {
  const char* none = nullptr;
  // Relaxed: the message is a string literal; nothing else is published.
  (void)first_failure.compare_exchange_strong(none, reason, std::memory_order_relaxed);
  return false;
}

[[noreturn]] void finish() noexcept {
  // Relaxed: read by the last task after every other task was joined.
  const char* failure = first_failure.load(std::memory_order_relaxed);
  if (failure == nullptr) {
    line{}.text("demo: PASS").put();
    board::exit(0);
  }
  line{}.text("demo: FAIL ").text(failure).put();
  board::exit(1);
}

// ---- one run's state ---------------------------------------------------------

// One channel type for all: each distinct static_channel<T, N> brings its
// own copy of the engine and of the awaiters (about 0.8 KiB of Cortex-M3
// code), so a small image keeps to few of them.
using small_channel = sluice::static_channel<std::uint32_t, 4>;

struct run_channels {
  small_channel to_double;
  small_channel to_increment;
  small_channel to_sink;
  small_channel fan_in;
};

// A channel closes for good, so each run has its own.
constinit run_channels channels[2];

// The counters are relaxed: each is read for the summary only after the
// tasks that write it were joined (the join's acquire orders them). The
// handler's counters are final before it commits the end-of-run packet
// (release), which the logger claims (acquire) before it is joined.
struct run_state {
  const char* mode;
  run_channels* channels;
  sluice::packet_buffer* buffer = nullptr;
  std::atomic<std::uint32_t> sent{0};
  std::atomic<std::uint32_t> received{0};
  std::atomic<std::uint32_t> produced{0};
  std::atomic<std::uint32_t> refused{0};      // try_alloc found no room
  std::atomic<std::uint32_t> overwritten{0};  // drop callback calls
  bool end_committed = false;                 // the handler's own
  std::uint32_t claimed = 0;                  // the logger's own

  [[nodiscard]] std::uint32_t dropped() const noexcept {
    // Relaxed: read after the logger was joined (see above).
    return refused.load(std::memory_order_relaxed) + overwritten.load(std::memory_order_relaxed);
  }
};

run_state runs[2] = {{.mode = "overwrite", .channels = &channels[0]},
                     {.mode = "no-overwrite", .channels = &channels[1]}};

// Packet storage: static words, no heap.
std::uint32_t buffer_storage[2][buffer_words];

// Called by the buffer in the producer's context (the tick interrupt) once
// per packet that drop_oldest discards.
void count_overwritten(void* context, const std::uint32_t*, std::uint32_t) noexcept {
  // Relaxed: see run_state.
  static_cast<run_state*>(context)->overwritten.fetch_add(1, std::memory_order_relaxed);
}

sluice::packet_buffer overwrite_buffer({.storage = buffer_storage[0],
                                        .size_words = buffer_words,
                                        .policy = sluice::overflow_policy::drop_oldest,
                                        .on_drop = &count_overwritten,
                                        .context = &runs[0]});
sluice::packet_buffer reject_buffer({.storage = buffer_storage[1],
                                     .size_words = buffer_words,
                                     .policy = sluice::overflow_policy::reject_new,
                                     .context = &runs[1]});

// ---- the tick interrupt --------------------------------------------------------

// The run the tick handler produces for; null between runs. Acquire/release
// [T1]: the handler sees the run's buffer as the run task set it up.
std::atomic<run_state*> active_run{nullptr};
// Ticks since the first start_tick (the handler is its only writer).
std::atomic<std::uint32_t> ticks{0};

// The sequence number of the packet that ends a run (not counted as produced).
constexpr std::uint32_t end_of_run = 0xffff'ffff;

// Allocates, fills and commits one packet; false when there is no room.
bool put_packet(run_state& run, std::uint32_t seq, std::uint32_t tick) noexcept {
  // Never waits: an interrupt handler must not.
  auto packet = run.buffer->try_alloc(packet_words);
  if (!packet) return false;
  packet->payload()[0] = seq;
  packet->payload()[1] = tick;
  // Publishes the packet and wakes the logger if it waits in claim_async:
  // its waker runs here, in the interrupt handler.
  std::move(*packet).commit();
  return true;
}

void on_tick() noexcept {
  // Relaxed: only this handler writes it; it is a label in the log.
  const std::uint32_t tick = ticks.load(std::memory_order_relaxed) + 1;
  ticks.store(tick, std::memory_order_relaxed);
  run_state* run = active_run.load(std::memory_order_acquire);  // [T1]
  if (run == nullptr) return;
  // Relaxed: the handler is the only producer, on one core at a time.
  const std::uint32_t seq = run->produced.load(std::memory_order_relaxed);
  if (seq < packets_per_run) {
    run->produced.store(seq + 1, std::memory_order_relaxed);
    if (!put_packet(*run, seq, tick)) run->refused.fetch_add(1, std::memory_order_relaxed);
  } else if (!run->end_committed) {
    // Every packet is out: tell the logger, on a later tick if there is no
    // room now. Its commit also publishes this run's final counts.
    run->end_committed = put_packet(*run, end_of_run, tick);
  }
}

// ---- tasks ------------------------------------------------------------------------
// Each task's first parameter is the frame pool its frame comes from.

// Waits with no timeout: every packet it gets after suspending came with a
// wake from the tick handler, so a lost wake-up hangs the run (and fails it).
sluice::task<bool> logger(sluice::frame_pool&, run_state& run) {
  std::uint32_t next_seq = 0;  // the lowest sequence number still to come
  for (;;) {
    sluice::claimed_packet packet = co_await run.buffer->claim_async();
    if (!packet) co_return fail("logger: claim_async completed without a packet");
    const std::uint32_t seq = packet.payload()[0];
    const std::uint32_t tick = packet.payload()[1];
    packet.reset();
    if (seq == end_of_run) break;
    if (seq < next_seq || seq >= packets_per_run)
      co_return fail("logger: packet sequence numbers out of order");
    next_seq = seq + 1;
    ++run.claimed;
    line{}.text("log seq=").number(seq).text(" tick=").number(tick).put();
    // Pause so that the buffer fills and the policy has to act.
    if (run.claimed % log_burst == 0) co_await sluice::sleep_for(milliseconds(log_pause_ms));
  }
  co_return true;
}

sluice::task<bool> pipeline_source(sluice::frame_pool&, run_state& run) {
  small_channel& out = run.channels->to_double;
  for (std::uint32_t i = 1; i <= pipeline_messages; ++i) {
    if (!co_await out.send_async(i)) co_return fail("pipeline source: channel closed");
    run.sent.fetch_add(1, std::memory_order_relaxed);
    if (i % 50 == 0) co_await sluice::sleep_for(milliseconds(1));
  }
  out.close();
  co_return true;
}

// Receives until `in` is closed and drained, forwarding value * mul + add.
sluice::task<bool> pipeline_stage(sluice::frame_pool&, run_state& run, small_channel& in,
                                  small_channel& out, std::uint32_t mul, std::uint32_t add) {
  for (;;) {
    auto r = co_await in.recv_async();
    if (!r) break;  // closed and drained
    run.received.fetch_add(1, std::memory_order_relaxed);
    if (!co_await out.send_async(r.value() * mul + add))
      co_return fail("pipeline stage: channel closed");
    run.sent.fetch_add(1, std::memory_order_relaxed);
  }
  out.close();
  co_return true;
}

sluice::task<bool> pipeline_sink(sluice::frame_pool&, run_state& run) {
  small_channel& in = run.channels->to_sink;
  for (std::uint32_t i = 1; i <= pipeline_messages; ++i) {
    auto r = co_await in.recv_async();
    if (!r) co_return fail("pipeline sink: closed before the last message");
    run.received.fetch_add(1, std::memory_order_relaxed);
    if (r.value() != 2 * i + 1) co_return fail("pipeline sink: wrong value or order");
  }
  if (auto r = co_await in.recv_async(); r || r.error() != sluice::recv_error::closed)
    co_return fail("pipeline sink: more messages than were sent");
  co_return true;
}

sluice::task<bool> fan_in_producer(sluice::frame_pool&, run_state& run, std::uint32_t id) {
  for (std::uint32_t i = 0; i < fan_in_messages; ++i) {
    if (!co_await run.channels->fan_in.send_async((id << 16) | i))
      co_return fail("fan-in producer: channel closed");
    run.sent.fetch_add(1, std::memory_order_relaxed);
    if (i == fan_in_messages / 2) co_await sluice::sleep_for(milliseconds(1 + id));
  }
  co_return true;
}

sluice::task<bool> fan_in_collector(sluice::frame_pool&, run_state& run) {
  std::uint32_t next[fan_in_producers] = {};
  for (std::uint32_t n = 0; n < fan_in_producers * fan_in_messages; ++n) {
    auto r = co_await run.channels->fan_in.recv_async();
    if (!r) co_return fail("fan-in collector: channel closed");
    run.received.fetch_add(1, std::memory_order_relaxed);
    const std::uint32_t id = r.value() >> 16;
    if (id >= fan_in_producers || (r.value() & 0xffffu) != next[id])
      co_return fail("fan-in collector: message lost, repeated or out of order");
    ++next[id];
  }
  for (std::uint32_t count : next)
    if (count != fan_in_messages) co_return fail("fan-in collector: a producer's count is wrong");
  co_return true;
}

sluice::task<bool> sleeper(sluice::frame_pool&) {
  for (std::uint32_t i = 0; i < sleeps; ++i) {
    const sluice::time_point start = sluice::port::now();
    co_await sluice::sleep_for(milliseconds(sleep_ms));
    if (sluice::port::now() < start + milliseconds(sleep_ms))
      co_return fail("sleeper: woke before its deadline");
  }
  co_return true;
}

// One run of the scenario with `run`'s buffer policy; prints its summary.
sluice::task<bool> run_scenario(sluice::frame_pool& pool, run_state& run) {
  sluice::executor& ex = co_await sluice::current_executor();
  run_channels& ch = *run.channels;
  sluice::join_handle<bool> handles[tasks_per_run];
  std::uint32_t spawned = 0;
  auto spawn = [&](sluice::task<bool> t) {
    sluice::spawn_result<bool> h = ex.spawn(std::move(t));
    if (!h) {
      (void)fail("spawn failed (frame pool or max_tasks too small)");
      return;
    }
    handles[spawned++] = std::move(*h);
  };

  // Relaxed: the handler reads the run through active_run [T1].
  run.buffer = &run == &runs[0] ? &overwrite_buffer : &reject_buffer;
  active_run.store(&run, std::memory_order_release);  // [T1]
  spawn(logger(pool, run));
  spawn(pipeline_sink(pool, run));
  spawn(pipeline_stage(pool, run, ch.to_increment, ch.to_sink, 1, 1));
  spawn(pipeline_stage(pool, run, ch.to_double, ch.to_increment, 2, 0));
  spawn(pipeline_source(pool, run));
  spawn(fan_in_collector(pool, run));
  for (std::uint32_t id = 0; id < fan_in_producers; ++id)
    spawn(fan_in_producer(pool, run, id));
  spawn(sleeper(pool));
  board::start_tick(tick_hz, &on_tick);

  std::uint32_t completed = 0;
  for (std::uint32_t i = 0; i < spawned; ++i) {
    sluice::join_result<bool> r = co_await handles[i];
    if (r && *std::move(r)) ++completed;
  }
  board::stop_tick();
  active_run.store(nullptr, std::memory_order_release);  // [T1]

  const std::uint32_t sent = run.sent.load(std::memory_order_relaxed);
  const std::uint32_t received = run.received.load(std::memory_order_relaxed);
  const std::uint32_t produced = run.produced.load(std::memory_order_relaxed);
  const std::uint32_t dropped = run.dropped();
  line{}
      .text("summary mode=")
      .text(run.mode)
      .text(" sent=")
      .number(sent)
      .text(" received=")
      .number(received)
      .text(" produced=")
      .number(produced)
      .text(" claimed=")
      .number(run.claimed)
      .text(" dropped=")
      .number(dropped)
      .text(" tasks=")
      .number(completed)
      .put();

  // The buffer's own counters: each buffer serves one run, so they are exact.
  const sluice::packet_buffer_counters c = run.buffer->counters();
  if (completed != tasks_per_run) co_return fail("a task failed or was not spawned");
  if (sent != received) co_return fail("sent != received");
  if (sent != messages_per_run) co_return fail("sent is not the scenario's message count");
  if (produced != packets_per_run) co_return fail("produced is not the scenario's packet count");
  if (produced != run.claimed + dropped) co_return fail("produced != claimed + dropped");
  // (The end-of-run packet is committed and claimed once more.)
  if (c.committed != produced - run.refused.load(std::memory_order_relaxed) + 1 ||
      c.claimed != run.claimed + 1 || c.dropped != run.overwritten.load(std::memory_order_relaxed))
    co_return fail("the packet buffer's counters disagree with the demo's");
  co_return true;
}

// The demo: both runs, then the verdict; ends the program.
sluice::task<bool> demo(sluice::frame_pool& pool) {
  bool ok = true;
  for (run_state& run : runs) {
    sluice::task<bool> t = run_scenario(pool, run);
    if (!t.valid()) {
      ok = fail("no frame for a run (frame pool too small)");
      break;
    }
    ok = co_await std::move(t) && ok;
  }
  if (!ok) (void)fail("a run failed");
  finish();
}

// ---- start-up ------------------------------------------------------------------

alignas(sluice::frame_pool::block_alignment) std::byte
    frame_storage[sluice::frame_pool::storage_for(frame_block, frame_blocks)];
constinit sluice::run_queue_slot run_queue[max_tasks];

// Published to the other cores before they start (release in main, acquire
// in secondary_main).
std::atomic<sluice::executor*> the_executor{nullptr};

void secondary_main(unsigned) noexcept {
  the_executor.load(std::memory_order_acquire)->run_worker();
}

}  // namespace

int main() {
  line{}.text("demo: start cores=").number(board::core_count()).put();
  sluice::frame_pool pool{frame_storage, sizeof frame_storage, frame_block};
  sluice::executor ex{{.max_tasks = max_tasks,
                       .pool = &pool,
                       .threads = sluice::worker_threads::none,
                       .run_queue = run_queue}};
  sluice::spawn_result<bool> d = ex.spawn(demo(pool));
  if (!d) {
    (void)fail("spawn of the demo task failed");
    finish();
  }
  the_executor.store(&ex, std::memory_order_release);
  board::start_cores(&secondary_main);
  // This core is a worker too. The demo task ends the program, so the
  // executor is never shut down and run_worker does not return.
  ex.run_worker();
  (void)fail("the executor stopped before the demo ended");
  finish();
}
