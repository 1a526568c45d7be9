// The packet buffer engine (see include/sluice/detail/pbuf_core.hpp for the
// header state table, the index invariants and the two policies).
//
// Design: Zephyr's mpsc_pbuf (allocate/commit, claim/free, skip packets at
// the wrap, overwrite by dropping the oldest), with reservation made
// lock-free in the no-overwrite policy after the pattern of Linux's BPF ring
// buffer (position counter + per-record busy bits), and drop callbacks moved
// out of the lock.
//
// Atomic pairings used below:
//   [PB1] rd_idx: release store in reclaim() / publish_rd_idx() (the freed
//         words are zero and the consumer no longer reads them) -> acquire
//         load in reserve_from(), directly or through rd_seen (the producer
//         may write them), and in used_words() (its look at tmp_wr_idx
//         after it is not older than the reclaimer's). The overwrite lock
//         holder loads it relaxed: every earlier store to it was made under
//         the lock [PB3] or in a biased turn that end_bias waited out [PB6].
//   [PB2] header word: release store in commit / put_* / write_skip /
//         abandon (the packet's words are written) -> acquire load in
//         claim_unlocked() and panic_flush() (the consumer may read them).
//   [PB3] lock: acquire in lock_as() -> release in unlock(): everything
//         done under the overwrite lock is seen by the next holder.
//   [PB4] no lost wake-up: a notifier makes its condition true (a header
//         store in commit, rd_idx in reclaim), runs the light side of the
//         port's asymmetric fence and loads the waiter list's word
//         (wake_waiters); a waiter enqueues (setting has_waiters), runs the
//         heavy side (wait_fence) and re-checks the condition. The pair
//         orders like two seq_cst fences ([AF1] in sluice/port.hpp), so
//         either the re-check sees the condition or the notifier sees the
//         waiter, and the notifier's hot path costs no fence where the port
//         has a heavy side (hosted: membarrier).
//   [PB5] tmp_wr_idx with overwrite: lock-free producers reserve with a
//         compare-and-swap (reserve_fast, reserve_from), so the lock holder
//         changes it only by compare-and-swap as well (make_room_locked) and
//         retries when a producer got in first; when it steps over a claimed
//         packet it moves rd_idx only after such a CAS, so a producer that
//         sees the new rd_idx fails its own CAS on the old tmp_wr_idx. (A
//         drop or a reclaim moves rd_idx with no CAS: that only adds room.)
//   [PB6] the consumer's biased turn (overwrite): the consumer stores
//         consumer_in, runs the light side of the asymmetric fence and
//         loads lock_bias (enter_consumer); a dropper holding the lock
//         stores lock_bias = 0, runs the heavy side and loads consumer_in
//         (end_bias). As in [PB4], either the consumer sees the 0 (and
//         takes the lock instead) or the dropper sees it inside (and waits
//         for its release store of 0 with an acquire load, so that the
//         turn's changes happen before the dropper's).
//   [PB7] the move of an empty buffer to slot 0 (no overwrite: a
//         producer in reserve_from; the table in pbuf_core.hpp). It
//         makes the words from the old position to the wrap free, and the
//         next lap may cover the consumer's position t with payload, so
//         the consumer must know of the move before it reads the header
//         at t. The producer marks tmp_wr_idx (its old position | pbuf_moving);
//         finish_move, by whoever meets the mark, moves rd_idx (a CAS from
//         the old value, so a late helper cannot move it back) and then
//         clears the mark with a release CAS. Every later position in
//         tmp_wr_idx is a read-modify-write after that clear, so the
//         consumer's acquire load in nothing_reserved_at that sees a
//         position past t also sees the moved rd_idx, which it loads next
//         and follows (a marked value it takes for "nothing reserved").
//         The consumer reads a header only at a t behind its copy of
//         tmp_wr_idx: the buffer has held a packet since that load, so no
//         move can start until the consumer passes t itself, and no
//         producer writes at t's slot before the consumer frees it. So
//         a look at rd_idx is needed only after a reload of the copy
//         (claim_fast skips it otherwise; every reload is followed by
//         one). A move that ran inside a claim (a handler on the
//         consumer's thread, or a waker) found the buffer empty: t had
//         reached the copy, and the next look reloads it.
//   [PB8] an observer without overwrite (is_pending from any context)
//         reads the header at the claim position, which the consumer may
//         be passing at that moment: claimed, freed, zeroed (plain
//         stores), reused by a producer. So the two shake hands, as in
//         [PB4]: the observer counts itself in `observers`, runs the heavy
//         side of the asymmetric fence, then loads tmp_rd_idx and reads
//         the header there; the consumer, which moved tmp_rd_idx past a
//         packet when it claimed or passed it, runs the light side and
//         loads `observers` before it zeroes those words (await_observers:
//         free_fast, free_front, and zero_skips before its first zeroing;
//         never with overwrite, where nobody counts), and, if it counts
//         any, waits for those to end (wait_for_observers: it flips the
//         bucket that new looks join and waits for the old one to empty).
//         Either the consumer sees the observer (and waits for its
//         release decrement, with acquire: the read comes before the
//         zeroing), or the observer's t is past every packet the consumer
//         zeroes without waiting for it. For the zeroing before its
//         look, the observer acquires rd_idx [PB1] and reads only a header
//         less than a lap past it, and only one that its tmp_wr_idx shows
//         reserved (claim_would_take; else it answers "perhaps"). The
//         observer masks interrupts (signals) for its look, so that a
//         consumer in a handler never waits for a context it interrupted.
//         Where the image has one core (SLUICE_SINGLE_CORE), that masking
//         alone keeps the consumer away, and neither side counts.
//   [PB9] a deferred free (a consumer handler refused by its own thread's
//         dropper, the lock table in pbuf_core.hpp): in defer_free, the
//         entry's (relaxed) compare-and-swap, then a release store of
//         deferred_any (the handler's reads of the packet are done) ->
//         acquire exchange of deferred_any in finish_deferred_frees_slow,
//         under the lock, then the entries' (relaxed), before the packet's
//         free zeroes its words.
//         The holder that the handler interrupted looks at deferred_any
//         after its unlock, in its own program order, so it sees the
//         store. Only that holder's thread defers while it holds the lock,
//         so a dropper that takes the lock finds every entry whose flag it
//         takes.
#include <cstdint>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/backoff.hpp>
#include <sluice/detail/pbuf_core.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

// Defaults for a port without an asymmetric fence: both sides are seq_cst
// fences, which pair as [AF1] requires. A port that has a cheaper light side
// (hosted: membarrier) defines heavy() and moves asymmetric_fence_state
// (port.hpp).
namespace sluice::port {

#if __STDC_HOSTED__
detail::atomic<std::uint32_t> asymmetric_fence_state{0};  // the hosted port's
#endif

[[gnu::weak]] void asymmetric_fence_heavy() noexcept {
  // [AF1] seq_cst fence: pairs with the one in asymmetric_fence_light()
  // (the state stays 0).
  detail::fence(std::memory_order_seq_cst);
}

// Nothing to yield to: a lock holder on another core keeps running.
[[gnu::weak]] void yield_core() noexcept {}

#if !__STDC_HOSTED__ || defined(SLUICE_TEST_NO_CONTEXT_TOKENS)
// No token: droppers mask around their turn with the overwrite lock.
[[gnu::weak]] std::uint32_t context_token() noexcept {
  return 0;
}
#endif

}  // namespace sluice::port

namespace sluice::detail {

using dropper_guard = pbuf_critical_guard<true>;
// is_pending's look without overwrite ([PB8]): masked, so that a consumer
// in a handler never waits for the context it interrupted; on one core
// also with threads_only, as the masking is then what keeps the consumer
// (a thread that could preempt the look) out.
using observer_guard = pbuf_critical_guard<true, single_core>;

// A waiter's patience with the holder of the overwrite lock or of the
// consumer's biased turn (lock_as_waiting, end_bias): one wait() per look
// at the holder's value (role | token << 2). The back-off is the caller's
// (kept apart, so that a build where nobody gives up or yields keeps only
// it). Backing off keeps the waiters' loads from taking the line that holds
// the word away from those writing beside it.
class holder_waiter {
 public:
  // may_give_up: a dropper where droppers_may_give_up().
  explicit holder_waiter(bool may_give_up) noexcept : may_give_up_(may_give_up) {}

