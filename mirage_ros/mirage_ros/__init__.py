"""mirage_ros: a latent spatial memory that predicts camera views at requested poses.

Rings (the import rule is tested): ``mirage_ros.core`` uses torch and numpy only; the
ROS-shaped modules (conversions, transforms, bag, sim, eval, train, cli) need no ROS runtime;
``node`` and ``params`` are the only rclpy code.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
