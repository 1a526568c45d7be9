// sluice::packet_buffer: a multi-producer, single-consumer ring of
// variable-size packets on caller-provided 32-bit words, with Zephyr
// mpsc_pbuf semantics (see detail/pbuf_core.hpp for the algorithm).
//
//   std::uint32_t storage[256];
//   sluice::packet_buffer pb({.storage = storage, .size_words = 256});
//   if (auto a = pb.try_alloc(4)) {          // producer: alloc, fill, commit
//     a->payload()[0] = 42;
//     std::move(*a).commit();
//   }
//   if (auto c = pb.try_claim()) use(c.payload());   // consumer: freed when c goes
//
// Packet layout: the first word carries the buffer's two header bits (valid,
// busy) in bits 0..1. Unless a `packet_words` callback is given, the
// packet's length in words is kept in bits 2..31 of that first word and the
// user's data starts at payload() (word 1). With a callback, bits 2..31 are
// the user's (set_user_bits) and the callback reads the length from them.
#pragma once

#include <cstdint>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/deadline_awaiter.hpp>
#include <sluice/detail/pbuf_core.hpp>
#include <sluice/poll.hpp>
#include <sluice/port.hpp>
#include <sluice/result.hpp>
#include <sluice/time.hpp>
#include <sluice/waker.hpp>

namespace sluice {

// Why an allocation failed.
enum class alloc_error : std::uint8_t {
  too_large,  // never fits: more words than the whole buffer, or zero (a
              // packet holds at least its header word)
  no_room,    // not now (full, or held back by uncommitted/claimed packets)
  timeout,    // no room before the deadline
};

constexpr const char* to_string(alloc_error e) noexcept {
  switch (e) {
    case alloc_error::too_large:
      return "too_large";
    case alloc_error::no_room:
      return "no_room";
    case alloc_error::timeout:
      return "timeout";
  }
  return "?";
}

// What happens when a packet does not fit.
enum class overflow_policy : std::uint8_t {
  reject_new,   // allocation fails (or waits); producers are lock-free
  drop_oldest,  // the oldest committed packets are dropped (and reported)
};

enum class utilization_tracking : std::uint8_t { off, track_max };

// Who uses the buffer. drop_oldest takes a short lock to make room (drop,
// step over a claimed packet); claim and free take it only for a while
// after a drop (the consumer's bias, pbuf_core.hpp), and always in a build
// optimised for size; an allocation that fits, commit and a claim of an
// empty buffer take none. With `any`, on
// bare metal, the producer that makes room and the consumer hold the lock
// with interrupts masked (SLUICE_PBUF_CONSUMER_MASKS, a couple of
// instructions), so no handler can interrupt a holder. Hosted nobody masks
// (that would be two system calls a turn): the lock names its holder's
// thread, and a producer in a signal handler that finds its own thread
// holding it (it interrupted that thread's turn) gives up (no_room) at once
// instead of waiting for ever. As a port without thread tokens cannot tell
// a handler from a thread, a producer there masks, and any producer that
// finds the consumer holding the lock past a short spin (a consumer thread
// preempted inside claim) gives up the same way; a timed allocation then
// waits, and the consumer's unlock wakes it. With tokens, with
// `threads_only`, or where the consumer masks, a producer on another
// thread waits for the consumer. The other way round, a consumer in a
// signal handler that interrupted its own thread's producer while it
// makes room (hosted, with tokens) may find it holding the lock, and
// cannot wait either: its claim then finds nothing, and its free is left
// to that producer, which frees the packet
// as soon as its turn ends (at most 14 such frees at once; one more stops
// the program, naming it).
// `threads_only` promises that no interrupt or signal handler ever calls the
// buffer and skips the critical section. reject_new takes no lock either
// way.
enum class buffer_contexts : std::uint8_t { any, threads_only };

struct packet_buffer_config {
  std::uint32_t* storage = nullptr;
  // 1 to 2^29. A debug build stops on other sizes or no storage, naming
  // the mistake; a release build makes a buffer of no words, which
  // answers every allocation with too_large and never touches storage. A
  // power of two is the fastest size: slots and positions are then masks
  // (other sizes divide and compare).
  std::uint32_t size_words = 0;
  overflow_policy policy = overflow_policy::reject_new;
  utilization_tracking utilization = utilization_tracking::off;
  buffer_contexts contexts = buffer_contexts::any;
  // Called once per dropped packet (drop_oldest), contents intact, outside
  // any lock, in the context of the producer that needed the room.
  void (*on_drop)(void* context, const std::uint32_t* packet,
                  std::uint32_t words) noexcept = nullptr;
  // The length of a packet from its words; null: length in bits 2..31. It
  // reads the words it is given and nothing else (a put asks it about a
  // copy of the words it puts, before they are in the buffer), and may be
  // called from any producer context at once (puts and commit ask it, in
  // handlers too), and from the consumer and droppers. An answer of 0, or
  // one that runs past the storage's end from where the packet starts, for
  // a packet in the buffer stops the program with a message that names it
  // (not in a release build optimised for size).
  std::uint32_t (*packet_words)(void* context, const std::uint32_t* packet) noexcept = nullptr;
  void* context = nullptr;
};

// Wrapping counts. A commit is counted when its packet leaves the buffer
// (claimed, dropped or drained by panic_flush), so `committed` does not yet
// include committed packets still waiting to be claimed: counting at commit
// would cost every producer a read-modify-write on a shared cache line.
struct packet_buffer_counters {
  std::uint32_t committed;  // claimed + dropped + flushed
  std::uint32_t claimed;
  std::uint32_t dropped;
};

class packet_buffer;

// A packet allocated and not yet published. It must end with commit() or
// abandon(); dropping it otherwise is a broken precondition, which debug
// builds stop at. A release build abandons it then, so that its words do
// not stay reserved and hold back every packet after them. It must not
// outlive its packet_buffer (or the buffer's storage).
class allocated_packet {
 public:
  allocated_packet(allocated_packet&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)), span_(std::exchange(other.span_, {})) {}
  allocated_packet& operator=(allocated_packet&&) = delete;
  allocated_packet(const allocated_packet&) = delete;
  ~allocated_packet() {
    SLUICE_ASSERT(core_ == nullptr, "allocated_packet destroyed without commit() or abandon()");
    if (core_ != nullptr) core_->abandon(span_.words, span_.size);
  }

