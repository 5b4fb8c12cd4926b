#!/usr/bin/env bash
# Create (or reuse) .venv-monailabel: MONAI Label 0.8.5 beside echodiff, apart from the core .venv so that MONAI
# Label's requirements never change the core install. Used by tests/test_monai_label_server.py (skipped without it),
# by .ci/run and by docs/monai_label.md. MONAILABEL_ENV picks another folder.
#
# MONAI Label's own requirement list pulls SAM 2, scribbles' numpymaxflow and pins that clash with the core install
# (pydicom-seg: numpy < 2, jsonschema < 4), and its server imports torchvision, which PyPI builds only beside torch's
# CUDA wheels. So this environment has its own torch + torchvision pair (x86_64: torch 2.14.1 + torchvision 0.29.1,
# a CUDA build that also runs on the CPU; aarch64: torch 2.9.1 + torchvision 0.24.1, a CPU build), MONAI Label
# without its dependencies, then the ones its server imports, with the DICOM stack kept on pydicom 2 (MONAI Label's
# DICOM code and pydicom-seg use the pydicom 2 API; dicomweb-client 0.60+ needs pydicom 3). pydicom-seg is installed
# without its numpy/jsonschema pins: only DICOM-SEG export uses it, not a server of NIfTI/MHD frames.
# Reruns are no-ops unless this script or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
env=${MONAILABEL_ENV:-.venv-monailabel}
case "$(uname -m)" in
    aarch64|arm64) torch_pair="torch==2.9.1 torchvision==0.24.1" ;;
    *) torch_pair="torch==2.14.1 torchvision==0.29.1" ;;
esac
[ -x "$env/bin/python" ] || "$python" -m venv "$env"
stamp="$env/.echodiff-installed"
want="$(cat pyproject.toml scripts/setup_monailabel_env.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    pip=("$env/bin/python" -m pip install -q)
    "${pip[@]}" --upgrade pip
    "${pip[@]}" $torch_pair
    "${pip[@]}" -e .
    "${pip[@]}" --no-deps "monailabel==0.8.5" "pydicom-seg==0.4.1"
    "${pip[@]}" "uvicorn>=0.29" "fastapi>=0.110.2" "pydantic>=2.7" "pydantic-settings>=2.2.1" "python-dotenv>=1.0.1" \
        "python-multipart>=0.0.9" "httpx>=0.27" "requests>=2.31" "requests-toolbelt>=1.0" "urllib3>=2.2.1" \
        "schedule>=1.2.1" "timeloop>=1.0.2" "expiringdict>=1.2.2" "expiring_dict>=1.1.0" "cachetools>=5.3.3" \
        "watchdog>=4.0" "filelock>=3.11" "passlib>=1.7.4" "pyjwt>=2.8" "bcrypt>=4.1.2" "shapely>=2.0.4" \
        "einops>=0.7" "scikit-image" "psutil" "pynrrd>=1.0" "SimpleITK" "girder-client>=3.2.3" "google-auth>=2.29" \
        "pydicom>=2.4.4,<3" "pynetdicom>=2.0.2,<3" "dicomweb-client[gcp]>=0.59.1,<0.60"
    "$env/bin/python" -c "import monailabel.app, torchvision" >/dev/null
    echo "$want" > "$stamp"
fi
