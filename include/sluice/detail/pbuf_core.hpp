// pbuf_core: the engine of sluice's multi-producer single-consumer packet
// buffer (Zephyr mpsc_pbuf semantics). Not templated: compiled once in
// src/packet_buffer.cpp, but for the common case of alloc, commit, claim
// and free, which is inline at the end of this header where speed comes
// first ("the fast paths" below). The C++ API (sluice/packet_buffer.hpp)
// and the C API (include/compat/zephyr/sys/mpsc_pbuf.h) are thin layers
// over it, and its state is laid out so that it can live inside Zephyr's
// struct mpsc_pbuf_buffer (field names and order of that struct come
// first).
//
// Storage: `size` 32-bit words from the caller. A packet is `n` contiguous
// words; bits 0 and 1 of its first word are the buffer's header, the other
// 30 bits belong to the user (or hold the length, see words_of()).
//
// Header state of a packet's first word (bit 0 valid, bit 1 busy):
//
//   valid busy  name       set by                         cleared by
//   0     0     reserved   reclaim() zeroes freed words;  commit (-> committed),
//                          so a new reservation reads 0   abandon (-> skip)
//   1     0     committed  commit / put_*  [H1]           claim (-> claimed),
//                                                         drop (-> claimed by
//                                                         the dropper; with no
//                                                         callback -> skip)
//   1     1     claimed    claim, drop_one                free / drop end (-> skip)
//   0     1     skip       reserve (padding at the wrap,  reclaim() (zeroes it
//                          gaps when stepping over),      once rd_idx passes)
//                          free, abandon, drop end;
//                          bits 2..31 hold its length
//
// Edges: E1 reserve (reserved), E2 commit, E3 claim, E4 free, E5 abandon,
// E6 pad, E7 drop_one (committed -> claimed by the dropper), E8 drop end
// (-> skip), E9 reclaim (skip -> zero words). With no drop callback, E7
// and E8 are one store. The engine reads and writes the header word
// through atomic_ref, except where the owner of a packet's words zeroes
// them all (a memset) while nobody else may read them (E9, and the
// constructor).
//
// Positions: the four indices run over [0, period) where period is the
// largest multiple of size not above 2^31; slot = position % size. Keeping
// more than one lap of history tells full from empty (the whole capacity is
// usable) and makes a compare-and-swap on a stale position fail unless
// 2^31 words went through the buffer in between (the ABA window). For a
// power-of-two size the period is 2^31 itself, and the fast paths take
// slots, steps and distances as masks (basic_geometry).
//
//   rd_idx  <=  tmp_rd_idx  <=  tmp_wr_idx          (in ring order)
//   [rd_idx, tmp_rd_idx)     claimed packets (busy) or freed ones (skip)
//   [tmp_rd_idx, tmp_wr_idx) reserved, committed or skip packets, unclaimed
//   [tmp_wr_idx, rd_idx+size) free words; every word there reads zero
//
// A request for the whole size always succeeds on an empty buffer. With
// overwrite, one that does not fit only because of the padding at the wrap
// goes to the lock holder, which pads up to slot 0 and then passes the skip
// at the front like any other. Without overwrite, producers never pass a
// skip, so a request that would pad an empty buffer moves all indices to
// the next slot 0 first instead (padding would hold its words until the
// consumer's next claim): the producer that finds it so marks the move
// in tmp_wr_idx (pbuf_moving), and whoever meets the mark ends it: rd_idx
// to the new position, then the mark cleared with release; the consumer
// reads tmp_wr_idx with acquire and follows rd_idx before it reads a
// header ([PB7] in src/packet_buffer.cpp):
//
//   tmp_wr_idx     rd_idx         producers              consumer
//   w              w (empty)      reserve, or mark       nothing to claim
//   w | moving     w or start     end the move, retry    nothing to claim;
//                                                        used_words 0
//   start (+ n)    start          reserve                follows to start
//
// (start: w's next slot 0.)
//
// Policies:
//   no-overwrite  producers are lock-free: reserving is one compare-and-swap
//                 on tmp_wr_idx; commit is one atomic store on the header;
//                 claim/free touch only consumer-owned indices.
//   overwrite     a reservation that fits is the same lock-free
//                 compare-and-swap. Making room (dropping, stepping over a
//                 claimed packet), claim and free run under `lock`; the
//                 lock holder changes tmp_wr_idx only by compare-and-swap,
//                 as producers may reserve beside it. A claim that finds
//                 nothing allocated takes no lock. Commit stays one atomic
//                 store. The drop callback runs outside the lock: the
//                 victim is first marked claimed (so that nobody reuses its
//                 words), the lock is left, the callback runs, then the
//                 victim becomes a skip in the dropper's next turn with the
//                 lock and no biased turn beside it (a holder stepping over
//                 it meanwhile, or a claim passing it, reads its length,
//                 through a length callback perhaps). With no
//                 callback, E7 and E8 are one store under the lock, and
//                 the same turn reclaims the words at once (the skip is
//                 the front) and reserves.
//
// The overwrite lock and handlers. `lock` reads 0 (free), or the holder's
// role (pbuf_lock_dropper, pbuf_lock_consumer) | its thread's context token
// << 2 (port::context_token(); 0 where the consumer masks, or where the
// port has no tokens):
//   holder    takes it                          waiting for it, finds it held
//   dropper   where the consumer masks, or      by its own thread (token):
//             with no token: inside a           gives up at once (it is a
//             sluice::critical_section (none    handler that interrupted the
//             with pbuf_flag_threads_only);     holder); by a dropper: spins;
//             hosted with a token: unmasked     by the consumer: spins, but
//                                               without tokens (and neither
//                                               masking nor threads_only)
//                                               gives up after a short spin
//                                               (no_room): it may be a
//                                               handler that interrupted it
//   consumer  hosted: outside any critical      by a dropper on another
//             section (claim, free: no system   thread (or masked): spins (it
//             call); bare metal: masked         runs, or is resumed by the
//             (SLUICE_PBUF_CONSUMER_MASKS)      scheduler); by its own
//                                               thread's dropper (token): it
//                                               is a handler that interrupted
//                                               the holder, so it refuses: a
//                                               claim takes nothing, a free
//                                               is deferred (below); by
//                                               itself (token): stops the
//                                               program (re-entered)
// A handler that produces and needs room interrupted either a context that
// holds no lock, or a holder on its own thread, or its thread's consumer
// inside a biased turn (consumer_in names its token: a dropper holding the
// lock may be waiting for that turn to end). In the last two cases it gives
// up: no deadlock; with masking it cannot interrupt a dropper at all. The
// consumer never waits for anything while holding the lock. After unlocking,
// the consumer wakes producers waiting for room ([PB4]: a dropper that gave
// up and then waits has the released lock as its condition). A consumer's
// free refused as the table says cannot wait and cannot act without the lock
// (the holder beneath it keeps indices and a header it read in registers),
// so it leaves the packet in deferred_frees, still claimed, and sets
// deferred_any; every unmasked dropper, after it unlocks, looks at that
// word and frees what the entries hold in a turn of its own
// (finish_deferred_frees). The holder that the handler
// interrupted looks after the handler's store (its own thread, in program
// order), so no deferred free waits for longer than that turn ([PB9]),
// except where that holder is itself a handler that interrupted its
// thread's consumer inside a biased turn (two nested handlers, the C API's
// free in the inner one): its turn gives up on that turn, and the free
// waits for the next dropper's look. Who
// masks does not change the mutual exclusion: every change of rd_idx,
// tmp_rd_idx or of a header at the front is made by the lock holder. A
// dropper with a victim to end waits for the lock, and for a biased turn (it
// ends the victim only once no biased turn runs beside it), without giving
// up: it had a turn since it started, so what it interrupted holds nothing
// (between tries it leaves its critical section and waits for a biased turn
// there, so that a holder preempted on its core, or a handler inside that
// turn, can run). The price, hosted only: a handler that interrupts its own
// thread inside claim, free or a dropper's turn, on a buffer that must drop
// to fit it, fails to allocate instead of being held off until that turn is
// done; and a consumer handler that interrupts its own thread's dropper
// claims nothing, and its free is deferred (the lock table).
//
// The consumer's biased turn. Droppers are rare (a full buffer), the
// consumer's turns are not: so the consumer's turn skips the lock while
// lock_bias reads 1. It announces itself in consumer_in and re-reads
// lock_bias after the light side of the port's asymmetric fence; a dropper
// that takes the lock while lock_bias is 1 ends the bias (stores 0, heavy
// side: a membarrier hosted) and waits for a biased turn in progress, or
// gives up on it as on the consumer's lock (table above). Every dropper
// waits for such a turn, not only the one that ends the bias: the turn may
// have outlived a dropper that gave up on it. The consumer then
// takes the lock for a stretch of turns (pbuf_rebias_after at first) and
// sets lock_bias again at its end, unless a dropper held the lock during
// it: then the next stretch is twice as long (up to pbuf_rebias_max), so
// that a buffer that drops all the time costs its droppers no heavy fence
// after the first few stretches. A build optimised for size has no bias.
// See [PB6] and the table beside enter_consumer in src/packet_buffer.cpp.
//
// Why the consumer still has a turn: a claim and a drop could decide
// the front packet by one compare-and-swap (on tmp_rd_idx as a ticket, the
// header read while it held), but both sides also reclaim: zero the words
// behind rd_idx and move it, and producers reuse words as soon as rd_idx
// passes them. Two reclaimers need one owner per range, decided before the
// zeroing; a compare-and-swap on a skip header cannot decide it (a stale
// reader meets the same header value one lap later), and a dropper may not
// wait for the consumer (it may have interrupted it). Without such an
// owner a late zeroing can erase a new packet.
//
// Wake-ups: commit and reclaim check the waiter lists after the light side
// of the port's asymmetric fence; a waiter pays the heavy side (membarrier
// hosted) before its re-check. See [PB4] in src/packet_buffer.cpp.
//
// A claimed packet met by a dropper at rd_idx is stepped over: the free
// words before it become skip packets, tmp_wr_idx and rd_idx move past it,
// and its words re-enter the stream as a future skip (its own header becomes
// one when it is freed), so it is never overwritten and never delivered
// twice: a claim that reaches it still claimed passes it, and it joins the
// claimed packets behind tmp_rd_idx. Stepping is bounded to one lap per
// allocation (no endless loop on a claimed packet met twice).
#pragma once

