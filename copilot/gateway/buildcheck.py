"""Install-time check that the llama.cpp build runs on this CPU: one token generated in a child process.

A build with the wrong CPU kernels does not fail at import; it dies with SIGSEGV/SIGILL at the first decode. Running
that decode in a child process turns the crash into one line naming the CPU and the fix, and a non-zero exit.

    python -m copilot.gateway.buildcheck
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

CHILD_CODE = """
import sys
from llama_cpp import Llama
llama = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False, seed=0)
result = llama.create_completion("Hello", max_tokens=1, temperature=0.0)
assert result["usage"]["completion_tokens"] >= 0
"""
WATCHED_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd")
FIX = "rebuild portably: `rm -f .venv/.llama-cpp-* && make install` (flags and why in scripts/install_llama.sh)"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU features that decide which llama.cpp kernels run, as the kernel reports them."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    present: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            present.update(line.split(":", 1)[1].split())
    return [flag for flag in WATCHED_FLAGS if flag in present]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def check_build(model_path: Path, child_code: str = CHILD_CODE, timeout_s: float = 300.0) -> str | None:
    """None when one token generates; else a one-line reason naming the CPU flags and the fix."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", child_code, str(model_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"llama-cpp-python did not generate one token in {timeout_s:.0f} s; {FIX}"
    if done.returncode == 0:
        return None
    last_error = (done.stderr.strip().splitlines() or [""])[-1][:200]
    flags = " ".join(cpu_flags()) or "unknown"
    detail = f" ({last_error})" if last_error and done.returncode > 0 else ""
    return (
        f"llama-cpp-python crashed generating one token ({describe_exit(done.returncode)}){detail} "
        f"on a CPU with flags [{flags}]; {FIX}"
    )


def main() -> int:
    from copilot.gateway.catalog import DEFAULT_LOCAL, catalog_file

    problem = check_build(catalog_file(DEFAULT_LOCAL, Path("unused")).path)
    if problem:
        print(f"install check failed: {problem}", file=sys.stderr)
        return 1
    print("llama-cpp-python build check: one token generated in a child process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
