"""An independent NumPy model of scorekern's random stream (DESIGN §2).

Written from the documented layout, not from the C++: Philox4x32-10 in uint64
arithmetic (products of 32-bit words fit exactly), key = the seed's two
words (low first), counter = (column // 4, row id, offset low, offset high),
uniforms ((w >> 8) + 0.5)·2⁻²⁴, Box–Muller on (u0, u1) and (u2, u3),
Rademacher sign +1 where the word's low bit is set.
"""

import numpy as np

MASK = np.uint64(0xFFFFFFFF)
M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & MASK, (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & MASK
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def rows_cols(shape):
    rows = 1 if len(shape) == 1 else shape[0]
    cols = int(np.prod(shape)) // rows if rows else 0
    return rows, cols


def words(shape, seed: int, offset: int, row_ids=None):
    """The stream's 32-bit words for a tensor of `shape`, as uint64 [rows, cols]."""
    rows, cols = rows_cols(shape)
    blocks = (cols + 3) // 4
    ids = np.arange(rows, dtype=np.uint64) if row_ids is None else np.asarray(row_ids, dtype=np.uint64)
    block = np.broadcast_to(np.arange(blocks, dtype=np.uint64)[None, :], (rows, blocks))
    row = np.broadcast_to(ids[:, None], (rows, blocks))
    off0 = np.full((rows, blocks), offset & 0xFFFFFFFF, dtype=np.uint64)
    off1 = np.full((rows, blocks), offset >> 32, dtype=np.uint64)
    w = philox4x32_10(block, row, off0, off1, seed & 0xFFFFFFFF, seed >> 32)
    return np.stack(w, axis=-1).reshape(rows, blocks * 4)[:, :cols]


def uniforms(w, dtype=np.float32):
    """u = ((w >> 8) + 0.5)·2⁻²⁴, in the arithmetic of `dtype` (as the kernels do)."""
    m = (w >> np.uint64(8)).astype(dtype)
    return (m + dtype(0.5)) * dtype(2.0**-24)


def normals(shape, seed, offset, row_ids=None, dtype=np.float32):
    """Box–Muller normals, computed in float64 from uniforms of `dtype`."""
    rows, cols = rows_cols(shape)
    blocks = (cols + 3) // 4
    w = words((rows, blocks * 4), seed, offset, row_ids).reshape(rows, blocks, 4)
    u = uniforms(w, dtype).astype(np.float64)
    r01 = np.sqrt(-2.0 * np.log(u[..., 0]))
    r23 = np.sqrt(-2.0 * np.log(u[..., 2]))
    t01, t23 = 2 * np.pi * u[..., 1], 2 * np.pi * u[..., 3]
    z = np.stack([r01 * np.cos(t01), r01 * np.sin(t01), r23 * np.cos(t23), r23 * np.sin(t23)], axis=-1)
    return z.reshape(rows, blocks * 4)[:, :cols].reshape(shape)


def rademacher(shape, seed, offset, row_ids=None):
    w = words(shape, seed, offset, row_ids)
    return np.where(w & np.uint64(1), 1.0, -1.0).reshape(shape)
