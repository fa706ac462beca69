"""Label values, each from a small fixed or configured set: never an id, a user or a secret.

Clouds and flavors come from the config (validated names); kinds, reason codes, states and
outcomes are enums; error classes are folded onto the classes of bursting.errors; job shapes are
bucketed to the top few plus "other".
"""

from __future__ import annotations

from bursting import errors
from bursting.model import ActionKind, InstanceState, JobShape, ReasonCode
from bursting.policy.matching import Unmatched

OTHER = "other"
OPERATIONS = ("list_instances", "create", "delete", "flavors", "quota")
OUTCOMES = ("planned", "done", "failed", "pending", "skipped")
JOB_STATES = ("idle", "running", "held")
KINDS = tuple(k.value for k in ActionKind)
REASONS = tuple(r.value for r in ReasonCode)
UNMATCHED = tuple(u.value for u in Unmatched)
STATES = tuple(s.value for s in InstanceState)
# The controller's own names for a source it could not read without an exception class.
_READ_CLASSES = ("Timeout", "RetryAfter")
ERROR_CLASSES = (
    *sorted(
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.BurstingError)
    ),
    *_READ_CLASSES,
    "TimeoutError",
    "unexpected",
)


def error_class(error: BaseException) -> str:
    """The nearest class of bursting.errors (what says whether to retry), else "unexpected";
    Python's own TimeoutError is kept, since timeouts are what operators look for."""
    for kind in type(error).__mro__:
        if kind.__name__ in ERROR_CLASSES and (
            kind.__module__ == errors.__name__ or kind is TimeoutError
        ):
            return kind.__name__
    return "unexpected"


def error_class_name(name: str) -> str:
    """A class name already recorded as text (a cycle record's SourceRead or ActionRecord)."""
    return name if name in ERROR_CLASSES else "unexpected"


def known(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


def shape_label(shape: JobShape) -> str:
    """`4c-8192mb-20gb` (`-1gpu` if any): the resources only; Requirements text never."""
    gpus = f"-{shape.gpus}gpu" if shape.gpus else ""
    return f"{shape.cpus}c-{shape.memory_mb}mb-{shape.disk_mb // 1024}gb{gpus}"
