"""The benchmark's profiles: which models a study trains, each a (recipe, budget) pair with a label and a predictor.

docs/benchmark.md says what each profile is for and how long it takes.
"""
from benchmarks.budget_trainers import Model
from benchmarks.cpu_planner import CPU_PLANS

STANDARD = [Model("nnU-Net 2d", "nnUNetTrainer", None), Model("nnU-Net 3d_fullres", "nnUNetTrainer", None,
                                                              "3d_fullres"),
            Model("Residual DSM", "ResidualDSMTrainer", None),
            Model("nnU-Net 2d, slices as channels +-2", "SlicesAsChannelsTrainer", None),
            Model("Distill DSM", "DistillDSMTrainer", None),
            Model("Distill DSM, whole stack", "DistillDSMTrainer", None, predictor="whole-stack")]
# one module per block (the authors' code): the "Distill DSM per block" rows of the studies
PER_BLOCK = [Model("Distill DSM per block", "DistillDSMTrainer_perBlock", None),
             Model("Distill DSM per block, whole stack", "DistillDSMTrainer_perBlock", None, predictor="whole-stack")]
TWO_D, THREE_D = STANDARD[:2]


def budgeted(models, budget: str):
    return [m.with_budget(budget) for m in models]


FROM_2D = Model("Distill DSM from 2d", "DistillDSMTrainer", None)  # with a from2d_* budget
FROM_2D_PER_BLOCK = Model("Distill DSM per block from 2d", "DistillDSMTrainer_perBlock", None)
# a fine-tune's budget -> the budget of the nnU-Net 2d model (same fold and seed) it starts from via `from-2d`
STARTS_FROM = {"from2d_bench": "bench", "from2d_tiny": "tiny", "from2d_timed": "timedStart"}
# fine-tunes started by `from-2d --keep-seg-layers` (the 2d segmentation layers kept; nnUNetv2_train --c)
KEEPS_SEG_LAYERS = {"DistillDSMTrainer_identityStartSeg"}
# equal-time: a from-2d run's 2d training counts towards its budget; the fine-tune gets this share of it
# (as its iterations are 20% of the 2d model's in cpu-small), the 2d model it starts from the rest
FROM_2D_SHARE = 0.2
BUDGET_SHARE = {"from2d_timed": FROM_2D_SHARE, "timedStart": 1 - FROM_2D_SHARE}
TIMED_BUDGETS = ("timed", "from2d_timed", "timedStart")  # epochs from the recipe's `calib` training


def with_from_2d(models, budget: str):
    """`models` at `budget`, the from-2d fine-tunes at its from-2d budget."""
    return [m.with_budget(f"from2d_{budget}" if m in (FROM_2D, FROM_2D_PER_BLOCK) else budget) for m in models]


# the modules: share of channels distilled (alpha 1/4, 1/2, 1 = the authors' code) and placement (one per block;
# one after every conv = the paper's text, over twice the reach), and the modules on top of slices as channels
MODULE_RECIPE = [TWO_D, THREE_D, PER_BLOCK[0],
                 Model("Distill DSM per block, alpha 1/4", "DistillDSMTrainer_alpha025", None),
                 Model("Distill DSM per block, alpha 1", "DistillDSMTrainer_alpha1", None),
                 Model("Distill DSM, a module after every conv", "DistillDSMTrainer_perConv", None),
                 Model("Distill DSM per block, slices as channels +-2", "DistillDSMTrainer_slicesAsChannels", None),
                 Model("Distill DSM, a module after every conv, alpha 1", "DistillDSMTrainer_perConvAlpha1", None)]
PER_CONV = "Distill DSM, a module after every conv"

