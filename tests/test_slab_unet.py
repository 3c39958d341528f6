"""The slab network: dependence between slices, and conversion of real nnU-Net plans."""
import gc
import weakref

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from benchmarks.dependence import slices_reached
from helpers import SMALL, load_plans
from nnunet_distilldsm.architectures import SlabUNet
from nnunet_distilldsm.architectures.depth_shift import DepthShiftModule
from nnunet_distilldsm.trainers.slab_plans import SlabRecipe, make_slab_plans
from nnunet_distilldsm.whole_stack_predictor import in_chunks


def n_modules(net):
    return sum(isinstance(m, DepthShiftModule) for m in net.modules())


@pytest.mark.parametrize("dsm,placement,expected_modules", [
    ("none", "block", 0), ("distill", "block", 4), ("residual", "block", 4), ("distill", "conv", 10)])
def test_output_slice_depends_exactly_on_slices_within_reach(dsm, placement, expected_modules):
    torch.manual_seed(0)
    net = SlabUNet(1, 2, dsm=dsm, placement=placement, deep_supervision=True, **SMALL).double()
    net.apply(net.initialize)
    n = n_modules(net)
    assert n == expected_modules  # block: encoder stages 1, 2 + two decoder stages; conv: every conv
    depth = 2 * n + 3
    x = torch.randn(2, 1, depth, 16, 16, dtype=torch.double)
    for j in (0, depth // 2, depth - 1):
        assert slices_reached(net, x, j, volume=1) == {(1, i) for i in range(depth) if abs(i - j) <= n}


def test_shapes_deep_supervision_depth_never_pooled():
    net = SlabUNet(2, 3, deep_supervision=True, **SMALL)
    out = net(torch.randn(2, 2, 5, 32, 24))
    assert [tuple(o.shape) for o in out] == [(2, 3, 5, 32, 24), (2, 3, 5, 16, 12)]
    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    assert net(torch.randn(1, 2, 1, 32, 24)).shape == (1, 3, 1, 32, 24)


class PlainConvUNetSubclass(PlainConvUNet):
    """Keeps PlainConvUNet's forward: SlabUNet's decoder(encoder(x)) is still what it computes."""


class UNetWithItsOwnForward(PlainConvUNet):
    def forward(self, x):
        return self.decoder(self.encoder(x)) * 2


@pytest.mark.parametrize("base", ["dynamic_network_architectures.architectures.unet.ResidualUNet", "torch.nn.Identity",
                                  f"{__name__}.UNetWithItsOwnForward"])
def test_unsupported_base_network_is_refused_naming_the_supported_ones(base):
    with pytest.raises(ValueError) as e:
        SlabUNet(1, 2, base_network_class_name=base, **SMALL)
    message = str(e.value)
    assert f"base_network_class_name {base!r} is not supported" in message
    assert "dynamic_network_architectures.architectures.unet.PlainConvUNet" in message
    assert "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet" in message
    # a subclass that keeps the supported forward is the supported network
    net = SlabUNet(1, 2, base_network_class_name=f"{__name__}.PlainConvUNetSubclass", **SMALL)
    assert net(torch.randn(1, 1, 3, 16, 16)).shape == (1, 2, 3, 16, 16)


def test_pooling_along_depth_is_refused():
    kw = dict(SMALL, strides=[[1, 1, 1], [2, 2, 2], [1, 2, 2]])
    with pytest.raises(ValueError, match="in-plane"):
        SlabUNet(1, 2, **kw)


@pytest.mark.parametrize("plans_name", ["nnUNetPlans", "nnUNetResEncUNetMPlans"])
@pytest.mark.parametrize("dsm", ["distill", "residual"])
def test_converted_real_plan_adds_only_module_parameters(planned, plans_name, dsm):
    env, _ = planned
    plans = load_plans(env, plans_name)
    plans2d = plans["configurations"]["2d"]["architecture"]
    slab = make_slab_plans(plans, "2d", SlabRecipe(dsm=dsm))["configurations"]["2d"]
    arch = slab["architecture"]
    assert len(slab["patch_size"]) == 3 and all(s[0] == 1 for s in arch["arch_kwargs"]["strides"])
    build = lambda a: get_network_from_plans(a["network_class_name"], a["arch_kwargs"], a["_kw_requires_import"],  # noqa
                                             1, 3, deep_supervision=False)
    net2d, net = build(plans2d), build(arch)
    assert type(net2d).__name__ in arch["arch_kwargs"]["base_network_class_name"]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa
    module_params = sum(count(m) for m in net.modules() if isinstance(m, DepthShiftModule))
    assert count(net) == count(net2d) + module_params
    assert (module_params > 0) == (dsm == "distill")
    # the 2D weights load by name: nothing of the 2D network is renamed
    missing, unexpected = net.load_state_dict(net2d.state_dict(), strict=False)
    assert not unexpected and all(".distill." in k for k in missing)
    h, w = slab["patch_size"][1:]
    with torch.no_grad():
        assert net(torch.randn(1, 1, 1, h, w)).shape == (1, 3, 1, h, w)
        # the same 2D weights and no modules: each slice is predicted as the 2D network predicts it
        plain = build({**arch, "arch_kwargs": {**arch["arch_kwargs"], "dsm": "none"}})
        plain.load_state_dict(net2d.state_dict())
        net2d.eval(), plain.eval()
        x = torch.randn(1, 1, 3, h, w)
        torch.testing.assert_close(plain(x)[:, :, 1], net2d(x[:, :, 1]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_chunked_inference_equals_one_pass_over_the_whole_stack(chunk):
    torch.manual_seed(0)
    net = SlabUNet(1, 2, deep_supervision=False, **SMALL).double().eval()
    net.apply(net.initialize)
    assert net.reach == 4
    x = torch.randn(2, 1, 23, 16, 16, dtype=torch.double)
    with torch.no_grad():
        whole = net(x)
        chunked = in_chunks(net, x, chunk, net.reach)
    torch.testing.assert_close(chunked, whole, rtol=1e-9, atol=1e-9)
    # a halo one slice short of the reach is not exact: the halo is what makes chunks exact
    depth = x.shape[2]
    with torch.no_grad():
        short = torch.cat([net._forward_slab(x[:, :, max(0, s - 3):s + chunk + 3])[:, :, s - max(0, s - 3):][:, :,
                                                                                                             :chunk]
                           for s in range(0, depth, chunk)], dim=2)
    assert short.shape == whole.shape and not torch.allclose(short, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dsm,placement", [("distill", "block"), ("distill", "conv"), ("residual", "block")])
def test_module_outputs_are_recomputed_in_backward_not_kept(dsm, placement):
    """The layer after a module would keep the module's output for backward (memory the 2D network does not
    spend); it is recomputed from the module's input instead, with gradients bitwise the same."""
    torch.manual_seed(0)
    net = SlabUNet(1, 3, dsm=dsm, placement=placement, deep_supervision=True, **SMALL)
    net.apply(net.initialize)
    outputs = []
    for m in net.modules():
        if isinstance(m, DepthShiftModule):
            m.register_forward_hook(lambda mod, inp, out: outputs.append(weakref.ref(out)))
    x = torch.randn(2, 1, 6, 32, 32)
    grads, alive = {}, {}
    for recompute in (False, True):
        net.recompute_module_outputs = recompute
        net.zero_grad()
        outputs.clear()
        loss = sum(o.square().mean() for o in net(x))
        gc.collect()
        alive[recompute] = sum(r() is not None for r in outputs)
        loss.backward()
        grads[recompute] = [p.grad.clone() for p in net.parameters()]
    assert alive == {False: n_modules(net), True: 0}
    assert all(torch.equal(a, b) for a, b in zip(grads[False], grads[True]))
