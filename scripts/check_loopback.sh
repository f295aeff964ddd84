#!/usr/bin/env bash
# Run a command and report how many packets left through non-loopback interfaces meanwhile.
#   scripts/check_loopback.sh make test
# (Other processes on the machine count too: run it when nothing else uses the network.)
set -u
snap() { awk -F'[: ]+' 'NR>2 && $2!="lo" {tx+=$12; rx+=$4} END {print tx+0, rx+0}' /proc/net/dev; }
read -r tx0 rx0 < <(snap)
"$@"
rc=$?
read -r tx1 rx1 < <(snap)
echo "[check_loopback] packets sent on non-loopback interfaces: $((tx1 - tx0)), received: $((rx1 - rx0))"
exit $rc
