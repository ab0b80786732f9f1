"""Which ImageNet-1k classes stand for each PASCAL VOC class (``--class-map imagenet-voc``), versioned.

Indices are those of the usual ImageNet-1k order (``torchvision.models._meta._IMAGENET_CATEGORIES``); each entry
records the name it was chosen by, and the tests check every index against that list. What ImageNet lacks:

* **person**: no class at all (the few that show people, ballplayer, groom and scuba diver, stand for a role or
  its clothes, not for a person, and are left out); a person can not be localised with this map.
* **motorbike**: no motorcycle class; moped and motor scooter stand in for it, poorly.
* **pottedplant**: only "pot, flowerpot"; **sofa**: only "studio couch"; **diningtable**: only "dining table";
  **horse**: only "sorrel" (a chestnut horse); **sheep**: only "ram"; these cover their VOC class narrowly.
* Well covered: aeroplane, bird, boat, bottle, bus, car, cat, chair, cow, dog, train, tvmonitor.

Bump :data:`VERSION` whenever an entry changes: maps computed with another version are not comparable.
"""
from __future__ import annotations

from ..classes import VOC_CLASSES

__all__ = ["CLASS_MAPS", "IMAGENET_TO_VOC", "NAME", "VERSION", "VOC_CLASSES", "covered_classes", "members",
           "uncovered_classes"]

VERSION = 1
NAME = "imagenet-voc"
CLASS_MAPS = (NAME,)  # the class maps infercam knows (--class-map)
IMAGENET_CLASSES = 1000


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


# VOC class -> ImageNet indices, with the ImageNet names they were chosen by (spans name their ends).
IMAGENET_TO_VOC: dict[str, dict[int, str]] = {
    "aeroplane": {404: "airliner", 895: "warplane", 908: "wing"},
    "bicycle": {444: "bicycle-built-for-two", 671: "mountain bike"},
    "bird": {**{i: "" for i in _span(7, 24) + _span(80, 100) + _span(127, 146)},
             7: "cock", 24: "great grey owl", 80: "black grouse", 100: "black swan", 127: "white stork",
             146: "albatross"},
    "boat": {403: "aircraft carrier", 472: "canoe", 484: "catamaran", 510: "container ship", 554: "fireboat",
             576: "gondola", 625: "lifeboat", 628: "liner", 724: "pirate", 780: "schooner", 814: "speedboat",
             833: "submarine", 871: "trimaran", 914: "yawl"},
    "bottle": {440: "beer bottle", 720: "pill bottle", 737: "pop bottle", 898: "water bottle", 907: "wine bottle"},
    "bus": {654: "minibus", 779: "school bus", 874: "trolleybus"},
    "car": {407: "ambulance", 436: "beach wagon", 468: "cab", 511: "convertible", 609: "jeep", 627: "limousine",
            656: "minivan", 661: "Model T", 717: "pickup", 734: "police van", 751: "racer", 817: "sports car"},
    "cat": {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"},
    "chair": {423: "barber chair", 559: "folding chair", 765: "rocking chair", 857: "throne"},
    "cow": {345: "ox", 346: "water buffalo", 347: "bison"},
    "diningtable": {532: "dining table"},
    "dog": {**{i: "" for i in _span(151, 268)}, 151: "Chihuahua", 268: "Mexican hairless"},
    "horse": {339: "sorrel"},
    "motorbike": {665: "moped", 670: "motor scooter"},
    "person": {},
    "pottedplant": {738: "pot"},
    "sheep": {348: "ram"},
    "sofa": {831: "studio couch"},
    "train": {466: "bullet train", 547: "electric locomotive", 565: "freight car", 705: "passenger car",
              820: "steam locomotive", 829: "streetcar"},
    "tvmonitor": {664: "monitor", 782: "screen", 851: "television"},
}
assert tuple(IMAGENET_TO_VOC) == VOC_CLASSES


def members(voc_class: int) -> tuple[int, ...]:
    """The ImageNet indices that stand for VOC class ``voc_class`` (0..19), sorted; empty for person."""
    return tuple(sorted(IMAGENET_TO_VOC[VOC_CLASSES[voc_class]]))


def covered_classes() -> list[int]:
    """VOC class indices that have at least one ImageNet member."""
    return [c for c in range(len(VOC_CLASSES)) if members(c)]


def uncovered_classes() -> list[int]:
    """VOC class indices that no ImageNet class stands for (person): scored without them."""
    return [c for c in range(len(VOC_CLASSES)) if not members(c)]
