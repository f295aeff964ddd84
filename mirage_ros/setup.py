"""ament_python package of mirage_ros (built by colcon; plain `pip install .` works too)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "mirage_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={
        package_name: ["weights/*.safetensors", "weights/*.json", "weights/*.md", "dds/*.xml"]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="mirage_ros maintainers",
    maintainer_email="maintainers@mirage-ros.dev",
    description="Latent spatial memory for robots: predicted camera views at requested poses.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "mirage_node = mirage_ros.node:main",
            "mirage = mirage_ros.cli:main",
        ],
    },
)