  // All words; word 0 is the header word (write it with set_user_bits).
  [[nodiscard]] std::uint32_t* words() noexcept { return span_.words; }
  [[nodiscard]] std::uint32_t size() const noexcept { return span_.size; }
  // The words after the header word. Requires: not ended (after commit(),
  // abandon() or a move, words() is null and both sizes are 0).
  [[nodiscard]] std::uint32_t* payload() noexcept {
    SLUICE_ASSERT(core_ != nullptr, "allocated_packet: payload() after it was moved or ended");
    return span_.words + 1;
  }
  [[nodiscard]] std::uint32_t payload_size() const noexcept {
    return span_.size != 0 ? span_.size - 1 : 0;
  }

  // Sets bits 2..31 of the header word to `bits` (given unshifted).
  // Requires: a packet_words callback (otherwise those bits hold the length).
  void set_user_bits(std::uint32_t bits) noexcept {
    SLUICE_ASSERT(core_ != nullptr,
                  "allocated_packet: set_user_bits() after it was moved or ended");
    SLUICE_ASSERT(core_->words != nullptr,
                  "allocated_packet: set_user_bits() needs a packet_words callback (without one, "
                  "bits 2..31 of the header hold the length)");
    SLUICE_ASSERT(bits < (std::uint32_t{1} << (32 - detail::pbuf_hdr_bits)),
                  "allocated_packet: user bits wider than the header's 30");
    // A release build keeps the length there (the packet stays whole).
    if (core_->words == nullptr) return;
    // Relaxed: the producer's own word until commit publishes it.
    detail::atomic_ref<std::uint32_t>(*span_.words)
        .store(bits << detail::pbuf_hdr_bits, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t user_bits() const noexcept {
    // Relaxed: the producer's own word until commit (set_user_bits wrote it).
    return detail::atomic_ref<std::uint32_t>(*span_.words).load(std::memory_order_relaxed) >>
           detail::pbuf_hdr_bits;
  }

  // Publishes the packet to the consumer. A packet whose words give
  // another length than was allocated (bits 2..31 of word 0 changed without
  // a packet_words callback, or a callback that reads another length)
  // would be misread by the consumer (words of the next packets taken as
  // its own, or its own taken for packets): a debug build names it, a
  // release build abandons the packet instead (the consumer never sees it)
  // and returns false. True: published.
  SLUICE_PBUF_INLINE bool commit() && noexcept {
    SLUICE_ASSERT(core_ != nullptr, "allocated_packet: commit() after it was moved or ended");
    const bool lengths = core_->words == nullptr;  // the length in the header
    const bool whole = lengths ? user_bits() == span_.size
                               : core_->words(core_->context, span_.words) == span_.size;
    SLUICE_ASSERT(whole || !lengths,
                  "allocated_packet: bits 2..31 of word 0 hold the length without a packet_words "
                  "callback, and were changed");
    SLUICE_ASSERT(whole,
                  "allocated_packet: the packet_words callback reads another length than was "
                  "allocated (set the user bits first)");
    if (!whole) {
      std::move(*this).abandon();
      return false;
    }
    // The words are the consumer's now: the handle forgets them (words()
    // is null), so that a late write cannot reach a published packet.
    detail::pbuf_core* const core = std::exchange(core_, nullptr);
    const detail::pbuf_span span = std::exchange(span_, {});
    if (lengths) {
      // The header as just checked: the core need not load it again.
      core->commit(span.words, span.size << detail::pbuf_hdr_bits);
    } else {
      core->commit(span.words);
    }
    return true;
  }
  // Gives the words back as padding; the consumer never sees them. The
  // handle forgets them, as after commit.
  void abandon() && noexcept {
    SLUICE_ASSERT(core_ != nullptr, "allocated_packet: abandon() after it was moved or ended");
    const detail::pbuf_span span = std::exchange(span_, {});
    std::exchange(core_, nullptr)->abandon(span.words, span.size);
  }

 private:
  friend class packet_buffer;
  friend class alloc_awaiter;
  allocated_packet(detail::pbuf_core* core, detail::pbuf_span span) noexcept
      : core_(core), span_(span) {}
  // The packet just reserved at `span`: in the default layout its header
  // word gets the length now.
  static allocated_packet reserved(detail::pbuf_core* core, detail::pbuf_span span) noexcept {
    if (core->words == nullptr) {
      // Relaxed: the producer's own word until commit.
      detail::atomic_ref<std::uint32_t>(*span.words)
          .store(span.size << detail::pbuf_hdr_bits, std::memory_order_relaxed);
    }
    return allocated_packet(core, span);
  }
  detail::pbuf_core* core_;
  detail::pbuf_span span_;
};

// A claimed packet, freed when the handle goes (or on reset()). Empty when
// nothing was claimed. It must not outlive its packet_buffer (or the
// buffer's storage).
class claimed_packet {
 public:
  claimed_packet() noexcept = default;
  claimed_packet(claimed_packet&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)), span_(std::exchange(other.span_, {})) {}
  claimed_packet& operator=(claimed_packet&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::exchange(other.core_, nullptr);
      span_ = std::exchange(other.span_, {});
    }
    return *this;
  }
  claimed_packet(const claimed_packet&) = delete;
  claimed_packet& operator=(const claimed_packet&) = delete;
  SLUICE_PBUF_INLINE ~claimed_packet() { reset(); }

