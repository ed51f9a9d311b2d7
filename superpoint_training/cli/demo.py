"""Extract and match features between two views of a photo, and draw the matches.

The second view is the first warped by a known homography (rotation, scale, perspective), so
the command can say how many matches are correct. Prints keypoint counts, matches, the RANSAC
inlier ratio, the fraction of matches within 3 px of the ground truth and the corner error of
the estimated homography; writes a PNG of the matches (green: correct, red: wrong).

  superpoint demo [--weights W] [--backend B] [--image PATH] [-o superpoint_demo.png]
"""

from __future__ import annotations

import argparse

from ._common import add_frontend_arguments, build_frontend, read_image

COMMAND = "demo"

# The fixed second view: H_0to1 for a 480x640 image (rotation ~8 degrees, scale 0.9,
# a little perspective), chosen to keep most of the image in view.
DEMO_H = [
    [0.8912, -0.1253, 78.0],
    [0.1253, 0.8912, 2.0],
    [1.2e-4, -6.0e-5, 1.0],
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_frontend_arguments(parser)
    parser.add_argument("--image", help="photo to use (default: scikit-image's CC0 astronaut)")
    parser.add_argument("-o", "--output", default="superpoint_demo.png",
                        help="PNG of the matches (default superpoint_demo.png)")


def two_views(image):
    """``(view0, view1, H_0to1)``: the photo stretched to 480x640 gray and its warp."""
    import cv2
    import numpy as np

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    view0 = cv2.resize(gray, (640, 480), interpolation=cv2.INTER_AREA)
    H = np.array(DEMO_H, dtype=np.float64)
    view1 = cv2.warpPerspective(view0, H, (640, 480), flags=cv2.INTER_LINEAR)
    return view0, view1, H


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from superpoint_ros.errors import SuperPointError
    from superpoint_ros.geometry import image_corners, warp_points
    from superpoint_ros.matching import match_descriptors
    from superpoint_ros.visualize import draw_matches

    if args.image:
        image = read_image(args.image)
        source = args.image
    else:
        try:
            from skimage import data
        except ImportError:
            raise SuperPointError("scikit-image is not installed: pass --image PATH") from None
        image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        source = "scikit-image astronaut (CC0)"
    frontend = build_frontend(args)
    view0, view1, H = two_views(image)
    f0, f1 = frontend(view0), frontend(view1)
    if frontend.descriptor_dim == 0:
        raise SuperPointError("this model has no descriptor head (MagicPoint): nothing to match")
    matches, _ = match_descriptors(f0["descriptors"], f1["descriptors"])
    k0 = f0["keypoints"][matches[:, 0]]
    k1 = f1["keypoints"][matches[:, 1]]
    correct = np.linalg.norm(warp_points(k0, H) - k1, axis=1) <= 3.0
    inlier_ratio, corner_error = 0.0, float("nan")
    if len(matches) >= 4:
        H_est, mask = cv2.findHomography(k0, k1, cv2.RANSAC, 3.0)
        if H_est is not None:
            inlier_ratio = float(mask.mean())
            corners = image_corners(view0.shape)
            corner_error = float(np.linalg.norm(
                warp_points(corners, H_est) - warp_points(corners, H), axis=1).mean())
    cv2.imwrite(args.output, draw_matches(view0, view1, f0["keypoints"], f1["keypoints"],
                                          matches, correct))
    print(f"image: {source}; second view: known homography; backend: {frontend.backend_name}")
    print(f"keypoints: {len(f0['keypoints'])} / {len(f1['keypoints'])}")
    print(f"mutual nearest-neighbour matches: {len(matches)}")
    print(f"correct within 3 px (ground truth): {int(correct.sum())} "
          f"({correct.mean() if len(matches) else 0:.1%})")
    print(f"RANSAC inlier ratio: {inlier_ratio:.1%}; homography corner error: "
          f"{corner_error:.2f} px")
    print(f"wrote {args.output}")
    return 0
