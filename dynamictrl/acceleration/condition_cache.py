"""Condition encodings (reference / pose VAE latents, text embeddings) memoised by input content, across the steps
of one video and the clips of a long one (exact: a cached value is the value computed for equal inputs)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np


def _fingerprint(value: Any) -> Any:
    """A hashable key for tensors / arrays (by dtype, shape and content), strings and tuples of those."""
    import torch

    if isinstance(value, torch.Tensor):
        data = value.detach().to("cpu").contiguous()
        raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
        return ("tensor", str(data.dtype), tuple(data.shape), hashlib.sha1(raw).hexdigest())
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return ("array", str(data.dtype), data.shape, hashlib.sha1(data.tobytes()).hexdigest())
    if isinstance(value, (list, tuple)):
        return tuple(_fingerprint(v) for v in value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    raise TypeError(f"cannot key a condition cache on {type(value).__name__}; use tensors, arrays or strings")


class ConditionCache:
    """Memoises condition encodings (reference / pose VAE latents, text embeddings) by input content.

    Within one video the pipeline encodes each condition once and reuses it at every step; across the clips of a
    long video the reference latent and the prompt embeddings repeat, and so does the pose latent of an overlap
    that is re-encoded. ``get(kind, inputs, compute)`` returns the cached value for equal inputs of the same kind
    (compared by content hash, so a copy of the same frames hits), else calls ``compute()`` and keeps the result.
    At most ``max_entries`` results are kept (least recently used dropped).
    """

    def __init__(self, max_entries: int = 32):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._store: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, inputs: Any, compute: Callable[[], Any]) -> Any:
        key = (kind, _fingerprint(inputs))
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        value = compute()
        self._store[key] = value
        if len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return value

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)
