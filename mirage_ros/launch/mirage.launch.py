"""Start mirage_node with config/mirage.yaml (override with params_file:=...).

    ros2 launch mirage_ros mirage.launch.py use_sim_time:=true params_file:=/path/to/mine.yaml

Needs the `launch` and `launch_ros` packages of a ROS 2 distro (they are not published as
PyPI wheels; without a distro run the node directly:
`mirage_node --ros-args --params-file ...`).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(
        get_package_share_directory("mirage_ros"), "config", "mirage.yaml"
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=default_params,
                description="YAML file with mirage parameters",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="Use /clock (bag replay)"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Node namespace"),
            Node(
                package="mirage_ros",
                executable="mirage_node",
                name="mirage",
                namespace=LaunchConfiguration("namespace"),
                output="screen",
                emulate_tty=True,
                parameters=[
                    LaunchConfiguration("params_file"),
                    {"use_sim_time": LaunchConfiguration("use_sim_time")},
                ],
            ),
        ]
    )
