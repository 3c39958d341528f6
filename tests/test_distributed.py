"""The slab network under torch.distributed: one DDP step on 2 CPU processes (gloo) equals one step of a
single process on the whole batch, and every parameter gets a gradient (DDP needs no unused parameters)."""
import datetime
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from helpers import SMALL
from nnunet_distilldsm.architectures import SlabUNet

B, C, D, H, W = 4, 1, 5, 16, 16
NUM_CLASSES, LR, WORLD = 2, 0.1, 2


def make_net():
    torch.manual_seed(0)
    # deep supervision on, as nnU-Net trains: with it off, the decoder's lower-resolution seg layers are unused
    # (dynamic_network_architectures builds them anyway) and DDP without find_unused_parameters would fail
    net = SlabUNet(C, NUM_CLASSES, deep_supervision=True, placement="conv", **SMALL)  # as DistillDSMTrainer plans it
    net.apply(net.initialize)
    return net


def make_batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, C, D, H, W, generator=g)
    targets = [torch.randn(B, NUM_CLASSES, D, H >> s, W >> s, generator=g) for s in range(len(SMALL["strides"]) - 1)]
    return x, targets


def loss_fn(outputs, targets):
    """Mean-reduced MSE per output: instance norm is per slice, so nothing couples the slabs of a batch and the
    loss of the whole batch is the mean of the losses of its two halves."""
    return sum(F.mse_loss(o, t) for o, t in zip(outputs, targets))


def worker(rank, out_dir, init_method):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))
    try:
        net = DistributedDataParallel(make_net())
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        x, targets = make_batch()
        half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
        loss = loss_fn(net(x[half]), [t[half] for t in targets])
        loss.backward()
        no_grad = [n for n, p in net.module.named_parameters() if p.grad is None]
        opt.step()
        torch.save({"loss": loss.item(), "no_grad": no_grad,
                    "params": {n: p.detach().clone() for n, p in net.module.named_parameters()}},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_step_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(worker, args=(str(tmp_path), f"file://{tmp_path / 'rendezvous'}"), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    net = make_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    x, targets = make_batch()
    loss = loss_fn(net(x), targets)
    loss.backward()
    opt.step()

    for r in ranks:
        assert r["no_grad"] == [], f"parameters without gradient under DDP: {r['no_grad']}"
    assert abs(sum(r["loss"] for r in ranks) / WORLD - loss.item()) < 1e-5
    moved = 0
    for name, p in net.named_parameters():
        moved += not torch.equal(p, before[name])
        for r in ranks:
            torch.testing.assert_close(r["params"][name], p.detach(), rtol=0, atol=1e-5, msg=name)
    assert moved == len(before)  # the step changed every parameter, so the comparison means something
