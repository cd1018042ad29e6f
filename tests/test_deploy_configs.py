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


def test_serve_config_builds_the_application(tmp_path, monkeypatch):
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    (app,) = config["applications"]
    assert app["import_path"] == "tmlsr_ray.app:build_app"
    assert config["http_options"]["port"] == 6008
    monkeypatch.chdir(tmp_path)  # the relative data dir is created here, not in the repository
    assert isinstance(build_app(app["args"]), Application)
