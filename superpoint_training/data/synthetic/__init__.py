"""Synthetic shapes: training step 1 of SuperPoint (MagicPoint's data), with exact ground truth.

Nine primitives, as in the paper and its public re-implementations (rpautrat/SuperPoint,
eric-yyjau/pytorch-superpoint); ground-truth keypoints are the corners and junctions of the drawn
geometry:

==================  ==============================================================================
``lines``           up to 9 thick segments that neither cross nor touch; keypoints: the endpoints
``polygon``         one filled polygon of 3 to 7 corners (flat corners > 120 deg removed); corners
``multiple_polygons`` up to 30 textured polygons; most are placed without overlap, a few occlude
                    earlier ones: hidden corners are removed, the T-junctions where an occluder's
                    edge crosses a visible edge are added
``ellipses``        up to 20 non-overlapping filled ellipses; no keypoints
``star``            3 to 5 thick branches from a centre; keypoints: the centre and the tips
``checkerboard``    a 3..6 x 3..6 board under a random affine + perspective warp, cells contrasting
                    with their neighbours, a few thick lines along grid lines; every grid point
``stripes``         5 to 12 vertical stripes on a warped board larger than the image, whose top or
                    bottom edge crosses the image; keypoints: the stripes' corners
``cube``            a parallelepiped seen from a random direction, three faces visible; the seven
                    visible vertices (the hidden one is not a keypoint)
``gaussian_noise``  uniform noise; no keypoints
==================  ==============================================================================

Every image starts from a random background (binary noise plus gray blobs, box-blurred: smooth
gray-level variations); shapes get random gray levels that contrast with the background mean
(by >= 30 levels) and with the neighbours they touch.

How exact ground truth is kept:

* Geometry is floating point in pixels of the output image (pixel centres at integer
  coordinates, ``superpoint_ros.geometry``); nothing is rounded to integers.
* Shapes are rasterised at ``supersample`` times the output size with OpenCV's sub-pixel
  (fixed point) drawing, then box-averaged down (``cv2.INTER_AREA``): a pixel's value is the
  fraction of its area each shape covers (to ``1 / supersample``). OpenCV fills the pixels whose
  centres are within half a pixel of a polygon, so polygons are inset by half a supersampled pixel
  before drawing (``_inset_polygon``) and a square with a corner at ``(10, 10)`` covers exactly a
  quarter of pixel ``(10, 10)``.
* Occlusion is resolved geometrically: a keypoint under a later shape is removed; the visible
  crossings of polygon edges are computed exactly (``polygons_scene``); the cube's hidden vertex
  comes from the faces' normals (``cube_scene``).
* A final Gaussian blur of random sigma (``blur_sigma_range``) softens the edges as the originals
  do (they render at 960x1280, blur and shrink).

Randomness comes only from the ``numpy.random.Generator`` passed in: ``render_sample(rng,
config)`` gives the same image for the same generator state. Samplers (``sample_<primitive>``)
draw parameters and call deterministic builders (``lines_scene``, ``polygons_scene``...), which a
test can call with hand-chosen geometry.

``SyntheticShapesDataset`` serves ``(seed, split, index)``-deterministic samples to a torch
``DataLoader`` (so workers are deterministic too), with optional augmentation
(``superpoint_training.data.augment``) and an optional on-disk cache of the fixed val/test
splits (one ``.npz`` per split).

Files: ``config`` (the dataclasses), ``raster`` (drawing operations, ``render_scene``),
``colors`` (shape greys, background), ``geometry2d`` (crossings, distances, inside tests),
``scenes`` (deterministic builders), ``primitives`` (``SAMPLERS``, ``render_sample``),
``dataset`` (``SyntheticShapesDataset``, ``collate``, ``worker_init``).
"""
