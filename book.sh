#!/usr/bin/env bash
# distillkit's one entry point. Each command sets up what it needs on first use: a virtual
# environment in .venv (from requirements.txt, plus `pip install -e .`) and the website's
# offline JavaScript in _vendor/ (from the npm registry).
#
#   ./book.sh website          build the website into _build/html (zero warnings allowed)
#   ./book.sh test             run every test: unit, oracle, notebooks (nbval), browser
#   ./book.sh test --portable  the same under other CPU arithmetic (generic ATen kernels, SSE4.1
#                              oneDNN, MKL's compatible path, one thread): what another machine sees
#   ./book.sh execute NB...    re-execute notebooks in a fresh kernel and store outputs
#   ./book.sh lab              open the chapters in JupyterLab
#   ./book.sh pdf              build the PDF, solutions in an appendix (needs TeX: see README)
#   ./book.sh student          export student notebooks (solutions removed) into student/
#   ./book.sh assignments      write an nbgrader course (nbgrader_config.py, source/) into course/
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="${DISTILLKIT_VENV:-$ROOT/.venv}"

setup() {
  if [ ! -f "$VENV/.distillkit-installed" ] || [ requirements.txt -nt "$VENV/.distillkit-installed" ] \
     || [ pyproject.toml -nt "$VENV/.distillkit-installed" ]; then
    echo "[book] setting up $VENV (first use: about two minutes)"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
    mkdir -p "$VENV/share/jupyter/lab/settings"
    echo '{"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}}' \
      > "$VENV/share/jupyter/lab/settings/overrides.json"
    touch "$VENV/.distillkit-installed"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  # offline data: use the project's shared copy when it sits beside the checkout
  if [ -z "${DISTILLKIT_DATA:-}" ] && [ -d "$ROOT/../shared/data/MNIST/raw" ]; then
    export DISTILLKIT_DATA="$ROOT/../shared/data"
  fi
  export TQDM_DISABLE="${TQDM_DISABLE:-1}"
  export PYDEVD_DISABLE_FILE_VALIDATION=1
  # OpenMP threads that spin while waiting collapse under CPU contention (20 training
  # batches: 145 s spinning vs 20 s passive on a loaded 2-core machine); results are unchanged.
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
  # glibc hands every freed block over 128 KiB back to the kernel, so each training step
  # page-faults its activations in again (an MNIST network at 10 images per class: 5.3 s of
  # system time and 2.9 M page faults, against 0.4 s and 0.15 M with these); results are unchanged.
  export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}"
  export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-1073741824}"
  export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-268435456}"
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  website|build)
    setup; tools/vendor_js.sh
    jupyter-book build --all -W --keep-going "$@" .
    echo "[book] website: $ROOT/_build/html/index.html"
    ;;
  test|tests)
    setup; tools/vendor_js.sh
    if [ "${1:-}" = "--portable" ]; then
      shift
      # Training numbers depend on the kernels a CPU picks; the notebooks' checked claims must
      # not. Force other kernels than this machine's native ones and one thread.
      export ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=COMPATIBLE
      export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
      echo "[book] portable arithmetic: ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA MKL_CBWR=$MKL_CBWR OMP_NUM_THREADS=1"
    fi
    python -m pytest "$@"
    ;;
  execute)
    setup
    [ $# -gt 0 ] || { echo "usage: ./book.sh execute chapters/.../NN_name.ipynb ..."; exit 2; }
    for nb in "$@"; do
      echo "[book] executing $nb"
      DISTILLKIT_CLAIMS=raise jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=900 \
        --ExecutePreprocessor.record_timing=False "$nb"
      python tools/clean_notebook.py "$nb"
    done
    ;;
  lab)
    setup; jupyter lab chapters "$@"
    ;;
  pdf)
    # Solutions go to an appendix: tools/pdf_book.py prepares the sources in _build/pdf_src,
    # runs `jupyter-book build --builder pdflatex` there and checks the PDF's text.
    setup
    python tools/pdf_book.py "$@"
    echo "[book] PDF: $ROOT/_build/latex/book.pdf"
    ;;
  student)
    setup; python tools/export_student.py "$@"
    ;;
  assignments)
    # nbgrader does the rest: cd course && nbgrader generate_assignment NAME (instructor's guide)
    setup; python tools/nbgrader_course.py "$@"
    ;;
  *)
    sed -n '2,14p' "$0"; exit 2
    ;;
esac