  [[nodiscard]] explicit operator bool() const noexcept { return core_ != nullptr; }
  [[nodiscard]] const std::uint32_t* words() const noexcept { return span_.words; }
  [[nodiscard]] std::uint32_t size() const noexcept { return span_.size; }
  // Empty: null and 0.
  [[nodiscard]] const std::uint32_t* payload() const noexcept {
    return span_.words != nullptr ? span_.words + 1 : nullptr;
  }
  [[nodiscard]] std::uint32_t payload_size() const noexcept {
    return span_.size != 0 ? span_.size - 1 : 0;
  }
  [[nodiscard]] std::uint32_t user_bits() const noexcept {
    SLUICE_ASSERT(core_ != nullptr, "claimed_packet: user_bits() of an empty handle");
    // Relaxed: claimed, so the header is the consumer's until freed.
    return detail::atomic_ref<std::uint32_t>(*span_.words).load(std::memory_order_relaxed) >>
           detail::pbuf_hdr_bits;
  }

  // Frees the packet now; the handle is empty after.
  SLUICE_PBUF_INLINE void reset() noexcept {
    if (core_ != nullptr) std::exchange(core_, nullptr)->free(std::exchange(span_, {}).words);
  }

 private:
  friend class packet_buffer;
  friend class claim_awaiter;
  claimed_packet(detail::pbuf_core* core, detail::pbuf_span span) noexcept
      : core_(span.words != nullptr ? core : nullptr), span_(span) {}
  detail::pbuf_core* core_ = nullptr;
  detail::pbuf_span span_;
};

