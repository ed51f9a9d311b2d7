"""``make demo``: a camera sequence replayed through the real ``superpoint_node``, measured.

The steps, one module each:

1. :mod:`.inputs` makes (or reuses) the frames, their ground truth and a rosbag2 camera bag
   (the project's bag writer), from a synthetic moving camera (:mod:`.sequence`) or a folder;
2. :mod:`.replay` starts ``superpoint_node`` (:mod:`.node_process`), replays the bag into it at
   the camera rate over real DDS and collects ``~/features`` and ``~/matches``;
3. :mod:`.recording` writes them as a bag and reads them back;
4. :mod:`.metrics` scores them against the ground truth (correct matches, homographies,
   tracks, latency, drops); :mod:`.table` and :mod:`.report` show them;

:mod:`.pipeline` runs the steps in order. :mod:`.still` is the older in-process two-view demo
(``superpoint demo --still``).
"""