#include <cstddef>
#include <cstdint>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/time.hpp>

// The full paths behind the fast ones (reserve_fast, claim_fast,
// free_fast, lock_as) stay calls, so that the fast ones need few registers
// (no saves, no stack). A build optimised for size has no fast paths
// (detail::speed_over_size, the same test, config.hpp).
// SLUICE_PBUF_INLINE: the operations whose fast paths are inline here
// (below), inlined into every caller; calls to one copy where size comes
// first.
#if defined(__OPTIMIZE_SIZE__)
#define SLUICE_PBUF_FULL_PATH
#define SLUICE_PBUF_INLINE inline
#else
#define SLUICE_PBUF_FULL_PATH [[gnu::noinline]]
#define SLUICE_PBUF_INLINE [[gnu::always_inline]] inline
#endif

// The C API's types, named here only so that the engine can hold and call
// the C callbacks with their exact types.
union mpsc_pbuf_generic;
struct mpsc_pbuf_buffer;
extern "C" {
typedef void (*sluice_pbuf_c_notify_drop)(const struct mpsc_pbuf_buffer* buffer,
                                          const union mpsc_pbuf_generic* packet);
typedef std::uint32_t (*sluice_pbuf_c_get_wlen)(const union mpsc_pbuf_generic* packet);
}

namespace sluice::detail {

// Header bits in the first word of every packet.
inline constexpr std::uint32_t pbuf_valid = 1u << 0;
inline constexpr std::uint32_t pbuf_busy = 1u << 1;
inline constexpr std::uint32_t pbuf_hdr_mask = pbuf_valid | pbuf_busy;
inline constexpr std::uint32_t pbuf_hdr_bits = 2;
// The largest length a skip packet (or a length-in-header packet) can state.
inline constexpr std::uint32_t pbuf_max_words = (1u << (32 - pbuf_hdr_bits)) - 1;

// Configuration flags (values are Zephyr's).
inline constexpr std::uint32_t pbuf_flag_pow2 = 1u << 0;
inline constexpr std::uint32_t pbuf_flag_overwrite = 1u << 1;
inline constexpr std::uint32_t pbuf_flag_max_utilization = 1u << 2;
inline constexpr std::uint32_t pbuf_flag_full = 1u << 3;
// sluice's own: every producer and the consumer are threads (or tasks),
// never interrupt or signal handlers, so the overwrite lock needs no
// critical section around it.
inline constexpr std::uint32_t pbuf_flag_threads_only = 1u << 8;
// sluice's own, set by the constructor where speed comes first: packet
// lengths are in the header (no pbuf_config::words, no c_get_wlen), as the
// fast paths read them; one test of flags tells them. (Never left set for
// Zephyr's API: mpsc_pbuf_init clears it, as its caller may read the
// flags, and its buffers take the full paths.)
inline constexpr std::uint32_t pbuf_flag_header_lengths = 1u << 9;

// Set in tmp_wr_idx (on the position the move starts from) while a
// producer moves an empty buffer to slot 0 (no overwrite; positions stay
// below 2^31, so the bit is free).
inline constexpr std::uint32_t pbuf_moving = 1u << 31;
// The largest buffer, in words: positions then keep at least four laps of
// history below pbuf_moving (see Positions above).
inline constexpr std::uint32_t pbuf_max_size = 1u << 29;
// A power-of-two size up to pbuf_max_size divides 2^31, which is then the
// period (largest_period): positions modulo it are their bits below this
// mask.
inline constexpr std::uint32_t pbuf_pow2_period_mask = pbuf_moving - 1;
static_assert(pbuf_max_size <= pbuf_moving && (pbuf_moving % pbuf_max_size) == 0,
              "every power-of-two size must divide the period 2^31");

enum class pbuf_status : std::uint8_t { ok, too_large, no_room, timeout };

// `observers` ([PB8], without overwrite): the is_pending looks reading a
// header now, in two buckets, and which bucket a look that starts now
// joins, so that a consumer waits only for the looks that were running
// when it looked, never for one that started after (which needs no wait).
//   bits 0..14   looks in bucket 0
//   bits 15..29  looks in bucket 1
//   bit 31       the current bucket (epoch)
// Edges: a look adds one to the current bucket (a compare-and-swap that
// keeps the epoch) and takes it off when done; a consumer that finds looks
// running flips the epoch (only it does) and waits for the bucket that was
// current to empty. Invariant, outside that wait: the other bucket is
// empty (nobody joins it, and the last wait emptied it).
inline constexpr std::uint32_t pbuf_observer_bucket_bits = 15;
inline constexpr std::uint32_t pbuf_observer_bucket_max = (1u << pbuf_observer_bucket_bits) - 1;
inline constexpr std::uint32_t pbuf_observer_counts = (1u << (2 * pbuf_observer_bucket_bits)) - 1;
inline constexpr std::uint32_t pbuf_observer_epoch = 1u << 31;
// Where the current bucket of `observers` value v starts: 0 or 15.
constexpr std::uint32_t pbuf_observer_shift(std::uint32_t v) noexcept {
  return (v & pbuf_observer_epoch) != 0 ? pbuf_observer_bucket_bits : 0;
}
// The looks in v's bucket that starts at `shift`.
constexpr std::uint32_t pbuf_observer_bucket(std::uint32_t v, std::uint32_t shift) noexcept {
  return (v >> shift) & pbuf_observer_bucket_max;
}

// Who holds the overwrite lock: its value is role | context token << 2
// (port::context_token(), 0 where there is none or where all mask); 0: free.
inline constexpr std::uint32_t pbuf_lock_dropper = 1;
inline constexpr std::uint32_t pbuf_lock_consumer = 2;
inline constexpr std::uint32_t pbuf_lock_role_bits = 2;
inline constexpr std::uint32_t pbuf_lock_role_mask = (1u << pbuf_lock_role_bits) - 1;
// How many back-off steps (backoff::spin, up to 64 relax hints each) a
// dropper waits on a lock the consumer holds before it gives up (tens of
// microseconds).
inline constexpr std::uint32_t pbuf_lock_patience = 16;
// How many back-off steps a waiter for the overwrite lock spins (about 10
// microseconds) before it yields the core at each further step
// (port::yield_core), so that a preempted holder can run.
inline constexpr std::uint32_t pbuf_lock_yield_after = 8;
// How many of the consumer's turns take the overwrite lock after a dropper
// ended its bias, before it sets the bias again: each bias a dropper ends
// costs it one heavy fence (a membarrier hosted), so droppers pay at most
// one per this many turns of the consumer. A stretch of such turns during
// which a dropper held the lock is followed by one twice as long, up to
// pbuf_rebias_max turns; the bias comes back at the end of the first
// stretch without a dropper, and the next stretch is pbuf_rebias_after
// again.
inline constexpr std::uint32_t pbuf_rebias_after = 1024;
inline constexpr std::uint32_t pbuf_rebias_max = 1u << 16;
// How many frees may wait in deferred_frees at once: each is a signal
// handler's that interrupted its own thread while it held the overwrite
// lock as a dropper after that turn ended the consumer's bias (before, the
// consumer's turn is biased and takes no lock), so more than one needs
// several handlers inside one turn of a few hundred nanoseconds. A free
// that finds every entry taken stops the program, naming it. 14: with the
// lock word and deferred_any, one cache line.
inline constexpr std::uint32_t pbuf_deferred_free_max = 14;

// Whether slot() divides for every size: in a build optimised for size
// with a hardware divide, one division gives the same slot as the mask of
// a power-of-two size, in less code.
#if defined(__OPTIMIZE_SIZE__) &&                                                 \
    ((defined(__arm__) && defined(__ARM_FEATURE_IDIV)) || defined(__aarch64__) || \
     defined(__x86_64__) || defined(__i386__))
inline constexpr bool pbuf_slot_divides = true;
#else
inline constexpr bool pbuf_slot_divides = false;
#endif

// The outcome of one room-making step under the overwrite lock.
enum class room_step : std::uint8_t {
  reserved,  // the words fit: reserved
  no_room,   // the oldest is not committed, a claimed packet met twice, or
             // the caller may not drop (a waiting allocation)
  victim,    // the oldest was taken for dropping: report it, then free it
};

// What a notifier just did, hence whom it may have to wake.
enum class wake_after : std::uint8_t {
  commit,   // a header became committed: the consumer
  skip,     // a header became a skip (abandon, the padding at the wrap, a
            // freed stepped-over or later claimed packet, a victim's end):
            // the consumer, and with overwrite producers waiting for room
            // (they pass a skip at the front)
  reclaim,  // rd_idx moved: producers waiting for room
};

// The points where a test build calls its hook (SLUICE_PBUF_TEST_HOOKS in
// src/packet_buffer.cpp).
enum class pbuf_hook : std::uint8_t {
  moving_to_slot_zero,  // reserve_from: tmp_wr_idx marked, the move not ended
  moved_rd_idx,         // finish_move: rd_idx at the new position, the mark still set
  claim_looked,         // a claim looked at rd_idx and is about to read a header
  used_looked,          // used_words looked at rd_idx, not yet at tmp_wr_idx
  turn_awaited,         // end_bias: the lock held, the consumer seen in its turn; waits next
  lock_awaited,         // lock_as: the lock seen held by another; waits next (or gives up)
  room_refused,         // reserve: no room (nothing held); the caller decides next
  padding_reserved,     // reserve_from: the words to the wrap reserved, not yet a skip
  victim_awaits_turn,   // reserve_overwrite: a victim to end, a biased turn seen; waits
                        // outside the lock (ports where droppers give up only)
  observer_counted,     // is_pending without overwrite: counted in observers, about to look
  front_read,           // make_room_locked: the lock held, the header at rd_idx read; acts next
};

// The C++ callbacks (the C ones sit in the Zephyr-named fields).
using pbuf_drop_fn = void (*)(void* context, const std::uint32_t* packet,
                              std::uint32_t words) noexcept;
using pbuf_words_fn = std::uint32_t (*)(void* context, const std::uint32_t* packet) noexcept;

struct pbuf_config {
  std::uint32_t* buffer = nullptr;
  std::uint32_t size = 0;  // words
  std::uint32_t flags = 0;
  sluice_pbuf_c_notify_drop c_notify_drop = nullptr;
  sluice_pbuf_c_get_wlen c_get_wlen = nullptr;
  pbuf_drop_fn drop = nullptr;
  pbuf_words_fn words = nullptr;  // null and no C get_wlen: length in header bits 2..31
  void* context = nullptr;
};

// A packet in the buffer: its position and length. Position is what the
// engine needs; the pointer is derived from it.
struct pbuf_span {
  std::uint32_t* words = nullptr;
  std::uint32_t size = 0;
};

// Engine state. Public members so that the layout is standard and the C
// struct can mirror it; only the engine touches them. Grouped by writer,
// one cache line each: producers and the consumer do not share a written
// line in the common path (each keeps a copy of the other's index and
// reloads it only when it seems to have run out).
struct alignas(cache_line) pbuf_core {
  // ---- read-only after construction ----
  std::uint32_t flags = 0;
  std::uint32_t size = 0;    // words
  std::uint32_t period = 0;  // positions run over [0, period)
  sluice_pbuf_c_notify_drop notify_drop = nullptr;
  sluice_pbuf_c_get_wlen get_wlen = nullptr;
  std::uint32_t* buf = nullptr;
  pbuf_drop_fn drop = nullptr;
  pbuf_words_fn words = nullptr;
  void* context = nullptr;

