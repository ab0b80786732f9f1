"""Pixel pseudo labels from CAMs: background threshold, dense CRF (with psa's confident labels for
AffinityNet), and psa's AffinityNet random walk.

    from infercam.pseudo import Background, threshold_labels, crf_labels, confident_labels, rw_labels
    label = crf_labels(image, cams, Background(threshold=0.2))
"""
from .crf import (
    PSA_CRF, PSA_HIGH_ALPHA, PSA_LOW_ALPHA, CrfParams, combine_confident, confident_labels, crf_labels, dense_crf,
)
from .random_walk import PSA_RW, RandomWalkParams, random_walk, rw_labels, transition_matrix
from .run import cam_labeler
from .threshold import PSA_THRESHOLD, Background, class_scores, threshold_labels

__all__ = [
    "PSA_CRF", "PSA_HIGH_ALPHA", "PSA_LOW_ALPHA", "PSA_RW", "PSA_THRESHOLD", "Background", "CrfParams",
    "RandomWalkParams", "cam_labeler", "class_scores", "combine_confident", "confident_labels", "crf_labels",
    "dense_crf", "random_walk", "rw_labels", "threshold_labels", "transition_matrix",
]
