"""ColpoNet's image-quality gate ("automatic remove image"): reject blurry colposcopy photos before classifying.

This file is copied next to the weights by `save_pretrained` and runs as remote code: it imports only
third-party libraries.

Method (the seed work's, reproduced here). A photo is converted to grayscale and two blur scores are computed:

- the variance of its 3x3 Laplacian (`cv2.Laplacian(gray, cv2.CV_64F).var()`), the variance-of-Laplacian focus
  measure of Pech-Pacheco et al. (ICPR 2000) made popular by PyImageSearch's "Blur detection with OpenCV";
- the FFT blur score of PyImageSearch's "OpenCV Fast Fourier Transform (FFT) for blur detection" (Rosebrock,
  2020): the mean log-magnitude of the image with its low frequencies removed (see `fft_blur_score`).

The photo is accepted when both scores are at or above their thresholds. The seed work resized every photo to
500x500 and used Laplacian variance 100 and FFT score 0 (`SEED_LAPLACIAN_THRESHOLD`, `SEED_FFT_THRESHOLD`), set on
full-resolution colposcopy photos.

Defaults for small photos: a photo is downscaled to `resize_to` x `resize_to` (500, as the seed) but never
upscaled, and a smaller one is scored at (short side) x (short side), the FFT's low-frequency square scaled with the
working size (half-width 60 at 500 px); the Laplacian threshold is 12 (`DEFAULT_LAPLACIAN_THRESHOLD`) and the FFT
threshold the seed's 0. For sharp full-resolution photos pass `laplacian_threshold=SEED_LAPLACIAN_THRESHOLD`; a
training run can calibrate both thresholds on its own photos (`--quality-percentile`), saved with the processor.
How the defaults were measured: `benchmarks/quality_gate_calibration.py`.

What the gate does NOT catch: it measures sharpness only. Glare and specular reflections, over- or
under-exposure, a speculum or blood blocking the view, mucus, a photo of the wrong anatomy (or not of a cervix
at all) all pass if the picture is sharp. Both scores also grow with contrast, so a dark or washed-out photo
scores lower than a well-exposed one of the same sharpness, and a smooth but well-focused cervix can be rejected.
"""

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import PIL.Image

SEED_LAPLACIAN_THRESHOLD = 100.0
SEED_FFT_THRESHOLD = 0.0
DEFAULT_LAPLACIAN_THRESHOLD = 12.0
DEFAULT_FFT_THRESHOLD = SEED_FFT_THRESHOLD
DEFAULT_RESIZE_TO = 500
DEFAULT_FFT_LOW_FREQ_SIZE = 60

# Floor for |reconstruction| before the log: a perfectly flat image reconstructs to ~0 and would give -inf.
_FFT_EPSILON = 1e-8
# "Image minus its Laplacian": sharpens edges, leaves flat regions unchanged (the kernel sums to 1).
_SHARPEN_KERNEL = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32)

ImageLike = PIL.Image.Image | np.ndarray


@dataclass
class ImageQualityReport:
    """
    The quality gate's verdict on one photo.

    Args:
        laplacian_variance (`float`): variance of the 3x3 Laplacian of the grayscale working image.
        fft_score (`float`): FFT blur score of the grayscale working image (see `fft_blur_score`).
        laplacian_threshold (`float`): minimum Laplacian variance accepted.
        fft_threshold (`float`): minimum FFT blur score accepted.
        is_acceptable (`bool`): whether both scores are at or above their thresholds.
        reasons (`list[str]`): why the photo was rejected, one entry per failed score; empty when accepted.
    """

    laplacian_variance: float
    fft_score: float
    laplacian_threshold: float
    fft_threshold: float
    is_acceptable: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """One sentence a clinician can read."""
        if self.is_acceptable:
            return (
                f"Image accepted: sharp enough for classification (Laplacian variance "
                f"{self.laplacian_variance:.1f} ≥ {self.laplacian_threshold:g}; FFT blur score "
                f"{self.fft_score:.1f} ≥ {self.fft_threshold:g})."
            )
        return f"Image rejected as too blurry: {'; '.join(self.reasons)}. Retake the photo with the cervix in focus."

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        """The report as a JSON-serialisable dict, message included."""
        return {**asdict(self), "message": self.message}


class PhotoRejectedError(ValueError):
    """
    The quality gate refused a photo: ColpoNet's `image-classification` pipeline raises it for a photo whose report
    is not acceptable, unless it is called with `ignore_quality_gate=True`.

    Args:
        message (`str`): what the gate found, and how to classify the photo anyway.
        report (`ImageQualityReport`, *optional*): the gate's report on the photo, also as `.report`.
    """

    def __init__(self, message: str, report: ImageQualityReport | None = None):
        super().__init__(message)
        self.report = report


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian (`cv2.Laplacian(gray, cv2.CV_64F)`) of a 2-D grayscale image; low = blurry."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def fft_blur_score(gray: np.ndarray, low_freq_size: int = DEFAULT_FFT_LOW_FREQ_SIZE) -> float:
    """
    FFT blur score of a 2-D grayscale image; low = blurry.

    Computes `np.fft.fft2`, moves the zero frequency to the centre (`fftshift`), zeroes the centred square of
    low frequencies `[cY - low_freq_size : cY + low_freq_size, cX - low_freq_size : cX + low_freq_size]` with
    `(cY, cX) = (h // 2, w // 2)`, shifts back (`ifftshift`), inverts (`ifft2`), and returns the mean over all
    pixels of `20 * ln(max(|reconstruction|, 1e-8))`: the average log-amplitude of the image's fine detail
    (natural log, as in the PyImageSearch original, so not true decibels).
    """
    height, width = gray.shape
    center_y, center_x = height // 2, width // 2
    spectrum = np.fft.fftshift(np.fft.fft2(gray))
    spectrum[
        max(center_y - low_freq_size, 0) : center_y + low_freq_size,
        max(center_x - low_freq_size, 0) : center_x + low_freq_size,
    ] = 0
    reconstruction = np.fft.ifft2(np.fft.ifftshift(spectrum))
    return float(np.mean(20 * np.log(np.maximum(np.abs(reconstruction), _FFT_EPSILON))))


