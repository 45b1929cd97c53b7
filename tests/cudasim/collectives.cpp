// cudasim's collectives (see runtime.h): __syncthreads is a rendezvous of the
// block's threads; shuffles, votes, __syncwarp and the WMMA operations are
// rendezvous of the lanes in their mask. The
// first lane to arrive opens the collective, each later one is checked
// against it (the same operation, site, mask and arguments), and the last
// completes it; a lane that exits, or names a lane that has, is a fault.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "runtime.h"

namespace cudasim {
namespace detail {

void syncthreads(const std::source_location& where) { syncthreads_reduce(-1, 0, where); }

int syncthreads_reduce(int kind, int predicate, const std::source_location& where) {
  Block& b = *g_blk;
  Fiber* f = g_cur;
  if (!f) fault("__syncthreads called outside a kernel");
  if (b.exited > 0) {
    fault("__syncthreads at " + where_str(where) + " is reached after " + std::to_string(b.exited) +
          " thread(s) of the block exited: every thread of the block must reach it");
  }
  if (b.barrier_arrived == 0) {
    b.barrier_where = where;
    b.barrier_reduce = kind;
    b.barrier_acc = kind == 1 ? 1 : 0;
  } else if (!same_site(b.barrier_where, where) || b.barrier_reduce != kind) {
    fault("divergent __syncthreads: this thread waits at " + where_str(where) + ", others at " +
          where_str(b.barrier_where));
  }
  if (kind == 0) b.barrier_acc += predicate != 0;
  if (kind == 1) b.barrier_acc = b.barrier_acc && predicate;
  if (kind == 2) b.barrier_acc = b.barrier_acc || predicate;
  block_on(f, WaitKind::Barrier, where);
  if (++b.barrier_arrived == b.nthreads) {
    b.barrier_arrived = 0;
    ++b.epoch;
    const long long acc = b.barrier_acc;
    for (Fiber* t : b.fibers) {
      t->out_bits = static_cast<uint64_t>(acc);
      make_ready(t);
    }
  }
  schedule();
  return static_cast<int>(f->out_bits);
}

Collective* find_collective(Block& b, int warp, unsigned mask) {
  for (Collective& c : b.collectives[warp]) {
    if (c.mask & mask) return &c;
  }
  return nullptr;
}

unsigned warp_lanes(const Block& b, int warp) {
  const int n = std::min(32, b.nthreads - 32 * warp);
  return n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
}

void resolve(Block& b, int warp, Collective& c);

// The calling lane joins the collective of its warp over `mask` (made when
// it is the first to arrive), checked against the others; when every lane in
// the mask has arrived, the collective completes.
void arrive(Fiber* f, int kind, unsigned mask, const std::source_location& where, int size, int width,
            const void* ptr, unsigned ldm, int layout) {
  Block& b = *g_blk;
  char buf[256];
  const unsigned bit = 1u << f->lane;
  if (!(mask & bit)) {
    std::snprintf(buf, sizeof buf, "%s at %s with mask 0x%08x, which leaves out the calling lane %d",
                  collective_name(kind), where_str(where).c_str(), mask, f->lane);
    fault(buf);
  }
  const unsigned lanes = warp_lanes(b, f->warp);
  if (mask & ~lanes) {
    std::snprintf(buf, sizeof buf, "%s at %s with mask 0x%08x names lanes that do not exist (block of %d threads)",
                  collective_name(kind), where_str(where).c_str(), mask, b.nthreads);
    fault(buf);
  }
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1u) && b.fibers[32 * f->warp + l]->status == Status::Exited) {
      std::snprintf(buf, sizeof buf, "%s at %s with mask 0x%08x names lane %d, which has exited",
                    collective_name(kind), where_str(where).c_str(), mask, l);
      fault(buf);
    }
  }
  Collective* c = find_collective(b, f->warp, mask);
  if (!c) {
    b.collectives[f->warp].push_back(Collective{kind, mask, 0, where, size, width, ptr, ldm, layout});
    c = &b.collectives[f->warp].back();
  } else {
    const bool any_site_ok = kind == kCollSyncwarp && c->kind == kCollSyncwarp;  // sm_70+: any __syncwarp matches
    if (c->mask != mask || c->kind != kind || (!any_site_ok && !same_site(c->where, where)) || c->width != width ||
        c->size != size) {
      std::snprintf(buf, sizeof buf,
                    "divergent warp collective: lane %d reaches %s (mask 0x%08x) at %s while lanes of its warp wait "
                    "at %s (mask 0x%08x) at %s",
                    f->lane, collective_name(kind), mask, where_str(where).c_str(), collective_name(c->kind),
                    c->mask, where_str(c->where).c_str());
      fault(buf);
    }
    if (c->ptr != ptr || c->ldm != ldm || c->layout != layout) {
      std::snprintf(buf, sizeof buf,
                    "%s at %s: lane %d passes pointer %p, ldm %u, layout %d; other lanes passed %p, %u, %d (the "
                    "arguments must be the same for the whole warp)",
                    collective_name(kind), where_str(where).c_str(), f->lane, ptr, ldm, layout, c->ptr, c->ldm,
                    c->layout);
      fault(buf);
    }
  }
  block_on(f, WaitKind::Warp, where);
  f->coll_kind = kind;
  f->coll_mask = mask;
  c->arrived |= bit;
  if (c->arrived == c->mask) {
    const Collective done = *c;
    auto& list = b.collectives[f->warp];
    list.erase(list.begin() + (c - list.data()));
    Collective copy = done;
    resolve(b, f->warp, copy);
  }
  schedule();
}

