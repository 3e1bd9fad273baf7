"""Each metric backbone loads a state dict in its published key layout (built here, independently of our module
definitions, with random values) and runs forward on a tiny input."""

import numpy as np
import pytest
import torch

from dynamictrl.eval.i3d import InceptionI3D
from dynamictrl.eval.inception import FIDInceptionV3
from dynamictrl.eval.lpips import LPIPS, lpips_per_frame
from dynamictrl.eval.resnet3d import ResNet3D50
from dynamictrl.eval.video_metrics import fid_features, fidvid_features, fvd_features, load_backbone
from dynamictrl.eval.weights import MissingWeightError, load_state_dict_file, sha256_file


class Builder:
    def __init__(self, seed=0):
        self.sd = {}
        self.gen = torch.Generator().manual_seed(seed)

    def t(self, name, *shape, positive=False):
        v = torch.rand(shape, generator=self.gen) * 0.1 if positive else torch.randn(shape, generator=self.gen) * 0.05
        self.sd[name] = v + (0.5 if positive else 0.0)

    def bn(self, name, c):
        self.t(f"{name}.weight", c, positive=True)
        self.t(f"{name}.bias", c)
        self.t(f"{name}.running_mean", c)
        self.t(f"{name}.running_var", c, positive=True)


def assert_all_landed(model, published, strip=""):
    own = model.state_dict()
    for name, value in published.items():
        key = name[len(strip) :] if strip and name.startswith(strip) else name
        assert torch.equal(own[key], value), key
    own_params = [k for k in own if not k.endswith("num_batches_tracked")]
    assert len(own_params) == len(published)


def vgg16_torchvision_state():
    b = Builder(1)
    cfg = [
        (0, 64, 3),
        (2, 64, 64),
        (5, 128, 64),
        (7, 128, 128),
        (10, 256, 128),
        (12, 256, 256),
        (14, 256, 256),
        (17, 512, 256),
        (19, 512, 512),
        (21, 512, 512),
        (24, 512, 512),
        (26, 512, 512),
        (28, 512, 512),
    ]
    for index, out_ch, in_ch in cfg:
        b.t(f"features.{index}.weight", out_ch, in_ch, 3, 3)
        b.t(f"features.{index}.bias", out_ch)
    b.t("classifier.6.weight", 1000, 4096)  # torchvision files carry the classifier; LPIPS ignores it
    b.t("classifier.6.bias", 1000)
    return b.sd


def lpips_v01_state():
    b = Builder(2)
    for k, c in enumerate((64, 128, 256, 512, 512)):
        b.t(f"lin{k}.model.1.weight", 1, c, 1, 1, positive=True)
    return b.sd


def test_lpips_loads_published_layout_and_runs(tmp_path):
    vgg, lin = vgg16_torchvision_state(), lpips_v01_state()
    torch.save(vgg, tmp_path / "vgg16-397923af.pth")
    torch.save(lin, tmp_path / "vgg.pth")
    model, hashes = LPIPS.from_weights_dir(tmp_path)
    assert hashes == {
        "vgg16-397923af.pth": sha256_file(tmp_path / "vgg16-397923af.pth"),
        "vgg.pth": sha256_file(tmp_path / "vgg.pth"),
    }
    own = model.state_dict()
    for name, value in vgg.items():
        if not name.startswith("classifier"):
            assert torch.equal(own[f"net.{name}"], value), name
    for k in range(5):
        assert torch.equal(own[f"lins.{k}.model.1.weight"], lin[f"lin{k}.model.1.weight"])

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8)
    same = lpips_per_frame(model, a, a, "disco")
    diff_disco, diff_clean = lpips_per_frame(model, a, b, "disco"), lpips_per_frame(model, a, b, "clean")
    assert same.shape == (2,) and np.allclose(same, 0, atol=1e-6)
    assert (diff_disco > 0).all() and not np.allclose(diff_disco, diff_clean)  # the input quirk changes values
    with torch.no_grad():  # the distance is linear in the heads' weights
        for lin_layer in model.lins:
            lin_layer.model[1].weight.mul_(2)
    assert np.allclose(lpips_per_frame(model, a, b, "disco"), 2 * diff_disco, rtol=1e-4)


def test_lpips_missing_file_names_it(tmp_path):
    with pytest.raises(MissingWeightError, match=r"vgg16-397923af\.pth.*download\.pytorch\.org"):
        LPIPS.from_weights_dir(tmp_path)
    with pytest.raises(MissingWeightError, match="DYNAMICTRL_METRIC_WEIGHTS"):
        LPIPS.from_weights_dir(None)


