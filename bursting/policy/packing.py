"""Multi-resource first-fit-decreasing bin packing of job shapes, by counts, not job by job.

Bins with equal leftover room are kept as one group with a multiplicity, so planning a million
idle jobs in thousands of shapes stays a matter of milliseconds per shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bursting.model import Flavor, JobShape

# Open groups scanned per shape: a bounded first-fit window keeps the work per cycle bounded.
FIRST_FIT_WINDOW = 256


@dataclass(frozen=True)
class Room:
    cpus: int
    memory_mb: int
    disk_mb: int
    gpus: int = 0

    @classmethod
    def of_flavor(cls, flavor: Flavor) -> Room:
        return cls(flavor.cpus, flavor.memory_mb, flavor.disk_gb * 1024, flavor.gpus)

    def fits(self, shape: JobShape) -> int:
        """How many jobs of this shape fit."""
        limits = [self.cpus // shape.cpus, self.memory_mb // shape.memory_mb]
        if shape.disk_mb:
            limits.append(self.disk_mb // shape.disk_mb)
        if shape.gpus:
            limits.append(self.gpus // shape.gpus)
        return max(0, min(limits))

    def minus(self, shape: JobShape, count: int) -> Room:
        return Room(
            self.cpus - shape.cpus * count,
            self.memory_mb - shape.memory_mb * count,
            self.disk_mb - shape.disk_mb * count,
            self.gpus - shape.gpus * count,
        )


@dataclass
class NewBin:
    """Instances to create of one flavor, `count` of them."""

    flavor: Flavor
    count: int


@dataclass
class Packing:
    placed: int = 0
    new_bins: list[NewBin] = field(default_factory=list)
    unplaced: dict[JobShape, int] = field(default_factory=dict)

    @property
    def instances(self) -> int:
        return sum(b.count for b in self.new_bins)


def by_size(shape: JobShape) -> tuple[int, int, int, int]:
    return (shape.gpus, shape.cpus, shape.memory_mb, shape.disk_mb)


class Packer:
    """Packs demand into existing room first, then into new instances of allowed flavors."""

    def __init__(self, existing: Sequence[Room] = ()) -> None:
        self._groups: dict[Room, int] = {}
        for room in existing:
            if room.cpus > 0 and room.memory_mb > 0:
                self._groups[room] = self._groups.get(room, 0) + 1

    def _fill_existing(self, shape: JobShape, count: int) -> int:
        """Place up to `count` jobs into open groups; returns how many were placed."""
        placed = 0
        for room in list(self._groups)[:FIRST_FIT_WINDOW]:
            if placed == count:
                break
            per_bin = room.fits(shape)
            if not per_bin:
                continue
            bins = self._groups.pop(room)
            wanted = count - placed
            full = min(bins, wanted // per_bin)
            placed += full * per_bin
            self._add(room.minus(shape, per_bin), full)
            rest = bins - full
            if rest and placed < count:
                tail = count - placed  # < per_bin
                placed += tail
                self._add(room.minus(shape, tail), 1)
                rest -= 1
            self._add(room, rest)
        return placed

    def _add(self, room: Room, bins: int) -> None:
        if bins > 0 and room.cpus > 0 and room.memory_mb > 0:
            self._groups[room] = self._groups.get(room, 0) + bins

    def absorb(self, demand: Mapping[JobShape, int]) -> dict[JobShape, int]:
        """Subtract what existing room (free slots, booting capacity) takes; returns the rest."""
        rest = {}
        for shape in sorted(demand, key=by_size, reverse=True):
            left = demand[shape] - self._fill_existing(shape, demand[shape])
            if left:
                rest[shape] = left
        return rest

    def pack_new(
        self,
        demand: Mapping[JobShape, int],
        flavors: Sequence[Flavor],
        max_instances: int,
        affordable: Callable[[Flavor, int], int] | None = None,
        opened: Callable[[Flavor, int], None] | None = None,
    ) -> Packing:
        """Open up to `max_instances` new instances: the largest fitting flavor for full bins, the
        cheapest flavor that holds the tail; what does not fit is returned as unplaced."""
        result = Packing()
        budget = max_instances
        rooms = [(f, Room.of_flavor(f)) for f in flavors]
        for shape in sorted(demand, key=by_size, reverse=True):
            count = demand[shape]
            filled = self._fill_existing(shape, count)
            result.placed += filled
            count -= filled
            sizes = [(f, room.fits(shape)) for f, room in rooms] if budget and count else []
            fitting = [(f, k) for f, k in sizes if k > 0]
            while count and budget and fitting:
                largest, per_bin = max(fitting, key=lambda fk: (fk[1], -fk[0].price_per_hour))
                if count >= per_bin:
                    bins = min(budget, count // per_bin)
                    bins = _limit(affordable, largest, bins)
                    if not bins:
                        fitting = [(f, k) for f, k in fitting if f is not largest]
                        continue
                    self._open(result, largest, bins, opened)
                    self._add(Room.of_flavor(largest).minus(shape, per_bin), bins)
                    count -= bins * per_bin
                    result.placed += bins * per_bin
                    budget -= bins
                    continue
                tail_flavor = min(
                    (fk for fk in fitting if fk[1] >= count),
                    key=lambda fk: (fk[0].price_per_hour, fk[0].cpus, fk[0].memory_mb),
                )[0]
                if not _limit(affordable, tail_flavor, 1):
                    fitting = [(f, k) for f, k in fitting if f is not tail_flavor]
                    continue
                self._open(result, tail_flavor, 1, opened)
                self._add(Room.of_flavor(tail_flavor).minus(shape, count), 1)
                result.placed += count
                count = 0
                budget -= 1
            if count:
                result.unplaced[shape] = count
        return result

    @staticmethod
    def _open(
        result: Packing, flavor: Flavor, bins: int, opened: Callable[[Flavor, int], None] | None
    ) -> None:
        if opened is not None:
            opened(flavor, bins)  # budgets and quotas shrink before the next choice
        for entry in result.new_bins:
            if entry.flavor is flavor:
                entry.count += bins
                return
        result.new_bins.append(NewBin(flavor, bins))


def _limit(affordable: Callable[[Flavor, int], int] | None, flavor: Flavor, wanted: int) -> int:
    return wanted if affordable is None else min(wanted, affordable(flavor, wanted))