  // ---- written by producers ----
  // End of reserved space (| pbuf_moving during a move to slot 0).
  alignas(cache_line) atomic<std::uint32_t> tmp_wr_idx{0};
  atomic<std::uint32_t> rd_seen{0};  // producers' copy of rd_idx, refreshed when short of room
  atomic<std::uint32_t> max_usage{0};
  atomic<std::uint32_t> dropped{0};  // counter, wrapping (observers)

  // ---- written by the consumer ----
  alignas(cache_line) atomic<std::uint32_t> tmp_rd_idx{0};  // next position to claim
  atomic<std::uint32_t> wr_idx{0};  // end of the committed prefix claim has reached
  // Counters, wrapping (observers). Commits are counted where they leave
  // the buffer (claimed + flushed + dropped): a count kept by producers
  // would cost each commit a read-modify-write on a shared line.
  atomic<std::uint32_t> claimed{0};
  atomic<std::uint32_t> flushed{0};  // by panic_flush
  // The consumer's copy of tmp_wr_idx: written by the consumer only (also
  // outside its turn, in claim's first look), never by droppers.
  std::uint32_t wr_seen = 0;
  // The consumer's turn with overwrite (see "The consumer's biased turn").
  // consumer_holder() during a biased turn, else 0; without overwrite, in
  // debug builds, 1 during a consumer call (pbuf_consumer_call).
  atomic<std::uint32_t> consumer_in{0};
  atomic<std::uint32_t> lock_bias{0};    // 1: the consumer's turns skip `lock`
  std::uint32_t rebias_after = 0;        // under `lock`: locked turns left in this stretch
  std::uint32_t rebias_stretch = 0;      // under `lock`: this stretch's length (see enter_consumer)
  std::uint32_t dropped_in_stretch = 0;  // under `lock`: 1 once a dropper held it in this stretch
  // The C API's consumer lock: Zephyr's claim and free may overlap (they
  // take its buffer's spinlock), the engine's may not. 0: free; else the
  // holder (src/zephyr_mpsc_pbuf.cpp). The C++ API leaves it at 0.
  atomic<std::uint32_t> c_consumer{0};

  // ---- waiting (touched only by a notify's check while nobody waits) ----
  alignas(cache_line) waiter_list space_waiters;  // producers in a timed alloc
  waiter_list data_waiters;                       // the consumer waiting for a commit

  // ---- written by the consumer, read by producers short of room ----
  // On a line of its own (but for `observers`, which only a rare is_pending
  // writes): producers that poll a full buffer for room load it, which
  // then costs the consumer one miss per free (its store after their load)
  // rather than misses on each claim's stores beside it as well.
  alignas(cache_line) atomic<std::uint32_t> rd_idx{0};  // oldest word not yet freed
  // Without overwrite: the is_pending calls reading a header now, in two
  // buckets (the table at pbuf_observer_epoch) ([PB8]). The consumer loads
  // it before it zeroes the words that it then publishes in rd_idx (so on
  // rd_idx's line), and zeroes only once the looks it saw have ended;
  // observers, rare, write it.
  atomic<std::uint32_t> observers{0};

  // ---- the overwrite lock: taken by droppers and the consumer's locked turns ----
  // On a line of its own: a waiter loads it again and again, and beside
  // tmp_wr_idx each such load took that line from the holder in the middle
  // of its turn (the turn's compare-and-swap on tmp_wr_idx, lock-free
  // reservations beside it), so that saturated overwrite paid for the
  // waiting twice.
  alignas(cache_line) atomic<std::uint32_t> lock{0};  // overwrite policy only
  // 1 once a handler deferred a free, until a dropper takes the entries:
  // the one word that every unmasked dropper looks at after it unlocks
  // (a look at every entry there cost saturated overwrite a good part of
  // its throughput).
  atomic<std::uint32_t> deferred_any{0};
  // Frees deferred by handlers on a holder's thread (see the lock table):
  // the packet's slot + 1, or 0. Written by those handlers (a
  // compare-and-swap from 0), taken by droppers in a turn of their own.
  atomic<std::uint32_t> deferred_frees[pbuf_deferred_free_max]{};

  pbuf_core() noexcept = default;
  explicit pbuf_core(const pbuf_config& config) noexcept;
  pbuf_core(const pbuf_core&) = delete;
  pbuf_core& operator=(const pbuf_core&) = delete;

  // Producer side. Reserve `n` words; never waits. With overwrite, drops
  // the oldest packets to make room.
  // A request for 0 words or for more than `size` fails with too_large.
  [[nodiscard]] SLUICE_PBUF_INLINE pbuf_status try_alloc(std::uint32_t n, pbuf_span& out) noexcept {
    return reserve(n, out, true);
  }
  // try_alloc in two steps, for a caller whose span then stays in
  // registers on the fast path (the out-parameter of the rest, passed to a
  // call, lives in memory): the fast path, a null span where it does not
  // apply (always where size comes first), then the rest of try_alloc.
  [[nodiscard]] SLUICE_PBUF_INLINE pbuf_span try_alloc_fast(std::uint32_t n) noexcept {
    pbuf_span out;
    if constexpr (speed_over_size) {
      // reserve_fast writes out only when it reserves.
      if (n - 1 < size && reserve_fast(n, out)) return out;
    }
    return {};
  }
  [[nodiscard]] pbuf_status try_alloc_rest(std::uint32_t n, pbuf_span& out) noexcept {
    return reserve_out_of_line(n, out, true);
  }
  // Waits for room until `deadline` (time_point::max(): forever). Drops
  // nothing in either policy, as Zephyr's alloc with a timeout: with
  // overwrite it waits for the consumer to free, like without. Where
  // port::may_block() is false (an interrupt handler, a critical section)
  // it makes one try (no_room, nothing dropped). A hosted signal handler,
  // which the port cannot tell from its thread, must use the try forms.
  [[nodiscard]] pbuf_status alloc_until(std::uint32_t n, time_point deadline,
                                        pbuf_span& out) noexcept;
  // One try of a waiting allocation (alloc_until's, or a producer task's):
  // never waits, and drops nothing in either policy (no_room instead).
  [[nodiscard]] pbuf_status try_alloc_without_drop(std::uint32_t n, pbuf_span& out) noexcept {
    return reserve(n, out, false);
  }
  // Publishes the packet whose first word is `packet` (E2).
  void commit(std::uint32_t* packet) noexcept;
  // The same, where the caller knows that word: `header`, its state bits
  // 0 (a reserved packet's). No second load of it.
  void commit(std::uint32_t* packet, std::uint32_t header) noexcept;
  // Turns an allocated, uncommitted packet of `n` words into padding (E5).
  void abandon(std::uint32_t* packet, std::uint32_t n) noexcept;
  // Short puts; never wait. Their words must give the length they put, as
  // the consumer will read it (the length callback, get_wlen, or bits
  // 2..31 of the first word without one): a debug build names a put whose
  // words give another, and a release build refuses it (false, nothing
  // taken). Return false when there was no room (or the packet was too
  // large).
  bool put_word(std::uint32_t first) noexcept;
  bool put_word_ext(std::uint32_t first, const void* pointer) noexcept;
  bool put_data(const std::uint32_t* data, std::uint32_t n) noexcept;