def working_image(image: ImageLike, resize_to: int = DEFAULT_RESIZE_TO) -> np.ndarray:
    """
    The square grayscale image the scores are computed on: `resize_to` x `resize_to` (area interpolation), or
    (short side) x (short side) when the photo is smaller, since upscaling would blur it.
    """
    pixels = _as_array(image)
    gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    side = min(resize_to, *gray.shape)
    if gray.shape != (side, side):
        gray = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)
    return gray


def assess_image_quality(
    image: ImageLike,
    laplacian_threshold: float = DEFAULT_LAPLACIAN_THRESHOLD,
    fft_threshold: float = DEFAULT_FFT_THRESHOLD,
    resize_to: int = DEFAULT_RESIZE_TO,
    fft_low_freq_size: int = DEFAULT_FFT_LOW_FREQ_SIZE,
) -> ImageQualityReport:
    """
    Scores a photo's sharpness and decides whether it is good enough to classify.

    Args:
        image (`PIL.Image.Image` or `np.ndarray`):
            The photo: a PIL image (converted to RGB) or an HxW grayscale / HxWx3 RGB uint8 array.
        laplacian_threshold (`float`, *optional*, defaults to `DEFAULT_LAPLACIAN_THRESHOLD` = 12):
            Minimum Laplacian variance accepted (the seed's was 100, for full-resolution photos).
        fft_threshold (`float`, *optional*, defaults to `DEFAULT_FFT_THRESHOLD` = 0):
            Minimum FFT blur score accepted.
        resize_to (`int`, *optional*, defaults to 500):
            Side of the square working image; smaller photos are scored at their short side, never upscaled.
        fft_low_freq_size (`int`, *optional*, defaults to 60):
            Half-width of the low-frequency square removed by the FFT score at a `resize_to` working size; it is
            scaled in proportion for smaller working images.
    """
    _check_number("laplacian_threshold", laplacian_threshold, minimum=0.0)
    _check_number("fft_threshold", fft_threshold)
    _check_positive_int("resize_to", resize_to)
    _check_positive_int("fft_low_freq_size", fft_low_freq_size)
    if 2 * fft_low_freq_size >= resize_to:
        raise ValueError(
            f"fft_low_freq_size must be less than half of resize_to ({resize_to}), got {fft_low_freq_size}: "
            "the FFT score would remove every frequency."
        )

    gray = working_image(image, resize_to)
    low_freq_size = max(1, round(fft_low_freq_size * gray.shape[0] / resize_to))
    lap_var = laplacian_variance(gray)
    fft_score = fft_blur_score(gray, low_freq_size)

    reasons = []
    if lap_var < laplacian_threshold:
        reasons.append(f"Laplacian variance {lap_var:.1f} < {laplacian_threshold:g} (too few sharp edges)")
    if fft_score < fft_threshold:
        reasons.append(f"FFT blur score {fft_score:.1f} < {fft_threshold:g} (too little fine detail)")
    return ImageQualityReport(
        laplacian_variance=lap_var,
        fft_score=fft_score,
        laplacian_threshold=float(laplacian_threshold),
        fft_threshold=float(fft_threshold),
        is_acceptable=not reasons,
        reasons=reasons,
    )


def sharpen_image(image: ImageLike) -> ImageLike:
    """
    Sharpens a photo with the 3x3 kernel `[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]` (the image minus its Laplacian),
    the seed work's "sharpen image" step. Returns the same type: a uint8 array of the same shape for an array, a
    PIL image for a PIL image (L stays L, any other mode becomes RGB). Values are clipped to [0, 255].
    """
    # ddepth -1 keeps uint8, and OpenCV saturates (clips) the result to [0, 255].
    sharpened = cv2.filter2D(_as_array(image), -1, _SHARPEN_KERNEL)
    return PIL.Image.fromarray(sharpened) if isinstance(image, PIL.Image.Image) else sharpened


def _as_array(image: ImageLike) -> np.ndarray:
    """The photo as an HxW grayscale or HxWx3 RGB uint8 array (a PIL image in mode L stays grayscale)."""
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image if image.mode == "L" else image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a PIL image or a numpy array, got {type(image).__name__}")
    is_gray_or_rgb = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    if not is_gray_or_rgb or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(
            f"image must be an HxW grayscale or HxWx3 RGB uint8 array, got shape {image.shape} and dtype "
            f"{image.dtype}; load other images with cervix_hf.image_io.load_image first."
        )
    return image


def _check_number(name: str, value, minimum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {value!r}")


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


__all__ = [
    "DEFAULT_FFT_THRESHOLD",
    "DEFAULT_LAPLACIAN_THRESHOLD",
    "SEED_FFT_THRESHOLD",
    "SEED_LAPLACIAN_THRESHOLD",
    "ImageQualityReport",
    "PhotoRejectedError",
    "assess_image_quality",
    "fft_blur_score",
    "laplacian_variance",
    "sharpen_image",
    "working_image",
]
