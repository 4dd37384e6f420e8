#!/usr/bin/env bash
# Regenerate binder/requirements.txt, the exact pins Binder (repo2docker) installs.
# Installs ".[lab]", papermill and notebook into a fresh venv under /tmp, from a copy of the
# package (so setuptools leaves no build/ or *.egg-info in the repo), and writes `pip freeze`
# minus meshflow-nb itself and pip/setuptools/wheel. Run from anywhere: binder/lock.sh
# notebook is here because repo2docker's own environment already has notebook 7, which pins
# jupyterlab to one minor (notebook 7.N <-> jupyterlab 4.N): pinning it keeps `pip check` green.
# An optional argument is a constraints file to hold versions: binder/lock.sh constraints.txt
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d /tmp/meshflow-lock.XXXXXX)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
mkdir "$work/src"
cp -r pyproject.toml README.md meshflow_nb "$work/src/"
"${pip[@]}" install -q "$work/src[lab]" papermill notebook ${1:+-c "$1"}
"${pip[@]}" check

{
  echo "# Binder's tested set: exact pins of everything 'pip install \".[lab]\" papermill notebook'"
  echo "# pulls in, on Python $("$work/venv/bin/python" -c 'import sys; print(*sys.version_info[:2], sep=".")')."
  echo "# Regenerate with binder/lock.sh (it says why notebook is here); do not edit by hand."
  "${pip[@]}" freeze --exclude-editable \
    | grep -viE '^(meshflow[-_]nb|pip|setuptools|wheel)( @|==)'
} > binder/requirements.txt.new
mv binder/requirements.txt.new binder/requirements.txt
echo "wrote binder/requirements.txt ($(grep -vc '^#' binder/requirements.txt) pins)"