// `co_await pb.claim_async()`: suspends the consumer task until a packet is
// committed. Producers pay nearly nothing for it: commit runs the light side
// of the port's asymmetric fence and loads the waiter word ([PB4] in
// src/packet_buffer.cpp); the heavy side is paid here, when the task is
// about to suspend.
class claim_awaiter : public pollable_awaiter<claim_awaiter> {
 public:
  explicit claim_awaiter(detail::pbuf_core& core) noexcept
      : core_(core), waiting_(core.data_waiters) {}
  claim_awaiter(const claim_awaiter&) = delete;
  claim_awaiter& operator=(const claim_awaiter&) = delete;
  // A packet claimed by a ready poll leaves the buffer only through
  // await_resume ("ready is final", poll.hpp): an awaiter destroyed holding
  // one means its driver broke that rule, and the packet would be freed
  // undelivered, so debug builds report it. (waiting_ leaves the list.)
  ~claim_awaiter() {
    SLUICE_ASSERT(
        !packet_,
        "a claim awaiter was destroyed holding a claimed packet, after a ready poll and "
        "before await_resume (a driver destroyed a coroutine whose poll hook said ready)");
  }

  bool try_complete() noexcept {
    // Ready is final: a packet held here leaves through await_resume.
    SLUICE_ASSERT(!packet_, "a claim awaiter was polled again after a ready poll");
    // A release build keeps the packet it has rather than claim a second
    // one over it, which would then never be delivered or freed.
    if (packet_) return true;
    const detail::pbuf_span s = core_.try_claim();
    if (s.words == nullptr) return false;
    packet_.core_ = &core_;
    packet_.span_ = s;
    return true;
  }

  // Leaves the waiter list (with_timeout, when its timeout wins).
  void withdraw() noexcept { waiting_.withdraw(); }

  poll_status poll(const waker& w) noexcept {
    // [PB4]: the heavy fence after the listing, before the re-check.
    return waiting_.poll(
        w, [this]() noexcept { return try_complete(); }, &detail::pbuf_core::wait_fence);
  }

  claimed_packet await_resume() noexcept { return std::move(packet_); }
  // In place of await_resume when the deadline won (claim_async_for):
  // nothing was claimed, an empty handle.
  claimed_packet timed_out() noexcept {
    SLUICE_ASSERT(!packet_, "a claim awaiter timed out holding a claimed packet");
    return std::move(packet_);
  }

 private:
  detail::pbuf_core& core_;
  detail::polled_waiter waiting_;  // for a commit
  claimed_packet packet_;
};

// `co_await pb.alloc_async(words)`: suspends a producer task until the
// packet fits, and resumes with it; with too_large at once for a request
// that never fits. It waits as alloc_until does: it drops nothing, with
// drop_oldest too, and the consumer's free (or its passing of padding at
// the front) wakes it ([PB4] in src/packet_buffer.cpp: a free pays the light
// side of the port's asymmetric fence and a load of the waiter word; the
// heavy side is paid here, before the task suspends). Tasks only: never
// an interrupt or signal handler.
class alloc_awaiter : public pollable_awaiter<alloc_awaiter> {
 public:
  alloc_awaiter(detail::pbuf_core& core, std::uint32_t words) noexcept
      : core_(core), waiting_(core.space_waiters), words_(words) {}
  alloc_awaiter(const alloc_awaiter&) = delete;
  alloc_awaiter& operator=(const alloc_awaiter&) = delete;
  // Ready is final (poll.hpp): a packet reserved by a ready poll leaves
  // only through await_resume. An awaiter destroyed holding one means its
  // driver broke that rule; debug builds report it, and a release build
  // abandons the words, so that they do not hold back every later packet.
  // (waiting_ leaves the list, passing on a wake it took and did not use.)
  ~alloc_awaiter() {
    SLUICE_ASSERT(
        span_.words == nullptr,
        "an alloc awaiter was destroyed holding an allocated packet, after a ready poll and "
        "before await_resume (a driver destroyed a coroutine whose poll hook said ready)");
    if (span_.words != nullptr) core_.abandon(span_.words, span_.size);
  }

