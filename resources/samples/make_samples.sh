#!/usr/bin/env bash
# Regenerates the bundled sample structures (all from the recipe, master seed 7).
set -euo pipefail
cd "$(dirname "$0")"
vaereg generate --sigma 2 2 8 --vf 0.45 --seed 7 --field 0 -o default.vti --overwrite
vaereg generate --sigma 8 1 1 --vf 0.30 --seed 7 --field 1 -o needles_x.npz --overwrite
vaereg generate --sigma 1 8 8 --vf 0.60 --seed 7 --field 2 -o plates_yz.npz --overwrite
vaereg generate --sigma 1 1 1 --vf 0.50 --seed 7 --field 3 -o fine_isotropic.npz --overwrite
vaereg generate --sigma 8 8 8 --vf 0.40 --seed 7 --field 4 -o coarse_isotropic.h5 --overwrite
vaereg generate --sigma 4 4 1 --vf 0.55 --seed 7 --field 5 -o columns_z.tif --overwrite
