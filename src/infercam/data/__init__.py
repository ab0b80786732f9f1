"""Data sets and image decoding (VOC layout, image-level labels)."""
