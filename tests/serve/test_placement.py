"""On a cluster of several nodes the service's control plane stays on the head node."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO, free_port, save_srvgg

# A head node with no CPUs of its own beside a worker that has them: a 0-CPU replica or actor may
# go to either, and Serve spreads replicas, so only the head-node placement keeps them together.
CLUSTER_DRIVER = """
import json, sys, tempfile
import ray
from ray import serve
from ray.cluster_utils import Cluster
from tmlsr_ray.app import APP_NAME, build_app
from tmlsr_ray.serve.state import STATE_NAMESPACE

port, http_port, weights, control_on_head = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "on"
cluster = Cluster(initialize_head=True, head_node_args={"gcs_server_port": port, "num_cpus": 0, "include_dashboard": False})
cluster.add_node(num_cpus=2)
ray.init(address=cluster.address, namespace=STATE_NAMESPACE, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": http_port})
settings = {"weights_dir": weights, "data_dir": tempfile.mkdtemp(), "default_model": "tiny-x4.pth",
            "ingress_replicas": 2, "runner_replicas": 2, "seedvr2_replicas": 0, "torch_threads": 1,
            "state_actor_name": "placement", "control_on_head": control_on_head, "allow_private_urls": True}
serve.run(build_app(settings), name=APP_NAME, route_prefix="/")

def node_of(name, namespace):
    actor = ray.get_actor(name, namespace=namespace)
    return ray.get(actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))

head = next(node["NodeID"] for node in ray.nodes() if "node:__internal_head__" in node["Resources"])
on_head = {"TaskState": [node_of("placement", STATE_NAMESPACE) == head]}
for actor in ray.util.list_named_actors(all_namespaces=True):
    for deployment in ("Ingress", "TaskRunner", "Upscaler"):
        if f"{APP_NAME}#{deployment}#" in actor["name"]:
            on_head.setdefault(deployment, []).append(node_of(actor["name"], actor["namespace"]) == head)
print("PLACEMENT", json.dumps(on_head), flush=True)

# The state actor restarted on the worker, whose disk holds another database: the ingress on the
# head must stop reading its own file (what it had before is no longer written) and ask the actor.
import urllib.request
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.waiting import eventually  # not tests.helpers: no torch in this driver
from tmlsr_ray.config import Settings
from tmlsr_ray.serve.direct_reads import PLACEMENT_CHECK_S
from tmlsr_ray.serve.state import TaskState

def http(method, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, None

http("GET", "/monitor/stats")  # each ingress that answers opens its direct reader now
_, admitted_before = http("POST", "/tasks", {"url": "http://127.0.0.1:9/gone.png", "type": "image"})
ray.kill(ray.get_actor("placement", namespace=STATE_NAMESPACE), no_restart=True)

def name_taken():
    try:
        return bool(ray.get_actor("placement", namespace=STATE_NAMESPACE))
    except ValueError:
        return False

eventually(lambda: not name_taken(), 15, "the killed state actor's name free")  # once the cluster saw it die
worker = next(node["NodeID"] for node in ray.nodes() if node["Alive"] and node["NodeID"] != head)
moved = Settings.load({**settings, "data_dir": tempfile.mkdtemp()})
TaskState.options(name="placement", namespace=STATE_NAMESPACE, lifetime="detached", resources={},
                  scheduling_strategy=NodeAffinitySchedulingStrategy(worker, soft=False)).remote(moved, "")
# Each ingress asks where the actor runs every PLACEMENT_CHECK_S: poll, for no longer than a check and a
# second, until four reads of a task only the head's stale file holds are the moved actor's 404 (a task
# the file lacks is asked of the actor whatever the check found, so only a stale one shows the switch).
try:
    stale = eventually(lambda: [http("GET", f"/tasks/{admitted_before['task_id']}")[0] for _ in range(4)],
                       PLACEMENT_CHECK_S + 1, "the stale task's reads all the moved actor's 404",
                       until=lambda codes: codes == [404] * 4, every=0.2)
    _, created = http("POST", "/tasks", {"url": "http://127.0.0.1:9/gone.png", "type": "image"})
    reads = [http("GET", f"/tasks/{created['task_id']}")[0] for _ in range(4)]
    print("READS", json.dumps(reads), flush=True)
    print("STALE", json.dumps(stale), flush=True)
finally:  # a wait timed out must not leave the cluster's processes behind
    serve.shutdown()
    ray.shutdown()
    cluster.shutdown()
"""


def _placement(tmp_path, control_on_head: str) -> dict:
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    save_srvgg(weights / "tiny-x4.pth")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "-c", CLUSTER_DRIVER, str(free_port()), str(free_port()), str(weights), control_on_head],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in result.stdout.splitlines()
            if line.startswith(("PLACEMENT ", "READS ", "STALE "))}


def test_the_control_plane_stays_on_the_head_node_and_reads_the_database_only_where_its_writer_runs(tmp_path):
    seen = _placement(tmp_path, "on")
    assert seen["PLACEMENT"] == {"TaskState": [True], "Ingress": [True, True], "TaskRunner": [True, True],
                                 "Upscaler": [False]}
    # once the state actor runs elsewhere, tasks are read through it: one it just admitted is found,
    # one only the head's own database file (no longer written) holds is not
    assert seen["READS"] == [200, 200, 200, 200] and seen["STALE"] == [404, 404, 404, 404]
