"""Split geometry: centres of mass, patch boxes in both modes, corner placement, merge."""
import numpy as np
import pytest

from infercam.method.split import Box, corner_boxes, mass_center, merge, patch_boxes


def test_mass_center_truncates_and_falls_back_to_the_image_centre():
    cam = np.zeros((10, 20), np.float32)
    cam[3, 7] = cam[4, 8] = 1.0  # centre (3.5, 7.5) -> (3, 7)
    assert mass_center(cam) == (3, 7)
    assert mass_center(np.zeros((9, 15), np.float32)) == (4, 7)  # int(9/2), int(15/2)


def test_one_class_cuts_at_its_centre_with_margin_10():
    boxes = patch_boxes([(50, 60)], 120, 150, mode="fixed")
    assert boxes == [Box(0, 0, 60, 70), Box(0, 50, 60, 150), Box(40, 0, 120, 70), Box(40, 50, 120, 150)]


def test_two_classes_use_extreme_centres_with_margin_20():
    boxes = patch_boxes([(30, 100), (70, 40)], 120, 150, mode="fixed")
    # ymax=70, xmax=100, ymin=30, xmin=40
    assert boxes == [Box(0, 0, 90, 120), Box(0, 20, 90, 150), Box(10, 0, 120, 120), Box(10, 20, 120, 150)]


def test_three_classes_do_not_cut():
    assert patch_boxes([(1, 1), (5, 5), (9, 9)], 40, 30, mode="fixed") == [Box(0, 0, 40, 30)] * 4


@pytest.mark.parametrize("mode,start", [("fixed", 0), ("reference", 120 - 7)])
def test_centre_near_the_top_edge(mode, start):
    boxes = patch_boxes([(3, 60)], 120, 150, mode=mode)
    assert boxes[0] == Box(0, 0, 13, 70)
    assert boxes[2].top == start and boxes[3].top == start  # reference: numpy's negative start wraps


def test_reference_wrap_can_leave_a_one_pixel_patch():
    boxes = patch_boxes([(50, 9)], 100, 100, mode="reference")  # 9 - 10 = -1 -> column 99
    assert boxes[1] == Box(0, 99, 60, 100) and boxes[1].width == 1


def test_far_negative_start_clamps_to_zero_even_in_reference():
    boxes = patch_boxes([(50, 5)], 100, 12, mode="reference")  # 5 - 10 = -5 -> 12 - 5 = 7
    assert boxes[1].left == 7
    boxes = patch_boxes([(50, 5), (50, 5)], 100, 12, mode="reference")  # 5 - 20 = -15 < -12 -> 0
    assert boxes[1].left == 0


def test_ends_are_clipped_to_the_image():
    boxes = patch_boxes([(115, 145)], 120, 150, mode="fixed")
    assert boxes[0] == Box(0, 0, 120, 150) and boxes[3] == Box(105, 135, 120, 150)


def test_the_default_mode_does_not_cut():
    assert patch_boxes([(50, 60)], 120, 150) == [Box(0, 0, 120, 150)] * 4
    assert patch_boxes([(3, 60), (90, 10)], 120, 150, mode="default") == [Box(0, 0, 120, 150)] * 4


def test_corner_boxes_place_patches_by_size():
    boxes = corner_boxes([(60, 70), (60, 100), (80, 70), (80, 100)], 120, 150)
    assert boxes == [Box(0, 0, 60, 70), Box(0, 50, 60, 150), Box(40, 0, 120, 70), Box(40, 50, 120, 150)]
    with pytest.raises(ValueError):
        corner_boxes([(130, 10)] * 4, 120, 150)


def test_merge_takes_the_maximum_and_leaves_uncovered_pixels_zero():
    a = np.full((1, 2, 3), 0.2, np.float32)
    b = np.full((1, 2, 2), 0.5, np.float32)
    out = merge([(Box(0, 0, 2, 3), a), (Box(0, 2, 2, 4), b)], (1, 3, 4))
    expected = np.array([[[0.2, 0.2, 0.5, 0.5]] * 2 + [[0, 0, 0, 0]]], np.float32)
    assert np.array_equal(out, expected)
