"""HPatches and camera frames as rosbag2 bags (``rosbags`` library, no ROS install needed).

``writer`` turns folders into bags (``superpoint bag hpatches|images``); ``reader`` streams
them back as numpy (sequences with ground truth, or frames) for tests and the bench node.
Topics and the homography message layout are documented in docs/bags.md.
"""

from superpoint_training.bags.reader import (
    HOMOGRAPHY_TOPIC,
    IMAGE_TOPIC,
    BagImage,
    BagSequence,
    bag_topics,
    parse_frame_id,
    read_homographies,
    read_hpatches_bag,
    read_image_bag,
)
from superpoint_training.bags.writer import (
    DISTROS,
    STORAGES,
    BagSummary,
    find_sequences,
    list_frames,
    write_hpatches_bag,
    write_image_bag,
)

__all__ = [
    "DISTROS",
    "HOMOGRAPHY_TOPIC",
    "IMAGE_TOPIC",
    "STORAGES",
    "BagImage",
    "BagSequence",
    "BagSummary",
    "bag_topics",
    "find_sequences",
    "list_frames",
    "parse_frame_id",
    "read_homographies",
    "read_hpatches_bag",
    "read_image_bag",
    "write_hpatches_bag",
    "write_image_bag",
]
