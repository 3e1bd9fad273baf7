"""tools/prepare_dataset.py: batched encoding gives the same latent cache as clip-by-clip encoding."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from dynamictrl.data.toy import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/train/tiny_cpu.yaml"


def read_cache(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for shard in sorted(folder.glob("shard-*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def test_batched_encoding_matches_one_by_one(tmp_path):
    from dynamictrl.cli import prepare_dataset

    toy = write_toy_dataset(tmp_path / "toy", num_clips=3, num_frames=9, size=64)
    overrides = [f"data.root={toy}", "data.num_frames=9", "data.height=64", "data.width=64"]
    caches = {}
    for batch in (1, 3):
        out = tmp_path / f"cache{batch}"
        argv = ["--config", str(TINY), "--out", str(out), "--batch-size", str(batch), "--shard-size", "2", *overrides]
        assert prepare_dataset.main(argv) == 0
        caches[batch] = (read_cache(out), json.loads((out / "index.json").read_text())["entries"])
    (one, entries_one), (three, entries_three) = caches[1], caches[3]
    assert entries_one == entries_three and len(entries_one) == 3
    assert set(one) == set(three) and any(k.endswith("pose_latents") for k in one)
    for key in one:
        torch.testing.assert_close(one[key], three[key], atol=1e-5, rtol=1e-4)
