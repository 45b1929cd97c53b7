"""Tests that need a CUDA GPU (marked `cuda`; skipped without one).

The per-op comparisons with the twins and opcheck run on CUDA through the
`devices()` parametrisation of the other test files; these add what only a
GPU can show: the same stream as the CPU, the vector and scalar paths,
64-bit indexing, and no host–device synchronisation. The mixture kernels:
tests/test_cuda_mixture_score.py.
"""

import pytest
import torch

from scorekern import ops, reference

from conftest import COMPILED, DTYPES, TOL, opmath

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not COMPILED, reason="scorekern._C is not built"),
              pytest.mark.usefixtures("cuda_kernels")]


def test_philox_words_equal_the_cpu():
    counter = torch.randint(0, 2**32, (4099, 4), dtype=torch.int64)
    seed = 0xA4093822299F31D0
    assert torch.equal(ops.philox4x32(counter.cuda(), seed).cpu(), ops.philox4x32(counter, seed))


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (5, 1030), (64, 2), (2, 3, 4, 5), (1 << 16,)])
def test_stream_equals_the_cpu(shape):
    ids = torch.randint(0, 2**32, (1 if len(shape) == 1 else shape[0],))
    for row_ids in (None, ids):
        kw = dict(seed=0xDEADBEEF, offset=77)
        gpu_ids = None if row_ids is None else row_ids.cuda()
        assert torch.equal(ops.rademacher_like(torch.empty(shape, device="cuda"), row_ids=gpu_ids, **kw).cpu(),
                           ops.rademacher_like(torch.empty(shape), row_ids=row_ids, **kw))
        for dtype in DTYPES:
            gpu = ops.randn_like(torch.empty(shape, dtype=dtype, device="cuda"), row_ids=gpu_ids, **kw).cpu()
            cpu = ops.randn_like(torch.empty(shape, dtype=dtype), row_ids=row_ids, **kw)
            # the same words; normals within a few ulp (fused multiply-adds may differ)
            tol = dict(rtol=1e-6, atol=1e-6) if dtype != torch.float64 else dict(rtol=1e-14, atol=1e-14)
            if dtype in (torch.float16, torch.bfloat16):
                tol = dict(rtol=TOL[dtype]["rtol"] / 2, atol=0)  # at most one rounding step apart
            torch.testing.assert_close(gpu, cpu, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_equals_the_cpu_for_the_same_stream(dtype):
    x, s = (torch.randn(33, 257, generator=torch.Generator().manual_seed(i)).to(dtype) for i in range(2))
    z_cpu = ops.randn_like(x, seed=1, offset=2)
    z_gpu = ops.randn_like(x.cuda(), seed=1, offset=2)
    a = torch.rand(33, dtype=opmath(dtype))
    gpu = ops.noisy_update(x.cuda(), s.cuda(), a.cuda(), 0.1, 0.3, noise=z_gpu)
    cpu = ops.noisy_update(x, s, a, 0.1, 0.3, noise=z_cpu)
    torch.testing.assert_close(gpu.cpu(), cpu, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", ["offset", "transposed", "odd_row"])
def test_scalar_path_on_misaligned_and_strided_views(dtype, view):
    g = torch.Generator().manual_seed(0)
    base, sb, zb = (torch.randn(4 * 1031 + 8, generator=g).to(dtype).cuda() for _ in range(3))
    make = {
        "offset": lambda t: t[1:1 + 4 * 1024],  # contiguous, starts at an odd element
        "transposed": lambda t: t[:4 * 1024].reshape(64, 64).t(),
        "odd_row": lambda t: t[:7 * 513].reshape(7, 513),  # rows not a multiple of 4
    }[view]
    x, s, z = make(base), make(sb), make(zb)
    got = ops.noisy_update(x, s, 0.9, 0.1, 0.4, noise=z)
    op = opmath(dtype)
    want = reference.noisy_update(x.to(op), s.to(op), 0.9, 0.1, 0.4, noise=z.to(op)).to(dtype)
    torch.testing.assert_close(got, want, **TOL[dtype])
    g1 = torch.Generator(device="cuda").manual_seed(3)
    g2 = torch.Generator(device="cuda").manual_seed(3)
    fused = ops.noisy_update(x, s, 0.9, 0.1, 0.4, generator=g1)
    explicit = ops.noisy_update(x, s, 0.9, 0.1, 0.4, noise=ops.randn_like(x.to(op), generator=g2).to(dtype))
    torch.testing.assert_close(fused, explicit, **TOL[dtype])


def test_more_than_2_31_elements():
    free, _ = torch.cuda.mem_get_info()
    n = (1 << 31) + 12
    if free < 5 * 2 * n:  # x, score, noise, out in float16, and slack
        pytest.skip("not enough GPU memory")
    x = torch.ones(n, dtype=torch.float16, device="cuda")
    s = torch.full((n,), 0.5, dtype=torch.float16, device="cuda")
    out = ops.noisy_update(x, s, 1.0, 2.0, 0.0)  # c = 0: the result is exactly 2
    assert out[-8:].eq(2).all() and out[:8].eq(2).all() and out[(1 << 31) - 4:(1 << 31) + 4].eq(2).all()
    del out
    # the noise past element 2^31 is the stream's: compare a tail slice with randn_like's own tail
    z = ops.noisy_update(torch.zeros(n, dtype=torch.float16, device="cuda"), s, 0.0, 0.0, 1.0,
                         generator=torch.Generator(device="cuda").manual_seed(5))
    tail = z[-1024:].float()
    assert tail.std() > 0.5 and torch.isfinite(tail).all()


def test_no_host_device_synchronisation():
    x = torch.randn(64, 1000, device="cuda")
    s = torch.randn_like(x)
    rows = torch.rand(64, device="cuda")
    ids = torch.arange(64, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ops.noisy_update(x, s, rows, 0.1, rows, row_ids=ids)
        ops.noisy_update_(x, s, 1.0, 0.1, 0.2)
        ops.langevin_step(x, s, rows)
        ops.snr_langevin_step(x, s, 0.16, alpha=rows, norms="batch")
        ops.snr_langevin_step(x, s, 0.16, norms="row")
        ops.randn_like(x)
        ops.rademacher_like(x, row_ids=ids)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_generator_reproducible_and_advancing():
    x = torch.empty(16, 33, device="cuda")
    torch.manual_seed(11)
    a, b = ops.randn_like(x), ops.randn_like(x)
    torch.manual_seed(11)
    assert torch.equal(ops.randn_like(x), a) and torch.equal(ops.randn_like(x), b)
    assert not torch.equal(a, b)


def test_snr_equals_the_cpu_on_explicit_noise():
    x, s, z = (torch.randn(8, 3000, generator=torch.Generator().manual_seed(i)) for i in range(3))
    for norms in ("batch", "row"):
        gpu = ops.snr_langevin_step(x.cuda(), s.cuda(), 0.16, norms=norms, noise=z.cuda())
        cpu = ops.snr_langevin_step(x, s, 0.16, norms=norms, noise=z)
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


def test_samplers_do_not_synchronise_per_step():
    from scorekern import samplers
    from scorekern.sde import VESDE, VPSDE

    def score(x, t):  # an analytic score that itself never synchronises
        return -x / (1.0 + t[:, None] ** 2)

    for sde in (VPSDE(N=50), VESDE(N=50)):
        samplers.pc_sampler(score, sde, (64, 3), device="cuda", progress=False)  # warm up (first-use syncs)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            samplers.pc_sampler(score, sde, (64, 3), device="cuda", progress=False)
            samplers.pc_sampler(score, sde, (64, 3), device="cuda", corrector="ald", predictor="euler_maruyama",
                                progress=False)
            samplers.ode_sampler(score, sde, (64, 3), method="heun", n_steps=20, device="cuda", progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def _kernels(fn):
    """The names of the GPU kernels that fn launches."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [e.name for e in prof.events()
            if e.device_type == torch.autograd.DeviceType.CUDA and not e.name.startswith(("Memcpy", "Memset"))]


def test_pc_sampler_launches_per_step():
    """Besides the score function: one kernel per predictor step, two per
    corrector step (the norms' sums, whose last block makes the step sizes,
    and the update; a 4-byte memset zeroes the last block's counter)."""
    from scorekern import samplers
    from scorekern.sde import VPSDE

    sde = VPSDE(N=20)
    s = torch.randn(64, 3, device="cuda")

    def run(**kwargs):  # the score function launches nothing
        return samplers.pc_sampler(lambda x, t: s, sde, (64, 3), device="cuda", progress=False, **kwargs)

    run()
    base = len(_kernels(lambda: run(predictor=None, corrector=None)))  # the prior and the time grid
    assert len(_kernels(lambda: run(corrector=None))) - base == sde.N
    assert len(_kernels(lambda: run(predictor=None))) - base == 2 * sde.N


def test_pc_sampler_captures_in_a_cuda_graph():
    """The whole run captured: each replay draws fresh noise from the default
    generator, the same as an eager run from the same generator state."""
    from scorekern import samplers
    from scorekern.sde import VESDE

    sde = VESDE(N=30)

    def run():
        return samplers.pc_sampler(lambda x, t: -x / (1.0 + t[:, None] ** 2), sde, (64, 3), device="cuda",
                                   progress=False)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run()  # warm up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run()
    torch.manual_seed(7)
    graph.replay()
    first = out.clone()
    torch.manual_seed(7)
    eager = run()
    assert torch.equal(first, eager)
    graph.replay()
    assert torch.isfinite(out).all() and not torch.equal(out, first)


def test_capture_takes_the_default_generator_only(monkeypatch):
    x = torch.randn(4, 8, device="cuda")
    gen = torch.Generator("cuda").manual_seed(0)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(RuntimeError, match="default CUDA generator only"):
        ops.noisy_update(x, x, 1.0, 0.1, 0.2, generator=gen)
    with pytest.raises(RuntimeError, match="cannot draw noise from a generator during CUDA graph capture"):
        ops.perturb(x, 1.0, 0.5)
    monkeypatch.undo()
    # The capture marker outside a capture is refused by the kernel's glue.
    with pytest.raises(RuntimeError, match="no capture is underway"):
        torch.ops.scorekern.randn(x, 0, -1, None)


def test_pc_sampler_on_cuda_samples_a_gaussian():
    from scorekern import samplers
    from scorekern.sde import VPSDE
    from exact_scores import gaussian_score

    sde = VPSDE(N=300)
    mu, cov = torch.tensor([1.0, -2.0]), torch.tensor([[1.0, 0.6], [0.6, 0.5]])
    cpu_score = gaussian_score(sde, mu, cov)
    x = samplers.pc_sampler(lambda x, t: cpu_score(x.cpu(), t.cpu()).cuda(), sde, (4000, 2), device="cuda",
                            progress=False)
    assert x.is_cuda
    assert torch.allclose(x.mean(0).cpu(), mu, atol=0.1)
    assert torch.allclose(torch.cov(x.T).cpu(), cov, atol=0.1)


# ---------------------------------------------------------------------------
# The losses' per-row sums: short rows (one thread per row), one chunk per
# row, and several chunks added by the finishing kernel.


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1000, 2), (7, 31), (33, 257), (3, 20001), (2, 3, 64, 64)])
def test_dsm_sums_equal_the_cpu_for_the_same_stream(dtype, shape):
    score = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    rows = shape[0]
    p = torch.rand(rows, dtype=opmath(dtype)) + 0.1
    ids = torch.randint(0, 2**32, (rows,))
    for row_ids in (None, ids):
        # p·score − 0.7·z with p per row (the coefficient bundle) and z drawn at (11, 22)
        cpu = torch.ops.scorekern.dsm_loss(score, [p], [0], [1.0, -0.7], None, 11, 22, row_ids)
        gpu = torch.ops.scorekern.dsm_loss(score.cuda(), [p.cuda()], [0], [1.0, -0.7], None, 11, 22,
                                           None if row_ids is None else row_ids.cuda())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5 if dtype != torch.float64 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("view", ["offset", "strided"])
def test_loss_sums_on_misaligned_views(view):
    base = torch.randn(6, 4101, generator=torch.Generator().manual_seed(1))
    score = base[:, 1:] if view == "offset" else base[:, ::2]
    z, v = torch.randn_like(score), torch.randn_like(score)
    for device in ("cpu", "cuda"):
        s, zz, vv = (t.to(device) for t in (score, z, v))
        got = ops.dsm_loss(s, zz, 0.5, reduction="none")
        torch.testing.assert_close(got.cpu(), reference.dsm_loss(score, z, 0.5, reduction="none"))
        for vr in (False, True):
            got = ops.sliced_score_terms(s, zz, vv, variance_reduction=vr)
            want = reference.sliced_score_terms(score, z, v, variance_reduction=vr)
            torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-4)


def test_dsm_training_step_does_not_synchronise():
    x0 = torch.randn(64, 3, 16, 16, device="cuda")
    weight = torch.randn(3, 16, 16, device="cuda", requires_grad=True)
    sigma = torch.rand(64, device="cuda") + 0.01
    ops.dsm_loss(ops.perturb(x0, 1.0, sigma)[0] * weight, ops.perturb(x0, 1.0, sigma)[1], sigma)  # warm up
    torch.cuda.set_sync_debug_mode("error")
    try:
        x_t, noise = ops.perturb(x0, 1.0, sigma)
        ops.dsm_loss(x_t * weight, noise, sigma).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert weight.grad is not None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(33, 257), (1000, 2), (3, 5)])