  bool try_complete() noexcept {
    SLUICE_ASSERT(status_ == detail::pbuf_status::no_room,
                  "an alloc awaiter was polled again after a ready poll");
    // A release build keeps what it has rather than reserve a second
    // packet, which nobody would ever end.
    if (status_ != detail::pbuf_status::no_room) return true;
    detail::pbuf_span span;
    const detail::pbuf_status status = core_.try_alloc_without_drop(words_, span);
    if (status == detail::pbuf_status::no_room) return false;
    status_ = status;  // ok or too_large: a waiting allocation has no deadline
    span_ = span;
    return true;
  }

  // Leaves the waiter list (with_timeout, when its timeout wins).
  void withdraw() noexcept { waiting_.withdraw(); }

  poll_status poll(const waker& w) noexcept {
    // [PB4]: the heavy fence after the listing, before the re-check.
    return waiting_.poll(
        w, [this]() noexcept { return try_complete(); }, &detail::pbuf_core::wait_fence);
  }

  [[nodiscard]] result<allocated_packet, alloc_error> await_resume() noexcept {
    if (status_ == detail::pbuf_status::too_large) return alloc_error::too_large;
    SLUICE_ASSERT(span_.words != nullptr,
                  "alloc awaiter: await_resume without a packet (before a ready poll, or a "
                  "second time)");
    // A release build answers the misuse as a try would: no room, nothing
    // taken.
    if (span_.words == nullptr) return alloc_error::no_room;
    return allocated_packet::reserved(&core_, std::exchange(span_, {}));
  }
  // In place of await_resume when the deadline won (alloc_async_for):
  // nothing was allocated.
  [[nodiscard]] result<allocated_packet, alloc_error> timed_out() noexcept {
    SLUICE_ASSERT(span_.words == nullptr, "an alloc awaiter timed out holding a packet");
    return alloc_error::timeout;
  }

 private:
  detail::pbuf_core& core_;
  detail::polled_waiter waiting_;  // for room
  detail::pbuf_span span_;
  std::uint32_t words_;
  detail::pbuf_status status_ = detail::pbuf_status::no_room;  // no_room: not done yet
};

class packet_buffer {
 public:
  explicit packet_buffer(const packet_buffer_config& config) noexcept
      : core_(to_core_config(config)) {}
  packet_buffer(const packet_buffer&) = delete;
  packet_buffer& operator=(const packet_buffer&) = delete;

  // ---- producers (any number, any context for the try_/put forms) ----

