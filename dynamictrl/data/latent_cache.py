"""The latent cache: pre-computed VAE latents and T5 embeddings of a training set, writer and reader side by side.

Layout (written by :class:`LatentCacheWriter`, read by :class:`LatentDataset`)::

    FOLDER/index.json                 {"meta": {...}, "entries": [{name, key, shard, start, prompt, has_mask}]}
    FOLDER/shard-00000.safetensors    per clip KEY = NAME@START: KEY.latents, KEY.pose_latents, KEY.reference_latents
                                      [, KEY.masked_reference_latents][, KEY.prompt_embeds]   (float32)
    FOLDER/empty_prompt.safetensors   prompt_embeds of "" (text dropout), when the cache has text

What goes in (the encoding of a clip) is :func:`dynamictrl.pipelines.conditioning.encode_clip`, the trainer's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .dataset import sample_rng

LATENT_INDEX = "index.json"
EMPTY_PROMPT = "empty_prompt.safetensors"
CLIP_TENSORS = ("latents", "pose_latents", "reference_latents", "masked_reference_latents", "prompt_embeds")


class LatentCacheWriter:
    """Writes clips into shards of ``shard_size`` clips; :meth:`finish` writes ``index.json``.

    ``add(name, start, prompt, tensors)`` takes the (F', C, H', W') latents of one clip (and (L, D) ``prompt_embeds``)
    by their :data:`CLIP_TENSORS` names; a clip with ``masked_reference_latents`` is marked ``has_mask``.
    """

    def __init__(self, folder: str | Path, shard_size: int = 256):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.entries: list[dict[str, Any]] = []
        self.num_shards = 0
        self._shard: dict[str, torch.Tensor] = {}
        self._in_shard = 0

    def _shard_name(self) -> str:
        return f"shard-{self.num_shards:05d}.safetensors"

    def add(self, name: str, start: int, prompt: str, tensors: dict[str, torch.Tensor]) -> None:
        unknown = sorted(set(tensors) - set(CLIP_TENSORS))
        if unknown:
            raise ValueError(f"unknown cache tensors {unknown} (expected some of {CLIP_TENSORS})")
        key = f"{name}@{start}"
        for tensor_name, tensor in tensors.items():
            self._shard[f"{key}.{tensor_name}"] = tensor.float().cpu().contiguous()
        self.entries.append(
            dict(
                name=name,
                key=key,
                shard=self._shard_name(),
                start=start,
                prompt=prompt,
                has_mask="masked_reference_latents" in tensors,
            )
        )
        self._in_shard += 1
        if self._in_shard >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write the open shard (if it has clips); the next clip starts a new one."""
        from safetensors.torch import save_file

        if self._shard:
            save_file(self._shard, str(self.folder / self._shard_name()))
            self._shard, self._in_shard = {}, 0
            self.num_shards += 1

    def write_empty_prompt(self, prompt_embeds: torch.Tensor) -> None:
        """Embeddings (L, D) of the empty prompt, for text dropout on cached runs."""
        from safetensors.torch import save_file

        save_file({"prompt_embeds": prompt_embeds.float().cpu().contiguous()}, str(self.folder / EMPTY_PROMPT))

    def finish(self, meta: dict[str, Any]) -> Path:
        """Flush the last shard and write ``index.json`` (``meta`` plus every entry); returns its path."""
        self.flush()
        path = self.folder / LATENT_INDEX
        path.write_text(json.dumps(dict(meta=meta, entries=self.entries), indent=1))
        return path


class LatentDataset(Dataset):
    """The reader: pre-computed latents written by :class:`LatentCacheWriter` (``tools/prepare_dataset.py``).

    ``dataset[(index, epoch)]`` returns::

        latents            (F', C, H', W')  target clip latents (x VAE scaling factor)
        pose_latents       (F', C, H', W')
        reference_latents  (F', C, H', W')  frame 0 = reference, zeros after; the masked one with reference_mask_prob
        prompt_embeds      (L, D)           absent when the cache was written without a text encoder
        name, skipped
    """

    def __init__(self, folder: str | Path, reference_mask_prob: float = 0.0, seed: int = 0):
        self.folder = Path(folder)
        index_path = self.folder / LATENT_INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path}: not found; write the cache with tools/prepare_dataset.py")
        index = json.loads(index_path.read_text())
        self.meta: dict[str, Any] = index["meta"]
        self.entries: list[dict[str, Any]] = index["entries"]
        if not self.entries:
            raise ValueError(f"{index_path}: the cache has no entries")
        missing = sorted({e["shard"] for e in self.entries if not (self.folder / e["shard"]).is_file()})
        if missing:
            raise FileNotFoundError(f"{self.folder}: missing shards {missing}")
        self.reference_mask_prob = reference_mask_prob
        self.seed = seed
        if reference_mask_prob > 0 and not any(e.get("has_mask") for e in self.entries):
            raise ValueError(
                f"data.reference_mask_prob={reference_mask_prob} but the cache {self.folder} has no masked references"
            )
        self._handles: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def empty_prompt_embeds(self) -> torch.Tensor | None:
        """Embeddings of the empty prompt (L, D) stored with the cache, or None without text."""
        path = self.folder / EMPTY_PROMPT
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        return load_file(path)["prompt_embeds"]

    def _tensor(self, shard: str, key: str) -> torch.Tensor:
        from safetensors import safe_open

        if shard not in self._handles:
            self._handles[shard] = safe_open(self.folder / shard, framework="pt")
        return self._handles[shard].get_tensor(key)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        entry = self.entries[index]
        rng = sample_rng(self.seed, epoch, index)
        prefix = entry["key"]
        shard = entry["shard"]
        use_mask = entry.get("has_mask") and rng.random() < self.reference_mask_prob
        sample = dict(
            latents=self._tensor(shard, f"{prefix}.latents"),
            pose_latents=self._tensor(shard, f"{prefix}.pose_latents"),
            reference_latents=self._tensor(
                shard, f"{prefix}.masked_reference_latents" if use_mask else f"{prefix}.reference_latents"
            ),
            name=entry["name"],
            prompt=entry.get("prompt", ""),
            skipped=0,
        )
        if self.meta.get("has_prompt_embeds"):
            sample["prompt_embeds"] = self._tensor(shard, f"{prefix}.prompt_embeds")
        return sample

    def __getstate__(self) -> dict[str, Any]:  # safetensors handles do not pickle (DataLoader workers)
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state
