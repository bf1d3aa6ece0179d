#!/usr/bin/env bash
# Download the NeRF synthetic (Blender) scenes (lego, chair, drums, ficus, hotdog, materials, mic, ship) with
# nerfstudio's downloader. The scenes land in <save-dir>/blender/<scene>, e.g. data/blender/lego, ready for
#   ns-train nerfacto --data data/blender/lego blender-data
# Needs internet access (the archive is on Google Drive) and nerfstudio's `ns-download-data` on PATH
# (activate the project's virtual environment first). Note: nerfstudio replaces an existing <save-dir>/blender.
#
# Usage: data_scripts/download_blender.sh [SAVE_DIR]      (default SAVE_DIR: data)
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" || $# -gt 1 ]]; then
    echo "usage: $0 [SAVE_DIR]   (downloads the Blender scenes into SAVE_DIR/blender; default SAVE_DIR: data)"
    exit $(( $# > 1 ? 2 : 0 ))
fi
if ! command -v ns-download-data >/dev/null 2>&1; then
    echo "error: ns-download-data not found; activate the virtual environment that has nerfstudio installed" >&2
    exit 2
fi
save_dir="${1:-data}"
ns-download-data blender --save-dir "$save_dir"
echo "Blender scenes in $save_dir/blender"
