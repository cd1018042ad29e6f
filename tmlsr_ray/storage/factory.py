"""The output storage a service's settings ask for."""

from __future__ import annotations

from tmlsr_ray.config import Settings
from tmlsr_ray.storage.base import OutputStorage
from tmlsr_ray.storage.local import LocalStorage


def make_storage(settings: Settings) -> OutputStorage:
    if settings.storage == "oss":
        from tmlsr_ray.storage.oss import OssStorage

        oss = settings.oss_config()
        if oss is None:
            raise ValueError("storage: oss needs oss_endpoint, oss_access_key_id and oss_access_key_secret")
        return OssStorage(oss, settings.data_dir / "oss-checkpoints")
    return LocalStorage(settings.data_dir / "outputs")
