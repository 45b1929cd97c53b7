"""Training and sampling under torch.distributed: two CPU processes, gloo.

The workers train a small score model under DistributedDataParallel with the
fused DSM loss (each rank its own noise stream) and sample a batch split
across the ranks; the parent checks the records they save."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scorekern import losses, samplers
from scorekern.distributed import rank_and_world_size, rank_generator, shard_row_ids
from scorekern.sde import VESDE, VPSDE

WORLD = 2
BATCH = 64  # per rank
STEPS = 3
SEED = 1234
SAMPLES = 37  # split 19 + 18


def _model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
    return net


def _score(net):
    return lambda x, t: net(torch.cat([x, t[:, None]], dim=1))


def _data(rank):
    return torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(100 + rank)) * 2 + 1


def _train(rank, module):
    """STEPS steps of SGD on the fused DSM loss; each step's loss and the
    model's gradient after backward (synchronised under DDP)."""
    sde = VESDE(sigma_max=5.0)
    gen = rank_generator(SEED, rank=rank)
    opt = torch.optim.SGD(module.parameters(), lr=0.05)
    x0 = _data(rank)
    out = []
    for _ in range(STEPS):
        loss = losses.dsm(_score(module), x0, sde, generator=gen)
        opt.zero_grad()
        loss.backward()
        out.append((loss.detach(), torch.cat([p.grad.reshape(-1) for p in module.parameters()]).clone()))
        opt.step()
    return out


def _analytic(x, t):
    sde = VPSDE(N=40)
    m, s = sde.mean_coef(t)[:, None], sde.std(t)[:, None]
    return (m * 0.5 - x) / (m**2 * 0.3**2 + s**2)


def _sample(row_ids, n, corrector="langevin"):
    gen = torch.Generator().manual_seed(SEED)
    return samplers.pc_sampler(_analytic, VPSDE(N=40), (n, 2), corrector=corrector, norms="row", generator=gen,
                               row_ids=row_ids, progress=False)


def _worker(rank, path):
    dist.init_process_group("gloo", init_method=f"file://{path}/rendezvous", rank=rank, world_size=WORLD)
    try:
        assert rank_and_world_size() == (rank, WORLD)
        ddp = torch.nn.parallel.DistributedDataParallel(_model())
        trained = _train(rank, ddp)
        again = _train(rank, torch.nn.parallel.DistributedDataParallel(_model()))
        noise = torch.randn(5, generator=rank_generator(SEED))  # the rank read from the process group
        ids = shard_row_ids(SAMPLES)
        torch.save(dict(trained=trained, again=again, noise=noise, ids=ids, samples=_sample(ids, len(ids))),
                   f"{path}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    path = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(str(path),), nprocs=WORLD, start_method="spawn", join=True)
    return [torch.load(os.path.join(path, f"rank{r}.pt")) for r in range(WORLD)]


def test_gradients_are_synchronised_and_are_the_ranks_mean(records):
    # One process replaying each rank without DDP: the same losses, and DDP's
    # gradient is the mean of the ranks' gradients (first step; later steps
    # start from the parameters the mean moved to, so compare the losses).
    solo = [_train(r, _model()) for r in range(WORLD)]
    for step in range(STEPS):
        grads = [rec["trained"][step][1] for rec in records]
        torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    first = torch.stack([s[0][1] for s in solo]).mean(dim=0)
    torch.testing.assert_close(records[0]["trained"][0][1], first, rtol=1e-5, atol=1e-7)
    for r in range(WORLD):
        torch.testing.assert_close(records[r]["trained"][0][0], solo[r][0][0], rtol=1e-6, atol=0)


def test_ranks_draw_different_noise_and_reproduce_it(records):
    assert not torch.equal(records[0]["noise"], records[1]["noise"])
    assert not torch.equal(records[0]["trained"][0][0], records[1]["trained"][0][0])
    # Rank 0's stream is the seed's own; a process outside any group gets it.
    torch.testing.assert_close(records[0]["noise"], torch.randn(5, generator=rank_generator(SEED)), rtol=0, atol=0)
    for rec in records:
        for (l1, g1), (l2, g2) in zip(rec["trained"], rec["again"]):
            assert torch.equal(l1, l2) and torch.equal(g1, g2)


@pytest.mark.parametrize("corrector", ["langevin", None])
def test_split_sampling_equals_one_process(records, corrector):
    ids = torch.cat([rec["ids"] for rec in records])
    assert ids.tolist() == list(range(SAMPLES))
    whole = _sample(torch.arange(SAMPLES), SAMPLES, corrector)
    if corrector == "langevin":
        split = torch.cat([rec["samples"] for rec in records])
        torch.testing.assert_close(split, whole, rtol=0, atol=0)
    # Without row ids, rows are numbered 0..B-1: the same samples.
    torch.testing.assert_close(_sample(None, SAMPLES, corrector), whole, rtol=0, atol=0)
    # A share sampled alone is the same rows of the whole batch.
    torch.testing.assert_close(_sample(torch.arange(20, 30), 10, corrector), whole[20:30], rtol=0, atol=0)


def test_shard_row_ids_cover_the_batch():
    for world in (1, 2, 3, 7):
        shares = [shard_row_ids(10, rank=r, world_size=world) for r in range(world)]
        assert torch.cat(shares).tolist() == list(range(10))
        assert [len(s) for s in shares] == [len(s) for s in torch.arange(10).tensor_split(world)]
    with pytest.raises(ValueError, match="rank"):
        shard_row_ids(10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="seed"):
        rank_generator(-1)
