"""Model files: the backends (families) that serve them, name checks, recognition by contents
(cached by the file's stamp: size, times, inode), loading, and an LRU cache of loaded models.

A new backend is one module declaring a :class:`~tmlsr_ray.models.base.ModelFamily` and one line
in :data:`FAMILIES`; the first family that recognises a file serves it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from tmlsr_ray.models import realesrgan, spandrel
from tmlsr_ray.models.base import LoadOptions, ModelError, ModelFamily, ModelInfo, SuperResolutionModel, file_suffix
from tmlsr_ray.models.seedvr2 import family as seedvr2

# Real-ESRGAN first: its own loader keeps the golden outputs of its files bit for bit; spandrel
# last, as it reads the widest range of files.
FAMILIES: Tuple[ModelFamily, ...] = (realesrgan.FAMILY, seedvr2.FAMILY, spandrel.FAMILY)
FAMILY_BY_NAME: Dict[str, ModelFamily] = {family.name: family for family in FAMILIES}
MODEL_SUFFIXES = tuple(sorted({suffix for family in FAMILIES for suffix in family.suffixes}))
COMPANIONS: Dict[str, str] = {name: family.name for family in FAMILIES for name in family.companions}


class ModelNameError(ValueError):
    """A model name that is not a plain file name, or names no file in the weights directory."""


def available_models(weights_dir: Path) -> List[str]:
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir()
                  if file_suffix(p) in MODEL_SUFFIXES and p.name not in COMPANIONS and p.is_file())


def resolve_model_path(weights_dir: Path, name: str) -> Path:
    """The file a model name stands for; refuses anything but a plain name of an existing file. A
    symbolic link in the weights directory is followed, as the listing does: the operator put it
    there (a shared model folder); a name alone cannot reach out of the directory."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ModelNameError(f"model must be a plain file name in the weights directory, got {name!r}")
    path = weights_dir / name
    if name in COMPANIONS:
        raise ModelNameError(f"{name} is part of the {COMPANIONS[name]} models (read beside their own file), "
                             "not a model of its own")
    if not path.is_file():
        listing = ", ".join(available_models(weights_dir)) or "none"
        raise ModelNameError(f"model file {name!r} not found in the weights directory; available: {listing}")
    if file_suffix(path) not in MODEL_SUFFIXES:
        raise ModelNameError(f"model file {name!r} is not a model file (served: {', '.join(MODEL_SUFFIXES)})")
    return path


def recognise(path: Path) -> ModelInfo:
    """What the file is, by the first family that knows it; ModelError when none serves it."""
    for family in FAMILIES:
        if file_suffix(path) in family.suffixes:
            info = family.recognise(path)
            if info is not None:
                return info
    raise ModelError(f"model file {path.name}: no backend here recognises its contents "
                     f"({', '.join(f.name for f in FAMILIES)})")


def load_model(path: Path, info: ModelInfo, options: LoadOptions = LoadOptions()):
    return FAMILY_BY_NAME[info.family].load(path, options)


FileStamp = Tuple[int, int, int, int]


