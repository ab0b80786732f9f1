"""Evaluation against VOC ground truth: confusion matrices and IoU (:mod:`.scores`), CAM threshold sweeps
(:mod:`.sweep`), scores of prediction files (:mod:`.files`), box scores for real photos (:mod:`.metrics`) and
paired bootstrap intervals (:mod:`.stats`).

The names other code imports from ``infercam.evaluation`` are re-exported here.
"""
from .files import TRUTH_PROBLEM, evaluate_cams, evaluate_labels, ignore_classes
from .scores import ConfusionMatrix, EvalResult, format_threshold, not_found_note
from .sweep import DEFAULT_THRESHOLDS, CamSweep, cam_to_label, evaluate_cam_dicts, threshold_range

__all__ = [
    "DEFAULT_THRESHOLDS", "TRUTH_PROBLEM", "CamSweep", "ConfusionMatrix", "EvalResult", "cam_to_label",
    "evaluate_cam_dicts", "evaluate_cams", "evaluate_labels", "format_threshold", "ignore_classes", "not_found_note",
    "threshold_range",
]
