# Source this file (bash) to use the workspace built by scripts/setup.sh:
#   source scripts/env.sh
# It activates the venv, puts the ROS wheels and both install prefixes on the paths, and keeps
# DDS on loopback with a ROS_DOMAIN_ID of its own unless one is already set.
_mirage_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_mirage_venv=${VENV:-$_mirage_root/.venv}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 90) + 5 ))}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# Fast DDS's default 512 KiB shared-memory segment holds back camera_info and /tf sent around
# camera images by up to seconds; see mirage_ros/mirage_ros/dds/. A profile of your own wins.
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$_mirage_root/mirage_ros/mirage_ros/dds/fastdds_large_images.xml"
fi
export VIRTUAL_ENV=$_mirage_venv
export PATH="$_mirage_root/install/mirage_ros/lib/mirage_ros:$_mirage_venv/bin:$PATH"  # mirage, mirage_node
export AMENT_PREFIX_PATH="$_mirage_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_mirage_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
case $- in *u*) _mirage_nounset=1; set +u ;; *) _mirage_nounset= ;; esac  # colcon's scripts
for _p in "$_mirage_venv/mirage_extras/install" "$_mirage_root/install"; do
  if [ -f "$_p/local_setup.sh" ]; then
    COLCON_CURRENT_PREFIX="$_p" . "$_p/local_setup.sh"
  fi
done
[ -n "$_mirage_nounset" ] && set -u
unset _p _mirage_root _mirage_venv _mirage_nounset
