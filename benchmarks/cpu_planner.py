"""nnU-Net's own planner with batches a 2-core CPU can train: the CPU plans of the hippocampus study.

nnU-Net's `ExperimentPlanner` caps a batch so that one step sees at most `max_dataset_covered` (5%) of the
dataset's voxels, and at least `UNet_min_batch_size` (2) samples. On Task04 Hippocampus the cap sets both batches
(2d 277 slices, 3d_fullres 7 cases); one step then takes 11-16 s on this machine. This planner divides the cap by
COVERAGE_DIVISOR and allows a batch of one sample, nothing else: the same patches, networks, spacing and
preprocessing, and 2d and 3d_fullres shrunk by one rule, so about one case's voxels a step (2d: 35 slices,
3d_fullres: 1 case, the slab trainers: one slab of the whole stack).
"""
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

CPU_PLANS = "nnUNetPlansCPU"
COVERAGE_DIVISOR = 8


class CPUPlanner(ExperimentPlanner):
    """nnU-Net's default planner, with its dataset-coverage cap / COVERAGE_DIVISOR and a minimum batch of 1."""

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = CPU_PLANS,
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.max_dataset_covered /= COVERAGE_DIVISOR
        self.UNet_min_batch_size = 1


def plan_and_preprocess_cpu(dataset_id: int, configurations=("2d", "3d_fullres"), num_processes: int = 2):
    """Fingerprint (if missing), CPU plans and preprocessed data of `configurations`, through nnU-Net's API."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, preprocess
    extract_fingerprints([dataset_id], num_processes=num_processes, check_dataset_integrity=True)
    CPUPlanner(dataset_id).plan_experiment()
    preprocess([dataset_id], CPU_PLANS, list(configurations), [num_processes] * len(configurations))
