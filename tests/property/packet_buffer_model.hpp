// A sequential reference model of the packet buffer and a checker that
// drives sluice::packet_buffer and the model with the same operations and
// compares every observable result: allocation outcome and position,
// which packet a claim returns, which packets are dropped (in order, and
// from which slot), utilization, is_pending and the counters. Used by the
// seeded property test and by the libFuzzer target.
//
// The model keeps unbounded 64-bit positions and a deque of records that
// tile [rd, wr): nothing modular, no atomics, one record per packet or skip.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sluice/packet_buffer.hpp>

namespace sluice::test {

class pbuf_model {
 public:
  enum class kind : std::uint8_t { reserved, committed, claimed, skip };
  struct record {
    std::uint64_t pos;
    std::uint32_t len;
    kind state;
    std::uint32_t id;  // 0 for skips made by the buffer
  };
  struct alloc_outcome {
    std::optional<std::uint64_t> pos;
    alloc_error error = alloc_error::no_room;
    std::vector<std::uint32_t> dropped;            // ids, in order
    std::vector<std::uint64_t> dropped_positions;  // theirs, in the same order
  };

  pbuf_model(std::uint32_t size, bool overwrite) : size_(size), overwrite_(overwrite) {}

  alloc_outcome alloc(std::uint32_t n, std::uint32_t id) {
    alloc_outcome out;
    if (n > size_) {
      out.error = alloc_error::too_large;
      return out;
    }
    // Where this allocation first stepped over a claimed packet: one lap
    // later it meets it again and gives up.
    std::optional<std::uint64_t> first_step;
    for (;;) {
      const std::uint64_t used = wr_ - rd_;
      const std::uint32_t tail = size_ - static_cast<std::uint32_t>(wr_ % size_);
      const std::uint32_t pad = n > tail ? tail : 0;
      // Without overwrite an empty buffer is moved to slot 0 rather than
      // padded (producers never pass a skip there).
      if (!overwrite_ && pad != 0 && rd_ == wr_) {
        realign();
        continue;
      }
      if (pad + n <= size_ - used) {
        if (pad != 0) push(pad, kind::skip, 0);
        out.pos = wr_;
        push(n, kind::reserved, id);
        max_used_ = std::max<std::uint64_t>(max_used_, wr_ - rd_);
        return out;
      }
      if (rd_ == wr_) {
        if (rd_ % size_ == 0) return out;
        realign();
        continue;
      }
      if (!overwrite_) return out;
      record& front = records_.front();
      switch (front.state) {
        case kind::reserved:
          return out;
        case kind::skip:
          if (rd_ == trd_) trd_ += front.len;
          reclaim();
          break;
        case kind::claimed: {
          // A lap on is that packet again; further on, it was freed since
          // (only between the turns of a call with a drop callback, which
          // this model does not interleave) and the count starts again.
          if (first_step && rd_ - *first_step == size_) return out;
          if (!first_step || rd_ - *first_step > size_) first_step = rd_;
          // The free words before it become skips (split at the end).
          const std::uint64_t lap = rd_ + size_;
          while (wr_ != lap) {
            const std::uint32_t room = size_ - static_cast<std::uint32_t>(wr_ % size_);
            const std::uint64_t left = lap - wr_;
            push(static_cast<std::uint32_t>(left < room ? left : room), kind::skip, 0);
          }
          record moved = front;
          records_.pop_front();
          const std::uint32_t len = moved.len;
          moved.pos = wr_;
          records_.push_back(moved);
          wr_ += len;
          if (trd_ - rd_ < len) trd_ = rd_ + len;
          rd_ += len;
          break;
        }
        case kind::committed: {
          out.dropped.push_back(front.id);
          out.dropped_positions.push_back(front.pos);
          ++dropped_;
          trd_ = rd_ + front.len;
          front.state = kind::skip;
          reclaim();
          break;
        }
      }
    }
  }

  void commit(std::uint32_t id) { find(id).state = kind::committed; }
  void abandon(std::uint32_t id) { find(id).state = kind::skip; }

  // The id of the claimed packet and its position, or nothing.
  std::optional<std::pair<std::uint32_t, std::uint64_t>> claim() {
    for (;;) {
      if (trd_ == wr_) return std::nullopt;
      record& r = at(trd_);
      switch (r.state) {
        case kind::reserved:
          return std::nullopt;
        case kind::claimed:  // held, stepped over into the stream: passed
          trd_ += r.len;
          continue;
        case kind::skip:
          trd_ += r.len;
          reclaim();
          continue;
        case kind::committed:
          r.state = kind::claimed;
          trd_ += r.len;
          ++claimed_;
          return std::make_pair(r.id, r.pos);
      }
    }
  }

  void free(std::uint32_t id) {
    find(id).state = kind::skip;
    reclaim();
  }