def test_masked_update_equals_the_cpu_for_the_same_stream(dtype, shape):
    g = torch.Generator().manual_seed(4)
    x, s, y = (torch.randn(shape, generator=g).to(dtype) for _ in range(3))
    mask = torch.rand(shape, generator=g) > 0.5
    mu = torch.rand(shape[0], dtype=opmath(dtype))
    ids = torch.arange(shape[0]) * 5
    gen = lambda device: torch.Generator(device=device).manual_seed(8)  # noqa: E731
    gpu, gpu_mean = ops.masked_update(x.cuda(), s.cuda(), y.cuda(), mask.cuda(), 0.9, 0.2, 0.3, mu.cuda(), 0.4,
                                      generator=gen("cuda"), row_ids=ids.cuda(), return_mean=True)
    # The CUDA generator's (seed, offset) words, replayed on the CPU.
    g2 = gen("cuda")
    seed, off2 = ops.draw_seed_offset(g2, torch.device("cuda"))
    _, off1 = ops.draw_seed_offset(g2, torch.device("cuda"))
    z2 = ops.randn_like(x, seed=seed, offset=off2, row_ids=ids)
    z1 = ops.randn_like(x, seed=seed, offset=off1, row_ids=ids)
    cpu, cpu_mean = ops.masked_update(x, s, y, mask, 0.9, 0.2, 0.3, mu, 0.4, noise=z2, observed_noise=z1,
                                      return_mean=True)
    torch.testing.assert_close(gpu.cpu(), cpu, **TOL[dtype])
    torch.testing.assert_close(gpu_mean.cpu(), cpu_mean, **TOL[dtype])