void resolve(Block& b, int warp, Collective& c) {
  Fiber** lanes = b.fibers.data() + 32 * warp;
  const int kind = c.kind;
  if (kind >= kCollShuffle && kind < kCollVote) {
    const int width = c.width;
    for (int l = 0; l < 32; ++l) {
      if (!(c.mask >> l & 1u)) continue;
      Fiber* f = lanes[l];
      const int seg = l & ~(width - 1);
      int src = l;
      switch (kind - kCollShuffle) {
        case kShflIdx: src = seg + (f->lane_arg & (width - 1)); break;
        case kShflUp: src = (l - seg) >= f->lane_arg ? l - f->lane_arg : l; break;
        case kShflDown: src = (l - seg) + f->lane_arg < width ? l + f->lane_arg : l; break;
        case kShflXor: {
          const int t = l ^ f->lane_arg;
          src = (t & ~(width - 1)) > seg ? l : t;  // a later segment: the caller's own value
          break;
        }
      }
      if (src < 0 || src > 31 || !(c.mask >> src & 1u)) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "%s at %s: lane %d reads lane %d, which is not in the mask 0x%08x (its value "
                      "is undefined)", collective_name(kind), where_str(c.where).c_str(), l, src, c.mask);
        fault(buf);
      }
      f->out_bits = lanes[src]->in_bits;
    }
  } else if (kind >= kCollVote && kind < kCollSyncwarp) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) {
      if ((c.mask >> l & 1u) && lanes[l]->in_bits) ballot |= 1u << l;
    }
    uint64_t r = ballot;
    if (kind == kCollVote + kVoteAll) r = ballot == c.mask;
    if (kind == kCollVote + kVoteAny) r = ballot != 0;
    for (int l = 0; l < 32; ++l) {
      if (c.mask >> l & 1u) lanes[l]->out_bits = r;
    }
  } else if (kind == kCollSyncwarp) {
    if (c.mask == warp_lanes(b, warp)) ++b.warp_gen[warp];  // orders memory for the whole warp
  } else if (kind == kCollWmmaMma) {
    // Gather A [m, k], B [k, n], C [m, n] from the lanes, D = A·B + C.
    const int m = c.size / 10000, n = c.size / 100 % 100, k = c.size % 100;  // see wmma_mma
    std::vector<float> A(m * k), B(k * n), C(m * n);
    const int na = m * k / 32, nb = k * n / 32, nc = m * n / 32;
    for (int l = 0; l < 32; ++l) {
      int r, col;
      for (int t = 0; t < na; ++t) {
        element_of(kUseA, m, k, l, t, r, col);
        A[r * k + col] = lanes[l]->frag_a[t];
      }
      for (int t = 0; t < nb; ++t) {
        element_of(kUseB, k, n, l, t, r, col);
        B[r * n + col] = lanes[l]->frag_b[t];
      }
      for (int t = 0; t < nc; ++t) {
        element_of(kUseC, m, n, l, t, r, col);
        C[r * n + col] = lanes[l]->frag_c[t];
      }
    }
    auto tf32 = [](float v) {  // the tensor cores read 10 mantissa bits
      uint32_t u;
      std::memcpy(&u, &v, 4);
      u &= 0xffffe000u;
      std::memcpy(&v, &u, 4);
      return v;
    };
    std::vector<float> D(m * n);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        double acc = C[i * n + j];
        for (int q = 0; q < k; ++q) acc += static_cast<double>(tf32(A[i * k + q])) * tf32(B[q * n + j]);
        D[i * n + j] = static_cast<float>(acc);
      }
    }
    for (int l = 0; l < 32; ++l) {
      int r, col;
      for (int t = 0; t < nc; ++t) {
        element_of(kUseC, m, n, l, t, r, col);
        lanes[l]->frag_d[t] = D[r * n + col];
      }
    }
  }
  for (int l = 0; l < 32; ++l) {
    if (c.mask >> l & 1u) make_ready(lanes[l]);
  }
}

