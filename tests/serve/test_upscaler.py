"""How the Upscaler deployment turns settings into model loading options."""

from tmlsr_ray.config import Settings
from tmlsr_ray.models.base import LoadOptions
from tmlsr_ray.serve.upscaler import load_options


def test_models_load_with_the_configured_device_number_type_and_compile_mode():
    settings = Settings(device="cpu", model_dtype="bf16", torch_compile="max-autotune")
    assert load_options(settings) == LoadOptions("cpu", "bf16", "max-autotune")
    assert load_options(Settings(half=True, torch_compile=True)) == LoadOptions("auto", "fp16", "default")
    assert load_options(Settings()) == LoadOptions("auto", "auto", "off")


def test_models_load_knowing_how_many_upscaler_replicas_share_the_machines_memory():
    """Each replica sized its CPU passes to half of the host's memory, however many shared it."""
    assert load_options(Settings(upscaler_replicas=3)).replicas_per_host == 3
    assert load_options(Settings(upscaler_replicas=3, upscaler_replicas_per_host=1)).replicas_per_host == 1
    autoscaled = Settings(upscaler_autoscaling={"min_replicas": 1, "max_replicas": 4})
    assert load_options(autoscaled).replicas_per_host == 4


def test_on_a_cluster_a_replica_divides_its_machines_memory_by_the_replicas_that_machine_can_hold():
    """0 meant every Upscaler replica of the cluster: 16 replicas of 4 CPUs over four machines of
    16 CPUs each sized their passes to a sixteenth of their machine, where at most four share it."""
    cluster = Settings(upscaler_replicas=16, upscaler_num_cpus=4)
    assert load_options(cluster, node_cpus=16.0).replicas_per_host == 4
    assert load_options(cluster, node_cpus=None).replicas_per_host == 16  # unknown: every replica
    assert load_options(cluster.model_copy(update={"upscaler_num_cpus": 0.5}), node_cpus=1.5).replicas_per_host == 3
    assert load_options(Settings(upscaler_replicas=2), node_cpus=16.0).replicas_per_host == 2
    assert load_options(cluster.model_copy(update={"upscaler_replicas_per_host": 8}), 16.0).replicas_per_host == 8


def test_models_load_knowing_the_part_of_a_gpu_each_upscaler_replica_holds():
    """Replicas packed two to a card each sized what runs whole to all of it."""
    assert load_options(Settings(upscaler_num_gpus=0.5)).gpu_share == 0.5
    assert [load_options(Settings(upscaler_num_gpus=gpus)).gpu_share for gpus in (0, 1, 2)] == [1.0] * 3
