"""Properties of the split/merge geometry (``infercam.method.split``) for random image sizes, centres and label counts."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from infercam.method.modes import MODES
from infercam.method.split import Box, corner_boxes, merge, patch_boxes

SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def layouts(draw, max_side: int = 300):
    """(height, width, centres, mode): 1..4 centres inside the image, as ``mass_center`` gives them."""
    height, width = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    point = st.tuples(st.integers(0, height - 1), st.integers(0, width - 1))
    return height, width, draw(st.lists(point, min_size=1, max_size=4)), draw(st.sampled_from(MODES))


def covered(boxes: list[Box], height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for box in boxes:
        mask[box.slices()] = True
    return mask


@SETTINGS
@given(layouts())
def test_boxes_are_non_empty_and_inside_the_image_in_both_modes(layout):
    height, width, centres, mode = layout
    boxes = patch_boxes(centres, height, width, mode)
    assert len(boxes) == 4
    for box in boxes:
        assert 0 <= box.top < box.bottom <= height and 0 <= box.left < box.right <= width
    if len(centres) > 2:
        assert boxes == [Box(0, 0, height, width)] * 4


@SETTINGS
@given(layouts())
def test_boxes_are_anchored_at_their_corners_and_corner_boxes_places_them_back(layout):
    height, width, centres, mode = layout
    boxes = patch_boxes(centres, height, width, mode)
    top_left, top_right, bottom_left, bottom_right = boxes
    assert (top_left.top, top_left.left) == (0, 0) and (top_right.top, top_right.right) == (0, width)
    assert (bottom_left.bottom, bottom_left.left) == (height, 0)
    assert (bottom_right.bottom, bottom_right.right) == (height, width)
    assert corner_boxes([(b.height, b.width) for b in boxes], height, width) == boxes


@SETTINGS
@given(layouts())
def test_the_boxes_cover_the_image_in_default_mode(layout):
    """The corner patches reach past the centres by the margin, so the lower/right ones start no later than the
    upper/left ones end: the four cover the image. The authors' wrap-around start breaks this in reference mode."""
    height, width, centres, mode = layout
    boxes = patch_boxes(centres, height, width, mode)
    top_left, top_right, bottom_left, _ = boxes
    overlap = bottom_left.top <= top_left.bottom and top_right.left <= top_left.right
    assert covered(boxes, height, width).all() == overlap
    assert overlap or mode == "reference"


def test_reference_mode_wrap_around_leaves_a_band_uncovered():
    boxes = patch_boxes([(5, 50)], 100, 100, "reference")  # start 5 - 10 < 0 wraps to row 95
    assert boxes[2].top == 95 and boxes[0].bottom == 15
    assert not covered(boxes, 100, 100)[15:95].any()


@SETTINGS
@given(layouts(max_side=40), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_merge_covers_exactly_the_patches_and_is_their_maximum(layout, labels, seed):
    height, width, centres, mode = layout
    rng = np.random.default_rng(seed)
    boxes = patch_boxes(centres, height, width, mode)
    maps = [(box, rng.random((labels, box.height, box.width), dtype=np.float32) + 0.01) for box in boxes]
    merged = merge(maps, (labels, height, width))
    assert merged.shape == (labels, height, width) and merged.dtype == np.float32
    inside = covered(boxes, height, width)
    assert (merged[:, ~inside] == 0).all() and (merged[:, inside] > 0).all()
    expected = np.zeros_like(merged)
    for box, patch in maps:
        rows, cols = box.slices()
        assert (merged[:, rows, cols] >= patch).all()  # never below a patch on its box
        expected[:, rows, cols] = np.maximum(expected[:, rows, cols], patch)
    np.testing.assert_array_equal(merged, expected)


@SETTINGS
@given(st.integers(1, 60), st.integers(1, 60), st.lists(st.tuples(st.integers(1, 80), st.integers(1, 80)),
                                                         min_size=4, max_size=4))
def test_corner_boxes_fit_the_image_or_refuse(height, width, sizes):
    fits = all(h <= height and w <= width for h, w in sizes)
    try:
        boxes = corner_boxes(sizes, height, width)
    except ValueError as exc:
        assert not fits and "does not fit" in str(exc)
        return
    assert fits
    for box, (h, w) in zip(boxes, sizes):
        assert (box.height, box.width) == (h, w)
        assert 0 <= box.top < box.bottom <= height and 0 <= box.left < box.right <= width