  // Consumer side (one consumer).
  [[nodiscard]] pbuf_span try_claim() noexcept;
  void free(const std::uint32_t* packet) noexcept;
  // Waits for a committed packet until `deadline`; one try where
  // port::may_block() is false, as alloc_until.
  [[nodiscard]] pbuf_span claim_until(time_point deadline) noexcept;

  // Drains every committed, unclaimed packet through `fn` without the
  // consumer's cooperation and without the lock: for a context that took
  // over and never returns (a panic handler), then frees them (waking
  // nobody). Returns the count. Meant for
  // a context where every other core has stopped: a dropper still running
  // may report or zero a packet while this reads it.
  std::uint32_t panic_flush(void (*fn)(void* context, const std::uint32_t* packet,
                                       std::uint32_t words) noexcept,
                            void* context) noexcept;

  // Whether a claim now would find something to take: any context's
  // call, the consumer's or another's (Zephyr's logging asks from other
  // threads while its thread consumes). A packet allocated and not
  // committed holds back those after it (the answer is false there), as
  // a claim stops at it.
  //   With overwrite: a committed packet past the skips and held packets
  //   at the claim position. It takes a dropper's turn (which ends the
  //   consumer's bias), unless nothing is reserved past the claim
  //   position; true where a dropper would give up.
  //   Without: the packet at the claim position is committed, or is
  //   padding (an abandoned packet, the tail at the wrap), which a claim
  //   passes, bringing its room back (producers never pass it: a
  //   consumer that claims only when this says yes still gets that room
  //   back). With nothing reserved past the claim position, it answers
  //   from the indices. Else it reads that one header and moves nothing,
  //   masked, in a handshake with the consumer's frees ([PB8]): a free
  //   waits for the looks that were running when it came (hosted: a
  //   membarrier, and longer if a looking thread is preempted inside it),
  //   not for those that start while it waits.
  [[nodiscard]] bool is_pending() noexcept;

  // For a consumer call that the overwrite lock refuses (the C API asks
  // when it finds its consumer lock held, before it waits for it): whether
  // the lock is held by a dropper on the thread whose context token is
  // `token` (nonzero), which the caller, running, must have interrupted.
  [[nodiscard]] bool held_by_own_dropper(std::uint32_t token) const noexcept;
  // The free of a claimed packet from such a call: left to the holder
  // (see the lock table).
  void defer_free(const std::uint32_t* packet) noexcept;

  // Observers (may be stale when they return).
  [[nodiscard]] std::uint32_t used_words() const noexcept;

  // The length of the packet at `packet` through the configured callback
  // (a length no packet can have stops the program: checked_length).
  [[nodiscard]] std::uint32_t words_of(const std::uint32_t* packet) const noexcept;

  // The waiting side of [PB4] (src/packet_buffer.cpp): call right after
  // enqueueing on space_waiters or data_waiters, before re-checking.
  // Requires: thread or task context (not a signal or interrupt handler).
  static void wait_fence() noexcept;

 private:
  // The read-only fields that positions need, as a fast path loads them
  // once (read through the struct, they are loaded again after every
  // payload store or acquire load, which may have changed them as far as
  // the compiler knows), and the arithmetic on positions. `any` size: the
  // flag picks slot()'s mask or division, and a lap is a compare. Where a
  // fast path has tested the flag once (as_pow2), a power of two: the
  // period is then 2^31 (largest_period, with size <= 2^29), so that a
  // position modulo the period is its low 31 bits, and slots, laps and
  // distances are masks.
  enum class sizes : bool { any, pow2 };
  template <sizes Sizes>
  struct basic_geometry {
    std::uint32_t flags;
    std::uint32_t size;
    std::uint32_t period;
    std::uint32_t* buf;

    [[gnu::always_inline]] std::uint32_t slot(std::uint32_t pos) const noexcept {
      if constexpr (Sizes == sizes::pow2) return pos & (size - 1);
      if constexpr (pbuf_slot_divides) return pos % size;
      return (flags & pbuf_flag_pow2) != 0 ? (pos & (size - 1)) : pos % size;
    }
    [[gnu::always_inline]] std::uint32_t advance(std::uint32_t pos,
                                                 std::uint32_t n) const noexcept {
      const std::uint32_t next = pos + n;
      if constexpr (Sizes == sizes::pow2) return next & pbuf_pow2_period_mask;
      return next >= period ? next - period : next;
    }
    [[gnu::always_inline]] std::uint32_t distance(std::uint32_t from,
                                                  std::uint32_t to) const noexcept {
      if constexpr (Sizes == sizes::pow2) return (to - from) & pbuf_pow2_period_mask;
      return to >= from ? to - from : to + period - from;
    }
    // Whether position b is ahead of a by 1 to size words. (One unsigned
    // comparison: a distance of 0 wraps to the largest value.)
    [[gnu::always_inline]] bool ahead_within_a_lap(std::uint32_t a,
                                                   std::uint32_t b) const noexcept {
      return distance(a, b) - 1 < size;
    }
    // The same shape, for a caller that tested pbuf_flag_pow2.
    [[gnu::always_inline]] basic_geometry<sizes::pow2> as_pow2() const noexcept {
      SLUICE_ASSERT((flags & pbuf_flag_pow2) != 0 && period == pbuf_pow2_period_mask + 1,
                    "packet buffer: a power-of-two shape for another size");
      return {flags, size, period, buf};
    }
  };
  using geometry = basic_geometry<sizes::any>;
  [[gnu::always_inline]] geometry shape() const noexcept {
    return geometry{flags, size, period, buf};
  }
  std::uint32_t slot(std::uint32_t pos) const noexcept { return shape().slot(pos); }
  std::uint32_t advance(std::uint32_t pos, std::uint32_t n) const noexcept {
    return shape().advance(pos, n);
  }
  std::uint32_t distance(std::uint32_t from, std::uint32_t to) const noexcept {
    return shape().distance(from, to);
  }
  atomic_ref<std::uint32_t> header(std::uint32_t pos) const noexcept {
    return atomic_ref<std::uint32_t>(buf[slot(pos)]);
  }
  bool overwrite() const noexcept { return (flags & pbuf_flag_overwrite) != 0; }
  std::uint32_t length_of(const std::uint32_t* packet) const noexcept;  // words_of, inline
  // The same, given the packet's first word as the caller just read it.
  std::uint32_t length_of(const std::uint32_t* packet, std::uint32_t first) const noexcept;
  // length_of's check of n, the length of the packet at `packet`.
  std::uint32_t checked_length(const std::uint32_t* packet, std::uint32_t n) const noexcept;
  [[noreturn]] static void bad_length() noexcept;  // its stop
  // length_of's source, unchecked (also a put's words, before they are in
  // the buffer).
  std::uint32_t stated_length(const std::uint32_t* packet, std::uint32_t first) const noexcept;
  // Whether the n words at `packet`, a put's (not in the buffer), give the
  // length n as the consumer will read it; true for a length the
  // allocation refuses anyway (0, or more than the buffer holds).
  bool states_length(const std::uint32_t* packet, std::uint32_t n) const noexcept;
  // The notifying side of [PB4]: after the condition store.
  void wake_waiters(wake_after after) noexcept;
  void notify_waiters(wake_after after) noexcept;  // wake_waiters' slow part

