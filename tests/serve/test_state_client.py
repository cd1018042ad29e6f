"""The state actor across deploys: one built from other settings is replaced, and every client
(also one holding the old actor) goes on with the new one, records intact."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import eventually
from tmlsr_ray.config import Settings
from tmlsr_ray.serve.state import STATE_NAMESPACE, StateClient, state_fingerprint

NAME = "tmlsr_state_client_test"


@pytest.fixture
def settings(service, tmp_path):
    """``service`` only for its running Ray; this state actor is the test's own."""
    import ray

    yield Settings.load({"weights_dir": str(service.weights_dir), "data_dir": str(tmp_path / "data"),
                         "state_actor_name": NAME})
    try:
        ray.kill(ray.get_actor(NAME, namespace=STATE_NAMESPACE), no_restart=True)
    except ValueError:
        pass


def actor_id(client: StateClient) -> str:
    return client._handle._actor_id.hex()


def params() -> dict:
    return {"url": "http://example.com/a.png", "type": "image", "model": "tiny-x4.pth"}


def test_the_fingerprint_follows_the_settings():
    first = Settings.load({"recent_tasks_limit": 50})
    assert state_fingerprint(first) == state_fingerprint(Settings.load({"recent_tasks_limit": 50}))
    assert state_fingerprint(first) != state_fingerprint(Settings.load({"recent_tasks_limit": 49}))


def test_connecting_with_the_same_settings_keeps_the_actor(settings):
    async def scenario():
        first = await StateClient.connect(settings)
        second = await StateClient.connect(settings)
        return actor_id(first), actor_id(second)

    first, second = asyncio.run(scenario())
    assert first == second


def test_a_deploy_with_other_settings_replaces_the_actor_and_the_old_client_follows(settings):
    newer = settings.model_copy(update={"recent_tasks_limit": 7})

    async def scenario():
        old = await StateClient.connect(settings)
        old_id = actor_id(old)
        task_id, outcome = await old.admit("t-upgrade", params())
        new = await StateClient.connect(newer)
        assert actor_id(new) != old_id and await new.fingerprint() == state_fingerprint(newer)
        # The old client's actor is gone: its next call finds the new one, which has the record.
        view = await old.get(task_id)
        assert actor_id(old) == actor_id(new)
        return outcome, view, await new.monitor()

    outcome, view, stats = asyncio.run(scenario())
    assert outcome == "created" and view.status.value == "pending"
    assert stats.system.queue_size == 1


def _named_actor_alive() -> bool:
    import ray

    try:
        ray.get_actor(NAME, namespace=STATE_NAMESPACE)
    except ValueError:
        return False
    return True


def test_a_client_whose_actor_was_killed_for_good_makes_a_new_one(settings):
    import ray

    async def scenario():
        client = await StateClient.connect(settings)
        task_id, _ = await client.admit("t-killed", params())
        before = actor_id(client)
        ray.kill(client._handle, no_restart=True)
        # the kill lands a moment later: a call sent before that was answered by the old actor
        eventually(lambda: not _named_actor_alive(), what="the killed state actor to be gone")
        view = await client.get(task_id)  # nobody replaces it: after a moment the client makes one
        return before, actor_id(client), view

    before, after, view = asyncio.run(scenario())
    assert before != after and view is not None and view.task_id == "t-killed"
