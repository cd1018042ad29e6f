"""Where the service's control plane runs on a cluster."""

from __future__ import annotations

from typing import Dict

from tmlsr_ray.config import Settings

# Ray gives every head node one unit of this resource, and no other node any.
HEAD_NODE_RESOURCE = "node:__internal_head__"


def control_plane_resources(settings: Settings) -> Dict[str, float]:
    """Ray resources of the Ingress, TaskRunner and TaskState actors.

    On the head node the task database stays on the disk it was written to, the ingress reads it
    directly (``direct_reads``), and the autoscaler, which removes idle workers, never takes them.
    """
    return {HEAD_NODE_RESOURCE: 0.001} if settings.control_on_head else {}
