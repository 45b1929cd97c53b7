"""The random stream of DESIGN §2: known answers, layout, distribution, reproducibility."""

import numpy as np
import pytest
import torch
from scipy import stats

import scorekern
from scorekern import ops, reference

from conftest import COMPILED, DTYPES, SHAPES, requires_compiled
import philox_model
from opinfo import SEEDS, BadInput, OpInfo, Sample, shape_dtype_cases, data, describe, generator, op_tests, row_ids, rows_of, view_for

# Published Philox4x32-10 known-answer vectors (Random123's kat_vectors):
# (counter words, key words, result words).
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _kat_inputs():
    counter = torch.tensor([c for c, _, _ in KAT], dtype=torch.int64)
    return counter, [k0 | (k1 << 32) for _, (k0, k1), _ in KAT], [list(r) for _, _, r in KAT]


@pytest.mark.parametrize("impl", ["compiled", "twin", "numpy"])
def test_philox_known_answers(impl):
    counter, seeds, expected = _kat_inputs()
    for i, seed in enumerate(seeds):
        if impl == "numpy":
            got = [int(w) for w in philox_model.philox4x32_10(*[counter[i, j].item() for j in range(4)],
                                                              seed & 0xFFFFFFFF, seed >> 32)]
        elif impl == "twin":
            got = reference.philox4x32(counter[i], seed).tolist()
        else:
            if not COMPILED:
                pytest.skip("scorekern._C is not built")
            got = ops.philox4x32(counter[i], seed).tolist()
        assert got == expected[i], f"vector {i}: {[hex(w) for w in got]}"


@requires_compiled
def test_philox_op_batched_matches_twin():
    g = torch.Generator().manual_seed(0)
    counter = torch.randint(0, 2**32, (257, 4), generator=g, dtype=torch.int64)
    seed = 0x0123456789ABCDEF
    torch.testing.assert_close(ops.philox4x32(counter, seed), reference.philox4x32(counter, seed), rtol=0, atol=0)


@requires_compiled
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 4, 5), (4096,)])
def test_rademacher_is_the_documented_stream(shape):
    seed, offset = 0xDEADBEEF12345678, 0xFEDCBA9876543210
    got = ops.rademacher_like(torch.empty(shape), seed=seed, offset=offset)
    want = philox_model.rademacher(shape, seed, offset)
    np.testing.assert_array_equal(got.numpy(), want)


@requires_compiled
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 4, 5), (4096,)])
def test_normals_are_the_documented_stream(shape):
    seed, offset = 12345, 678
    got = ops.randn_like(torch.empty(shape, dtype=torch.float32), seed=seed, offset=offset).numpy().astype(np.float64)
    want = philox_model.normals(shape, seed, offset)
    # A few ulp of float32 (the polynomial log and sincos against float64 libm).
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@requires_compiled
@pytest.mark.parametrize("shape", [(5, 9), (1000,)])
def test_float64_normals_are_the_documented_stream(shape):
    seed, offset = 99, 2**40 + 3
    got = ops.randn_like(torch.empty(shape, dtype=torch.float64), seed=seed, offset=offset).numpy()
    want = philox_model.normals(shape, seed, offset, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@requires_compiled
def test_row_ids_select_the_counter_row():
    shape, ids = (4, 10), [7, 2**32 - 1, 0, 123456789]
    got = ops.randn_like(torch.empty(shape), seed=5, offset=6, row_ids=torch.tensor(ids)).numpy()
    np.testing.assert_allclose(got, philox_model.normals(shape, 5, 6, row_ids=ids), rtol=1e-6, atol=1e-6)


@requires_compiled
def test_dtypes_share_one_stream():
    like = torch.empty(3, 333)
    z32 = ops.randn_like(like, seed=1, offset=2)
    z64 = ops.randn_like(like.double(), seed=1, offset=2)
    torch.testing.assert_close(z64.float(), z32, rtol=1e-6, atol=1e-6)
    # 16-bit noise is the float32 noise rounded once, to nearest even.
    assert torch.equal(ops.randn_like(like.half(), seed=1, offset=2), z32.half())
    assert torch.equal(ops.randn_like(like.bfloat16(), seed=1, offset=2), z32.bfloat16())
    for dtype in DTYPES:
        r = ops.rademacher_like(like.to(dtype), seed=1, offset=2)
        assert r.dtype == dtype and torch.equal(r.float(), ops.rademacher_like(like, seed=1, offset=2))


@requires_compiled
def test_normal_distribution():
    z = ops.randn_like(torch.empty(1 << 20), seed=2024, offset=0).double()
    n = z.numel()
    # Standard errors: mean 1/√n, variance √(2/n); 5 standard errors.
    assert abs(z.mean().item()) < 5 / n**0.5
    assert abs(z.var().item() - 1) < 5 * (2 / n) ** 0.5
    assert abs(stats.skew(z.numpy())) < 5 * (6 / n) ** 0.5
    assert abs(stats.kurtosis(z.numpy())) < 5 * (24 / n) ** 0.5
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    # The tails are there: the smallest uniform 2⁻²⁵ allows |z| up to about 5.9.
    assert 4.5 < z.abs().max().item() < 6.0


@requires_compiled
def test_rademacher_distribution():
    r = ops.rademacher_like(torch.empty(1 << 20), seed=7, offset=0)
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    assert abs(r.mean().item()) < 5 / (1 << 20) ** 0.5


@requires_compiled
def test_offsets_and_rows_are_independent():
    n = 1 << 18
    a = ops.randn_like(torch.empty(2, n), seed=11, offset=0)
    b = ops.randn_like(torch.empty(2, n), seed=11, offset=1)
    c = ops.randn_like(torch.empty(2, n), seed=12, offset=0)
    bound = 5 / n**0.5  # five standard errors of a correlation
    for u, v in [(a[0], b[0]), (a[0], a[1]), (a[0], c[0]), (b[1], c[1])]:
        corr = torch.corrcoef(torch.stack([u, v]))[0, 1].item()
        assert abs(corr) < bound


@requires_compiled
def test_reproducible_under_manual_seed_and_generators():
    like = torch.empty(16, 33)
    torch.manual_seed(3)
    first = [ops.randn_like(like), ops.randn_like(like)]
    torch.manual_seed(3)
    again = [ops.randn_like(like), ops.randn_like(like)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], first[1]), "each call must draw a fresh offset"

    g1, g2 = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
    assert torch.equal(ops.randn_like(like, generator=g1), ops.randn_like(like, generator=g2))
    assert torch.equal(ops.rademacher_like(like, generator=g1), ops.rademacher_like(like, generator=g2))
    g3 = torch.Generator().manual_seed(43)
    assert not torch.equal(ops.randn_like(like, generator=g1), ops.randn_like(like, generator=g3))


