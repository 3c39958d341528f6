"""Regression guard: the modules' cost against the plain 2D network, measured side by side in one run.

Measured one module per block, the modules' own cost (a module after every conv, the default, more than
doubles their count). The goal was <= 1.15x (docs/results.md, `nnunet-distilldsm network-speed`); the bound here is generous so
that machine noise passes and a change that doubles the cost does not. The fastest of several
interleaved rounds is compared: other processes on the machine only ever add time.
"""
from nnunet_distilldsm.benchmarks.network_speed import DEFAULT_2D, measure

ARCH = {**DEFAULT_2D, "arch_kwargs": {**DEFAULT_2D["arch_kwargs"], "n_stages": 4,
                                      "features_per_stage": [32, 64, 128, 256], "kernel_sizes": [[3, 3]] * 4,
                                      "strides": [[1, 1]] + [[2, 2]] * 3, "n_conv_per_stage": [2] * 4,
                                      "n_conv_per_stage_decoder": [2] * 3}}


def test_distill_dsm_costs_less_than_1_6x_the_2d_network():
    res = measure(ARCH, patch=(64, 64), depth=8, rounds=7, reduce=min,
                  variants={"distill": dict(dsm="distill", placement="block")})
    assert res["distill"]["ratio_to_2d"] < 1.6, res