  bool reserve_fast(std::uint32_t n, pbuf_span& out) noexcept;
  template <class Geometry>
  [[gnu::always_inline]] bool reserve_fast_in(const Geometry& g, std::uint32_t n,
                                              pbuf_span& out) noexcept;
  // The operations as a build optimised for size keeps them, one copy each;
  // where speed comes first, what their inline fast paths leave.
  pbuf_status reserve_out_of_line(std::uint32_t n, pbuf_span& out, bool may_drop) noexcept;
  void commit_out_of_line(std::uint32_t* packet) noexcept;
  pbuf_span try_claim_out_of_line() noexcept;
  void free_out_of_line(const std::uint32_t* packet) noexcept;
  pbuf_span claim_body() noexcept;                       // try_claim's, both ways
  void free_body(const std::uint32_t* packet) noexcept;  // free's, both ways
  void publish(std::uint32_t* packet) noexcept;          // commit's body (E2)
  void publish(std::uint32_t* packet, std::uint32_t header) noexcept;
  pbuf_status reserve_lock_free(std::uint32_t n, pbuf_span& out) noexcept;
  // What the caller knows of rd_idx when it reserves: a copy (rd_seen) that
  // may understate the room and is refreshed once before giving up, or its
  // current value (the overwrite lock holder's).
  enum class rd_view : bool { copy, current };
  bool fits(std::uint32_t n, std::uint32_t r, std::uint32_t w) const noexcept;
  // reserve_lock_free's body, from the caller's view r of rd_idx.
  pbuf_status reserve_from(std::uint32_t n, std::uint32_t r, rd_view view, pbuf_span& out) noexcept;
  // Ends the move to slot 0 that `marked` (tmp_wr_idx as loaded) announces;
  // returns the new position.
  std::uint32_t finish_move(std::uint32_t marked) noexcept;
  // try_alloc's body; a waiting allocation passes may_drop = false.
  pbuf_status reserve(std::uint32_t n, pbuf_span& out, bool may_drop) noexcept;
  pbuf_status reserve_overwrite(std::uint32_t n, pbuf_span& out, bool may_drop) noexcept;
  // first_step: where the call first stepped over a claimed packet, or
  // no_step (none yet), or no_drop (a waiting allocation: it drops and
  // steps over nothing). Both are above every position.
  static constexpr std::uint32_t no_step = ~std::uint32_t{0};
  static constexpr std::uint32_t no_drop = ~std::uint32_t{1};
  room_step make_room_locked(std::uint32_t n, pbuf_span& out, std::uint32_t& first_step,
                             pbuf_span& victim) noexcept;
  void write_skip(std::uint32_t pos, std::uint32_t n) noexcept;
  void note_usage(std::uint32_t used) noexcept;
  // The fast paths of the consumer take the geometry as their caller
  // loaded it: in a turn with overwrite, loaded again after the turn's
  // atomic operations, it would cost loads and tests a second time.
  // found: where the caller found something reserved (with overwrite,
  // where it stays reserved until claimed), if it looked. (A flag rather
  // than a position no index takes: not_looked is then a constant the
  // compiler folds away; t against such a position stays a compare.)
  struct reserved_seen {
    bool looked;
    std::uint32_t at;
  };
  static constexpr reserved_seen not_looked{false, 0};
  pbuf_span claim_fast(const geometry& g, reserved_seen found) noexcept;
  template <class Geometry>
  [[gnu::always_inline]] pbuf_span claim_fast_in(const Geometry& g, reserved_seen found) noexcept;
  pbuf_span claim_at(std::uint32_t* packet, std::uint32_t v, std::uint32_t t,
                     std::uint32_t n) noexcept;
  pbuf_span claim_unlocked() noexcept;
  pbuf_span claim_locked() noexcept;   // overwrite: claim_unlocked under the lock
  pbuf_span claim_in_turn() noexcept;  // its body
  bool free_fast(const geometry& g, const std::uint32_t* packet) noexcept;
  template <class Geometry>
  [[gnu::always_inline]] bool free_fast_in(const Geometry& g, const std::uint32_t* packet) noexcept;
  void free_front(const std::uint32_t* packet, std::uint32_t n, std::uint32_t r,
                  std::uint32_t t) noexcept;
  void free_unlocked(const std::uint32_t* packet) noexcept;
  void free_locked(const std::uint32_t* packet) noexcept;
  void free_in_turn(const std::uint32_t* packet) noexcept;  // its body
  bool reclaim() noexcept;
  // reclaim() when the words [start, r) are zeroed already (start: rd_idx,
  // t: tmp_rd_idx).
  bool reclaim_from(std::uint32_t start, std::uint32_t r, std::uint32_t t) noexcept;
  // Zeroes the skips from r toward t (E9), up to a claimed packet; returns
  // where it stopped. Observed: first waits for observers ([PB8]).
  template <bool Observed>
  std::uint32_t zero_skips(std::uint32_t r, std::uint32_t t) noexcept;
  // Moves rd_idx to r (the words before it are zero) and wakes producers.
  void publish_rd_idx(std::uint32_t r) noexcept;
  void pass_skip(std::uint32_t& t, std::uint32_t n) noexcept;         // claim_unlocked
  bool moved_ahead(std::uint32_t t, std::uint32_t r) const noexcept;  // claim_unlocked
  bool ahead_within_a_lap(std::uint32_t a, std::uint32_t b) const noexcept;
  bool follow_rd_idx(std::uint32_t& t, std::uint32_t r) noexcept;  // claim_unlocked
  bool nothing_reserved_at(std::uint32_t t) noexcept;              // the claim paths
  template <class Geometry>
  [[gnu::always_inline]] bool nothing_reserved_at(const Geometry& g, std::uint32_t t) noexcept;
  bool committed_at_claim() noexcept;  // is_pending
  bool claim_would_take() noexcept;    // is_pending, no overwrite
  // [PB8]: the consumer, before it zeroes freed words (E9), waits while an
  // observer reads a header.
  void await_observers() noexcept;
  void wait_for_observers() noexcept;  // await_observers' slow part
  // Takes the overwrite lock as `holder` (role | token << 2); false for a
  // dropper that gave up on a lock the consumer or its own thread holds,
  // and for the consumer refused by its own thread's dropper (see the
  // header comment).
  [[nodiscard]] bool lock_as(std::uint32_t holder) noexcept;
  [[nodiscard]] bool lock_as_waiting(std::uint32_t holder) noexcept;  // lock_as' full path
  bool in_own_biased_turn(std::uint32_t holder) const noexcept;       // lock_as_waiting
  // The consumer's lock value (with its thread's token where droppers use
  // tokens, so a handler on its thread knows it at once).
  static std::uint32_t consumer_holder() noexcept;
  // Whether a dropper gives up on the consumer's lock after a short spin
  // (lock_as): the consumer holds it unmasked, handlers use the buffer, and
  // the port has no context token that would tell a handler which
  // interrupted the consumer (it gives up at once) from a thread waiting
  // on another core (it waits).
  bool droppers_may_give_up() const noexcept;
  // The same for the calling thread whose context token is `token`.
  bool droppers_may_give_up(std::uint32_t token) const noexcept;
  void unlock() noexcept;
  // An unmasked dropper (token: its context token), after unlock(): frees
  // what handlers deferred (defer_free), each in a turn with the lock.
  void finish_deferred_frees(std::uint32_t token) noexcept;
  void finish_deferred_frees_slow(std::uint32_t token) noexcept;  // its turns
  // The consumer's biased try (where speed comes first): true, in the
  // turn; false, consumer_in is 0 again, and the turn takes the lock.
  bool try_enter_biased(std::uint32_t holder) noexcept;
  // Its turn with the lock; false: refused (its own thread's dropper holds
  // it), not in a turn.
  [[nodiscard]] bool enter_consumer_locked(std::uint32_t holder) noexcept;
  // The claim and the free in a turn with the lock, where the biased try
  // failed (droppers at work), or where there is no bias (a build
  // optimised for size): out of line, so that the inline turn is the
  // biased one alone, with no flag to test at its end. Refused, the claim
  // takes nothing and the free is deferred.
  pbuf_span claim_in_locked_turn(std::uint32_t holder) noexcept;
  void free_in_locked_turn(const std::uint32_t* packet, std::uint32_t holder) noexcept;
  // Ends the consumer's turn (biased, or with the lock), then wakes producers
  // waiting for room where droppers may have given up on it.
  void leave_consumer(std::uint32_t holder, bool biased) noexcept;
  // A dropper holding the lock (`token`: its context token) ends the
  // consumer's bias if it is on, and waits for a biased turn in progress to
  // end; false: it gave up on that turn, as on the consumer's lock
  // (lock_as).
  bool end_bias(std::uint32_t token) noexcept;
};

}  // namespace sluice::detail

// Test builds only (SLUICE_PBUF_TEST_HOOKS, tests/hooks): a call at named
// points of the protocols, where a test holds a thread to run another
// inside a window that is otherwise a few instructions wide.
#if defined(SLUICE_PBUF_TEST_HOOKS)
void sluice_pbuf_test_hook(sluice::detail::pbuf_hook point) noexcept;  // the test's
#define SLUICE_PBUF_HOOK(point) sluice_pbuf_test_hook(sluice::detail::pbuf_hook::point)
#else
#define SLUICE_PBUF_HOOK(point) static_cast<void>(0)
#endif

namespace sluice::detail {

// ------------------------------------------------------------ the fast paths
// Where speed comes first, the common case of a producer's alloc and commit
// and of the consumer's claim and free is inline here, so that it compiles
// into its caller with no call (the calls and their register saves were a
// good part of a packet's cost); the rest stays in src/packet_buffer.cpp.
// A build optimised for size keeps one copy of each operation there (the
// *_out_of_line members). The atomic pairings [PB1]..[PB8] are listed at
// the top of src/packet_buffer.cpp.

// Debug builds, without overwrite: the consumer's calls (claim, free)
// run one at a time, and two at once (a free on another thread
// during a claim, two consumers) can strand the read side for good. Each
// such call marks consumer_in, which only the overwrite policy's biased turn
// uses otherwise, and a call that finds it marked names the mistake. (With
// overwrite the turn's lock orders the calls, and enter_consumer checks a
// biased turn.) It catches the calls that overlap, not every misuse.
class pbuf_consumer_call {
 public:
  explicit pbuf_consumer_call(pbuf_core& core) noexcept : core_(core) {
    if constexpr (debug_checks) {
      if ((core_.flags & pbuf_flag_overwrite) != 0) return;
      // Relaxed: a check, not a synchronisation; the calls it catches race.
      const std::uint32_t before = core_.consumer_in.exchange(1, std::memory_order_relaxed);
      SLUICE_ASSERT(before == 0,
                    "packet buffer: two consumer calls at once (claim or free on two threads, "
                    "or two consumers)");
    }
  }
  ~pbuf_consumer_call() {
    if constexpr (debug_checks) {
      // Relaxed: as above.
      if ((core_.flags & pbuf_flag_overwrite) == 0)
        core_.consumer_in.store(0, std::memory_order_relaxed);
    }
  }
  pbuf_consumer_call(const pbuf_consumer_call&) = delete;
  pbuf_consumer_call& operator=(const pbuf_consumer_call&) = delete;

