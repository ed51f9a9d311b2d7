"""ROS 2 edge nodes of the workstation side (they need ``rclpy`` and the training stack).

``bench_node`` replays an HPatches bag through ``superpoint_node`` and scores what comes back
with the offline evaluation's code. It lives here, not in ``superpoint_ros``, because it needs
the bag reader and the metrics: the robot-side package never imports ``superpoint_training``.
The pure part (parameters, frame plan, metrics glue, latency figures, report) is in
:mod:`superpoint_training.ros.bench`; :mod:`superpoint_training.ros.bench_node` only wires it to
topics.
"""
