"""The network inside a data-parallel wrapper, for writing checkpoints and calling model-specific methods."""

from __future__ import annotations

from torch import nn

__all__ = ["unwrap"]


def unwrap(network: nn.Module) -> nn.Module:
    """The module inside a DataParallel / DistributedDataParallel wrapper, else `network` itself."""
    return network.module if isinstance(network, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else network
