"""PoseSequence: validation, slicing, resizing and exact save/load round trips."""

import numpy as np
import pytest

from dynamictrl.pose.keypoints import BODY_INDEX, BODY_KEYPOINTS, PoseSequence


def _seq(t=5, hands=True, face=True, seed=0):
    rng = np.random.default_rng(seed)
    return PoseSequence(
        body=rng.uniform(0, 100, (t, 18, 2)),
        body_score=rng.uniform(0, 1, (t, 18)),
        width=120,
        height=80,
        hands=rng.uniform(0, 100, (t, 2, 21, 2)) if hands else None,
        hands_score=rng.uniform(0, 1, (t, 2, 21)) if hands else None,
        face=rng.uniform(0, 100, (t, 68, 2)) if face else None,
        face_score=rng.uniform(0, 1, (t, 68)) if face else None,
    )


def test_body_names():
    assert len(BODY_KEYPOINTS) == 18
    assert BODY_KEYPOINTS[:2] == ("nose", "neck") and BODY_KEYPOINTS[-1] == "left_ear"
    assert BODY_INDEX["left_knee"] == 12


@pytest.mark.parametrize("suffix", [".npz", ".json"])
@pytest.mark.parametrize("parts", [True, False])
def test_round_trip_exact(tmp_path, suffix, parts):
    seq = _seq(hands=parts, face=parts)
    path = seq.save(tmp_path / f"pose{suffix}")
    back = PoseSequence.load(path)
    assert (back.width, back.height) == (120, 80)
    for f in ("body", "body_score", "hands", "hands_score", "face", "face_score"):
        a, b = getattr(seq, f), getattr(back, f)
        if a is None:
            assert b is None
        else:
            assert b.dtype == np.float32 and np.array_equal(a, b)


def test_empty_json_round_trip(tmp_path):
    seq = _seq(t=0)
    back = PoseSequence.load(seq.save(tmp_path / "empty.json"))
    assert len(back) == 0 and back.hands.shape == (0, 2, 21, 2)


def test_bad_suffix_and_missing(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz or \.json"):
        _seq().save(tmp_path / "pose.txt")
    with pytest.raises(FileNotFoundError):
        PoseSequence.load(tmp_path / "nope.npz")


def test_validation_messages():
    with pytest.raises(ValueError, match=r"body must have shape \(T, 18, 2\)"):
        PoseSequence(np.zeros((3, 17, 2)), np.zeros((3, 17)), 10, 10)
    with pytest.raises(ValueError, match=r"body_score must have shape \(3, 18\)"):
        PoseSequence(np.zeros((3, 18, 2)), np.zeros((2, 18)), 10, 10)
    with pytest.raises(ValueError, match="both be given"):
        PoseSequence(np.zeros((3, 18, 2)), np.zeros((3, 18)), 10, 10, hands=np.zeros((3, 2, 21, 2)))
    with pytest.raises(ValueError, match="width must be a positive integer"):
        PoseSequence(np.zeros((3, 18, 2)), np.zeros((3, 18)), 0, 10)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        PoseSequence(np.zeros((3, 18, 2)), np.full((3, 18), 2.0), 10, 10)


def test_slicing_and_len():
    seq = _seq(t=6)
    assert len(seq) == 6
    part = seq[1:4]
    assert len(part) == 3 and np.array_equal(part.body, seq.body[1:4])
    assert np.array_equal(part.face_score, seq.face_score[1:4])
    one = seq[-1]
    assert len(one) == 1 and np.array_equal(one.hands[0], seq.hands[5])
    with pytest.raises(IndexError):
        seq[6]


def test_resized_scales_each_axis():
    seq = _seq()
    big = seq.resized(160, 60)  # height x2, width x0.5
    assert (big.height, big.width) == (160, 60)
    np.testing.assert_allclose(big.body[..., 0], seq.body[..., 0] * 0.5, rtol=1e-6)
    np.testing.assert_allclose(big.hands[..., 1], seq.hands[..., 1] * 2, rtol=1e-6)
    assert np.array_equal(big.body_score, seq.body_score)