  std::uint32_t used() const { return static_cast<std::uint32_t>(wr_ - rd_); }
  std::uint32_t max_used() const { return static_cast<std::uint32_t>(max_used_); }
  // Whether a claim now would take something. With overwrite: past the
  // skips and held packets at the claim position, a committed one.
  // Without: the packet at the claim position is committed or a skip
  // (which only a claim passes); it moves nothing.
  bool pending() {
    if (!overwrite_) {
      if (trd_ == wr_) return false;
      const kind k = at(trd_).state;
      return k == kind::committed || k == kind::skip;
    }
    for (const record& r : records_) {
      if (r.pos < trd_) continue;
      if (r.state == kind::committed || r.state == kind::reserved)
        return r.state == kind::committed;
    }
    return false;
  }
  std::uint32_t size() const { return size_; }
  std::uint32_t claimed_count() const { return claimed_; }
  std::uint32_t dropped_count() const { return dropped_; }

 private:
  void push(std::uint32_t len, kind state, std::uint32_t id) {
    records_.push_back(record{wr_, len, state, id});
    wr_ += len;
  }
  record& find(std::uint32_t id) {
    for (auto& r : records_)
      if (r.id == id) return r;
    std::fprintf(stderr, "model: no packet %u\n", id);
    std::abort();
  }
  record& at(std::uint64_t pos) {
    for (auto& r : records_)
      if (r.pos == pos) return r;
    std::fprintf(stderr, "model: no record at %llu\n", static_cast<unsigned long long>(pos));
    std::abort();
  }
  void reclaim() {
    while (rd_ != trd_ && records_.front().state == kind::skip) {
      rd_ += records_.front().len;
      records_.pop_front();
    }
  }
  void realign() {
    const std::uint64_t next = rd_ + (size_ - rd_ % size_);
    rd_ = trd_ = wr_ = next;
  }

  std::uint32_t size_;
  bool overwrite_;
  std::uint64_t rd_ = 0, trd_ = 0, wr_ = 0, max_used_ = 0;
  std::uint32_t claimed_ = 0, dropped_ = 0;
  std::deque<record> records_;
};

// Drives a packet_buffer and the model in lockstep. Every packet of two or
// more words carries its id in payload word 0 (and id ^ i after it).
class pbuf_checker {
 public:
  pbuf_checker(std::uint32_t size, bool overwrite)
      : storage_(size),
        model_(size, overwrite),
        pb_({.storage = storage_.data(),
             .size_words = size,
             .policy = overwrite ? overflow_policy::drop_oldest : overflow_policy::reject_new,
             .utilization = utilization_tracking::track_max,
             .on_drop = &on_drop,
             .context = this}) {}

  ~pbuf_checker() {
    for (auto& a : allocated_)
      std::move(a.second).abandon();
  }

  // Applies one operation; returns false (with error()) on a mismatch.
  bool step(std::uint8_t op, std::uint32_t arg) {
    switch (op % 6) {
      case 0:
        return do_alloc(size_of(arg), false);
      case 1:
        return do_alloc(size_of(arg), true);  // alloc and commit at once (a put)
      case 2:
        if (allocated_.empty()) return true;
        return do_finish(arg % allocated_.size(), (arg >> 8) % 4 != 0);
      case 3:
      case 4:
        return do_claim();
      default:
        if (claimed_.empty()) return true;
        return do_free(arg % claimed_.size());
    }
  }

