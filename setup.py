"""superpoint_ros: one distribution, built by colcon (ament_python) or installed by pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "superpoint_ros"

ROS_WHEELS = [  # ROS 2 from PyPI wheels, for machines where no ROS 2 is sourced.
    "ros-kilted-rclpy",
    "ros-kilted-sensor-msgs",
    "ros-kilted-std-msgs",
    "ros-kilted-diagnostic-msgs",
    "ros-kilted-rmw-fastrtps-cpp",
]
TORCH = ["torch>=2.1"]
ONNX = ["onnx>=1.15", "onnxruntime>=1.16", "onnxscript>=0.1"]
OPENVINO = ["openvino>=2024.0"]  # the openvino backend: x86 CPUs, FP32 and INT8 .onnx
TRAIN = TORCH + ONNX + [
    "kornia>=0.7",
    "h5py>=3.8",
    "tensorboard>=2.14",
    "matplotlib>=3.7",
    "tqdm>=4.60",
    "scikit-image>=0.21",
    "rosbags>=0.10",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="SuperPoint for ROS 2: training, HPatches benchmarking and TensorRT deployment",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
    ],
    install_requires=["numpy>=1.21", "opencv-python-headless>=4.5", "pyyaml>=5.4", "setuptools"],
    extras_require={
        "torch": TORCH,
        "onnx": ONNX,
        "openvino": OPENVINO,
        "ros": ROS_WHEELS,
        "train": TRAIN,
        "tensorrt": ["tensorrt>=8.5", "onnx>=1.15"] + TORCH,  # onnx: build-engine reads the model
        "dev": TRAIN + ROS_WHEELS + OPENVINO + ["pytest>=7", "pytest-timeout>=2", "ruff>=0.4"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "superpoint = superpoint_training.cli.main:main",
            "superpoint_node = superpoint_ros.ros.superpoint_node:main",
            "bench_node = superpoint_training.ros.bench_node:main",
        ],
    },
)