@requires_compiled
def test_explicit_seed_and_offset_are_pure():
    like = torch.empty(8, 8)
    a = ops.randn_like(like, seed=2**64 - 1, offset=2**63)
    assert torch.equal(a, ops.randn_like(like, seed=2**64 - 1, offset=2**63))
    assert torch.equal(ops.randn_like(like, seed=5), ops.randn_like(like, seed=5, offset=0))


@requires_compiled
def test_row_noise_does_not_depend_on_the_batch():
    ids = torch.tensor([40, 3, 17, 99, 5])
    full = ops.randn_like(torch.empty(5, 3, 7), seed=8, offset=9, row_ids=ids)
    for keep in ([1, 3], [4], [0, 1, 2, 3, 4][::-1]):
        part = ops.randn_like(torch.empty(len(keep), 3, 7), seed=8, offset=9, row_ids=ids[keep])
        assert torch.equal(part, full[keep])
    # Without ids, a row's noise follows its index.
    plain = ops.randn_like(torch.empty(5, 21), seed=8, offset=9)
    assert torch.equal(ops.randn_like(torch.empty(2, 21), seed=8, offset=9), plain[:2])


@requires_compiled
def test_one_dimensional_tensor_is_one_row():
    flat = ops.randn_like(torch.empty(10), seed=1, offset=1)
    assert torch.equal(flat, ops.randn_like(torch.empty(1, 10), seed=1, offset=1)[0])


@requires_compiled
def test_noise_is_contiguous_with_the_input_shape_and_dtype():
    x = torch.empty(6, 5, dtype=torch.float64).t()
    z = ops.randn_like(x, seed=0)
    assert z.shape == x.shape and z.dtype == x.dtype and z.is_contiguous()
    assert ops.randn_like(torch.empty(0, 4)).shape == (0, 4)


@requires_compiled
def test_every_cpu_instruction_set_gives_the_same_stream():
    from scorekern import _C

    like = torch.empty(3, 1030)
    supported = scorekern.info()["cpu_capabilities"]
    before = _C.cpu_capability()
    try:
        results = {}
        for cap in supported:
            assert _C.set_cpu_capability(cap)
            results[cap] = (ops.rademacher_like(like, seed=4, offset=5), ops.randn_like(like, seed=4, offset=5))
    finally:
        _C.set_cpu_capability(before)
    base_signs, base_normals = results["baseline"]
    for cap, (signs, normals) in results.items():
        assert torch.equal(signs, base_signs), cap
        # Fused multiply-adds where the instruction set has them: a few ulp.
        torch.testing.assert_close(normals, base_normals, rtol=1e-6, atol=1e-6)
    assert not _C.set_cpu_capability("no-such-isa")


def test_seed_checks():
    like = torch.empty(3)
    with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\*\*64\)"):
        ops.randn_like(like, seed=-1)
    with pytest.raises(ValueError, match="offset was given without seed"):
        ops.randn_like(like, offset=3)
    with pytest.raises(TypeError, match="seed must be an int"):
        ops.randn_like(like, seed=1.5)
    with pytest.raises(ValueError, match="either generator or seed"):
        ops.rademacher_like(like, generator=torch.Generator(), seed=1)
    with pytest.raises(ValueError, match="2\\*\\*64 - 1 is reserved"):
        ops.randn_like(like, seed=1, offset=2**64 - 1)
    assert torch.isfinite(ops.randn_like(like, seed=1, offset=2**64 - 2)).all()


