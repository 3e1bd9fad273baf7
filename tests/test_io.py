import numpy as np
import pytest

from dynamictrl.data.io import VideoReadError, read_image, read_video, resize_and_center_crop, write_image, write_video


def test_lossless_video_round_trip_is_exact(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 33, 47, 3), dtype=np.uint8)
    path = write_video(tmp_path / "clip.mp4", frames, fps=12, lossless=True)
    back, fps = read_video(path)
    assert back.shape == frames.shape
    assert np.array_equal(back, frames)
    assert fps == pytest.approx(12)


def test_h264_round_trip_keeps_count_and_size(tmp_path):
    frames = np.full((7, 32, 48, 3), 120, dtype=np.uint8)
    back, _ = read_video(write_video(tmp_path / "clip.mp4", frames, fps=8))
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - 120).max() <= 3


def test_pyav_fallback_matches_decord(tmp_path, monkeypatch):
    import dynamictrl.data.io as io

    frames = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    path = write_video(tmp_path / "clip.mp4", frames, lossless=True)

    def broken(_path):
        raise RuntimeError("decord failed")

    monkeypatch.setattr(io, "_read_with_decord", broken)
    back, _ = io.read_video(path)
    assert np.array_equal(back, frames)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        read_video(bad)
    with pytest.raises(VideoReadError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoReadError, match="bad.png"):
        (tmp_path / "bad.png").write_bytes(b"xx")
        read_image(tmp_path / "bad.png")


def test_rgba_and_grey_images_are_converted(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    write_image(tmp_path / "a.png", rgba)
    assert read_image(tmp_path / "a.png").shape == (8, 8, 3)
    write_image(tmp_path / "g.png", np.full((8, 8), 0.5))
    assert read_image(tmp_path / "g.png").shape == (8, 8, 3)
    assert read_image(tmp_path / "g.png", mode="L").shape == (8, 8)


def test_resize_covers_then_crops_centre():
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, 30:50] = 255  # a centred white band
    out = resize_and_center_crop(image, 20, 20)
    assert out.shape == (20, 20, 3)
    # scale 0.5 -> 20x40, crop columns 10..30: the band (15..25 after scaling) stays centred
    assert out[:, 10].min() == 255 and out[:, 0].max() == 0
    video = np.zeros((3, 40, 80, 1), dtype=np.uint8)
    assert resize_and_center_crop(video, 16, 24).shape == (3, 16, 24, 1)
    with pytest.raises(ValueError, match="height=0"):
        resize_and_center_crop(image, 0, 4)


def test_video_fps_and_contact_sheet(tmp_path):
    from dynamictrl.data.io import make_contact_sheet, video_fps

    frames = np.zeros((9, 16, 16, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(9)[:, None, None] * 20
    path = write_video(tmp_path / "v.mp4", frames, fps=12, lossless=True)
    assert video_fps(path) == pytest.approx(12)
    assert video_fps(tmp_path / "keypoints.npz") == 8.0
    reference = np.full((32, 32, 3), 255, np.uint8)  # resized to the result's size
    sheet = make_contact_sheet(reference, frames, frames[..., ::-1], rows=3)
    assert sheet.shape == (3 * 16, 3 * 16, 3)
    assert (sheet[:, :16] == 255).all()
    assert sheet[16 + 5, 16 + 5, 0] == frames[4, 0, 0, 0]  # middle row is frame 4
    assert sheet[16 + 5, 32 + 5, 2] == frames[4, 0, 0, 0]
