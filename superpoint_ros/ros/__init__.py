"""ROS 2 side of the package: message conversions (``conversions``, no node machinery) and the
node that wires them to the front-end. Importing this package imports nothing from ROS."""