def test_generator_device_must_match():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator is on cpu but the tensor is on meta"):
            ops.draw_seed_offset(torch.Generator(), torch.device("meta"))
    else:
        with pytest.raises(ValueError, match="generator is on cpu"):
            ops.draw_seed_offset(torch.Generator(), torch.device("cuda"))


def test_row_id_checks():
    x = torch.empty(3, 4)
    with pytest.raises(ValueError, match=r"row_ids must have shape \[3\]"):
        ops.randn_like(x, row_ids=torch.arange(4))
    with pytest.raises(TypeError, match="row_ids must be an integer tensor"):
        ops.randn_like(x, row_ids=torch.ones(3))
    with pytest.raises(ValueError, match=r"row_ids must lie in \[0, 2\*\*32\)"):
        ops.randn_like(x, row_ids=torch.tensor([0, 1, 2**32]))
    with pytest.raises(ValueError, match=r"row_ids must lie in \[0, 2\*\*32\)"):
        ops.randn_like(x, row_ids=torch.tensor([0, -1, 2]))


def test_data_checks():
    with pytest.raises(TypeError, match="x must be float32, float64, float16 or bfloat16, got torch.int64"):
        ops.randn_like(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="x must have at least one dimension"):
        ops.rademacher_like(torch.tensor(1.0))


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py). The twins do
# not implement the stream (they draw with torch.randn), so only the raw
# block function is compared with its twin.


def philox4x32_samples():
    out = []
    for i, (n, seed) in enumerate([(1, 0), (5, 2**64 - 1), (4099, 0xA4093822299F31D0), (0, 3), (33, 1 << 32)]):
        def make(n=n, seed=seed):
            g = torch.Generator().manual_seed(n)
            return (torch.randint(0, 1 << 32, (n, 4), generator=g, dtype=torch.int64), seed), {}

        out.append(Sample(make, f"n={n},seed={seed}", torch.int64, opcheck=i < 2))
    return out


def _noise_samples(name):
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        view = view_for(i, shape)
        explicit = i % 2 == 0  # explicit (seed, offset), or a generator (seeds at the edges)
        ids = i % 3 == 0

        def make(shape=shape, dtype=dtype, view=view, i=i, explicit=explicit, ids=ids):
            kw = {}
            if explicit:
                kw.update(seed=SEEDS[i % len(SEEDS)], offset=[0, 5, 2**63, 2**64 - 2, 1 << 32][i % 5])
            else:
                kw["generator"] = generator(i)
            if ids:
                kw["row_ids"] = row_ids(rows_of(shape), i)
            return (data(shape, dtype, i, view),), kw

        out.append(Sample(make, describe(shape, dtype, view, "seed" if explicit else "drawn", "ids" if ids else ""),
                          dtype, twin=False, opcheck=i in (0, 13)))
    return out


def _bad_noise(name):
    fn = getattr(ops, name)
    x = torch.randn(3, 5)
    return [
        BadInput(lambda: ((x,), {"seed": -1}), ValueError, r"seed must lie in \[0, 2\*\*64\)", "negative seed"),
        BadInput(lambda: ((x,), {"seed": 1, "offset": 2**64 - 1}), ValueError, "offset 2\\*\\*64 - 1 is reserved",
                 "capture marker"),
        BadInput(lambda: ((x,), {"row_ids": torch.arange(2)}), ValueError, r"row_ids must have shape \[3\]", "ids"),
        BadInput(lambda: ((x,), {"row_ids": torch.tensor([0, 1, 2**32])}), ValueError, "row_ids must lie in",
                 "id too large"),
        BadInput(lambda: ((x,), {"generator": torch.Generator(), "seed": 3}), ValueError,
                 "either generator or seed", "both"),
    ] if fn else []


PHILOX4X32 = OpInfo("philox4x32", philox4x32_samples, bad_inputs=lambda: [
    BadInput(lambda: ((torch.zeros(3, 4, dtype=torch.int32), 1), {}), TypeError, "counter must be an int64 tensor",
             "int32 counter"),
    BadInput(lambda: ((torch.zeros(3, 3, dtype=torch.int64), 1), {}), ValueError, r"counter must have shape \[\.\.\., 4\]",
             "3 words"),
    BadInput(lambda: ((torch.full((1, 4), 1 << 32), 1), {}), ValueError, r"counter words must lie in \[0, 2\*\*32\)",
             "word too large"),
    BadInput(lambda: ((torch.zeros(1, 4, dtype=torch.int64), 2**64), {}), ValueError, "seed must lie in", "seed"),
])
RANDN_LIKE = OpInfo("randn_like", lambda: _noise_samples("randn_like"), data_args={0: "x"},
                    bad_inputs=lambda: _bad_noise("randn_like"))
RADEMACHER_LIKE = OpInfo("rademacher_like", lambda: _noise_samples("rademacher_like"), data_args={0: "x"},
                         bad_inputs=lambda: _bad_noise("rademacher_like"))
OP_INFOS = [PHILOX4X32, RANDN_LIKE, RADEMACHER_LIKE]
for _info in OP_INFOS:
    globals().update(op_tests(_info))
