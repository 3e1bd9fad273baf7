"""DWPose pre/post-processing on known inputs, and the ONNX run with tiny graphs that have the real I/O shapes."""

import sys

import numpy as np
import pytest

from dynamictrl.pose import dwpose
from dynamictrl.pose.dwpose import (
    DETECTOR_FILE,
    POSE_FILE,
    box_to_center_scale,
    crop_affine,
    crop_to_image,
    decode_simcc,
    decode_yolox,
    letterbox,
    letterbox_inverse,
    nms,
    warp_crop,
    wholebody_to_openpose,
)
from dynamictrl.pose.keypoints import BODY_INDEX


def test_letterbox_and_inverse():
    image = np.random.default_rng(0).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    canvas, ratio = letterbox(image)
    assert canvas.shape == (640, 640, 3) and ratio == pytest.approx(3.2)
    assert (canvas[320:] == 114).all() and not (canvas[:320] == 114).all()
    pts = np.array([[10.0, 20.0], [199.0, 99.0]])
    np.testing.assert_allclose(letterbox_inverse(pts * ratio, ratio), pts, rtol=1e-6)


def test_decode_yolox_known_cell():
    raw = np.zeros((8400, 85), np.float32)
    # stride-8 grid is 80x80: cell (gx=30, gy=20) is row 20*80+30; stride-16 cells start at 6400
    raw[20 * 80 + 30] = [0.5, 0.5, np.log(100 / 8), np.log(200 / 8), 0.9, 0.8] + [0.0] * 79
    raw[6400 + 2 * 40 + 3, :6] = [0.0, 0.0, 0.0, 0.0, 0.5, 0.5]
    boxes, scores = decode_yolox(raw)
    np.testing.assert_allclose(boxes[1630], [194, 64, 294, 264], rtol=1e-5)
    assert scores[1630] == pytest.approx(0.72)
    np.testing.assert_allclose(boxes[6483], [40, 24, 56, 40])  # centre (3*16, 2*16), size 16
    with pytest.raises(ValueError, match="8400"):
        decode_yolox(raw[:100])


def test_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.7]), 0.45)
    assert keep.tolist() == [1, 2]


def test_center_scale_aspect():
    center, scale = box_to_center_scale(np.array([0, 0, 100, 100]))
    np.testing.assert_allclose(center, [50, 50])
    np.testing.assert_allclose(scale, [125, 125 / 0.75])  # height grows to the 3:4 model aspect
    _, scale = box_to_center_scale(np.array([0, 0, 300, 100]))
    np.testing.assert_allclose(scale, [375, 500])


def test_warp_crop_exact_at_unit_scale():
    image = np.zeros((400, 300, 3), np.uint8)
    image[120, 100] = 255
    center, scale = np.array([150.0, 200.0]), np.array([288.0, 384.0])  # crop origin at (6, 8), no scaling
    crop = warp_crop(image, center, scale)
    assert crop.shape == (384, 288, 3)
    ys, xs = np.nonzero(crop[..., 0])
    assert (ys.tolist(), xs.tolist()) == ([112], [94])
    np.testing.assert_allclose(crop_affine(center, scale) @ [100, 120, 1], [94, 112])


def test_warp_crop_scaled_and_inverse():
    image = np.zeros((800, 600, 3), np.uint8)
    image[398:402, 298:302] = 255  # a 4x4 blob centred on (299.5, 399.5)
    center, scale = np.array([300.0, 400.0]), np.array([576.0, 768.0])  # 2x down-scaling
    crop = warp_crop(image, center, scale)
    ys, xs = np.nonzero(crop[..., 0] > 100)
    m = crop_affine(center, scale)
    expected = m @ [299.5, 399.5, 1]
    assert abs(xs.mean() - expected[0]) <= 0.5 and abs(ys.mean() - expected[1]) <= 0.5
    pts = np.array([[10.0, 20.0], [287.0, 383.0]])
    img_pts = crop_to_image(pts, center, scale)
    np.testing.assert_allclose((m[:, :2] @ img_pts.T).T + m[:, 2], pts, atol=1e-4)


def test_decode_simcc():
    k = 3
    sx, sy = np.zeros((k, 576), np.float32), np.zeros((k, 768), np.float32)
    sx[0, 101], sy[0, 300] = 0.9, 0.7
    sx[1, 0], sy[1, 767] = 0.4, 0.6
    pts, scores = decode_simcc(sx, sy)
    np.testing.assert_allclose(pts[0], [50.5, 150.0])
    np.testing.assert_allclose(pts[1], [0.0, 383.5])
    np.testing.assert_allclose(scores[:2], [0.7, 0.4])
    assert scores[2] == 0 and (pts[2] == -1).all()  # no response: marked missing