  // Backs off after seeing `seen`, as a waiter whose context token is
  // `token`; false: give up instead.
  [[gnu::always_inline]] bool wait(std::uint32_t seen, std::uint32_t token,
                                   backoff& spin) noexcept {
    if constexpr (!pbuf_consumer_masks) {  // (tokens are 0 where it masks)
      // Held by our own thread (the same context token): we are a handler
      // that interrupted the holder, which cannot go on until we return:
      // give up at once.
      if (token != 0 && (seen >> pbuf_lock_role_bits) == token) return false;
      // Held by another thread (or core): it holds it inside a critical
      // section, or (with tokens) no handler of its thread waits for it in
      // its place; it is running, or preempted and resumed by the
      // scheduler: wait. Except where droppers_may_give_up(): the consumer
      // holds it unmasked and, without tokens, a dropper cannot tell
      // whether it is a handler that interrupted the consumer and would
      // wait forever, so after a short wait (a consumer on another core is
      // done within a few hundred nanoseconds) it gives up.
      if (may_give_up_ && (seen & pbuf_lock_role_mask) == pbuf_lock_consumer &&
          ++polls_ > pbuf_lock_patience)
        return false;
      // With more threads than cores the holder may be preempted: after a
      // while, let it run. (Where the consumer masks, every holder masks:
      // nothing preempts it.) The back-off stays, for a port whose
      // yield_core does nothing.
      if (++waits_ > pbuf_lock_yield_after) port::yield_core();
    }
    spin.spin();
    return true;
  }

 private:
  bool may_give_up_;
  std::uint32_t polls_ = 0;  // toward giving up
  std::uint32_t waits_ = 0;  // toward yielding the core
};

namespace {

// 0 for a buffer of no words (a release build lets one through: every
// allocation is then too large, so no position ever moves).
constexpr std::uint32_t largest_period(std::uint32_t size) noexcept {
  return size == 0 ? 0 : size * ((std::uint32_t{1} << 31) / size);
}

}  // namespace

pbuf_core::pbuf_core(const pbuf_config& config) noexcept {
  SLUICE_ASSERT(config.buffer != nullptr, "packet buffer: no storage given");
  SLUICE_ASSERT(config.size >= 1 && config.size <= pbuf_max_size,
                "packet buffer: size must be 1 to 2^29 words");
  SLUICE_ASSERT((config.flags & pbuf_flag_pow2) == 0 || (config.size & (config.size - 1)) == 0,
                "packet buffer: MPSC_PBUF_SIZE_POW2 set but the size is not a power of two");
  // The power-of-two flag follows the size, whoever set it: a release
  // build given it for another size would map positions to wrong slots.
  // (Not for 0 words, as Zephyr's init: one unsigned test, true only where
  // size - 1 is the mask below the size's single bit.)
  flags = (config.flags & ~(pbuf_flag_full | pbuf_flag_pow2)) |
          (config.size - 1 < (config.size ^ (config.size - 1)) ? pbuf_flag_pow2 : 0);
  notify_drop = config.c_notify_drop;
  get_wlen = config.c_get_wlen;
  buf = config.buffer;
  size = config.size;
  period = largest_period(size);
  drop = config.drop;
  words = config.words;
  context = config.context;
  if constexpr (speed_over_size) {
    // The fast paths' one test (a caller's own bit 9 is not taken).
    flags = (flags & ~pbuf_flag_header_lengths) |
            (words == nullptr && get_wlen == nullptr ? pbuf_flag_header_lengths : 0);
  }
  // Relaxed: nothing runs on the buffer before its construction ends.
  // Where there are fast paths, the consumer starts biased.
  if constexpr (speed_over_size) {
    lock_bias.store(1, std::memory_order_relaxed);
    rebias_stretch = pbuf_rebias_after;
  }
  if (config.buffer == nullptr || config.size - 1 >= pbuf_max_size) {
    // A release build given no storage, or a size out of range (0, or
    // more words than positions can count, which is likelier a wrong
    // argument than a 2 GiB buffer): a buffer of no words. Every
    // allocation is then too large, nothing is ever reserved, and the
    // storage is never touched. (One unsigned test: 0 - 1 is above the
    // largest size.)
    buf = nullptr;
    size = 0;
    period = 0;
    flags &= ~pbuf_flag_pow2;
    return;
  }
  // Free words read zero (see the index invariants).
  __builtin_memset(buf, 0, std::size_t{size} * sizeof(std::uint32_t));
}

[[gnu::cold]] void pbuf_core::bad_length() noexcept {
  port::panic(
      "sluice: packet buffer: a packet's length (from its header or the length callback) is 0 "
      "or runs past the end of the buffer",
      __FILE__, __LINE__);
}

std::uint32_t pbuf_core::words_of(const std::uint32_t* packet) const noexcept {
  return length_of(packet);
}

[[gnu::always_inline]] inline std::uint32_t pbuf_core::length_of(
    const std::uint32_t* packet) const noexcept {
  // The header is loaded only where it holds the length.
  if (words != nullptr || get_wlen != nullptr) return length_of(packet, 0);
  // Relaxed: callers own the packet (or hold the lock) when they ask.
  return checked_length(packet, atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(packet))
                                        .load(std::memory_order_relaxed) >>
                                    pbuf_hdr_bits);
}

[[gnu::always_inline]] inline std::uint32_t pbuf_core::length_of(
    const std::uint32_t* packet, std::uint32_t first) const noexcept {
  return checked_length(packet, stated_length(packet, first));
}

// The one place that picks the length's source: the C++ callback, the C
// one, or bits 2..31 of the first word (`first`, as the caller read it).
[[gnu::always_inline]] inline std::uint32_t pbuf_core::stated_length(
    const std::uint32_t* packet, std::uint32_t first) const noexcept {
  if (words != nullptr) return words(context, packet);
  if (get_wlen != nullptr)
    return get_wlen(reinterpret_cast<const union mpsc_pbuf_generic*>(packet));
  return first >> pbuf_hdr_bits;
}

void pbuf_core::note_usage(std::uint32_t used) noexcept {
  if ((flags & pbuf_flag_max_utilization) == 0) return;
  // Relaxed: a statistic; the compare-and-swap only keeps it monotonic.
  std::uint32_t seen = max_usage.load(std::memory_order_relaxed);
  while (used > seen && !max_usage.compare_exchange_weak(seen, used, std::memory_order_relaxed,
                                                         std::memory_order_relaxed)) {
  }
}

[[gnu::noinline, gnu::cold]] void pbuf_core::notify_waiters(wake_after after) noexcept {
  // After wake_waiters' light fence [PB4]; notify_* re-check under their
  // own [W1] fence.
  if (pbuf_may_wake_consumer(after) && data_waiters.approx_has_waiters()) data_waiters.notify_one();
  if (pbuf_may_wake_producers(after, overwrite()) && space_waiters.approx_has_waiters())
    space_waiters.notify_all();
}

void pbuf_core::wait_fence() noexcept {
  // [PB4] heavy side, after the waiter's enqueue and before its re-check;
  // pairs with the light side in wake_waiters().
  port::asymmetric_fence_heavy();
}

void pbuf_core::write_skip(std::uint32_t pos, std::uint32_t n) noexcept {
  // Release [PB2]: a skip is published like a commit (E6).
  header(pos).store((n << pbuf_hdr_bits) | pbuf_busy, std::memory_order_release);
}

// ---------------------------------------------------------------- producers

// Whether n words (and the padding at the wrap they may need) fit between
// w (tmp_wr_idx) and r + size (r: rd_idx, or a copy of it), as
// reserve_from decides.
[[gnu::always_inline]] inline bool pbuf_core::fits(std::uint32_t n, std::uint32_t r,
                                                   std::uint32_t w) const noexcept {
  const std::uint32_t used = distance(r, w);
  if (used > size) return false;
  const std::uint32_t tail = size - slot(w);
  return (n > tail ? tail : 0) + n <= size - used;
}

SLUICE_PBUF_FULL_PATH pbuf_status pbuf_core::reserve_lock_free(std::uint32_t n,
                                                               pbuf_span& out) noexcept {
  // Acquire [PB1] (through rd_seen, stored with release after an acquire
  // load of rd_idx): the words up to r + size are free and zero. A stale
  // copy only understates the room; it is refreshed before giving up.
  return reserve_from(n, rd_seen.load(std::memory_order_acquire), rd_view::copy, out);
}

