"""The output storage and the store of video pieces a service's settings ask for."""

from __future__ import annotations

from tmlsr_ray.config import Settings
from tmlsr_ray.storage.base import OutputStorage
from tmlsr_ray.storage.local import LocalStorage
from tmlsr_ray.storage.pieces import PieceStore


def make_storage(settings: Settings) -> OutputStorage:
    if settings.storage == "oss":
        from tmlsr_ray.storage.oss import OssStorage

        oss = settings.oss_config()
        if oss is None:
            raise ValueError("storage: oss needs oss_endpoint, oss_access_key_id and oss_access_key_secret")
        return OssStorage(oss, settings.data_dir / "oss-checkpoints")
    return LocalStorage(settings.data_dir / "outputs")


def make_piece_store(settings: Settings, task_id: str, plan_key: str, workdir) -> PieceStore:
    """Pieces in the task's work folder (one machine, or a shared ``data_dir``), or in the OSS
    output bucket with ``storage: oss``, where a runner on any node finds them."""
    if settings.storage == "oss":
        from tmlsr_ray.storage.oss import OssPieceStore

        oss = settings.oss_config()
        return OssPieceStore(oss.bucket_client(oss.bucket), _pieces_prefix(oss, task_id) + plan_key,
                             workdir / "pieces" / plan_key)
    return PieceStore(workdir / "pieces" / plan_key)


def remove_pieces(settings: Settings, task_id: str) -> None:
    """Every piece of a task, whatever its plan (the local ones go with the work folder)."""
    if settings.storage == "oss":
        from tmlsr_ray.storage.oss import OssPieceStore

        oss = settings.oss_config()
        OssPieceStore(oss.bucket_client(oss.bucket), _pieces_prefix(oss, task_id), None).remove()


def _pieces_prefix(oss, task_id: str) -> str:
    return f"{oss.prefix.strip('/')}/pieces/{task_id}/" if oss.prefix else f"pieces/{task_id}/"