void syncwarp(unsigned mask, const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("__syncwarp called outside a kernel");
  arrive(f, kCollSyncwarp, mask, where, 0, 32);
}

uint64_t shuffle(ShuffleKind kind, unsigned mask, uint64_t bits, int size, int lane_arg, int width,
                 const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("a shuffle called outside a kernel");
  if (width < 1 || width > 32 || (width & (width - 1))) {
    fail(where, "%s with width %d: the width must be a power of two in [1, 32]", collective_name(kCollShuffle + kind),
         width);
  }
  f->in_bits = bits;
  f->lane_arg = lane_arg;
  arrive(f, kCollShuffle + kind, mask, where, size, width);
  return f->out_bits;
}

unsigned vote(VoteKind kind, unsigned mask, int predicate, const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("a vote called outside a kernel");
  f->in_bits = predicate != 0;
  arrive(f, kCollVote + kind, mask, where, 0, 32);
  return static_cast<unsigned>(f->out_bits);
}

unsigned active_mask() {
  Block& b = *g_blk;
  Fiber* f = g_cur;
  unsigned m = 0;
  for (int l = 0; l < 32 && 32 * f->warp + l < b.nthreads; ++l) {
    if (b.fibers[32 * f->warp + l]->status != Status::Exited) m |= 1u << l;
  }
  return m;
}

void element_of(int use, int rows, int cols, int lane, int t, int& row, int& col) {
  // A seeded permutation of the tile's elements over (lane, t), one per
  // fragment kind and shape.
  struct Key {
    int use, rows, cols;
    uint64_t seed;
    bool operator==(const Key& o) const {
      return use == o.use && rows == o.rows && cols == o.cols && seed == o.seed;
    }
  };
  struct Map {
    Key key;
    std::vector<int> perm;
  };
  static std::vector<Map> maps;
  const Key key{use, rows, cols, config().seed};
  const Map* map = nullptr;
  for (const Map& m : maps) {
    if (m.key == key) map = &m;
  }
  if (!map) {
    Map m{key, std::vector<int>(rows * cols)};
    for (int i = 0; i < rows * cols; ++i) m.perm[i] = i;
    Random r{key.seed * 1000003u + static_cast<uint64_t>(use * 131 + rows * 17 + cols)};
    for (int i = rows * cols - 1; i > 0; --i) std::swap(m.perm[i], m.perm[r.below(i + 1)]);
    maps.push_back(std::move(m));
    map = &maps.back();
  }
  const int per = rows * cols / 32;
  const int e = map->perm[lane * per + t];
  row = e / cols;
  col = e % cols;
}

void wmma_memory_collective(bool store, const void* ptr, unsigned ldm, int layout, int element_size,
                            const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("a WMMA operation called outside a kernel");
  const int kind = store ? kCollWmmaStore : kCollWmmaLoad;
  if (reinterpret_cast<uintptr_t>(ptr) % 32 != 0) {
    fail(where, "%s: the pointer %p is not 256-bit (32-byte) aligned", collective_name(kind), ptr);
  }
  if ((ldm * element_size) % 16 != 0) {
    fail(where, "%s: ldm %u is not a multiple of 16 bytes (%d-byte elements)", collective_name(kind), ldm,
         element_size);
  }
  arrive(f, kind, 0xffffffffu, where, element_size, 32, ptr, ldm, layout);
}

void wmma_mma(int m, int n, int k, bool, int, int, float* d, const float* a, const float* b, const float* c,
              const std::source_location& where) {
  Fiber* f = g_cur;
  if (!f) fault("wmma::mma_sync called outside a kernel");
  f->frag_a = a;
  f->frag_b = b;
  f->frag_c = c;
  f->frag_d = d;
  // The shape travels as the collective's size, checked equal across the lanes.
  arrive(f, kCollWmmaMma, 0xffffffffu, where, m * 10000 + n * 100 + k, 32, nullptr, 0, 0);
}

}  // namespace detail
}  // namespace cudasim