pbuf_status pbuf_core::reserve_from(std::uint32_t n, std::uint32_t r, rd_view view,
                                    pbuf_span& out) noexcept {
  // Relaxed: the compare-and-swap below validates it.
  std::uint32_t w = tmp_wr_idx.load(std::memory_order_relaxed);
  bool fresh = view == rd_view::current;
  for (;;) {
    if ((w & pbuf_moving) != 0) {
      // A move to slot 0 in progress (ours, or another producer's that may
      // have stalled): end it, then count from its new position [PB7].
      // Relaxed: the compare-and-swap below validates the fresh guess.
      r = finish_move(w);
      w = tmp_wr_idx.load(std::memory_order_relaxed);
      continue;
    }
    const std::uint32_t used = distance(r, w);
    if (used <= size) {
      const std::uint32_t tail = size - slot(w);
      const std::uint32_t pad = n > tail ? tail : 0;  // the wrap: the tail becomes a skip
      // Without overwrite, an empty buffer that the request would pad is
      // moved to the next slot 0 instead (below): padding would hold its
      // words until the consumer's next claim passed it, as producers here
      // never pass a skip (Zephyr's producer passes one at the front
      // itself). So it pads only after a fresh look at rd_idx has found
      // the buffer not empty (from a stale copy an empty one may seem not
      // to be); until then it moves or refreshes.
      const bool not_padded = pad != 0 && !overwrite() && (used == 0 || !fresh);
      if (!not_padded && pad + n <= size - used) {  // fits(n, r, w)
        // Relaxed: the reservation publishes nothing; the words it covers
        // are zero already ([PB1]) and the packet is published by its
        // header ([PB2]). Producers race only on the position itself (and,
        // with overwrite, the lock holder's CAS in make_room_locked [PB5]).
        if (tmp_wr_idx.compare_exchange_weak(w, advance(w, pad + n), std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
          if ((flags & pbuf_flag_max_utilization) != 0) {
            // Our copy of r may be old: measure against the current one.
            // Relaxed: a statistic.
            const std::uint32_t now =
                distance(rd_idx.load(std::memory_order_relaxed), advance(w, pad + n));
            note_usage(now > size ? size : now);
          }
          // After padding the packet starts at slot 0.
          if (pad != 0) {
            SLUICE_PBUF_HOOK(padding_reserved);
            write_skip(w, pad);
            // [PB4]: the skip is room once passed. With overwrite a producer
            // waiting for room passes it at the front itself; without, the
            // consumer does in a claim (and wakes the producers), and one
            // waiting for data saw a reserved header here and would sleep
            // until our commit. Rare: once a lap at most.
            wake_waiters(wake_after::skip);
          }
          out = pbuf_span{buf + (pad != 0 ? 0 : size - tail), n};
          return pbuf_status::ok;
        }
        continue;
      }
      if (fresh) {
        // With overwrite, rd_idx is the lock holder's: make_room_locked
        // pads an empty buffer up to slot 0 there and passes the skip.
        if (used != 0 || overwrite()) return pbuf_status::no_room;
        // Empty, and the request would pad it (or not fit beside the
        // padding): move the empty buffer to the next slot 0. Only a
        // producer that finds it empty does this, so the consumer, which
        // has nothing claimed then, never has to. Relaxed CAS: it succeeds
        // only if nothing was reserved since we saw w; the words skipped
        // are free. The mark makes everyone else end the move before
        // anything else [PB7]; the loop's first branch ends it here.
        if (tmp_wr_idx.compare_exchange_strong(w, w | pbuf_moving, std::memory_order_relaxed,
                                               std::memory_order_relaxed)) {
          SLUICE_PBUF_HOOK(moving_to_slot_zero);
          w |= pbuf_moving;
        }
        continue;
      }
    } else if (fresh) {
      // One of the two is stale: w from before the consumer's last move,
      // or the copy of r from long ago. With overwrite, a lock holder that
      // steps over a claimed packet moves tmp_wr_idx past rd_idx + size
      // before it moves rd_idx: retrying here could spin as long as that
      // holder is preempted, so after one fresh look the locked path
      // decides (no_room sends the caller there).
      if (overwrite()) return pbuf_status::no_room;
      // Relaxed: a fresher guess; the reservation's compare-and-swap checks it.
      w = tmp_wr_idx.load(std::memory_order_relaxed);
    }
    // Short of room, or a stale pair: refresh our copy of rd_idx. Acquire
    // [PB1]: the words up to r + size are free and zero. Release [PB1]
    // into rd_seen, for the next producer (read with acquire above); not
    // when it did not move (a producer that waits on a full buffer would
    // only take the producers' line away from the others).
    const std::uint32_t seen = r;
    r = rd_idx.load(std::memory_order_acquire);
    if (r != seen) rd_seen.store(r, std::memory_order_release);
    fresh = true;
  }
}

// [PB7], the table in pbuf_core.hpp. Whoever meets the mark ends the move,
// so a producer that stalls after marking holds up nobody (lock-free).
// Each step is a compare-and-swap from the value before the move, which
// only the first to try wins: a late helper cannot take back a later
// value. Returns the new position.
[[gnu::always_inline]] inline std::uint32_t pbuf_core::finish_move(std::uint32_t marked) noexcept {
  const std::uint32_t from = marked & ~pbuf_moving;
  const std::uint32_t start = advance(from, size - slot(from));
  std::uint32_t r = from;
  // Acquire [PB1], whether the CAS wins or not (the value it reads is the
  // consumer's last store, or continues its release sequence): the words
  // up to from + size are zero, and the caller reserves next. Release: our
  // look at the mark comes before it, for used_words (an observer that
  // sees start must not see tmp_wr_idx from before the mark). (Orders on
  // the operations, not fences: ThreadSanitizer does not model fences.)
  (void)rd_idx.compare_exchange_strong(r, start, std::memory_order_acq_rel,
                                       std::memory_order_acquire);
  SLUICE_PBUF_HOOK(moved_rd_idx);
  // Release [PB7]: rd_idx at start comes before every position reserved
  // from now on; pairs with the acquire in nothing_reserved_at.
  if (tmp_wr_idx.compare_exchange_strong(marked, start, std::memory_order_release,
                                         std::memory_order_relaxed)) {
    // The move freed the words between the two positions: a producer that
    // counted its room from the old rd_idx may wait for them ([PB4]). (A
    // consumer waiting for data is woken by the next commit: nothing was
    // reserved at start before the mark was cleared.)
    wake_waiters(wake_after::reclaim);
  }
  return start;
}

// Overwrite, under the lock: reserves `n` words if they fit, otherwise makes
// room by one step: drops the oldest packet (returned in `victim`; the
// caller runs the callback outside the lock), passes a skip, or steps over
// a claimed packet. For a waiting allocation (first_step == no_drop) it
// only pads and passes skips: a committed or claimed packet at the front is
// no room. Lock-free producers (the fast path of reserve_overwrite)
// move tmp_wr_idx meanwhile, so every change of it here is a
// compare-and-swap [PB5], retried on failure; rd_idx, tmp_rd_idx (the
// consumer claims under the lock too) and reclaiming are the lock holder's.
room_step pbuf_core::make_room_locked(std::uint32_t n, pbuf_span& out, std::uint32_t& first_step,
                                      pbuf_span& victim) noexcept {
  for (;;) {
    // Relaxed: written only under the lock [PB3], or by the consumer in a
    // biased turn that end_bias waited for (acquire [PB6]); so the words up
    // to r + size are free and zero for us, as [PB1] gives producers. (The
    // producers' move of an empty buffer to slot 0 is not made with
    // overwrite: below, the lock holder pads to slot 0 instead.)
    const std::uint32_t r = rd_idx.load(std::memory_order_relaxed);
    // Relaxed: validated by the compare-and-swaps below [PB5].
    std::uint32_t w = tmp_wr_idx.load(std::memory_order_relaxed);
    // A build optimised for size does not look first.
    if (!speed_over_size || fits(n, r, w)) {
      if (reserve_from(n, r, rd_view::current, out) == pbuf_status::ok) return room_step::reserved;
      // No room after all: lock-free producers took it meanwhile (or
      // there was none). Relaxed, as above.
      w = tmp_wr_idx.load(std::memory_order_relaxed);
    }
    const std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
    if (r == w) {
      // Empty, yet the wrap padding leaves no room: pad up to slot 0; the
      // next step passes the skip at the front (t == r), which moves every
      // index there. Relaxed CAS [PB5]: fails if a producer reserved since
      // we read w.
      const std::uint32_t tail = size - slot(w);
      if (tmp_wr_idx.compare_exchange_strong(w, advance(w, tail), std::memory_order_relaxed,
                                             std::memory_order_relaxed))
        write_skip(r, tail);
      continue;
    }
    std::uint32_t* const packet = buf + slot(r);
    atomic_ref<std::uint32_t> h(*packet);
    // Acquire [PB2]: the header may come from a lock-free commit, and a
    // dropped packet's words go to the drop callback.
    const std::uint32_t v = h.load(std::memory_order_acquire);
    SLUICE_PBUF_HOOK(front_read);
    // A waiting allocation drops nothing and steps over nothing (as
    // Zephyr's, which waits before it would drop): it waits for the free.
    if (first_step == no_drop && (v & pbuf_valid) != 0) return room_step::no_room;
    switch (v & pbuf_hdr_mask) {
      case 0:  // the oldest packet is not committed: it holds the rest back
        return room_step::no_room;
      case pbuf_busy:  // a skip: at the unclaimed front, or a victim freed (E8)
        // Relaxed: under the lock [PB3]; the consumer claims under it too.
        if (r == t) tmp_rd_idx.store(advance(t, v >> pbuf_hdr_bits), std::memory_order_relaxed);
        (void)reclaim();
        continue;
      case pbuf_valid: {  // committed and unclaimed (r == t): drop it (E7)
        SLUICE_ASSERT(r == t, "packet buffer: a committed packet behind the claim position");
        const std::uint32_t len = words_of(packet);
        // Relaxed: a statistic, written only under the lock.
        dropped.store(dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        // Relaxed: under the lock [PB3].
        tmp_rd_idx.store(advance(t, len), std::memory_order_relaxed);
        if (drop == nullptr && notify_drop == nullptr) {
          // Nobody to tell: E7 and E8 in one store, under the lock (nobody
          // can see it in between), and the skip is the front, so reclaim()
          // frees its words at once (E9), as it frees every skip there.
          // Relaxed: under the lock [PB3], and reclaim() is ours.
          h.store((len << pbuf_hdr_bits) | pbuf_busy, std::memory_order_relaxed);
          (void)reclaim();
          continue;
        }
        // Relaxed: under the lock; marking it claimed keeps every other
        // dropper and the consumer off its words while the callback runs.
        h.store(v | pbuf_busy, std::memory_order_relaxed);
        victim = pbuf_span{packet, len};
        return room_step::victim;
      }
      default:  // claimed: step over it below
        break;
    }
    const std::uint32_t len = words_of(packet);
    // Met twice: a lap after the first claimed packet this call stepped
    // over, rd_idx is back at its words, and nothing but a free makes more
    // room. (Counting the words stepped over instead let a 1-word packet be
    // met `size` times, a lap each, under the lock.) Within a turn nothing
    // is freed, so exactly a lap on is where that packet is met again.
    // Between turns (a victim's callback runs outside the lock) the
    // consumer may free it and claim others: more than a lap on, a claimed
    // packet is met for the first time, and the count starts again from it.
    // From no_step (all ones) every position is more than a lap on, except
    // the last of a period of 2^31 (0 on): a first step there starts no
    // count, and the next step does.
    const std::uint32_t since = distance(first_step, r);
    if (since == size) return room_step::no_room;
    if (since > size) first_step = r;
    // The free words before it become skips, its own words re-enter the
    // stream ahead as a future skip (its header turns into one when it is
    // freed).
    const std::uint32_t lap = advance(r, size);
    // Relaxed CAS [PB5]: takes the free words [w, lap) and the re-entered
    // ones from the producers; fails if one reserved since we read w.
    if (!tmp_wr_idx.compare_exchange_strong(w, advance(lap, len), std::memory_order_relaxed,
                                            std::memory_order_relaxed))
      continue;
    for (std::uint32_t from = w; from != lap;) {
      const std::uint32_t chunk =
          size - slot(from) < distance(from, lap) ? size - slot(from) : distance(from, lap);
      write_skip(from, chunk);
      from = advance(from, chunk);
    }
    const std::uint32_t after = advance(r, len);
    // Relaxed: under the lock [PB3].
    if (distance(r, t) < len) tmp_rd_idx.store(after, std::memory_order_relaxed);
    // Release [PB1], after the CAS above: a producer that sees the new
    // rd_idx either sees the new tmp_wr_idx or fails its own CAS.
    rd_idx.store(after, std::memory_order_release);
  }
}

pbuf_status pbuf_core::reserve_overwrite(std::uint32_t n, pbuf_span& out, bool may_drop) noexcept {
  // Room without dropping: lock-free, as without overwrite.
  if (reserve_lock_free(n, out) == pbuf_status::ok) return pbuf_status::ok;
  // Where this call first stepped over a claimed packet: a lap later it
  // meets it again and gives up instead of looping. (no_drop: it may not.)
  std::uint32_t first_step = may_drop ? no_step : no_drop;
  pbuf_span victim;  // dropped and reported: it ends (E8) in the next turn
  for (;;) {
    room_step step = room_step::no_room;
    const bool ending = victim.words != nullptr;
    // Where the consumer masks, droppers do too; elsewhere only without a
    // context token (lock_as then gives up on a lock its own thread holds:
    // a handler that interrupted the holder). No lock: the consumer holds
    // it (we may have interrupted it), or our own thread does; the caller
    // retries or waits, and the consumer wakes it after unlocking.
    const std::uint32_t token = pbuf_consumer_masks ? 0 : port::context_token();
    bool ended = false;
    const auto turn = [&]() noexcept {
      if (!lock_as(pbuf_lock_dropper | token << pbuf_lock_role_bits)) return;
      if (!speed_over_size || end_bias(token)) {
        if (ending) {
          // E8, under the lock and with no biased turn beside it: a holder
          // stepping over the victim (it reads claimed), or a claim
          // passing it, asks words_of() for its length, and a length
          // callback reads the header's user bits, which this store
          // replaces. Release [PB2]: the callback's reads come before the
          // zeroing (the acquire in zero_skips).
          atomic_ref<std::uint32_t>(*victim.words)
              .store((victim.size << pbuf_hdr_bits) | pbuf_busy, std::memory_order_release);
          ended = true;
        }
        step = make_room_locked(n, out, first_step, victim);
      }
      unlock();
    };
    for (;;) {
      if (token != 0) {
        turn();
        finish_deferred_frees(token);  // [PB9]
      } else {
        const dropper_guard masked(*this);
        turn();
      }
      // With a victim to end, it does not give up on the lock or on a
      // biased turn (where droppers may give up at all): this dropper had
      // a turn since it started, so whatever it interrupted held neither
      // the lock nor a turn then, and cannot take one before we return;
      // every holder is elsewhere and lets go. It tries again outside the
      // critical section, so that a holder preempted on this core can run.
      // (Where the consumer masks, nobody gives up: one turn ends it.)
      if (pbuf_consumer_masks || !ending || ended) break;
      if constexpr (speed_over_size) {
        // The lock was held, or end_bias gave up on a biased turn: one
        // that started after our first turn (the consumer rebiased while
        // the callback ran), on another core, and perhaps interrupted
        // there by a handler that waits for the lock. Wait for the turn
        // here, without the lock, so that such a handler can take it, give
        // up and return. Relaxed: a hint; end_bias decides.
        SLUICE_PBUF_HOOK(victim_awaits_turn);
        backoff spin;
        while (consumer_in.load(std::memory_order_relaxed) != 0)
          spin.snooze();
      }
    }
    // A waiting producer can pass the ended victim now. [PB4]
    if (ending) wake_waiters(wake_after::skip);
    if (step == room_step::reserved) return pbuf_status::ok;
    if (step == room_step::no_room) return pbuf_status::no_room;
    // Outside the lock, contents intact. The victim is ours while it reads
    // claimed: nobody else reads or reuses its words.
    if (drop != nullptr) {
      drop(context, victim.words, victim.size);
    } else if (notify_drop != nullptr) {
      notify_drop(reinterpret_cast<const struct mpsc_pbuf_buffer*>(this),
                  reinterpret_cast<const union mpsc_pbuf_generic*>(victim.words));
    }
  }
}

// reserve's full path (all of it where size comes first).
pbuf_status pbuf_core::reserve_out_of_line(std::uint32_t n, pbuf_span& out,
                                           bool may_drop) noexcept {
  // Zero words never fit either: a packet holds at least its header word.
  // (One unsigned test: 0 - 1 is above every size.)
  if (n - 1 >= size) return pbuf_status::too_large;
  const pbuf_status status =
      overwrite() ? reserve_overwrite(n, out, may_drop) : reserve_lock_free(n, out);
  if (status == pbuf_status::no_room) SLUICE_PBUF_HOOK(room_refused);
  return status;
}

pbuf_status pbuf_core::alloc_until(std::uint32_t n, time_point deadline, pbuf_span& out) noexcept {
  pbuf_status status = reserve(n, out, false);
  // An interrupt handler or a critical section never waits (nothing could
  // free room while it runs on this core): the one try answers.
  if (status != pbuf_status::no_room || !port::may_block()) return status;
  parker& self = port::current_parker();
  waiter node;
  for (;;) {
    space_waiters.enqueue(node, self.make_waker());
    wait_fence();  // [PB4]
    status = reserve(n, out, false);
    if (status != pbuf_status::no_room) {
      if (!space_waiters.cancel(node)) space_waiters.notify_one();
      return status;
    }
    while (!node.is_notified() && port::now() < deadline)
      self.park_until(deadline);
    const bool timed_out = space_waiters.cancel(node);
    status = reserve(n, out, false);
    if (status != pbuf_status::no_room) return status;
    if (timed_out || port::now() >= deadline) return pbuf_status::timeout;
  }
}

// commit where size comes first.
void pbuf_core::commit_out_of_line(std::uint32_t* packet) noexcept {
  publish(packet);
}

void pbuf_core::abandon(std::uint32_t* packet, std::uint32_t n) noexcept {
  // Release [PB2]: the consumer passes it as padding (E5).
  atomic_ref<std::uint32_t>(*packet).store((n << pbuf_hdr_bits) | pbuf_busy,
                                           std::memory_order_release);
  // The consumer may wait behind it; with overwrite, a producer may too.
  wake_waiters(wake_after::skip);  // [PB4]
}

bool pbuf_core::states_length(const std::uint32_t* packet, std::uint32_t n) const noexcept {
  if (n - 1 >= size) return true;  // try_alloc refuses it, without asking the words
  // The words are the caller's, not yet the buffer's: a plain read.
  const std::uint32_t stated = stated_length(packet, packet[0]);
  // (A word that said 5, put as one word, made the consumer take the next
  // packets for its payload, and they were never delivered.)
  SLUICE_ASSERT(stated == n,
                "packet buffer: a put's words give another length than it puts (the length "
                "callback, or get_wlen, or without either bits 2..31 of the first word: "
                "default_header(n) in C++)");
  return stated == n;
}

bool pbuf_core::put_word(std::uint32_t first) noexcept {
  pbuf_span p;
  if (!states_length(&first, 1) || try_alloc(1, p) != pbuf_status::ok) return false;
  // Relaxed, and without the valid bit: the producer's own word until
  // commit sets that bit with release ([PB2]). (A valid bit stored here
  // could let the consumer claim the packet before its words are seen.)
  atomic_ref<std::uint32_t>(*p.words).store(first & ~pbuf_hdr_mask, std::memory_order_relaxed);
  commit(p.words);
  return true;
}

bool pbuf_core::put_word_ext(std::uint32_t first, const void* pointer) noexcept {
  constexpr std::uint32_t pointer_words = sizeof(void*) / sizeof(std::uint32_t);
  static_assert(pointer_words * sizeof(std::uint32_t) == sizeof(void*));
  std::uint32_t packet[1 + pointer_words] = {first};  // as the consumer will see it
  __builtin_memcpy(packet + 1, &pointer, sizeof pointer);
  pbuf_span p;
  if (!states_length(packet, 1 + pointer_words) ||
      try_alloc(1 + pointer_words, p) != pbuf_status::ok)
    return false;
  __builtin_memcpy(p.words + 1, &pointer, sizeof pointer);
  // Relaxed, and without the valid bit: the producer's own word until
  // commit sets that bit with release ([PB2]). (A valid bit stored here
  // could let the consumer claim the packet before its words are seen.)
  atomic_ref<std::uint32_t>(*p.words).store(first & ~pbuf_hdr_mask, std::memory_order_relaxed);
  commit(p.words);
  return true;
}

bool pbuf_core::put_data(const std::uint32_t* data, std::uint32_t n) noexcept {
  pbuf_span p;
  if (n == 0 || !states_length(data, n) || try_alloc(n, p) != pbuf_status::ok) return false;
  for (std::uint32_t i = 1; i < n; ++i)
    p.words[i] = data[i];
  // Relaxed, and without the valid bit, as in put_word.
  atomic_ref<std::uint32_t>(*p.words).store(data[0] & ~pbuf_hdr_mask, std::memory_order_relaxed);
  commit(p.words);
  return true;
}

// ----------------------------------------------------------------- consumer

bool pbuf_core::reclaim() noexcept {
  // Relaxed: consumer-owned (no-overwrite) or under the lock.
  const std::uint32_t r = rd_idx.load(std::memory_order_relaxed);
  return reclaim_from(r, r, tmp_rd_idx.load(std::memory_order_relaxed));
}

[[gnu::always_inline]] inline bool pbuf_core::reclaim_from(std::uint32_t start, std::uint32_t r,
                                                           std::uint32_t t) noexcept {
  r = zero_skips<true>(r, t);
  if (r == start) return false;
  publish_rd_idx(r);
  return true;
}

// Zeroes the skips from r on, up to t or the first packet still claimed
// (E9); returns where it stopped. Observed: before the first zeroing, wait
// for observers ([PB8]; panic_flush does not).
template <bool Observed>
[[gnu::always_inline]] inline std::uint32_t pbuf_core::zero_skips(std::uint32_t r,
                                                                  std::uint32_t t) noexcept {
  bool awaited = !Observed;
  while (r != t) {
    std::uint32_t* const words = buf + slot(r);
    // Acquire [PB2]: a skip may come from a producer's abandon, made
    // without the lock, or from a dropper's E8 (after its drop callback):
    // their writes and reads of the words come before our zeroing.
    const std::uint32_t v = atomic_ref<std::uint32_t>(*words).load(std::memory_order_acquire);
    if ((v & pbuf_hdr_mask) != pbuf_busy) break;  // claimed: still in use
    if (!awaited) {
      await_observers();  // [PB8]
      awaited = true;
    }
    const std::uint32_t len = v >> pbuf_hdr_bits;
    pbuf_zero_words(words, len);  // E9
    r = advance(r, len);
  }
  return r;
}

[[gnu::noinline, gnu::cold]] void pbuf_core::wait_for_observers() noexcept {
  // The looks that await_observers saw are all in the current bucket (the
  // other is empty: the table at pbuf_observer_epoch). Flip the epoch, so
  // that looks that start from now on join the other bucket (they see our
  // stores, [PB8], and need no wait), and wait for the old one to empty:
  // looks that keep starting cannot hold the free up for ever. Relaxed:
  // the flip only steers new looks; what orders the zeroing is the
  // acquire below.
  const std::uint32_t before = observers.fetch_xor(pbuf_observer_epoch, std::memory_order_relaxed);
  const std::uint32_t shift = pbuf_observer_shift(before);
  SLUICE_ASSERT(pbuf_observer_bucket(before, pbuf_observer_shift(~before)) == 0,
                "packet buffer: a look in the bucket that no look joins (two consumers?)");
  // An observer reads one header, masked (it is not a handler that this
  // consumer interrupted): a few loads, unless its thread was preempted,
  // so spin, then yield the core for it.
  backoff spin;
  std::uint32_t waits = 0;
  // Acquire [PB8], as in await_observers: every change of `observers` is a
  // read-modify-write, so this synchronises with the release decrement of
  // every look that left the bucket.
  while (pbuf_observer_bucket(observers.load(std::memory_order_acquire), shift) != 0) {
    spin.spin();
    if (++waits > pbuf_lock_yield_after) port::yield_core();
  }
}

SLUICE_PBUF_FULL_PATH pbuf_span pbuf_core::claim_unlocked() noexcept {
  // Relaxed: consumer-owned (or under the lock).
  std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  for (;;) {
    // Nothing reserved at t (or a move to slot 0 in progress): nothing to
    // claim.
    if (nothing_reserved_at(t)) return {};
    // [PB7]: a move that ended before the reservation we saw leaves t
    // behind rd_idx, and the word at t may be payload now: follow before
    // reading it. Relaxed: after the acquire load of tmp_wr_idx that showed
    // a reservation at t (in nothing_reserved_at, in this call or the one
    // that set wr_seen: no move can start while t is behind that copy,
    // [PB7]) (with overwrite, a dropper's move comes before our turn).
    if (follow_rd_idx(t, rd_idx.load(std::memory_order_relaxed))) continue;
    SLUICE_PBUF_HOOK(claim_looked);
    std::uint32_t* const packet = buf + slot(t);
    atomic_ref<std::uint32_t> h(*packet);
    // Acquire [PB2]: pairs with the release in commit / write_skip / abandon.
    const std::uint32_t v = h.load(std::memory_order_acquire);
    switch (v & pbuf_hdr_mask) {
      case 0:  // reserved, not committed: holds back what follows
        return {};
      case pbuf_busy:  // skip
        pass_skip(t, v >> pbuf_hdr_bits);
        continue;
      default: {  // committed, or a claimed packet stepped over and still held
        const std::uint32_t n = length_of(packet, v);
        if ((v & pbuf_busy) == 0) return claim_at(packet, v, advance(t, n), n);
        // Held: passed, not delivered again. It joins the claimed packets
        // behind tmp_rd_idx, and its free makes it a skip there (reclaim
        // stops at it until then; a dropper that meets it at rd_idx steps
        // over it again). Relaxed: as for a skip above.
        t = advance(t, n);
        tmp_rd_idx.store(t, std::memory_order_relaxed);
        continue;
      }
    }
  }
}

// Passes the skip of n words at t, the claim position: t and tmp_rd_idx
// move past it, and its words are reclaimed (room, producers woken).
[[gnu::always_inline]] inline void pbuf_core::pass_skip(std::uint32_t& t,
                                                        std::uint32_t n) noexcept {
  t = advance(t, n);
  // Relaxed: consumer-owned (or under the lock [PB3]); observers and
  // droppers under the lock read it, nothing is published through it.
  tmp_rd_idx.store(t, std::memory_order_relaxed);
  (void)reclaim();  // passing skips makes room and wakes producers
}

// A producer that found the buffer empty may have moved it to slot 0
// (reserve_from): rd_idx (r, as loaded) is then ahead of t (tmp_rd_idx);
// follow it. True: t and tmp_rd_idx moved to r.
[[gnu::always_inline]] inline bool pbuf_core::follow_rd_idx(std::uint32_t& t,
                                                            std::uint32_t r) noexcept {
  if (!moved_ahead(t, r)) return false;
  t = r;
  // Relaxed: consumer-owned (or under the lock [PB3]); nothing is
  // published through it.
  tmp_rd_idx.store(t, std::memory_order_relaxed);
  return true;
}

SLUICE_PBUF_FULL_PATH bool pbuf_core::enter_consumer_locked(std::uint32_t holder) noexcept {
  // The consumer waits for every holder but its own thread's dropper
  // (lock_as_waiting): it is then a handler that interrupted it. (Where
  // the consumer masks, droppers do too, and it always gets the lock.)
  if (!lock_as(holder) && !pbuf_consumer_masks) return false;
  if constexpr (speed_over_size) {
    // Relaxed: under the lock [PB3]; so are the stretch's fields.
    if (lock_bias.load(std::memory_order_relaxed) == 0 && --rebias_after == 0) {
      if (dropped_in_stretch == 0) {
        lock_bias.store(1, std::memory_order_relaxed);
        rebias_stretch = pbuf_rebias_after;
      } else {
        // Droppers all along: another stretch, longer, with no heavy fence.
        rebias_stretch =
            rebias_stretch < pbuf_rebias_max / 2 ? rebias_stretch * 2 : pbuf_rebias_max;
        rebias_after = rebias_stretch;
        dropped_in_stretch = 0;
      }
    }
  }
  return true;
}

SLUICE_PBUF_FULL_PATH bool pbuf_core::end_bias(std::uint32_t token) noexcept {
  // Relaxed: under the lock [PB3]; only holders write lock_bias.
  if (lock_bias.load(std::memory_order_relaxed) != 0) {
    lock_bias.store(0, std::memory_order_relaxed);  // [PB6]
    rebias_after = rebias_stretch;
    dropped_in_stretch = 0;
    port::asymmetric_fence_heavy();  // [PB6]
  } else {
    dropped_in_stretch = 1;  // the consumer's stretch of locked turns goes on
  }
  // Waits even when an earlier holder ended the bias: that one may have
  // given up on a turn still in progress. Its load saw the turn's store
  // (or the turn started after its heavy fence and steps back), and ours
  // comes after its load (the lock orders them), so we see that store too
  // until the turn's release of consumer_in.
  backoff spin;
  holder_waiter waiter(droppers_may_give_up(token));
  for (;;) {
    // Acquire [PB6]: pairs with the release in leave_consumer (or the
    // consumer's step back in enter_consumer).
    const std::uint32_t in = consumer_in.load(std::memory_order_acquire);
    if (in == 0) return true;
    SLUICE_PBUF_HOOK(turn_awaited);
    if (!waiter.wait(in, token, spin)) return false;
  }
}

SLUICE_PBUF_FULL_PATH pbuf_span pbuf_core::claim_in_locked_turn(std::uint32_t holder) noexcept {
  // Refused (a handler on the holder's thread): nothing to take now, as a
  // try may answer.
  if (!enter_consumer_locked(holder)) return {};
  const pbuf_span p = claim_unlocked();
  leave_consumer(holder, false);
  return p;
}

SLUICE_PBUF_FULL_PATH void pbuf_core::free_in_locked_turn(const std::uint32_t* packet,
                                                          std::uint32_t holder) noexcept {
  if (!enter_consumer_locked(holder)) return defer_free(packet);
  free_unlocked(packet);
  leave_consumer(holder, false);
}

// try_claim where size comes first.
pbuf_span pbuf_core::try_claim_out_of_line() noexcept {
  return claim_body();
}

// Apart from try_claim (and free_locked from free) so that the
// no-overwrite path stays a test and a jump (where size comes first).
[[gnu::noinline]] pbuf_span pbuf_core::claim_locked() noexcept {
  return claim_in_turn();
}

// free_fast's case with something behind the packet (skips to pass, or
// packets still claimed): the packet of n words at r (rd_idx) is the
// oldest claimed one; t is tmp_rd_idx.
SLUICE_PBUF_FULL_PATH void pbuf_core::free_front(const std::uint32_t* packet, std::uint32_t n,
                                                 std::uint32_t r, std::uint32_t t) noexcept {
  await_observers();  // [PB8]
  pbuf_zero_words(const_cast<std::uint32_t*>(packet), n);
  // reclaim_from without a second look at observers (rd_idx moves: n >= 1).
  publish_rd_idx(zero_skips<false>(advance(r, n), t));
}

SLUICE_PBUF_FULL_PATH void pbuf_core::free_unlocked(const std::uint32_t* packet) noexcept {
  atomic_ref<std::uint32_t> h(*const_cast<std::uint32_t*>(packet));
  // Relaxed: the packet is claimed by the caller. (Loaded inside the check,
  // so that builds without debug checks do not load it.)
  SLUICE_ASSERT((h.load(std::memory_order_relaxed) & pbuf_hdr_mask) == (pbuf_valid | pbuf_busy),
                "packet buffer: free of a packet that is not claimed");
  const std::uint32_t n = length_of(packet);
  h.store((n << pbuf_hdr_bits) | pbuf_busy, std::memory_order_relaxed);  // E4
  // Freed at the front, reclaim moves rd_idx and wakes producers. Freed
  // elsewhere (a packet that an overwrite stepped over, or one of several
  // claimed), the new skip still helps a waiter: a producer whose
  // overwrite met this claimed packet can now pass it.
  if (!reclaim()) wake_waiters(wake_after::skip);  // [PB4]
}

// free where size comes first.
void pbuf_core::free_out_of_line(const std::uint32_t* packet) noexcept {
  free_body(packet);
}

[[gnu::noinline]] void pbuf_core::free_locked(const std::uint32_t* packet) noexcept {
  free_in_turn(packet);
}

pbuf_span pbuf_core::claim_until(time_point deadline) noexcept {
  pbuf_span p = try_claim();
  // As in alloc_until: where the caller may not block, the one try.
  if (p.words != nullptr || !port::may_block()) return p;
  parker& self = port::current_parker();
  waiter node;
  for (;;) {
    data_waiters.enqueue(node, self.make_waker());
    wait_fence();  // [PB4]
    p = try_claim();
    if (p.words != nullptr) {
      if (!data_waiters.cancel(node)) data_waiters.notify_one();
      return p;
    }
    while (!node.is_notified() && port::now() < deadline)
      self.park_until(deadline);
    const bool timed_out = data_waiters.cancel(node);
    p = try_claim();
    if (p.words != nullptr || timed_out || port::now() >= deadline) return p;
  }
}

// panic_flush, is_pending and committed_at_claim are cold and flattened
// (every call inside them inlined there), so that the helpers they share
// with the hot paths stay inlined in those too where the build is
// optimised for size (a call from a cold function would keep a copy out of
// line, and the compiler then calls it from everywhere).
[[gnu::cold, gnu::flatten]] std::uint32_t pbuf_core::panic_flush(
    void (*fn)(void*, const std::uint32_t*, std::uint32_t) noexcept, void* fn_context) noexcept {
  // No lock: the context that held it may never run again. Relaxed: this
  // context owns the consumer side from now on.
  std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  // Acquire [PB7], as in nothing_reserved_at. During a move to slot 0 the
  // buffer is empty: nothing to flush, and no header to read ahead of w.
  const std::uint32_t w = tmp_wr_idx.load(std::memory_order_acquire);
  if ((w & pbuf_moving) != 0) return 0;
  // Where the consumer would start: a producer may have moved the empty
  // buffer to slot 0 since its last look (it follows in claim). Relaxed:
  // after the acquire above.
  const std::uint32_t r = rd_idx.load(std::memory_order_relaxed);
  if (moved_ahead(t, r)) t = r;
  std::uint32_t count = 0;
  while (t != w) {
    atomic_ref<std::uint32_t> h = header(t);
    const std::uint32_t v = h.load(std::memory_order_acquire);  // [PB2]
    const std::uint32_t state = v & pbuf_hdr_mask;
    if (state == 0) break;  // not committed: what follows stays
    std::uint32_t* const packet = buf + slot(t);
    if (state == pbuf_busy) {
      t = advance(t, v >> pbuf_hdr_bits);
      continue;
    }
    const std::uint32_t n = words_of(packet);
    if (state == pbuf_valid) {
      fn(fn_context, packet, n);
      ++count;
      // Relaxed: this context owns the consumer side; the packet leaves the
      // stream as padding (E4 without a claim).
      h.store((n << pbuf_hdr_bits) | pbuf_busy, std::memory_order_relaxed);
    }
    t = advance(t, n);
  }
  // Relaxed: consumer-owned from now on (see above); observers only read.
  tmp_rd_idx.store(t, std::memory_order_relaxed);
  // Frees what was drained (up to a packet the stopped consumer still
  // holds), as the consumer's free would, but wakes nobody: the waiter
  // lists' lock may belong to the context this one interrupted. Release
  // [PB1], as in publish_rd_idx.
  rd_idx.store(zero_skips<false>(r, t), std::memory_order_release);
  // Relaxed, no read-modify-write: the consumer side's own counter.
  flushed.store(flushed.load(std::memory_order_relaxed) + count, std::memory_order_relaxed);
  return count;
}

// ---------------------------------------------------------------- observers

std::uint32_t pbuf_core::used_words() const noexcept {
  // rd_idx first: it never passes tmp_wr_idx, so a later look at
  // tmp_wr_idx is not behind it (the other order could see rd_idx past an
  // older tmp_wr_idx and report a full buffer). Acquire [PB1]: that later
  // look then sees at least the tmp_wr_idx that the store of rd_idx came
  // after (relaxed, a weakly ordered core could answer it from before).
  // What moved between the two looks is clamped. During a move to slot 0
  // the buffer is empty (rd_idx may be at the new position, ahead of the
  // marked one). The move's store of rd_idx is a release after its look
  // at the mark, so an observer that sees the new rd_idx sees the mark or
  // what came after it, never the position from before the mark (which
  // would read as a full buffer).
  const std::uint32_t r = rd_idx.load(std::memory_order_acquire);
  SLUICE_PBUF_HOOK(used_looked);
  // Relaxed: an observer; ordered after rd_idx's load by its acquire.
  const std::uint32_t w = tmp_wr_idx.load(std::memory_order_relaxed);
  if ((w & pbuf_moving) != 0) return 0;
  const std::uint32_t used = distance(r, w);
  return used > size ? size : used;
}

[[gnu::cold, gnu::flatten]] bool pbuf_core::is_pending() noexcept {
  if (!overwrite()) {
    // Nothing reserved past the claim position: no header to read, so no
    // handshake (a membarrier and two signal-mask calls hosted). Relaxed,
    // both: nothing is read through them. A packet reserved before this
    // call is in the w we load (coherence: its compare-and-swap comes
    // before us), and t reaches that w only once a claim passed it. A move
    // to slot 0 marks w: not equal, the full look answers.
    if (tmp_rd_idx.load(std::memory_order_relaxed) == tmp_wr_idx.load(std::memory_order_relaxed))
      return false;
    const observer_guard masked(*this);
    // One core: nothing runs while we are masked, the consumer included.
    if constexpr (single_core) return claim_would_take();
    // Join the current bucket (the table at pbuf_observer_epoch): the
    // compare-and-swap fails if the consumer flipped the epoch since our
    // load. Relaxed: the heavy fence orders it before our loads [PB8].
    std::uint32_t v = observers.load(std::memory_order_relaxed);
    std::uint32_t one = 0;
    do {
      one = 1u << pbuf_observer_shift(v);
      SLUICE_ASSERT(pbuf_observer_bucket(v, pbuf_observer_shift(v)) < pbuf_observer_bucket_max,
                    "packet buffer: more is_pending calls at once than it counts (32767)");
    } while (!observers.compare_exchange_weak(v, v + one, std::memory_order_relaxed,
                                              std::memory_order_relaxed));
    // [PB8] heavy side: pairs with the light side in await_observers.
    port::asymmetric_fence_heavy();
    SLUICE_PBUF_HOOK(observer_counted);
    const bool pending = claim_would_take();
    // Release [PB8]: our read of the header comes before the zeroing of a
    // consumer that waited for this (acquire in await_observers).
    observers.fetch_sub(one, std::memory_order_release);
    return pending;
  }
  // With overwrite, droppers pass the front and zero it, and the consumer
  // claims in its turn: look in a dropper's turn, which excludes both and
  // can be taken from any context (the consumer's turn cannot: a second
  // entry would end the consumer's own turn). Where a dropper would give
  // up (a handler that interrupted a holder or the consumer's turn on its
  // own thread), answer "perhaps": true, so that a consumer looks again
  // rather than sleeps.
  if constexpr (speed_over_size) {
    // Nothing reserved past the claim position (packets the consumer
    // holds do not count): no turn. A turn ends the consumer's bias (a heavy
    // fence for this caller), and one in each stretch of the consumer's
    // locked turns keeps it off (the next stretch twice as long): a
    // consumer that polls an idle buffer would lose its biased turns for
    // good. Relaxed, both, as in claim_locked's first look: nothing is
    // read through them (no header), and no order between the two loads
    // is needed. A packet reserved before this call is in the w we load
    // (coherence: the reservation's compare-and-swap comes before us), and
    // t reaches that w only once a claim or a drop moved tmp_rd_idx past
    // the packet (tmp_rd_idx never passes tmp_wr_idx: a dropper moves
    // tmp_wr_idx first, by compare-and-swap, then tmp_rd_idx). So t == w
    // misses only packets reserved or claimed while this runs, as any try
    // may. (A build optimised for size has no bias: it takes the turn.)
    const std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
    if (t == tmp_wr_idx.load(std::memory_order_relaxed)) return false;
  }
  const std::uint32_t token = pbuf_consumer_masks ? 0 : port::context_token();
  bool pending = true;
  const auto look = [&]() noexcept {
    if (lock_as(pbuf_lock_dropper | token << pbuf_lock_role_bits)) {
      if (!speed_over_size || end_bias(token)) pending = committed_at_claim();
      unlock();
    }
  };
  if (token != 0) {
    look();
    finish_deferred_frees(token);  // [PB9]
  } else {
    const dropper_guard masked(*this);
    look();
  }
  return pending;
}

// is_pending without overwrite, counted in observers (or masked on one
// core) [PB8]: reads the header at the claim position and moves nothing.
// A claim there would take a committed packet, or pass padding (and bring
// back its room: producers never pass a skip, so a consumer that claims
// only when is_pending says yes must hear of it). A packet claimed since
// we loaded the claim position (we are another context than the consumer)
// also answers true: look again. Not committed (0): a claim stops there.
[[gnu::cold]] bool pbuf_core::claim_would_take() noexcept {
  // Relaxed: after the heavy fence [PB8]: past every packet whose words
  // the consumer zeroed without waiting for us. (It is the consumer's to
  // write; we only read.)
  std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  // Acquire [PB7], as in nothing_reserved_at (whose copy is the
  // consumer's): nothing reserved at t, or a move to slot 0 in progress.
  const std::uint32_t w = tmp_wr_idx.load(std::memory_order_acquire);
  if (t == w || (w & pbuf_moving) != 0) return false;
  // Acquire [PB1]: the last plain writes to the words up to r + size (the
  // consumer's zeroing, after a producer's payload) come before that
  // rd_idx, and so before our read of the header (the consumer's own
  // claims read after its own zeroing; we are another context). From a
  // producer's move to slot 0 as well: its compare-and-swap of rd_idx
  // is acq_rel.
  const std::uint32_t r = rd_idx.load(std::memory_order_acquire);
  if (moved_ahead(t, r)) {
    // [PB7]: moved since the consumer's last look; it will follow to
    // rd_idx, and the word at t may be payload now.
    t = r;
    if (t == w) return false;
  } else if (distance(r, t) >= size) {
    // t a lap or more past our rd_idx: a reservation newer than the
    // rd_idx we read, whose words were zeroed after it. (A current rd_idx
    // is less than a lap behind a position reserved past it.) Perhaps:
    // ask again.
    return true;
  }
  // w not ahead of t: our t (a relaxed load, which may be answered after
  // the acquire load of w) is newer than w, as the consumer claimed up to
  // it. Nothing shows that t is still reserved: the buffer may have
  // emptied there, and a producer moved it to slot 0 and wrote payload over
  // t's word, with no zeroing by the consumer between that rd_idx and us.
  // Perhaps. (A w ahead of t within a lap, unmarked, came after any move
  // from t, which the acquire loads above then showed in r.)
  if (!ahead_within_a_lap(t, w)) return true;
  // Relaxed: only the header's state bits are read, no word of the packet
  // ([PB2] is the claim's, which acquires the header itself). The release
  // decrement in is_pending keeps this read before a consumer's zeroing.
  return (header(t).load(std::memory_order_relaxed) & pbuf_hdr_mask) != 0;
}

[[gnu::cold, gnu::flatten]] bool pbuf_core::committed_at_claim() noexcept {
  // With overwrite only (a dropper's turn, maybe not the consumer's
  // context): it moves nothing; droppers pass skips themselves.
  // Relaxed: in the dropper's turn, which excludes the consumer's.
  std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  // Skips and held packets are passed as a claim passes them; one lap at
  // most.
  for (std::uint32_t passed = 0; passed <= size;) {
    // Acquire [PB7], as in nothing_reserved_at (whose copy is the
    // consumer's alone): nothing reserved at t, or a move in progress.
    const std::uint32_t w = tmp_wr_idx.load(std::memory_order_acquire);
    if (t == w || (w & pbuf_moving) != 0) return false;
    // [PB7], as in claim_unlocked: moved (a dropper passed the consumer),
    // the word at t may be payload now; look at the new position.
    const std::uint32_t r = rd_idx.load(std::memory_order_relaxed);
    if (moved_ahead(t, r)) {
      t = r;
      continue;
    }
    // Acquire [PB2]: pairs with the release in commit / write_skip / abandon.
    const std::uint32_t v = header(t).load(std::memory_order_acquire);
    if ((v & pbuf_hdr_mask) == 0) return false;
    if ((v & pbuf_hdr_mask) == pbuf_valid) return true;
    // A skip (its length in the header), or a held packet stepped over:
    // claim passes both.
    const std::uint32_t n =
        (v & pbuf_hdr_mask) == pbuf_busy ? v >> pbuf_hdr_bits : words_of(buf + slot(t));
    passed += n;
    t = advance(t, n);
  }
  return false;
}

// -------------------------------------------------------------------- lock

bool pbuf_core::held_by_own_dropper(std::uint32_t token) const noexcept {
  if constexpr (pbuf_consumer_masks) {
    return false;  // droppers mask: no handler runs on a holder's core
  } else {
    // Relaxed: only our own thread stores our token there, and a handler
    // sees its thread's stores in program order; while we run, that
    // thread cannot unlock.
    const std::uint32_t seen = lock.load(std::memory_order_relaxed);
    return token != 0 && (seen & pbuf_lock_role_mask) == pbuf_lock_dropper &&
           seen >> pbuf_lock_role_bits == token;
  }
}

void pbuf_core::defer_free(const std::uint32_t* packet) noexcept {
  SLUICE_ASSERT((atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(packet))
                     .load(std::memory_order_relaxed) &
                 pbuf_hdr_mask) == (pbuf_valid | pbuf_busy),
                "packet buffer: free of a packet that is not claimed");
  const auto entry = static_cast<std::uint32_t>(packet - buf) + 1;
  for (auto& slot_entry : deferred_frees) {
    std::uint32_t empty = 0;
    // Relaxed: the release store of deferred_any below publishes it [PB9];
    // no dropper takes entries while our thread holds the lock.
    if (slot_entry.compare_exchange_strong(empty, entry, std::memory_order_relaxed,
                                           std::memory_order_relaxed)) {
      // Release [PB9]: pairs with the acquire exchange in
      // finish_deferred_frees_slow; after the entry, so a dropper that
      // takes the flag finds it.
      deferred_any.store(1, std::memory_order_release);
      return;
    }
  }
  static_assert(pbuf_deferred_free_max == 14, "the message below names the limit");
  port::panic(
      "sluice: packet buffer: more than 14 frees deferred at once (signal handlers that freed "
      "while their own thread held the overwrite lock as a dropper)",
      __FILE__, __LINE__);
}

SLUICE_PBUF_FULL_PATH void pbuf_core::finish_deferred_frees_slow(std::uint32_t token) noexcept {
  for (;;) {
    // Gave up: a holder on our own thread, beneath us, which looks after
    // its own unlock.
    if (!lock_as(pbuf_lock_dropper | token << pbuf_lock_role_bits)) return;
    bool took = false;
    // As every dropper's turn: no biased turn beside it (end_bias gives up
    // only on our own thread's turn, beneath us: the entries wait for the
    // next dropper's look).
    if (!speed_over_size || end_bias(token)) {
      // Acquire [PB9]: pairs with the release store in defer_free, made
      // after its entry.
      took = deferred_any.exchange(0, std::memory_order_acquire) != 0;
      if (took) {
        for (auto& slot_entry : deferred_frees) {
          // Relaxed: the exchange of deferred_any above ordered every entry
          // stored before its flag [PB9]; one stored since is a handler's
          // on our own thread (only the holder's thread defers), seen in
          // program order.
          const std::uint32_t entry = slot_entry.exchange(0, std::memory_order_relaxed);
          if (entry != 0) free_unlocked(buf + (entry - 1));  // E4, and E9 where it is the oldest
        }
      }
    }
    unlock();
    if (!took) return;
    // A handler on our thread may have deferred another during that turn:
    // look again, as after any dropper's turn.
    signal_fence(std::memory_order_seq_cst);
    // Relaxed: a look, as in finish_deferred_frees.
    if (deferred_any.load(std::memory_order_relaxed) == 0) return;
  }
}

bool pbuf_core::lock_as(std::uint32_t holder) noexcept {
  if constexpr (speed_over_size) {
    // A free lock, taken at once, in few registers. Acquire [PB3] pairs
    // with the release in unlock().
    std::uint32_t seen = 0;
    if (lock.compare_exchange_strong(seen, holder, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return true;
  }
  return lock_as_waiting(holder);
}

SLUICE_PBUF_FULL_PATH bool pbuf_core::lock_as_waiting(std::uint32_t holder) noexcept {
  backoff spin;
  holder_waiter waiter((holder & pbuf_lock_role_mask) == pbuf_lock_dropper &&
                       droppers_may_give_up());
  for (;;) {
    std::uint32_t seen = 0;
    // Acquire [PB3] pairs with the release in unlock().
    if (lock.compare_exchange_weak(seen, holder, std::memory_order_acquire,
                                   std::memory_order_relaxed))
      return true;
    while (seen != 0) {
      SLUICE_PBUF_HOOK(lock_awaited);
      if (!waiter.wait(seen, holder >> pbuf_lock_role_bits, spin) || in_own_biased_turn(holder)) {
        // The consumer gives up only on its own thread (waiter.wait): on
        // its dropper, refused (a handler that interrupted it); on its own
        // turn, a call that re-entered, which nothing can serve.
        if ((holder & pbuf_lock_role_mask) == pbuf_lock_consumer &&
            (seen & pbuf_lock_role_mask) != pbuf_lock_dropper) {
          port::panic(
              "sluice: packet buffer: the consumer re-entered claim or free (a signal handler "
              "inside its own thread's claim or free?)",
              __FILE__, __LINE__);
        }
        return false;
      }
      // Relaxed: waiting for the holder; the compare-and-swap orders.
      seen = lock.load(std::memory_order_relaxed);
    }
  }
}

// Whether `holder`, a dropper, is a handler that interrupted its own
// thread's consumer inside a biased turn (consumer_in names its token).
// That turn holds no lock, but the holder may be a dropper waiting for it
// to end (end_bias), and it cannot end before the handler returns: the
// handler gives up, as it does on a lock its own thread holds.
[[gnu::always_inline]] inline bool pbuf_core::in_own_biased_turn(
    std::uint32_t holder) const noexcept {
  if constexpr (speed_over_size && !pbuf_consumer_masks) {
    const std::uint32_t token = holder >> pbuf_lock_role_bits;
    // Relaxed: only this thread stores its own token there, and a handler
    // sees its thread's stores in program order.
    return (holder & pbuf_lock_role_mask) == pbuf_lock_dropper && token != 0 &&
           consumer_in.load(std::memory_order_relaxed) >> pbuf_lock_role_bits == token;
  } else {
    return false;
  }
}

}  // namespace sluice::detail