  // Never waits. drop_oldest may drop packets to make room.
  [[nodiscard]] SLUICE_PBUF_INLINE result<allocated_packet, alloc_error> try_alloc(
      std::uint32_t words) noexcept {
    if (const detail::pbuf_span fast = core_.try_alloc_fast(words); fast.words != nullptr)
      return allocated_packet::reserved(&core_, fast);
    detail::pbuf_span span;
    return finish_alloc(core_.try_alloc_rest(words, span), span);
  }
  // Waits for room until the deadline. Drops nothing, with drop_oldest too
  // (as Zephyr's alloc with a timeout): it waits for the consumer to free.
  // Never waits in an interrupt handler or inside a critical section
  // (port::may_block() false): there it is one try, as try_alloc without
  // dropping. A POSIX signal handler, which the hosted port cannot tell
  // from its thread, must use try_alloc.
  [[nodiscard]] result<allocated_packet, alloc_error> alloc_until(std::uint32_t words,
                                                                  time_point deadline) noexcept {
    detail::pbuf_span span;
    return finish_alloc(core_.alloc_until(words, deadline, span), span);
  }
  [[nodiscard]] result<allocated_packet, alloc_error> alloc_for(std::uint32_t words,
                                                                duration timeout) noexcept {
    return alloc_until(words, deadline_after(timeout));
  }
  // In a task: waits for room as alloc_until does, without a deadline of
  // its own (alloc_async_for below gives it one; a task that stops waiting
  // drops the awaiter, which leaves the waiter list). Errors: too_large
  // only.
  [[nodiscard]] alloc_awaiter alloc_async(std::uint32_t words) noexcept {
    return alloc_awaiter(core_, words);
  }
  // As alloc_async, giving up after `timeout` (or at `deadline`): errors
  // too_large or timeout. The deadline is kept by the task's executor
  // timers.
  using timed_alloc_awaiter = detail::deadline_awaiter<alloc_awaiter, detail::timeout_result::own>;
  using timed_claim_awaiter = detail::deadline_awaiter<claim_awaiter, detail::timeout_result::own>;
  [[nodiscard]] timed_alloc_awaiter alloc_async_for(std::uint32_t words,
                                                    duration timeout) noexcept {
    return alloc_async_until(words, deadline_after(timeout));
  }
  [[nodiscard]] timed_alloc_awaiter alloc_async_until(std::uint32_t words,
                                                      time_point deadline) noexcept {
    return timed_alloc_awaiter(deadline, std::in_place, core_, words);
  }

  // Short puts: copy and publish in one step; never wait; false when there
  // was no room. `first` is the complete first word (its header bits are
  // set by the buffer); its bits 2..31 must give the length the way the
  // buffer reads it (the default: the length itself). A put whose words
  // give another length than it puts would hand the consumer a wrong
  // packet (and lose or misread the next ones): a debug build names it, a
  // release build refuses it (false, nothing taken).
  [[nodiscard]] bool put_word(std::uint32_t first) noexcept { return core_.put_word(first); }
  [[nodiscard]] bool put_word_ext(std::uint32_t first, const void* pointer) noexcept {
    return core_.put_word_ext(first, pointer);
  }
  [[nodiscard]] bool put_data(const std::uint32_t* words, std::uint32_t count) noexcept {
    return core_.put_data(words, count);
  }
  // The first word of a default-layout packet of `words` words.
  [[nodiscard]] static constexpr std::uint32_t default_header(std::uint32_t words) noexcept {
    return words << detail::pbuf_hdr_bits;
  }

  // ---- the consumer (one) ----
  // Claims, frees (a claimed_packet's reset or destruction) and
  // panic_flush are the consumer's, one at a time: a claimed_packet may
  // move to another thread, but its free must not run while the consumer
  // claims, a claim_until or claim_async that waits included (both tidy the
  // read side; together they can strand it for good).
  // With reject_new, a debug build names two such calls that overlap.
  // It may hold several claimed packets. With drop_oldest, a held packet
  // that a producer stepped over re-enters the stream ahead: a claim that
  // reaches it passes it (it is not delivered twice) and returns what
  // follows.

  [[nodiscard]] SLUICE_PBUF_INLINE claimed_packet try_claim() noexcept {
    return claimed_packet(&core_, core_.try_claim());
  }
  // Waits for a packet until the deadline; in an interrupt handler or
  // inside a critical section, one try (as alloc_until).
  [[nodiscard]] claimed_packet claim_until(time_point deadline) noexcept {
    return claimed_packet(&core_, core_.claim_until(deadline));
  }
  [[nodiscard]] claimed_packet claim_for(duration timeout) noexcept {
    return claim_until(deadline_after(timeout));
  }
  [[nodiscard]] claim_awaiter claim_async() noexcept { return claim_awaiter(core_); }
  // As claim_async, giving up after `timeout` (or at `deadline`): an
  // empty handle then.
  [[nodiscard]] timed_claim_awaiter claim_async_for(duration timeout) noexcept {
    return claim_async_until(deadline_after(timeout));
  }
  [[nodiscard]] timed_claim_awaiter claim_async_until(time_point deadline) noexcept {
    return timed_claim_awaiter(deadline, std::in_place, core_);
  }

