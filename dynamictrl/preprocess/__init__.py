"""Dataset preprocessing that is not pose: clip captions (templates, Qwen2-VL) and person masks (SAM, or drawn from
the keypoints). Used by ``tools/caption.py`` and ``tools/make_masks.py``; import the submodules directly
(:mod:`.captions`, :mod:`.masks`), each loads its model lazily."""
