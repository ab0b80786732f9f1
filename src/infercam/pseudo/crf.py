"""Dense CRF over the image (pydensecrf2) and psa's confident labels for AffinityNet training.

:data:`PSA_CRF` holds psa's ``tool/imutils.py`` ``crf_inference`` settings: 10 mean-field iterations,
a Gaussian kernel (sxy 3, compat 3) and a bilateral kernel (sxy 80, srgb 13, compat 10), with
unaries ``-log(max(score, 1e-5))`` of the raw scores (not renormalised), as psa passes them.

Confident labels (psa's ``infer_cls.py`` + ``voc12/data.py`` VOC12AffDataset): the CRF is run twice,
with background ``(1 - max CAM) ** 4`` (low alpha: the background is weak, so what stays foreground
is confident) and ``** 32`` (high alpha: what is still background is confident). The label is the
low-alpha CRF's class, 255 where the low-alpha CRF says background, and 0 where the high-alpha CRF
says background. Unlike psa, which keeps both score maps and combines them after cropping and
pooling to stride 8, the combination is made here at full resolution (see ``affinity_train``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import IGNORE_INDEX
from ..data.images import check_image
from ..errors import InferCamError
from .threshold import Background, CamDict, class_scores

PSA_LOW_ALPHA = 4  # psa infer_cls.py --low_alpha
PSA_HIGH_ALPHA = 32  # psa infer_cls.py --high_alpha


@dataclass(frozen=True)
class CrfParams:
    """Mean-field iterations and the Gaussian and bilateral pairwise kernels (pydensecrf's units)."""

    iterations: int = 10
    gaussian_sxy: float = 3
    gaussian_compat: float = 3
    bilateral_sxy: float = 80
    bilateral_srgb: float = 13
    bilateral_compat: float = 10


PSA_CRF = CrfParams()


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError:
        raise InferCamError("the dense CRF needs pydensecrf2: pip install 'infercam[crf]' (or pip install pydensecrf2)") from None
    return dcrf, unary_from_softmax


def dense_crf(image: np.ndarray, scores: np.ndarray, params: CrfParams = PSA_CRF) -> np.ndarray:
    """Mean-field marginals (K, H, W) of a dense CRF with unaries from ``scores`` (K, H, W) on an RGB image."""
    dcrf, unary_from_softmax = _densecrf()
    k, h, w = scores.shape
    if image.shape != (h, w, 3):
        raise InferCamError(f"CRF image is {image.shape}, expected {(h, w, 3)} for scores {scores.shape}")
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(scores.astype(np.float32))))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=params.bilateral_compat)
    return np.asarray(crf.inference(params.iterations), np.float32).reshape(k, h, w)


def crf_labels(image: np.ndarray, cams: CamDict, background: Background, params: CrfParams = PSA_CRF) -> np.ndarray:
    """Label map (uint8, 0 background, c + 1 class c) by argmax of the CRF over [background, CAMs]; ``image``
    H x W x 3 uint8 RGB, as the engine takes it."""
    image = check_image(image)
    scores, values = class_scores(cams, image.shape[:2], background)
    return values[dense_crf(image, scores, params).argmax(0)]


def combine_confident(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """psa's rule: ``low``'s class, 255 where ``low`` is background, 0 where ``high`` is background."""
    label = np.where(low == 0, IGNORE_INDEX, low).astype(np.uint8)
    label[high == 0] = 0
    return label


def confident_labels(image: np.ndarray, cams: CamDict, low_alpha: float = PSA_LOW_ALPHA,
                     high_alpha: float = PSA_HIGH_ALPHA, params: CrfParams = PSA_CRF) -> np.ndarray:
    """psa's AffinityNet training label: confident foreground and background, 255 in between."""
    if not low_alpha < high_alpha:
        raise InferCamError(f"low alpha ({low_alpha}) must be below high alpha ({high_alpha})")
    low, high = (crf_labels(image, cams, Background(alpha=a), params) for a in (low_alpha, high_alpha))
    return combine_confident(low, high)
