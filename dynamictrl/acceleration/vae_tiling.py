"""VAE tiling for ``AutoencoderKLCogVideoX`` whose tiles add up to the untiled latent (or frame) size.

diffusers' tiled encode steps ``int(tile_px * (1 - overlap))`` pixels from one tile to the next but keeps
``tile_latents - int(tile_latents * overlap)`` latents of each; the two agree only when ``tile_latents * overlap`` is a
whole number of latents. Its defaults (tiles of half the VAE's sample size, overlaps 1/6 and 1/5) do for CogVideoX's
480×720 VAE (30×45-latent tiles), not for smaller ones: the shipped ×4 tiny VAE (8-latent tiles) encodes a 64 px
frame to 17×17 latents instead of 16×16. :func:`enable_vae_tiling` rounds the overlap to whole latents, which keeps
diffusers' values wherever they already added up; :func:`check_vae_tiling` refuses, in one line, a frame that the
VAE's current tiling cannot split. Tiling still changes the values a little (each tile is normalised on its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from dynamictrl.errors import UserError

# diffusers' AutoencoderKLCogVideoX defaults
DEFAULT_OVERLAP_HEIGHT = 1 / 6
DEFAULT_OVERLAP_WIDTH = 1 / 5


class VAETilingError(UserError, ValueError):
    """This VAE or frame size cannot tile: a ``ValueError`` for library callers, one ``error:`` line in the CLIs."""


@dataclass(frozen=True)
class AxisTiling:
    """Tiling along one axis: tile size in pixels and latents, and the overlap in latents."""

    tile_px: int
    tile_latents: int
    overlap_latents: int

    @property
    def overlap_factor(self) -> float:
        return self.overlap_latents / self.tile_latents


def spatial_factor(vae) -> int:
    """Pixels per latent along height and width (×8 for CogVideoX, ×4 for the shipped tiny VAE)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _axis(name: str, tile_px: int, factor: int, overlap: float) -> AxisTiling:
    if tile_px <= 0 or tile_px % factor or tile_px < 2 * factor:
        raise VAETilingError(
            f"VAE tiling: {name} tiles of {tile_px} px do not fit this VAE (they must be a multiple of its ×{factor} "
            f"spatial compression and at least {2 * factor} px; or run without VAE tiling)"
        )
    if not 0 <= overlap < 1:
        raise VAETilingError(f"VAE tiling: {name} overlap {overlap} must be in [0, 1)")
    latents = tile_px // factor
    wanted = min(round(latents * overlap), latents - 1)
    # the nearest whole-latent overlap whose float arithmetic in diffusers also comes out whole (0 always does)
    for blend in sorted(range(latents), key=lambda b: (abs(b - wanted), b)):
        if _adds_up(tile_px, latents, factor, blend / latents):
            return AxisTiling(tile_px, latents, blend)
    raise AssertionError("unreachable: an overlap of 0 always adds up")


def _adds_up(tile_px: int, latents: int, factor: int, overlap: float) -> bool:
    """diffusers' own expressions (tiled_encode / tiled_decode) give matching strides and kept sizes."""
    stride_px, kept = int(tile_px * (1 - overlap)), latents - int(latents * overlap)
    stride_latents, kept_px = int(latents * (1 - overlap)), tile_px - int(tile_px * overlap)
    return stride_px == kept * factor and kept_px == stride_latents * factor


def enable_vae_tiling(
    vae,
    tile_sample_min_height: int | None = None,
    tile_sample_min_width: int | None = None,
    tile_overlap_factor_height: float | None = None,
    tile_overlap_factor_width: float | None = None,
) -> tuple[AxisTiling, AxisTiling]:
    """Turn on ``vae``'s spatial tiling with tiles and overlaps that add up exactly (arguments as in diffusers'
    ``AutoencoderKLCogVideoX.enable_tiling``; default tiles: half the VAE's sample size, rounded down to whole
    latents). Raises :class:`VAETilingError` (one line) where this VAE cannot tile. Returns the (height, width) tiling."""
    factor = spatial_factor(vae)

    def default_tile(sample: int) -> int:
        return (sample // 2) // factor * factor

    height = _axis(
        "height",
        tile_sample_min_height or default_tile(vae.config.sample_height),
        factor,
        DEFAULT_OVERLAP_HEIGHT if tile_overlap_factor_height is None else tile_overlap_factor_height,
    )
    width = _axis(
        "width",
        tile_sample_min_width or default_tile(vae.config.sample_width),
        factor,
        DEFAULT_OVERLAP_WIDTH if tile_overlap_factor_width is None else tile_overlap_factor_width,
    )
    vae.enable_tiling()
    # set directly: enable_tiling treats an overlap of 0 as "keep the old value"
    vae.tile_sample_min_height, vae.tile_latent_min_height = height.tile_px, height.tile_latents
    vae.tile_sample_min_width, vae.tile_latent_min_width = width.tile_px, width.tile_latents
    vae.tile_overlap_factor_height, vae.tile_overlap_factor_width = height.overlap_factor, width.overlap_factor
    return height, width


def tiled_latent_size(size_px: int, tile_px: int, tile_latents: int, overlap: float, factor: int) -> int:
    """Latent size of diffusers' tiled encode along one axis (its loop and crops, without running the VAE); a tile of
    ``n`` px encodes to ``n // factor`` latents."""
    stride = int(tile_px * (1 - overlap))
    kept = tile_latents - int(tile_latents * overlap)
    return sum(min(kept, (size_px - start) // factor) for start in range(0, size_px, stride))


def tiled_frame_size(size_latents: int, tile_px: int, tile_latents: int, overlap: float, factor: int) -> int:
    """Frame size of diffusers' tiled decode along one axis."""
    stride = int(tile_latents * (1 - overlap))
    kept = tile_px - int(tile_px * overlap)
    return sum(min(kept, (size_latents - start) * factor) for start in range(0, size_latents, stride))


def check_vae_tiling(vae, height: int, width: int) -> None:
    """Raise :class:`VAETilingError` (one line) when ``vae`` tiles and a ``height`` × ``width`` frame would not come back at
    its own size through the tiled encode and decode (e.g. after diffusers' ``vae.enable_tiling()`` on a small VAE).
    Does nothing when tiling is off."""
    if not getattr(vae, "use_tiling", False):
        return
    factor = spatial_factor(vae)
    if height <= vae.tile_sample_min_height and width <= vae.tile_sample_min_width:
        return  # one tile: diffusers encodes and decodes it untiled
    axes = (
        ("height", height, vae.tile_sample_min_height, vae.tile_latent_min_height, vae.tile_overlap_factor_height),
        ("width", width, vae.tile_sample_min_width, vae.tile_latent_min_width, vae.tile_overlap_factor_width),
    )
    for name, size, tile_px, tile_latents, overlap in axes:
        latents = tiled_latent_size(size, tile_px, tile_latents, overlap, factor)
        frame = tiled_frame_size(size // factor, tile_px, tile_latents, overlap, factor)
        if size % factor or latents != size // factor or frame != size:
            raise VAETilingError(
                f"VAE tiling cannot split a {height}x{width} frame: {name} {size} px would come back as {latents} "
                f"latents / {frame} px with {tile_px} px tiles and overlap {overlap:.3g} (use a {name} that is a "
                f"multiple of {factor}, dynamictrl.acceleration.vae_tiling.enable_vae_tiling, or no VAE tiling)"
            )
