"""Access to Ray, imported only when a distributed function runs.

The core of sftselect never imports Ray; this module is the one place that
does, and it turns a missing install into :class:`MissingExtraError` with the
command that fixes it. It also connects to a cluster (or starts a local one)
and describes the cluster for the run summary.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import MissingExtraError

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = [
    "INSTALL_HINT",
    "ClusterInfo",
    "cluster_info",
    "connect",
    "own_context",
    "require_ray",
]

INSTALL_HINT = 'pip install "sftselect[ray]"'


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`MissingExtraError` naming the extra."""
    try:
        import ray
        import ray.data  # Ray Data is a separate extra of Ray
    except ImportError as exc:
        raise MissingExtraError(
            f"Running selectors on Ray needs Ray Data, which is not installed ({exc}). "
            f"Install it with: {INSTALL_HINT}"
        ) from None
    return ray


def own_context(dataset: Dataset, *, show_progress: bool = False) -> Dataset:
    """A copy of ``dataset`` with its own execution settings (the caller's stay as they were).

    Ray Datasets derived from one another share one ``DataContext``; a deep
    copy gets its own, set here to raise a selector's own error as itself
    (a null response, a failed judge) and to show progress bars only when asked.
    """
    with warnings.catch_warnings():  # copying a DataContext reads its deprecated fields
        warnings.simplefilter("ignore", DeprecationWarning)
        own = type(dataset).copy(dataset, _deep_copy=True)
    own.context.enable_progress_bars = bool(show_progress)
    own.context.enable_operator_progress_bars = bool(show_progress)
    own.context.raise_original_map_exception = True
    return own


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local instance.

    Does nothing when this process is already connected. Returns True when this
    call connected (so the caller should call ``ray.shutdown()`` when done).

    Parameters
    ----------
    address : str or None
        ``"auto"``, ``"ray://HOST:10001"`` or ``"HOST:6379"``; None starts a
        local instance on this machine.
    num_cpus : int or None
        CPUs of a local instance (None: all of this machine's); ignored with
        an ``address``.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


@dataclass(frozen=True)
class ClusterInfo:
    """What the connected Ray cluster offers: nodes, CPUs, GPUs, and the driver's node."""

    nodes: int
    cpus: float
    gpus: float
    driver_node: str
    address: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "driver_node": self.driver_node,
            "address": self.address,
        }

    def describe(self) -> str:
        gpus = f", {self.gpus:g} GPUs" if self.gpus else ""
        plural = "s" if self.nodes != 1 else ""
        return f"{self.nodes} node{plural} ({self.cpus:g} CPUs{gpus})"


def cluster_info() -> ClusterInfo:
    """Describe the cluster this process is connected to."""
    ray = require_ray()
    resources = ray.cluster_resources()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    context = ray.get_runtime_context()
    return ClusterInfo(
        nodes=len(alive),
        cpus=float(resources.get("CPU", 0.0)),
        gpus=float(resources.get("GPU", 0.0)),
        driver_node=context.get_node_id(),
        address=str(getattr(context, "gcs_address", "")),
    )
