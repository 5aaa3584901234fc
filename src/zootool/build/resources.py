"""Pre-flight: refuse a build stage the machine cannot hold, before it starts.

The predictions come from the plan (``footprint``); the machine is read by ``machine()``
alone: ``MemAvailable`` of ``/proc/meminfo`` (where there is none, e.g. macOS, memory is
not checked) and ``shutil.disk_usage`` of the folders each stage writes to. Two
environment variables replace those readings, a seam for tests and for operators who
want a build to keep headroom: ``ZOO_AVAILABLE_MEMORY_BYTES`` and ``ZOO_FREE_DISK_BYTES``
(whole bytes; the disk figure applies to every folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel

from ..errors import ConfigError, ResourceError
from ..plan.footprint import Location, ResourceEstimate
from ..units import gb

MEMORY_ENV = "ZOO_AVAILABLE_MEMORY_BYTES"
DISK_ENV = "ZOO_FREE_DISK_BYTES"
MEMINFO = Path("/proc/meminfo")


class Folder(BaseModel):
    path: Path
    device: int  # folders on one file system share their free space
    free_bytes: int


class Machine(BaseModel):
    memory_bytes: int | None  # None: this system does not say (not checked)
    folders: dict[str, Folder]  # by footprint.Location


def machine(places: dict[str, Path]) -> Machine:
    """Available memory and the free disk of each place (``cache``, ``build``, ``temp``)."""
    memory = _override(MEMORY_ENV)
    disk = _override(DISK_ENV)
    folders = {}
    for location, path in places.items():
        existing = _existing(path)
        free = disk if disk is not None else shutil.disk_usage(existing).free
        folders[location] = Folder(path=path, device=os.stat(existing).st_dev, free_bytes=free)
    return Machine(memory_bytes=memory if memory is not None else _mem_available(), folders=folders)


def _override(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: not a whole number of bytes", f"unset {name}, or give bytes") from None


def _mem_available() -> int | None:
    try:
        lines = MEMINFO.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            return int(value.split()[0]) * 1024  # kB
    return None


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (a build dir may not exist yet)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def shortfalls(needs: ResourceEstimate, stages: list[str], here: Machine) -> tuple[list[str], list[str]]:
    """(memory problems, disk problems) of running ``stages`` one after the other.

    Memory is the largest stage's; disk adds up per file system, since every stage's
    files stay until the build ends.
    """
    memory: list[str] = []
    chosen = [needs.stages[name] for name in stages]
    if here.memory_bytes is not None and chosen:
        name, need = max(zip(stages, chosen), key=lambda pair: pair[1].memory_bytes)
        if need.memory_bytes > here.memory_bytes:
            memory.append(f"{name} needs about {gb(need.memory_bytes)} of memory, "
                          f"{gb(here.memory_bytes)} is available")
    return memory, _disk(stages, chosen, here)


def _disk(stages: list[str], chosen: list, here: Machine) -> list[str]:
    by_device: dict[int, list[tuple[str, int, Location]]] = {}
    for name, need in zip(stages, chosen):
        if need.disk_bytes:
            folder = here.folders[need.disk_location]
            by_device.setdefault(folder.device, []).append((name, need.disk_bytes, need.disk_location))
    problems = []
    for users in by_device.values():
        total = sum(size for _, size, _ in users)
        free = min(here.folders[location].free_bytes for _, _, location in users)
        if total > free:
            who = " + ".join(name for name, _, _ in users)
            paths = " and ".join(dict.fromkeys(str(here.folders[location].path) for _, _, location in users))
            split = f" ({', '.join(f'{n} {gb(s)}' for n, s, _ in users)})" if len(users) > 1 else ""
            verb = "needs" if len(users) == 1 else "need"
            problems.append(f"{who} {verb} about {gb(total)} of free disk in {paths}{split}, {gb(free)} is free")
    return problems


def require(needs: ResourceEstimate, stages: list[str], places: dict[str, Path], command: str) -> None:
    """Raise ``ResourceError`` (one line, with a hint) if ``stages`` do not fit this machine."""
    if not stages:
        return
    memory, disk = shortfalls(needs, stages, machine(places))
    if not memory and not disk:
        return
    hints = ["--ignore-resources runs anyway"]
    if memory:
        hints.append("a smaller scheme (--quant) needs less memory")
    if disk:
        hints.append("free some disk (TMPDIR moves the gate's temporary exports)")
    hints.append(f"`{command} --json` lists what each stage needs under resources")
    raise ResourceError("; ".join(memory + disk), "; ".join(hints))


class Preflight:
    """The checks of one build: every stage it will run, up front, then each as it starts."""

    def __init__(self, needs: ResourceEstimate, places: dict[str, Path], command: str, stages: list[str]) -> None:
        self.needs = needs
        self.places = places
        self.command = command
        self.stages = stages  # empty: nothing is checked (--ignore-resources)

    def up_front(self) -> None:
        require(self.needs, self.stages, self.places, self.command)

    def before(self, stage: str) -> None:
        if stage in self.stages:
            require(self.needs, [stage], self.places, self.command)