def resnet50_kinetics_checkpoint():
    b = Builder(3)
    b.t("module.conv1.weight", 64, 3, 7, 7, 7)
    b.bn("module.bn1", 64)
    in_ch = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for i in range(blocks):
            p = f"module.layer{layer}.{i}"
            b.t(f"{p}.conv1.weight", planes, in_ch, 1, 1, 1)
            b.bn(f"{p}.bn1", planes)
            b.t(f"{p}.conv2.weight", planes, planes, 3, 3, 3)
            b.bn(f"{p}.bn2", planes)
            b.t(f"{p}.conv3.weight", planes * 4, planes, 1, 1, 1)
            b.bn(f"{p}.bn3", planes * 4)
            if i == 0:
                b.t(f"{p}.downsample.0.weight", planes * 4, in_ch, 1, 1, 1)
                b.bn(f"{p}.downsample.1", planes * 4)
            in_ch = planes * 4
    b.t("module.fc.weight", 400, 2048)
    b.t("module.fc.bias", 400)
    return {"arch": "resnet-50", "epoch": 200, "state_dict": b.sd}


def test_resnet3d_loads_published_layout_and_runs(tmp_path):
    ckpt = resnet50_kinetics_checkpoint()
    torch.save(ckpt, tmp_path / "resnet-50-kinetics.pth")
    model, hashes = load_backbone("fid_vid", tmp_path)
    assert isinstance(model, ResNet3D50) and list(hashes) == ["resnet-50-kinetics.pth"]
    assert_all_landed(model, ckpt["state_dict"], strip="module.")
    frames = np.random.default_rng(0).integers(0, 256, (20, 24, 30, 3), dtype=np.uint8)  # 2 segments, 2nd padded
    feat = fidvid_features(model, frames, size=32)
    assert feat.shape == (2048,) and np.isfinite(feat).all()


def i3d_state():
    b = Builder(4)

    def unit(name, out_ch, in_ch, k, bn=True, bias=False):
        b.t(f"{name}.conv3d.weight", out_ch, in_ch, *k)
        if bias:
            b.t(f"{name}.conv3d.bias", out_ch)
        if bn:
            b.bn(f"{name}.bn", out_ch)

    unit("Conv3d_1a_7x7", 64, 3, (7, 7, 7))
    unit("Conv3d_2b_1x1", 64, 64, (1, 1, 1))
    unit("Conv3d_2c_3x3", 192, 64, (3, 3, 3))
    mixed = [
        ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
        ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
        ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
        ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
        ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
        ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
        ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
        ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
        ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
    ]
    in_ch = 192
    for name, w in mixed:
        unit(f"{name}.b0", w[0], in_ch, (1, 1, 1))
        unit(f"{name}.b1a", w[1], in_ch, (1, 1, 1))
        unit(f"{name}.b1b", w[2], w[1], (3, 3, 3))
        unit(f"{name}.b2a", w[3], in_ch, (1, 1, 1))
        unit(f"{name}.b2b", w[4], w[3], (3, 3, 3))
        unit(f"{name}.b3b", w[5], in_ch, (1, 1, 1))
        in_ch = w[0] + w[2] + w[4] + w[5]
    unit("logits", 400, in_ch, (1, 1, 1), bn=False, bias=True)
    return b.sd


def test_i3d_loads_published_layout_and_runs(tmp_path):
    sd = i3d_state()
    torch.save(sd, tmp_path / "i3d_pretrained_400.pt")
    model, _ = load_backbone("fvd", tmp_path)
    assert isinstance(model, InceptionI3D)
    assert_all_landed(model, sd)
    frames = np.random.default_rng(1).integers(0, 256, (10, 24, 24, 3), dtype=np.uint8)  # < 16: padded
    logits = fvd_features(model, frames, size=32)
    assert logits.shape == (400,) and np.isfinite(logits).all()


def test_i3d_same_padding_keeps_protocol_shapes():
    model = InceptionI3D()
    shapes = {}
    for name in ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "MaxPool3d_3a_3x3", "MaxPool3d_4a_3x3", "MaxPool3d_5a_2x2"):
        getattr(model, name).register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape[2:])))
    with torch.no_grad():
        model(torch.zeros(1, 3, 16, 64, 64))
    # SAME padding: every stride-2 stage halves (rounding up), as in the TF original
    assert shapes == {
        "Conv3d_1a_7x7": (8, 32, 32),
        "MaxPool3d_2a_3x3": (8, 16, 16),
        "MaxPool3d_3a_3x3": (8, 8, 8),
        "MaxPool3d_4a_3x3": (4, 4, 4),
        "MaxPool3d_5a_2x2": (2, 2, 2),
    }