  bool check_observers() {
    if (pb_.approx_used_words() != model_.used())
      return fail("used words " + std::to_string(pb_.approx_used_words()) + " vs model " +
                  std::to_string(model_.used()));
    if (pb_.max_used_words() != model_.max_used()) return fail("max used words differ");
    if (pb_.is_pending() != model_.pending()) return fail("is_pending differs");
    const packet_buffer_counters c = pb_.counters();
    if (c.claimed != model_.claimed_count() || c.dropped != model_.dropped_count() ||
        c.committed != model_.claimed_count() + model_.dropped_count())
      return fail("counters (committed, claimed, dropped) " + std::to_string(c.committed) + ", " +
                  std::to_string(c.claimed) + ", " + std::to_string(c.dropped) + " vs model " +
                  std::to_string(model_.claimed_count() + model_.dropped_count()) + ", " +
                  std::to_string(model_.claimed_count()) + ", " +
                  std::to_string(model_.dropped_count()));
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  std::uint32_t size_of(std::uint32_t arg) const {
    const std::uint32_t n = model_.size();
    switch (arg % 8) {
      case 0:
        return n;
      case 1:
        return n + 1;
      case 2:
        return n > 1 ? n - 1 : 1;
      case 3:
        return n / 2 + 1;
      default:
        return 1 + (arg >> 3) % (n < 6 ? n : 6);
    }
  }

  static void on_drop(void* context, const std::uint32_t* packet, std::uint32_t words) noexcept {
    auto* self = static_cast<pbuf_checker*>(context);
    self->engine_drops_.push_back({static_cast<std::uint32_t>(packet - self->storage_.data()),
                                   words, words >= 2 ? packet[1] : 0,
                                   std::vector<std::uint32_t>(packet, packet + words)});
  }

  bool do_alloc(std::uint32_t n, bool commit_now) {
    const std::uint32_t id = ++next_id_;
    engine_drops_.clear();
    auto r = pb_.try_alloc(n);
    auto m = model_.alloc(n, id);
    if (r.has_value() != m.pos.has_value())
      return fail("alloc(" + std::to_string(n) + "): engine " + (r ? "ok" : to_string(r.error())) +
                  ", model " + (m.pos ? "ok" : to_string(m.error)));
    if (!r && r.error() != m.error) return fail("alloc: different errors");
    if (engine_drops_.size() != m.dropped.size())
      return fail("alloc(" + std::to_string(n) + "): engine dropped " +
                  std::to_string(engine_drops_.size()) + ", model " +
                  std::to_string(m.dropped.size()));
    for (std::size_t i = 0; i < m.dropped.size(); ++i) {
      const auto& want = sizes_.at(m.dropped[i]);
      if (engine_drops_[i].words != want || (want >= 2 && engine_drops_[i].tag != m.dropped[i]))
        return fail("dropped packet " + std::to_string(i) + " differs");
      const std::uint64_t slot = m.dropped_positions[i] % model_.size();
      if (engine_drops_[i].slot != slot)
        return fail("dropped packet " + std::to_string(i) + " at slot " +
                    std::to_string(engine_drops_[i].slot) + ", model " + std::to_string(slot));
      if (!check_payload(engine_drops_[i].copy.data(), want, m.dropped[i]))
        return fail("dropped packet contents damaged");
    }
    if (!r) return true;
    if (r->words() != storage_.data() + *m.pos % model_.size())
      return fail("alloc at slot " + std::to_string(r->words() - storage_.data()) + ", model " +
                  std::to_string(*m.pos % model_.size()));
    sizes_[id] = n;
    for (std::uint32_t i = 1; i < n; ++i)
      r->words()[i] = id ^ (i - 1);
    if (commit_now) {
      std::move(*r).commit();
      model_.commit(id);
    } else {
      allocated_.emplace_back(id, std::move(*r));
    }
    return true;
  }

  bool do_finish(std::size_t index, bool commit) {
    auto it = std::next(allocated_.begin(), static_cast<std::ptrdiff_t>(index));
    const std::uint32_t id = it->first;
    if (commit) {
      std::move(it->second).commit();
      model_.commit(id);
    } else {
      std::move(it->second).abandon();
      model_.abandon(id);
    }
    allocated_.erase(it);
    return true;
  }

  bool do_claim() {
    auto c = pb_.try_claim();
    auto m = model_.claim();
    if (static_cast<bool>(c) != m.has_value())
      return fail(std::string("claim: engine ") + (c ? "got one" : "none") + ", model " +
                  (m ? "got one" : "none"));
    if (!c) return true;
    if (c.words() != storage_.data() + m->second % model_.size())
      return fail("claim returned another slot");
    if (c.size() != sizes_.at(m->first)) return fail("claim returned another size");
    if (!check_payload(c.words(), c.size(), m->first)) return fail("claimed contents damaged");
    claimed_.emplace_back(m->first, std::move(c));
    return true;
  }

  bool do_free(std::size_t index) {
    auto it = std::next(claimed_.begin(), static_cast<std::ptrdiff_t>(index));
    if (!check_payload(it->second.words(), it->second.size(), it->first))
      return fail("a claimed packet changed while held");
    it->second.reset();
    model_.free(it->first);
    claimed_.erase(it);
    return true;
  }

  static bool check_payload(const std::uint32_t* w, std::uint32_t n, std::uint32_t id) {
    for (std::uint32_t i = 1; i < n; ++i)
      if (w[i] != (id ^ (i - 1))) return false;
    return true;
  }

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  struct drop_seen {
    std::uint32_t slot, words, tag;
    std::vector<std::uint32_t> copy;  // as the callback saw it
  };

  std::vector<std::uint32_t> storage_;
  pbuf_model model_;
  packet_buffer pb_;
  std::uint32_t next_id_ = 0;
  std::list<std::pair<std::uint32_t, allocated_packet>> allocated_;
  std::list<std::pair<std::uint32_t, claimed_packet>> claimed_;
  std::vector<drop_seen> engine_drops_;
  std::unordered_map<std::uint32_t, std::uint32_t> sizes_;
  std::string error_;
};

}  // namespace sluice::test