  // A context that took over and never returns (a panic handler) drains
  // every committed packet through fn, without the consumer or the lock.
  // Meant for when every other core has stopped: a producer still dropping
  // on another core may report or zero a packet while this reads it.
  std::uint32_t panic_flush(void (*fn)(void* context, const std::uint32_t* packet,
                                       std::uint32_t words) noexcept,
                            void* context) noexcept {
    return core_.panic_flush(fn, context);
  }

  // ---- observers (may be stale when they return) ----

  [[nodiscard]] std::uint32_t capacity_words() const noexcept { return core_.size; }
  [[nodiscard]] std::uint32_t approx_used_words() const noexcept { return core_.used_words(); }
  // Requires: constructed with utilization_tracking::track_max.
  [[nodiscard]] std::uint32_t max_used_words() const noexcept {
    SLUICE_ASSERT((core_.flags & detail::pbuf_flag_max_utilization) != 0,
                  "packet_buffer::max_used_words() needs utilization_tracking::track_max");
    // Relaxed: a statistic.
    return core_.max_usage.load(std::memory_order_relaxed);
  }
  // Whether a claim now would find something to take; any context's call,
  // the consumer's or another's, while the consumer runs. A packet
  // allocated and not committed holds back those after it (false there).
  // With drop_oldest: a committed packet past padding and held packets,
  // looked at in a dropper's turn (true where it cannot look: a handler
  // that interrupted a turn on its own thread). With reject_new: the packet
  // at the claim position is committed, or is padding (an abandoned packet,
  // the tail at the wrap), which only a claim passes: a consumer that
  // claims only when this says yes still brings that room back. With
  // nothing reserved past the claim position it answers from two indices.
  // Else it reads one header, masked, in a handshake with the consumer: a
  // free meanwhile waits for it before it zeroes words. Hosted that look
  // costs two signal-mask calls and a membarrier (microseconds), and a
  // thread preempted inside it holds the consumer's frees up until it
  // runs again: ask from other threads now and then (a flush loop that
  // sleeps), not in a tight loop.
  [[nodiscard]] bool is_pending() noexcept { return core_.is_pending(); }
  [[nodiscard]] packet_buffer_counters counters() const noexcept {
    // Relaxed: statistics, each read alone (the sum may mix moments).
    const std::uint32_t claimed = core_.claimed.load(std::memory_order_relaxed);
    const std::uint32_t dropped = core_.dropped.load(std::memory_order_relaxed);
    return {claimed + dropped + core_.flushed.load(std::memory_order_relaxed), claimed, dropped};
  }

 private:
  static detail::pbuf_config to_core_config(const packet_buffer_config& c) noexcept {
    detail::pbuf_config out;
    out.buffer = c.storage;
    out.size = c.size_words;
    // Each choice is 0 or 1: shifted to its flag's bit.
    static_assert(detail::pbuf_flag_overwrite == 1u << 1 &&
                  detail::pbuf_flag_max_utilization == 1u << 2 &&
                  detail::pbuf_flag_threads_only == 1u << 8);
    static_assert(static_cast<int>(overflow_policy::drop_oldest) == 1 &&
                  static_cast<int>(utilization_tracking::track_max) == 1 &&
                  static_cast<int>(buffer_contexts::threads_only) == 1);
    out.flags = (static_cast<std::uint32_t>(c.policy) & 1u) << 1 |
                (static_cast<std::uint32_t>(c.utilization) & 1u) << 2 |
                (static_cast<std::uint32_t>(c.contexts) & 1u) << 8;  // pow2: the engine's
    out.drop = c.on_drop;
    out.words = c.packet_words;
    out.context = c.context;
    return out;
  }

  SLUICE_PBUF_INLINE result<allocated_packet, alloc_error> finish_alloc(
      detail::pbuf_status status, detail::pbuf_span span) noexcept {
    switch (status) {
      case detail::pbuf_status::ok:
        break;
      case detail::pbuf_status::too_large:
        return alloc_error::too_large;
      case detail::pbuf_status::no_room:
        return alloc_error::no_room;
      case detail::pbuf_status::timeout:
        return alloc_error::timeout;
    }
    return allocated_packet::reserved(&core_, span);
  }

  detail::pbuf_core core_;
};

}  // namespace sluice