PROFILES = {  # name -> [Model]
    "cpu-small": with_from_2d(STANDARD + [FROM_2D] + PER_BLOCK + [FROM_2D_PER_BLOCK], "bench"),
    "equal-time": with_from_2d(STANDARD + [FROM_2D] + PER_BLOCK + [FROM_2D_PER_BLOCK], "timed"),
    # equal time by each trainer's own clock (wall_clock.py), not by a calibrated number of epochs
    "equal-wallclock": budgeted(STANDARD + PER_BLOCK, "wallclock"),
    "full": STANDARD,
    # neighbouring slices as input channels (2.5D): +-1 and +-2 against 2d and Distill DSM
    "channels-ablation": budgeted([TWO_D, Model("nnU-Net 2d, slices as channels +-1", "SlicesAsChannelsTrainer_k1",
                                                None),
                                   STANDARD[3], PER_BLOCK[0]], "bench"),
    # the slab recipe: foreground oversampling at one slab per batch, and slabs per batch at the 2d batch's
    # voxels; all predicted as users predict (stock nnUNetv2_predict)
    "slab-recipe": budgeted([TWO_D, THREE_D,
                             Model("Distill DSM per block, stock oversampling", "DistillDSMTrainer_stockOversampling",
                                   None),
                             PER_BLOCK[0],
                             Model("Distill DSM per block, 2 slabs per batch", "DistillDSMTrainer_2slabs", None),
                             Model("Distill DSM per block, 3 slabs per batch", "DistillDSMTrainer_3slabs", None)],
                            "bench"),
    # the same on the default's network, a module after every conv (its planned row is module-recipe's model)
    "slab-recipe-per-conv": budgeted([TWO_D, THREE_D,
                                      Model(f"{PER_CONV}, stock oversampling",
                                            "DistillDSMTrainer_perConvStockOversampling", None),
                                      Model(PER_CONV, "DistillDSMTrainer_perConv", None),
                                      Model(f"{PER_CONV}, 2 slabs per batch", "DistillDSMTrainer_perConv2slabs", None),
                                      Model(f"{PER_CONV}, 3 slabs per batch", "DistillDSMTrainer_perConv3slabs", None)],
                                     "bench"),
    # the modules, at equal iterations and at equal wall clock
    "module-recipe": budgeted(MODULE_RECIPE, "bench"),
    "equal-wallclock-module-recipe": budgeted(MODULE_RECIPE, "wallclock"),
    # how a fine-tune from the 2d model starts its modules: as initialised, or as identity convs
    "from-2d-start": budgeted([TWO_D, THREE_D, PER_BLOCK[0]], "bench") + budgeted([
        FROM_2D_PER_BLOCK,
        Model("Distill DSM per block from 2d, identity modules", "DistillDSMTrainer_identityStart", None),
        Model("Distill DSM per block from 2d, identity modules, 2d seg layers kept",
              "DistillDSMTrainer_identityStartSeg",
              None)], "from2d_bench"),
    # which slab depth buys the most accuracy per second of training; all predicted whole-stack
    "slab-sweep": budgeted([TWO_D] + [Model(f"Distill DSM per block, slab {d}", r, None,
                                            predictor="whole-stack") for d, r in
                                      (("4", "DistillDSMTrainer_slab4"), ("8", "DistillDSMTrainer_slab8"),
                                       ("planned", "DistillDSMTrainer_perBlock"), ("16", "DistillDSMTrainer_slab16"))],
                           "bench"),
    # real anatomy (Task04 Hippocampus) on nnU-Net's planner with CPU-sized batches (cpu_planner.py): the six models
    # at equal iterations, the default also predicted whole-stack; four of them at equal wall clock
    "cpu-real": budgeted(STANDARD[:4] + [STANDARD[4], PER_BLOCK[0], STANDARD[5]], "bench"),
    "equal-wallclock-cpu-real": budgeted(STANDARD[:2] + [STANDARD[3], STANDARD[4]], "wallclock"),
    "equal-time-tiny": with_from_2d([TWO_D, STANDARD[4], FROM_2D], "timed"),
    "equal-wallclock-tiny": budgeted([TWO_D, STANDARD[4]], "wallclock"),
    "tiny": with_from_2d([TWO_D, STANDARD[4], STANDARD[5], FROM_2D], "tiny"),
    # the test set's test: both predictors of the default, no fine-tune (the test-set code treats no row apart)
    "tiny-test-set": budgeted([TWO_D, STANDARD[4], STANDARD[5]], "tiny"),
}
# profiles trained on other plans than nnU-Net's default (nnUNetPlans)
PROFILE_PLANS = {"cpu-real": CPU_PLANS, "equal-wallclock-cpu-real": CPU_PLANS}
# profiles whose table also gives per-class Dice as the paper reports it (mean +- sd over folds)
PER_CLASS_PROFILES = {"cpu-real", "equal-wallclock-cpu-real"}
# a run of equal-time is 9 budgets (7 models and the two from-2d trainings) plus predictions (docs/benchmark.md)
DEFAULT_TRAIN_MINUTES = 6.0
# equal iterations and equal time, in one accuracy-against-training-time plot
TRADEOFF = {**{p: ("cpu-small", "equal-time", "equal-wallclock") for p in ("cpu-small", "equal-time",
                                                                           "equal-wallclock")},
            **{p: ("tiny", "equal-time-tiny", "equal-wallclock-tiny")
               for p in ("tiny", "equal-time-tiny", "equal-wallclock-tiny")}}