 private:
  pbuf_core& core_;
};

// The port's critical section around a turn with the overwrite lock, so
// that nothing on this core (an interrupt, a signal handler) can run while
// the holder holds it and spin on it. A buffer configured for thread
// producers only skips it (no handler can interrupt a holder). The
// consumer takes it only where that is cheap (Masks = pbuf_consumer_masks,
// config.hpp; else it compiles to nothing); droppers there too, and
// elsewhere only when the port gives no context token (`masks` false: the
// lock word then names the holder's thread instead, see lock_as()).
template <bool Masks, bool EvenThreadsOnly = false>
class pbuf_critical_guard {
 public:
  explicit pbuf_critical_guard(const pbuf_core& core) noexcept
      : masked_(Masks && (EvenThreadsOnly || (core.flags & pbuf_flag_threads_only) == 0)) {
    if (masked_) state_ = port::enter_critical();
  }
  ~pbuf_critical_guard() {
    if (masked_) port::leave_critical(state_);
  }
  pbuf_critical_guard(const pbuf_critical_guard&) = delete;
  pbuf_critical_guard& operator=(const pbuf_critical_guard&) = delete;

 private:
  bool masked_;
  port::critical_state state_{};
};
// Where it never masks: nothing at all, not even a flag (a flag kept on
// the stack, for a destructor call left out of line in cold code, cost the
// consumer's free two stores and a test).
template <bool EvenThreadsOnly>
class pbuf_critical_guard<false, EvenThreadsOnly> {
 public:
  explicit pbuf_critical_guard(const pbuf_core&) noexcept {}
  pbuf_critical_guard(const pbuf_critical_guard&) = delete;
  pbuf_critical_guard& operator=(const pbuf_critical_guard&) = delete;
};
using pbuf_consumer_guard = pbuf_critical_guard<pbuf_consumer_masks>;

// Zeroes freed words (E9), n >= 1. Packets of up to 3 words (4 where size
// comes first) word by word (the stores are relaxed atomics so that the
// loop stays a loop rather than a call to memset). Where speed comes first,
// 4 to 32 words inline, with no loop: 16-byte stores from both ends, which
// overlap where they meet (n not a multiple of 8):
//   n        stores at (words)
//   4..8     0, n-4
//   9..16    0, 4, n-8, n-4
//   17..32   0, 4, 8, 12, n-16, n-12, n-8, n-4
// so no call per free for packets where the call is a good part of the
// work. Longer ones, and every one in a build optimised for size, through
// memset (whose wider stores were as fast at 64 words on x86-64).
//
// GCC, inlining this into a free of a packet in a small static array,
// warns that some length it cannot rule out would write past the array
// (one warning or another, by how the store is written). The callers check
// the length against the storage (claim, and free_fast again), which the
// compiler cannot see.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
// One 16-byte store (a function rather than a lambda: GCC called the
// lambda in code it laid out as cold).
[[gnu::always_inline]] inline void pbuf_zero_4_words(std::uint32_t* words) noexcept {
  typedef std::uint32_t quad __attribute__((vector_size(16)));
  const quad zero{};
  __builtin_memcpy(words, &zero, sizeof zero);
}
[[gnu::always_inline]] inline void pbuf_zero_words(std::uint32_t* words, std::uint32_t n) noexcept {
  if (n >= (speed_over_size ? 4u : 5u)) {
    if (speed_over_size && n <= 32) {
      // Word-aligned: a core that needs aligned stores then uses word stores.
      words = static_cast<std::uint32_t*>(__builtin_assume_aligned(words, alignof(std::uint32_t)));
      pbuf_zero_4_words(words);
      pbuf_zero_4_words(words + n - 4);
      if (n > 8) {
        pbuf_zero_4_words(words + 4);
        pbuf_zero_4_words(words + n - 8);
        if (n > 16) {
          pbuf_zero_4_words(words + 8);
          pbuf_zero_4_words(words + 12);
          pbuf_zero_4_words(words + n - 16);
          pbuf_zero_4_words(words + n - 12);
        }
      }
      return;
    }
    __builtin_memset(words, 0, std::size_t{n} * sizeof(std::uint32_t));
    return;
  }
  // Relaxed: the caller owns the words; rd_idx's release store publishes them.
  for (std::uint32_t i = 0; i < n; ++i)
    atomic_ref<std::uint32_t>(words[i]).store(0, std::memory_order_relaxed);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// A packet's length, from the callback or the header, as the consumer and
// droppers read it. A length no packet can have would make the consumer
// pass the packet for ever (0: claim_unlocked's loop never moves) or read
// and zero words past the storage (a packet never wraps, so one whose
// length runs past the storage's end cannot be). Named in debug builds and
// in release builds too, except where the compiler optimises for size (the
// Cortex-M image, whose size is a budget: there a release build is not
// protected).
[[gnu::always_inline]] inline std::uint32_t pbuf_core::checked_length(
    const std::uint32_t* packet, std::uint32_t n) const noexcept {
  if constexpr (debug_checks || speed_over_size) {
    // The words from packet to the storage's end: 1 to size.
    const auto room = size - static_cast<std::uint32_t>(packet - buf);
    if (n - 1 >= room) [[unlikely]]
      bad_length();
  }
  return n;
}

// Whom a notifier's `after` may concern. A build optimised for size wakes
// both lists (in less code): a waiter woken for nothing re-checks and waits
// again.
[[gnu::always_inline]] inline bool pbuf_may_wake_consumer(wake_after after) noexcept {
  return !speed_over_size || after != wake_after::reclaim;
}
// Producers wait for room: rd_idx moving, or with overwrite a skip they can
// pass at the front (a committed packet is no room for a waiting producer:
// it drops nothing).
[[gnu::always_inline]] inline bool pbuf_may_wake_producers(wake_after after,
                                                           bool overwrite) noexcept {
  return !speed_over_size || after == wake_after::reclaim ||
         (after == wake_after::skip && overwrite);
}

SLUICE_PBUF_INLINE void pbuf_core::wake_waiters(wake_after after) noexcept {
  // [PB4] light side: the caller's condition store comes before the loads
  // of the waiter words; pairs with the heavy side in wait_fence().
  port::asymmetric_fence_light();
  // approx_has_waiters is a relaxed load; [PB4] makes it exact enough: a
  // waiter whose re-check missed our condition is seen here (listed, or
  // its list locked). Only the lists that notify_waiters would notify are
  // read. The notifying is apart so that this check, on every commit and
  // free, stays short.
  if ((pbuf_may_wake_consumer(after) && data_waiters.approx_has_waiters()) ||
      (pbuf_may_wake_producers(after, overwrite()) && space_waiters.approx_has_waiters()))
    notify_waiters(after);
}

// ---- producers

// The common case of reserve_lock_free: room without padding by our copy
// of rd_idx, and the compare-and-swap won at once. False: nothing was
// changed, and reserve_lock_free (or reserve_overwrite) decides.
// Requires: 1 <= n <= size.
[[gnu::always_inline]] inline bool pbuf_core::reserve_fast(std::uint32_t n,
                                                           pbuf_span& out) noexcept {
  const geometry g = shape();
  // The flag tested once: a power-of-two size's arithmetic is masks. (The
  // size to pick for speed, so laid out first; other sizes take the same
  // steps with compares.)
  if ((g.flags & pbuf_flag_pow2) != 0) [[likely]]
    return reserve_fast_in(g.as_pow2(), n, out);
  return reserve_fast_in(g, n, out);
}

template <class Geometry>
[[gnu::always_inline]] inline bool pbuf_core::reserve_fast_in(const Geometry& g, std::uint32_t n,
                                                              pbuf_span& out) noexcept {
  // Relaxed: the compare-and-swap below validates it.
  std::uint32_t w = tmp_wr_idx.load(std::memory_order_relaxed);
  // Acquire [PB1], as in reserve_lock_free: the words up to r + size are
  // free and zero.
  const std::uint32_t r = rd_seen.load(std::memory_order_acquire);
  // A move to slot 0 in progress ([PB7]: the full path ends it) or a
  // statistic to keep: the full path. Else used < period <= 2^31 and
  // n <= size <= 2^29, so used + n cannot wrap.
  if ((w & pbuf_moving) != 0 || (g.flags & pbuf_flag_max_utilization) != 0) return false;
  const std::uint32_t start = g.slot(w);
  if (g.distance(r, w) + n > g.size || n > g.size - start) return false;  // padding: the full path
  // Relaxed, as in reserve_lock_free ([PB1], [PB2], [PB5]).
  if (!tmp_wr_idx.compare_exchange_strong(w, g.advance(w, n), std::memory_order_relaxed,
                                          std::memory_order_relaxed))
    return false;
  std::uint32_t* const packet = g.buf + start;
  // A word of the storage (a buffer of no words never gets here: n <= size)
  // is never null; told, the compiler drops the caller's test of the span.
  if (packet == nullptr) __builtin_unreachable();
  out = pbuf_span{packet, n};
  return true;
}

SLUICE_PBUF_INLINE pbuf_status pbuf_core::reserve(std::uint32_t n, pbuf_span& out,
                                                  bool may_drop) noexcept {
  if constexpr (speed_over_size) {
    // reserve_fast's condition first: 1 <= n <= size (one unsigned test).
    if (n - 1 < size && reserve_fast(n, out)) return pbuf_status::ok;
  }
  return reserve_out_of_line(n, out, may_drop);
}

// E2.
[[gnu::always_inline]] inline void pbuf_core::publish(std::uint32_t* packet) noexcept {
  // Relaxed: the producer's own word.
  const std::uint32_t v = atomic_ref<std::uint32_t>(*packet).load(std::memory_order_relaxed);
  publish(packet, v & ~pbuf_hdr_mask);
}

[[gnu::always_inline]] inline void pbuf_core::publish(std::uint32_t* packet,
                                                      std::uint32_t header) noexcept {
  // Relaxed (debug checks): the producer's own word until the store below.
  SLUICE_ASSERT(header == (atomic_ref<std::uint32_t>(*packet).load(std::memory_order_relaxed) &
                           ~pbuf_hdr_mask),
                "packet buffer: commit with a header other than the packet's");
  // The valid bit alone publishes a packet (there is no shared write index
  // that commit advances): one set before commit let a claim take the
  // packet early, and valid with busy made claims pass it as held.
  SLUICE_ASSERT(
      (atomic_ref<std::uint32_t>(*packet).load(std::memory_order_relaxed) & pbuf_hdr_mask) == 0,
      "packet buffer: commit of a packet whose valid or busy bit is already set (bits 0..1 of "
      "its first word are the buffer's: leave them zero until commit)");
  // Release [PB2]: publishes every word of the packet to claim (E2).
  atomic_ref<std::uint32_t>(*packet).store(header | pbuf_valid, std::memory_order_release);
  // The consumer may wait for it. [PB4]
  wake_waiters(wake_after::commit);
}

SLUICE_PBUF_INLINE void pbuf_core::commit(std::uint32_t* packet) noexcept {
  if constexpr (speed_over_size) {
    publish(packet);
  } else {
    commit_out_of_line(packet);
  }
}

SLUICE_PBUF_INLINE void pbuf_core::commit(std::uint32_t* packet, std::uint32_t header) noexcept {
  if constexpr (speed_over_size) {
    publish(packet, header);
  } else {
    // One copy where size comes first (it loads the header itself).
    commit_out_of_line(packet);
  }
}

// ---- the consumer

[[gnu::always_inline]] inline void pbuf_core::await_observers() noexcept {
  // With overwrite is_pending looks in a dropper's turn: never counted.
  if (overwrite()) return;
  if constexpr (!single_core) {
    // [PB8] light side: the stores that moved tmp_rd_idx past the words we
    // zero next (this claim's, or an earlier one's) come before the load
    // of observers; pairs with the heavy side in is_pending.
    port::asymmetric_fence_light();
    // Acquire [PB8]: pairs with an observer's release decrement, so that
    // its read of a header comes before our zeroing.
    if ((observers.load(std::memory_order_acquire) & pbuf_observer_counts) != 0)
      wait_for_observers();
  }
}

[[gnu::always_inline]] inline void pbuf_core::publish_rd_idx(std::uint32_t r) noexcept {
  // Release [PB1]: the freed words are zero and no longer read here.
  rd_idx.store(r, std::memory_order_release);
  wake_waiters(wake_after::reclaim);  // [PB4]: a producer may wait for room
}

// Whether rd_idx (r) is ahead of tmp_rd_idx (t): a producer that found
// the buffer empty moved it to slot 0 (reserve_from), or a dropper
// passed the consumer; the consumer follows.
[[gnu::always_inline]] inline bool pbuf_core::moved_ahead(std::uint32_t t,
                                                          std::uint32_t r) const noexcept {
  return ahead_within_a_lap(t, r);
}

[[gnu::always_inline]] inline bool pbuf_core::ahead_within_a_lap(std::uint32_t a,
                                                                 std::uint32_t b) const noexcept {
  return shape().ahead_within_a_lap(a, b);
}

// Whether nothing is reserved at t. wr_seen is the consumer's copy of
// tmp_wr_idx; it is reloaded only when t reached it (or it fell behind t,
// when a dropper or the move to slot 0 advanced the consumer). A move to
// slot 0 in progress (marked) counts as nothing: the buffer was empty.
[[gnu::always_inline]] inline bool pbuf_core::nothing_reserved_at(std::uint32_t t) noexcept {
  return nothing_reserved_at(shape(), t);
}

template <class Geometry>
[[gnu::always_inline]] inline bool pbuf_core::nothing_reserved_at(const Geometry& g,
                                                                  std::uint32_t t) noexcept {
  if (g.ahead_within_a_lap(t, wr_seen)) return false;
  // Acquire [PB7]: pairs with the release in finish_move, so the caller's
  // next look at rd_idx sees a move that ended before this position.
  const std::uint32_t w = tmp_wr_idx.load(std::memory_order_acquire);
  if ((w & pbuf_moving) != 0) return true;
  wr_seen = w;
  return t == w;
}

// Claims the committed packet of n words at position t whose header reads
// v (E3); next: t + n.
[[gnu::always_inline]] inline pbuf_span pbuf_core::claim_at(std::uint32_t* packet, std::uint32_t v,
                                                            std::uint32_t next,
                                                            std::uint32_t n) noexcept {
  // Relaxed: after commit only the consumer (or a dropper under the lock)
  // writes the header.
  atomic_ref<std::uint32_t>(*packet).store(v | pbuf_busy, std::memory_order_relaxed);
  // Relaxed: consumer-owned (or under the lock [PB3]); nothing is published
  // through it.
  tmp_rd_idx.store(next, std::memory_order_relaxed);
  // Relaxed, and no read-modify-write: one writer (the consumer, or the
  // lock holder); observers only read them.
  wr_idx.store(next, std::memory_order_relaxed);
  claimed.store(claimed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return pbuf_span{packet, n};
}

// The common case of claim_unlocked: lengths in the header (no call, so
// no registers to save), nothing to follow or pass, the next packet
// committed. Null: nothing was changed but our copy of tmp_wr_idx, and
// claim_unlocked decides.
[[gnu::always_inline]] inline pbuf_span pbuf_core::claim_fast(const geometry& g,
                                                              reserved_seen found) noexcept {
  if ((g.flags & pbuf_flag_header_lengths) == 0) return {};
  // The flag tested once, as in reserve_fast.
  if ((g.flags & pbuf_flag_pow2) != 0) [[likely]]
    return claim_fast_in(g.as_pow2(), found);
  return claim_fast_in(g, found);
}

template <class Geometry>
[[gnu::always_inline]] inline pbuf_span pbuf_core::claim_fast_in(const Geometry& g,
                                                                 reserved_seen found) noexcept {
  // Relaxed: consumer-owned, or under the lock (see claim_unlocked).
  const std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  // Without overwrite, t behind our copy of tmp_wr_idx needs no look at
  // rd_idx ([PB7]): the claim that loaded the copy looked right after, and
  // the buffer has held a reservation since, so no move to slot 0 started.
  // (That skips a load of the line that producers short of room poll.)
  // With overwrite a dropper may have passed us between turns: look at
  // rd_idx. At tmp_wr_idx too, unless t is where the caller found a
  // reservation: with overwrite nothing moves tmp_wr_idx back (no move to
  // slot 0), and t passes a reservation only by claiming or dropping it.
  // (Droppers that took tmp_rd_idx round a whole period back to t meanwhile
  // do no harm: with nothing reserved at t its word reads zero, E9, which
  // no claim takes for a packet.)
  if ((g.flags & pbuf_flag_overwrite) != 0 || !g.ahead_within_a_lap(t, wr_seen)) {
    if (!(found.looked && t == found.at) && nothing_reserved_at(g, t)) return {};
    // [PB7], as in claim_unlocked: moved, the word at t may be payload
    // now; claim_unlocked follows.
    if (g.ahead_within_a_lap(t, rd_idx.load(std::memory_order_relaxed))) return {};
  }
  SLUICE_PBUF_HOOK(claim_looked);
  const std::uint32_t start = g.slot(t);
  std::uint32_t* const packet = g.buf + start;
  // Never null, as in reserve_fast_in (something is reserved here).
  if (packet == nullptr) __builtin_unreachable();
  // Acquire [PB2], as in claim_unlocked.
  const std::uint32_t v = atomic_ref<std::uint32_t>(*packet).load(std::memory_order_acquire);
  if ((v & pbuf_hdr_mask) != pbuf_valid) return {};
  // No callback (checked above): the length is the header's. A length no
  // packet can have stops the program (checked_length, which this is).
  const std::uint32_t n = v >> pbuf_hdr_bits;
  if (n - 1 >= g.size - start) [[unlikely]]
    bad_length();
  return claim_at(packet, v, g.advance(t, n), n);
}

// ---- the consumer's turn with overwrite

inline std::uint32_t pbuf_core::consumer_holder() noexcept {
  return pbuf_lock_consumer |
         (pbuf_consumer_masks ? 0u : port::context_token() << pbuf_lock_role_bits);
}

inline void pbuf_core::unlock() noexcept {
  // Release [PB3]: the next holder sees our index and header changes.
  lock.store(0, std::memory_order_release);
}

inline void pbuf_core::finish_deferred_frees(std::uint32_t token) noexcept {
  // [PB9]: a handler on this thread that deferred a free while we held the
  // lock did so before this point of our program order; the fence keeps
  // the compiler from moving the loads above unlock()'s store (after it, a
  // handler finds the lock free and frees in a turn of its own).
  signal_fence(std::memory_order_seq_cst);
  // Relaxed: a look; the exchange in the turn orders.
  if (deferred_any.load(std::memory_order_relaxed) != 0) finish_deferred_frees_slow(token);
}

inline bool pbuf_core::droppers_may_give_up() const noexcept {
  return droppers_may_give_up(pbuf_consumer_masks ? 0 : port::context_token());
}

inline bool pbuf_core::droppers_may_give_up(std::uint32_t token) const noexcept {
  return !pbuf_consumer_masks && (flags & pbuf_flag_threads_only) == 0 && token == 0;
}

// The consumer's turn. Either biased (no read-modify-write: a store, the
// light fence and a load to enter, a store to leave) or with the lock, as
// a dropper's. lock_bias changes only under the lock [PB6]:
//   lock_bias  consumer's turn                  a dropper, once it holds the lock
//   1          biased: consumer_in := holder;   end_bias: lock_bias := 0, a new
//              light fence; lock_bias still 1:  stretch (rebias_after :=
//              in; else consumer_in := 0 and    rebias_stretch, dropped_in_stretch
//              a locked turn (row 0)            := 0), heavy fence, then waits
//                                               while consumer_in != 0
//   0          as in row 1, the same first      dropped_in_stretch := 1, then
//              steps, then consumer_in := 0;    waits while consumer_in != 0
//              takes the lock; at the stretch's (a turn that an earlier dropper
//              end (rebias_after turns):        gave up on may still run, or
//              dropped_in_stretch == 0:         the consumer's first steps)
//              lock_bias := 1, rebias_stretch
//              := pbuf_rebias_after; else a
//              stretch twice as long (at most
//              pbuf_rebias_max), all under it
// A dropper waiting for a biased turn gives up where it would give up on
// the consumer's lock (lock_as_waiting): at once if consumer_in names its
// own thread (a handler that interrupted the consumer), after a short spin
// where droppers_may_give_up(); the bias stays ended, and every later
// dropper waits for that turn as well.
[[gnu::always_inline]] inline bool pbuf_core::try_enter_biased(std::uint32_t holder) noexcept {
  // No first look at lock_bias to skip the store while the bias is off:
  // the load and branch cost more in the common case (the bias on) than
  // the two stores save while it is off (droppers at work, when the turn
  // takes the lock anyway).
  // Relaxed: the consumer's own word.
  SLUICE_ASSERT(consumer_in.load(std::memory_order_relaxed) == 0,
                "packet buffer: the consumer re-entered claim or free (from a handler?)");
  consumer_in.store(holder, std::memory_order_relaxed);  // [PB6]
  port::asymmetric_fence_light();                        // [PB6]
  // Relaxed [PB6]: 1 here means the dropper that ends the bias sees us
  // and waits. Everything droppers did before is ours already: the
  // consumer set the bias holding the lock (acquired after theirs).
  if (lock_bias.load(std::memory_order_relaxed) != 0) return true;
  // Release [PB6]: the dropper ending the bias waits for it.
  consumer_in.store(0, std::memory_order_release);
  return false;
}

SLUICE_PBUF_INLINE void pbuf_core::leave_consumer(std::uint32_t holder, bool biased) noexcept {
  if (biased) {
    // Release [PB6]: pairs with the acquire load in end_bias.
    consumer_in.store(0, std::memory_order_release);
  } else {
    unlock();
  }
  // [PB4]: a dropper that gave up on the consumer's turn after its short
  // spin (lock_as, end_bias) may wait for room; the turn's end is its
  // condition. A handler that gave up on its own thread's turn never waits
  // (handlers use the try forms). (The holder's token is this thread's, as
  // asked of context_token() once per turn.)
  if (droppers_may_give_up(holder >> pbuf_lock_role_bits)) wake_waiters(wake_after::reclaim);
}

// Apart from try_claim (and free_locked from free) so that the
// no-overwrite path stays a test and a jump.
// claim_locked's body: try_claim with overwrite, inline where speed comes
// first.
[[gnu::always_inline]] inline pbuf_span pbuf_core::claim_in_turn() noexcept {
  // Nothing allocated: answer without the lock, and (where there are fast
  // paths) without reading the producers' line while our copy of
  // tmp_wr_idx is ahead. Relaxed: a snapshot (a dropper may move
  // tmp_rd_idx meanwhile; the turn decides); a claim that races with a
  // reservation may miss it like any try does, and a waiting consumer's
  // re-check is ordered by [PB4] (the producer's reservation precedes its
  // light fence).
  const std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  if constexpr (speed_over_size) {
    const geometry g = shape();
    if ((g.flags & pbuf_flag_pow2) != 0) [[likely]] {
      if (nothing_reserved_at(g.as_pow2(), t)) return {};
    } else if (nothing_reserved_at(g, t)) {
      return {};
    }
    const pbuf_consumer_guard masked(*this);
    const std::uint32_t holder = consumer_holder();
    if (!try_enter_biased(holder)) return claim_in_locked_turn(holder);
    // Something is reserved at t (above): claim_fast looks again only if
    // a dropper moved tmp_rd_idx since.
    pbuf_span p = claim_fast(g, reserved_seen{true, t});
    if (p.words == nullptr) p = claim_unlocked();
    leave_consumer(holder, true);
    return p;
  } else {
    if (t == tmp_wr_idx.load(std::memory_order_relaxed)) return {};
    const pbuf_consumer_guard masked(*this);
    return claim_in_locked_turn(consumer_holder());
  }
}

// free_locked's body: free with overwrite, inline where speed comes first.
[[gnu::always_inline]] inline void pbuf_core::free_in_turn(const std::uint32_t* packet) noexcept {
  // Loaded before the turn's atomic operations (the context token's load
  // too), after which the compiler would load it again.
  [[maybe_unused]] const geometry g = shape();
  const pbuf_consumer_guard masked(*this);
  const std::uint32_t holder = consumer_holder();
  if constexpr (speed_over_size) {
    if (!try_enter_biased(holder)) return free_in_locked_turn(packet, holder);
    if (!free_fast(g, packet)) free_unlocked(packet);
    leave_consumer(holder, true);
  } else {
    free_in_locked_turn(packet, holder);
  }
}

// try_claim's body: inline where speed comes first, and the one copy
// (try_claim_out_of_line) where size does.
[[gnu::always_inline]] inline pbuf_span pbuf_core::claim_body() noexcept {
  if (overwrite()) {
    if constexpr (speed_over_size) {
      return claim_in_turn();
    } else {
      return claim_locked();
    }
  }
  const pbuf_consumer_call one_at_a_time(*this);
  if constexpr (speed_over_size) {
    if (const pbuf_span p = claim_fast(shape(), not_looked); p.words != nullptr) return p;
  }
  return claim_unlocked();
}

SLUICE_PBUF_INLINE pbuf_span pbuf_core::try_claim() noexcept {
  if constexpr (speed_over_size) {
    return claim_body();
  } else {
    return try_claim_out_of_line();
  }
}

// The common case of free_unlocked, for lengths in the header: the oldest
// claimed packet (at rd_idx, behind tmp_rd_idx: not one that an overwrite
// stepped over into the unclaimed stream). E4 and E9 at once, as nobody
// else reads a claimed packet's words. A packet with nothing behind it
// (the consumer's next claim position follows it) is done here, whatever
// its length (a call to free_front for a long one cost about a nanosecond
// of a 64-word cycle on x86-64); one with skips or claimed packets behind
// it goes to free_front, which passes them. False: nothing was changed,
// free_unlocked decides.
[[gnu::always_inline]] inline bool pbuf_core::free_fast(const geometry& g,
                                                        const std::uint32_t* packet) noexcept {
  if ((g.flags & pbuf_flag_header_lengths) == 0) return false;
  // The flag tested once, as in reserve_fast.
  if ((g.flags & pbuf_flag_pow2) != 0) [[likely]]
    return free_fast_in(g.as_pow2(), packet);
  return free_fast_in(g, packet);
}

template <class Geometry>
[[gnu::always_inline]] inline bool pbuf_core::free_fast_in(const Geometry& g,
                                                           const std::uint32_t* packet) noexcept {
  // Relaxed: consumer-owned (no-overwrite) or under the lock.
  const std::uint32_t r = rd_idx.load(std::memory_order_relaxed);
  const std::uint32_t t = tmp_rd_idx.load(std::memory_order_relaxed);
  const std::uint32_t start = g.slot(r);
  if (r == t || packet != g.buf + start) return false;
  // Relaxed: the packet is claimed by the caller.
  const std::uint32_t v = atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(packet))
                              .load(std::memory_order_relaxed);
  SLUICE_ASSERT((v & pbuf_hdr_mask) == (pbuf_valid | pbuf_busy),
                "packet buffer: free of a packet that is not claimed");
  const std::uint32_t n = v >> pbuf_hdr_bits;  // no callback: checked above
  // The claim checked the length; checked again here, as there (a compare
  // and a branch), so that a header written over while the packet was
  // claimed stops the program rather than zeroing words past the storage
  // (and the compiler, which cannot see the claim's check, knows the
  // zeroing stays inside).
  if (n - 1 >= g.size - start) [[unlikely]]
    bad_length();
  const std::uint32_t next = g.advance(r, n);
  if (next != t) {
    free_front(packet, n, r, t);
    return true;
  }
  await_observers();  // [PB8]
  pbuf_zero_words(const_cast<std::uint32_t*>(packet), n);
  publish_rd_idx(next);
  return true;
}

// free's body, as claim_body is try_claim's.
[[gnu::always_inline]] inline void pbuf_core::free_body(const std::uint32_t* packet) noexcept {
  if (overwrite()) {
    if constexpr (speed_over_size) {
      free_in_turn(packet);
    } else {
      free_locked(packet);
    }
    return;
  }
  const pbuf_consumer_call one_at_a_time(*this);
  if (!speed_over_size || !free_fast(shape(), packet)) free_unlocked(packet);
}

SLUICE_PBUF_INLINE void pbuf_core::free(const std::uint32_t* packet) noexcept {
  if constexpr (speed_over_size) {
    free_body(packet);
  } else {
    free_out_of_line(packet);
  }
}

}  // namespace sluice::detail