def test_wholebody_mapping():
    points = np.stack([np.arange(133), np.arange(133) + 1000], -1).astype(np.float32)
    scores = np.full(133, 0.9, np.float32)
    scores[5] = 0.5  # left shoulder
    fp = wholebody_to_openpose(points, scores)
    assert fp.body[BODY_INDEX["nose"], 0] == 0
    assert fp.body[BODY_INDEX["right_shoulder"], 0] == 6 and fp.body[BODY_INDEX["left_shoulder"], 0] == 5
    assert fp.body[BODY_INDEX["right_ankle"], 0] == 16 and fp.body[BODY_INDEX["left_ear"], 0] == 3
    assert fp.body[BODY_INDEX["right_eye"], 0] == 2
    np.testing.assert_allclose(fp.body[BODY_INDEX["neck"]], [5.5, 1005.5])
    assert fp.body_score[BODY_INDEX["neck"]] == pytest.approx(0.5)
    assert fp.hands[0, 0, 0] == 91 and fp.hands[1, 20, 0] == 132  # left hand first
    assert fp.face[0, 0] == 23 and fp.face[67, 0] == 90
    scores[6] = 0.1
    assert wholebody_to_openpose(points, scores).body_score[BODY_INDEX["neck"]] == 0


def test_missing_models_and_onnxruntime(tmp_path, monkeypatch):
    monkeypatch.delenv("DYNAMICTRL_DWPOSE_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="yzd-v/DWPose"):
        dwpose.resolve_models_dir(None)
    (tmp_path / DETECTOR_FILE).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=POSE_FILE) as err:
        dwpose.resolve_models_dir(tmp_path)
    assert "huggingface.co/yzd-v/DWPose" in str(err.value)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'pip install "dynamictrl\[pose\]"'):
        dwpose.import_onnxruntime()


# ---------------------------------------------------------------- tiny ONNX graphs with the real I/O
def _constant_graph(path, input_name, input_shape, outputs):
    """A graph whose outputs are constants plus 0 * mean(input), so it consumes the real input tensor."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["zero_mean"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "zero_mean"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))], outs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_tiny_dwpose_models(folder, simcc_peaks):
    """Write yolox_l.onnx (one person box) and dw-ll_ucoco_384.onnx (fixed SimCC peaks) into ``folder``."""
    raw = np.zeros((1, 8400, 85), np.float32)
    raw[0, 20 * 80 + 30, :6] = [0.5, 0.5, np.log(100 / 8), np.log(200 / 8), 0.9, 0.9]  # box (194, 64, 294, 264)
    raw[0, 21 * 80 + 30, :6] = [0.5, 0.5, np.log(90 / 8), np.log(190 / 8), 0.8, 0.9]  # overlapping: suppressed
    raw[0, 6400 + 3, :6] = [0.5, 0.5, 0.0, 0.0, 0.9, 0.9]  # small box: not the largest person
    _constant_graph(folder / DETECTOR_FILE, "images", (1, 3, 640, 640), {"output": raw})
    sx, sy = np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 768), np.float32)
    for k, (bx, by, v) in simcc_peaks.items():
        sx[0, k, bx], sy[0, k, by] = v, v
    _constant_graph(folder / POSE_FILE, "input", (1, 3, 384, 288), {"simcc_x": sx, "simcc_y": sy})


def test_onnx_run_with_tiny_graphs(tmp_path):
    pytest.importorskip("onnxruntime")
    peaks = {0: (288, 100, 0.9), 6: (200, 300, 0.8), 5: (380, 300, 0.7), 112: (100, 500, 0.6)}
    make_tiny_dwpose_models(tmp_path, peaks)
    ext = dwpose.DWPoseExtractor(tmp_path, providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).integers(0, 255, (320, 480, 3), dtype=np.uint8)  # letterbox ratio 4/3
    boxes, scores = ext.detect(image)
    assert len(boxes) == 2  # the overlapping box was suppressed
    np.testing.assert_allclose(boxes[0], np.array([194, 64, 294, 264]) * 0.75, rtol=1e-5)
    assert scores[0] == pytest.approx(0.81)
    fp = ext(image)
    center, scale = box_to_center_scale(boxes[0])
    nose = crop_to_image(np.array([[144.0, 50.0]]), center, scale)[0]
    np.testing.assert_allclose(fp.body[BODY_INDEX["nose"]], nose, rtol=1e-5)
    np.testing.assert_allclose(center, [183, 123])  # the nose sits at the crop's horizontal centre
    assert nose[0] == pytest.approx(183.0)
    assert fp.body_score[BODY_INDEX["nose"]] == pytest.approx(0.9)
    assert fp.body_score[BODY_INDEX["neck"]] == pytest.approx(0.7)
    assert fp.body_score[BODY_INDEX["left_knee"]] == 0
    assert fp.hands_score[1, 0] == pytest.approx(0.6) and fp.hands_score[0].max() == 0
    seq = ext.extract_video(np.stack([image, image]), progress=False)
    assert len(seq) == 2 and (seq.width, seq.height) == (480, 320) and seq.hands.shape == (2, 2, 21, 2)
    np.testing.assert_allclose(seq.body[1], fp.body)
