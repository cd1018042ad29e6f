"""The deployment files at the top of the repository are valid as Ray reads them."""

import copy

import yaml
from ray.serve import Application

from tests.helpers import REPO
from tmlsr_ray.app import build_app


def test_cluster_yaml_passes_rays_own_launcher_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    workers = [t for t in config["available_node_types"].values() if t["resources"].get("GPU")]
    assert workers and all(t["max_workers"] > t["min_workers"] >= 0 for t in workers)


def test_the_on_prem_cluster_yaml_passes_rays_own_launcher_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert config["provider"]["type"] == "local"
    assert prepared["max_workers"] == len(config["provider"]["worker_ips"]) == config["min_workers"]


def test_the_gpu_serve_config_builds_with_gpu_replicas_and_autoscaling(tmp_path, monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    from tmlsr_ray.config import Settings
    from tmlsr_ray.serve.seedvr2 import seedvr2_options
    from tmlsr_ray.serve.upscaler import upscaler_options

    config = yaml.safe_load((REPO / "serve_config.gpu.yaml").read_text())
    ServeDeploySchema.model_validate(config)  # what `serve deploy` checks
    (app,) = config["applications"]
    args = {**app["args"], "weights_dir": str(tmp_path), "data_dir": str(tmp_path / "data")}
    assert isinstance(build_app(args), Application)
    settings = Settings.load(args, environ={})
    upscaler, seedvr2 = upscaler_options(settings), seedvr2_options(settings)
    assert upscaler["ray_actor_options"]["num_gpus"] == 1 and seedvr2["ray_actor_options"]["num_gpus"] == 1
    assert upscaler["autoscaling_config"]["max_replicas"] == 8 and "num_replicas" not in upscaler
    assert settings.upscaler_parallelism == 8 and settings.video_codec == "auto"


def test_a_gpu_node_of_the_cluster_holds_an_upscaler_whose_segments_encode_on_all_its_cpus():
    from tmlsr_ray.config import Settings

    (app,) = yaml.safe_load((REPO / "serve_config.gpu.yaml").read_text())["applications"]
    settings = Settings.load(app["args"], environ={})
    node = yaml.safe_load((REPO / "cluster.yaml").read_text())["available_node_types"]["gpu_worker"]["resources"]
    cpus, segments = settings.upscaler_num_cpus, settings.video_segments_per_replica
    assert cpus <= node["CPU"] - 1, "a core left to Ray's own processes on the node"
    assert settings.encoder_threads(cpus) * segments == cpus
    assert settings.upscaler_max_ongoing_requests >= segments


def test_serve_config_builds_the_application(tmp_path, monkeypatch):
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    (app,) = config["applications"]
    assert app["import_path"] == "tmlsr_ray.app:build_app"
    assert config["http_options"]["port"] == 6008
    monkeypatch.chdir(tmp_path)  # the relative data dir is created here, not in the repository
    assert isinstance(build_app(app["args"]), Application)
