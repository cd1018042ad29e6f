"""The deployment files at the top of the repository (launcher and Serve configs, the Makefile) are
valid as Ray reads them and do on a fresh node what a deploy needs."""

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("launcher", ["cluster.yaml", "cluster-onprem.yaml"])
def test_every_node_starts_the_projects_ray_with_the_secrets_file_that_travels_with_the_project(launcher, tmp_path):
    """Serve replicas run on the Python of the ``ray`` that started the node and inherit its
    environment: the project's .venv, and the OSS keys of secrets.env."""
    config = yaml.safe_load((REPO / launcher).read_text())
    project = tmp_path / "tmlsr-ray"
    (project / ".venv" / "bin").mkdir(parents=True)
    fake_ray = project / ".venv" / "bin" / "ray"
    fake_ray.write_text("#!/bin/sh\necho \"ARGS $1\"; env\n")
    fake_ray.chmod(0o755)
    (project / "secrets.env").write_text("TMLSR_OSS_ACCESS_KEY_ID=ak-1\nTMLSR_API_TOKEN='t 2'\n")

    def run(command: str) -> list:
        return subprocess.run(["bash", "-c", command], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, check=True).stdout.splitlines()

    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        shown = [line for command in commands for line in run(command)]
        assert {"ARGS stop", "ARGS start", "TMLSR_OSS_ACCESS_KEY_ID=ak-1", "TMLSR_API_TOKEN=t 2",
                "RAY_AUTH_MODE=token"} <= set(shown)
    (project / "secrets.env").unlink()  # optional: a cluster without OSS needs none
    assert "ARGS start" in run(config["worker_start_ray_commands"][-1])


def test_make_install_takes_the_first_python_that_is_3_11_or_newer(tmp_path):
    """Ubuntu 22.04 (the cluster AMI) has python3 = 3.10 and a python3.11 beside it."""
    for name, version in (("python3", (3, 10)), ("python3.11", (3, 11)), ("python3.12", (3, 12))):
        stub = tmp_path / name
        stub.write_text(f"#!/bin/sh\nexit {int(version < (3, 11))}\n")
        stub.chmod(0o755)

    def planned(path: str) -> str:
        plan = subprocess.run([shutil.which("make"), "-n", "-B", "--no-print-directory", "-C", str(REPO), "install"],
                              env={"PATH": path}, capture_output=True, text=True, check=True).stdout
        return plan.splitlines()[0]

    assert "python3.11 -m venv" in planned(str(tmp_path))
    (tmp_path / "python3.11").unlink()
    (tmp_path / "python3.12").unlink()
    assert 'test -n ""' in planned(str(tmp_path))  # none fits: it says so


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
    as_shipped = Settings.load(app["args"], environ={})  # any SSH user: paths follow its home
    assert as_shipped.weights_dir == Path.home() / "tmlsr-ray" / "weights" and as_shipped.data_dir.parent == Path.home()


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