def inception_fid_state():
    b = Builder(5)

    def conv(name, out_ch, in_ch, kh, kw=None):
        b.t(f"{name}.conv.weight", out_ch, in_ch, kh, kw or kh)
        b.bn(f"{name}.bn", out_ch)

    for name, o, i, k in (
        ("Conv2d_1a_3x3", 32, 3, 3),
        ("Conv2d_2a_3x3", 32, 32, 3),
        ("Conv2d_2b_3x3", 64, 32, 3),
        ("Conv2d_3b_1x1", 80, 64, 1),
        ("Conv2d_4a_3x3", 192, 80, 3),
    ):
        conv(name, o, i, k)

    def block_a(n, i, pool):
        conv(f"{n}.branch1x1", 64, i, 1)
        conv(f"{n}.branch5x5_1", 48, i, 1)
        conv(f"{n}.branch5x5_2", 64, 48, 5)
        conv(f"{n}.branch3x3dbl_1", 64, i, 1)
        conv(f"{n}.branch3x3dbl_2", 96, 64, 3)
        conv(f"{n}.branch3x3dbl_3", 96, 96, 3)
        conv(f"{n}.branch_pool", pool, i, 1)

    def block_c(n, i, c7):
        conv(f"{n}.branch1x1", 192, i, 1)
        conv(f"{n}.branch7x7_1", c7, i, 1)
        conv(f"{n}.branch7x7_2", c7, c7, 1, 7)
        conv(f"{n}.branch7x7_3", 192, c7, 7, 1)
        conv(f"{n}.branch7x7dbl_1", c7, i, 1)
        conv(f"{n}.branch7x7dbl_2", c7, c7, 7, 1)
        conv(f"{n}.branch7x7dbl_3", c7, c7, 1, 7)
        conv(f"{n}.branch7x7dbl_4", c7, c7, 7, 1)
        conv(f"{n}.branch7x7dbl_5", 192, c7, 1, 7)
        conv(f"{n}.branch_pool", 192, i, 1)

    def block_e(n, i):
        conv(f"{n}.branch1x1", 320, i, 1)
        conv(f"{n}.branch3x3_1", 384, i, 1)
        conv(f"{n}.branch3x3_2a", 384, 384, 1, 3)
        conv(f"{n}.branch3x3_2b", 384, 384, 3, 1)
        conv(f"{n}.branch3x3dbl_1", 448, i, 1)
        conv(f"{n}.branch3x3dbl_2", 384, 448, 3)
        conv(f"{n}.branch3x3dbl_3a", 384, 384, 1, 3)
        conv(f"{n}.branch3x3dbl_3b", 384, 384, 3, 1)
        conv(f"{n}.branch_pool", 192, i, 1)

    block_a("Mixed_5b", 192, 32)
    block_a("Mixed_5c", 256, 64)
    block_a("Mixed_5d", 288, 64)
    conv("Mixed_6a.branch3x3", 384, 288, 3)
    conv("Mixed_6a.branch3x3dbl_1", 64, 288, 1)
    conv("Mixed_6a.branch3x3dbl_2", 96, 64, 3)
    conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        block_c(n, 768, c7)
    conv("Mixed_7a.branch3x3_1", 192, 768, 1)
    conv("Mixed_7a.branch3x3_2", 320, 192, 3)
    conv("Mixed_7a.branch7x7x3_1", 192, 768, 1)
    conv("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7)
    conv("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1)
    conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
    block_e("Mixed_7b", 1280)
    block_e("Mixed_7c", 2048)
    b.t("fc.weight", 1008, 2048)
    b.t("fc.bias", 1008)
    return b.sd


def test_inception_loads_published_layout_and_runs(tmp_path):
    sd = inception_fid_state()
    torch.save(sd, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    model, _ = load_backbone("fid", tmp_path)
    assert isinstance(model, FIDInceptionV3) and model.input_size == 299  # the protocol's default
    assert_all_landed(model, sd)
    model.input_size = 75  # the smallest input Inception-v3 accepts; keeps the test fast
    frames = np.random.default_rng(2).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    feats = fid_features(model, frames)
    assert feats.shape == (3, 2048) and np.isfinite(feats).all() and (feats >= 0).all()  # post-ReLU pooling


def test_wrong_layout_is_rejected_naming_keys(tmp_path):
    sd = i3d_state()
    sd["Mixed_3b.b0.conv3d.weight"] = torch.zeros(1, 1, 1, 1, 1)
    del sd["logits.conv3d.bias"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "i3d_pretrained_400.pt")
    with pytest.raises(ValueError, match=r"logits\.conv3d\.bias.*extra\.weight.*Mixed_3b\.b0\.conv3d\.weight"):
        load_backbone("fvd", tmp_path)


def test_state_dict_loader_unwraps_and_strips_prefix(tmp_path):
    torch.save({"state_dict": {"module.a": torch.ones(2)}, "epoch": 3}, tmp_path / "x.pth")
    assert list(load_state_dict_file(tmp_path / "x.pth")) == ["a"]