def file_stamp(path: Path) -> FileStamp:
    """What changes when a file's contents may have: (size, mtime, inode, ctime). Size and mtime
    alone missed a file replaced by another of the same size whose copy kept its mtime (``cp -p``,
    ``rsync -a``, unzipping a model pack): two networks of one architecture save to the same size.
    A replacement is a new inode, or an in-place write a new ctime, which no copy can set."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns


# The file's stamp, and its companions' (a file read beside it: SeedVR2's VAE and text embeddings).
EntryStamp = Tuple[FileStamp, Tuple[Optional[FileStamp], ...]]


def entry_stamp(path: Path, variant: Optional[float] = None) -> EntryStamp:
    """The file's stamp and those of the files the families that may serve it read beside it (None
    for one absent): a companion put in place after a refusal named it is seen, as is one replaced.
    A ``variant`` (a denoise strength) is mixed from the weak-denoise twin too: its stamp joins them."""
    names = [name for family in FAMILIES if file_suffix(path) in family.suffixes for name in family.companions]
    companions = tuple(_stamp_if_present(path.parent / name) for name in names)
    if variant is not None:
        twin = realesrgan.weak_denoise_twin(path)
        companions += (None if twin is None else _stamp_if_present(twin),)
    return file_stamp(path), companions


def _stamp_if_present(path: Path) -> Optional[FileStamp]:
    try:
        return file_stamp(path)
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class CatalogEntry:
    """One file of the weights directory: what it is, or why it cannot be served."""

    name: str
    bytes: int
    info: Optional[ModelInfo] = None
    error: Optional[str] = None


class ModelCatalog:
    """Recognition of the files in a weights directory, each read once per version (its stamp:
    size, times, inode), by one caller at a time (reading a checkpoint means loading its tensors)."""

    def __init__(self, weights_dir: Path):
        self._weights_dir = weights_dir
        self._known: Dict[str, Tuple[EntryStamp, CatalogEntry]] = {}
        self._recognising: Dict[str, threading.Lock] = {}  # a file's name: held while it is read
        self._lock = threading.Lock()

    def info(self, name: str) -> ModelInfo:
        """The named model's info; ModelNameError for a bad name, ModelError for a file no backend serves."""
        entry = self.entry(resolve_model_path(self._weights_dir, name))
        if entry.info is None:
            raise ModelError(entry.error)
        return entry.info

    def entries(self) -> List[CatalogEntry]:
        """Every model file; one removed between the listing and its reading is left out."""
        listed = []
        for name in available_models(self._weights_dir):
            try:
                listed.append(self.entry(self._weights_dir / name))
            except ModelNameError:
                continue
        return listed

    def denoise_refusal(self, name: str, info: ModelInfo) -> Optional[str]:
        """Why the model takes no denoise strength; None where it does (a Real-ESRGAN model with a
        weak-denoise twin of its own network beside it)."""
        if info.family != "realesrgan":  # the twin's mix is Real-ESRGAN's, whatever the file is named
            return (f"model {name} is served as {info.family} ({info.architecture}), which takes no denoise strength "
                    f"(Real-ESRGAN's {realesrgan.GENERAL_MODEL}.pth does, with its weak-denoise twin beside it)")
        twin = realesrgan.weak_denoise_twin(self._weights_dir / name)
        if twin is None:
            return (f"model {name} has no weak-denoise twin to mix with (Real-ESRGAN's {realesrgan.GENERAL_MODEL}.pth "
                    f"takes one, with {realesrgan.WEAK_DENOISE_TWIN}.pth beside it in the weights directory)")
        try:
            return realesrgan.twin_mismatch(info, self.info(twin.name))
        except (ModelNameError, ModelError) as exc:
            return str(exc)

    def entry(self, path: Path) -> CatalogEntry:
        try:
            stamp = entry_stamp(path)
        except FileNotFoundError as exc:  # removed since it was listed or its name checked
            raise ModelNameError(f"model file {path.name!r} not found in the weights directory") from exc
        known = self._known_entry(path.name, stamp)
        if known is not None:
            return known
        with self._lock:
            recognising = self._recognising.setdefault(path.name, threading.Lock())
        # One recognition per file version: a GET /models and a POST naming a file just put in
        # place wait for the one reading it, instead of each building its network.
        with recognising:
            entry = self._known_entry(path.name, stamp) or _recognised(path, stamp[0][0])
            with self._lock:
                self._known[path.name] = (stamp, entry)
            return entry

    def _known_entry(self, name: str, stamp: EntryStamp) -> Optional[CatalogEntry]:
        with self._lock:
            known = self._known.get(name)
        return known[1] if known is not None and known[0] == stamp else None


def _recognised(path: Path, size: int) -> CatalogEntry:
    """The file's entry, read now: what it is, or why it cannot be served."""
    try:
        if not size:
            raise ModelError(f"model file {path.name} is empty")
        return CatalogEntry(path.name, size, info=recognise(path))
    except ModelError as exc:
        return CatalogEntry(path.name, size, error=_naming(path, str(exc)))
    except OSError as exc:
        return CatalogEntry(path.name, size, error=f"cannot read model file {path.name}: {exc}")


def _naming(path: Path, reason: str) -> str:
    """The reason, naming the file where it does not: a family's refusal ("unsupported DiT
    layout: ...") reaches a task's error and ``GET /models`` without the file it is about."""
    return reason if path.name in reason else f"model file {path.name}: {reason}"


# A model file, and the variant of its network a task asks for (a denoise strength; None: the file as it is)
ModelKey = Tuple[Path, Optional[float]]


class ModelCache:
    """Keeps the last ``capacity`` models used (each variant of a file one of them, a new variant
    taking the place of another of its file's before any other model's); loads each at
    most once at a time, and again when its file, a companion or a variant's twin was replaced
    (another stamp), dropping the old one first. ``on_change`` hears the names held after each load or eviction."""

    def __init__(self, capacity: int, loader: Callable[[Path, Optional[float]], SuperResolutionModel],
                 on_change: Callable[[List[str]], None] = lambda names: None):
        self._capacity = capacity
        self._loader = loader
        self._on_change = on_change
        self._models: "OrderedDict[ModelKey, Tuple[EntryStamp, SuperResolutionModel]]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, variant: Optional[float] = None) -> SuperResolutionModel:
        stamp = entry_stamp(path, variant)
        key = (path, variant)
        with self._lock:
            held = self._models.get(key)
            if held is None or held[0] != stamp:
                if held is not None:
                    # Replaced (the file or a companion): dropped first, so that its memory is free
                    # for the new load and, should that fail, it is not reported as loaded.
                    del self._models[key]
                    held = None
                    self._on_change(self.names())
                self._models[key] = held = (stamp, self._loader(path, variant))
                while len(self._models) > self._capacity:
                    del self._models[self._to_drop_for(key)]
                self._on_change(self.names())
            self._models.move_to_end(key)
            return held[1]

    def _to_drop_for(self, loaded: ModelKey) -> ModelKey:
        """The least recently used model, or for a variant the least recently used other variant
        of its file where one is held: a client asking strength after strength would otherwise
        evict, one by one, the models every other task runs on."""
        path, variant = loaded
        siblings = [key for key in self._models if key[0] == path and key[1] is not None and key != loaded]
        return siblings[0] if variant is not None and siblings else next(iter(self._models))

    def names(self) -> List[str]:
        return sorted({path.name for path, _ in self._models})
