"""Compiles and loads the C++ kernels (`pairwise.cc`, `lennard_jones.cc` and their shared
`pairwise.h`) with the system C++ compiler.

Contract: `library()` returns the loaded `ctypes.CDLL` of the CPU kernels, building it
first if needed, or `None` when they cannot be had (no compiler, a failed build, or
`DIFFSIM_CPU_KERNELS=0`); the callers then use the pure-JAX path, which gives the same
results, more slowly. It never raises.

The library is built once per source, jaxlib, compiler and CPU into a cache folder
(`DIFFSIM_KERNEL_DIR`, else `$XDG_CACHE_HOME/diffsim/kernels` or
`~/.cache/diffsim/kernels`): `make` builds it at install time
(`python -m diffsim.kernels._build`), and an installed wheel builds it on first use (about
15 s, with a warning saying so). It is compiled for this CPU (`-march=native`), which is
why the CPU's flags are part of the cache key: a home folder shared between different
machines gets one build per kind of CPU. Concurrent builds (test workers) each write a
private file and rename it into place, so a reader never sees half a library.

Why not a wheel of compiled code: the kernels are built against the XLA FFI headers of
the jaxlib that is installed, and for the CPU they run on, which only the user's
machine knows; so the project stays a pure-Python wheel.
"""

import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings

_HERE = pathlib.Path(__file__).parent
SOURCES = (_HERE / "pairwise.cc", _HERE / "lennard_jones.cc")
HEADERS = (_HERE / "pairwise.h",)
FLAGS = ("-O3", "-march=native", "-ffast-math", "-std=c++17")
FLAGS += ("-shared", "-fPIC", "-pthread")


def enabled() -> bool:
    """`False` when `DIFFSIM_CPU_KERNELS=0`: the pure-JAX path everywhere."""
    return os.environ.get("DIFFSIM_CPU_KERNELS", "1") != "0"


def compiler() -> str | None:
    """The C++ compiler: `$CXX`, else the first of c++, g++, clang++ on the PATH."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return next((found for name in names if (found := shutil.which(name))), None)


def _cpu_signature() -> str:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
        return next((ln for ln in text.splitlines() if ln.startswith("flags")), text[:4096])
    except OSError:
        return platform.processor() + platform.machine()


def _cache_dir() -> pathlib.Path:
    if os.environ.get("DIFFSIM_KERNEL_DIR"):
        return pathlib.Path(os.environ["DIFFSIM_KERNEL_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "diffsim" / "kernels"


def library_path(cxx: str) -> pathlib.Path:
    """Where the build for this source, jaxlib, compiler and CPU lives."""
    import jaxlib

    key = hashlib.sha256()
    texts = [path.read_bytes() for path in (*SOURCES, *HEADERS)]
    for part in (*texts, jaxlib.__version__, cxx, " ".join(FLAGS)):
        key.update(part if isinstance(part, bytes) else part.encode())
    key.update(_cpu_signature().encode())
    return _cache_dir() / f"libdiffsim_kernels-{key.hexdigest()[:16]}.so"


def build(cxx: str) -> pathlib.Path:
    """Compiles the sources into the cache (if not there yet) and returns its path;
    raises `RuntimeError` with the compiler's message when the build fails."""
    import jax.ffi

    target = library_path(cxx)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    with tempfile.TemporaryDirectory(dir=target.parent) as objects:
        # One compiler per source, at once (each takes ~15 s), then one link.
        include = ["-isystem", jax.ffi.include_dir()]  # the FFI headers' warnings aren't ours
        commands = [
            [cxx, *FLAGS, *include, "-c", str(src), "-o", f"{objects}/{src.stem}.o"]
            for src in SOURCES
        ]
        commands.append([cxx, *FLAGS, *(c[-1] for c in commands), "-o", tmp])
        jobs = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in commands[:-1]]
        failed = []
        for command, job in zip(commands, jobs, strict=False):  # the link is not a job
            stderr = job.communicate()[1]
            if job.returncode:
                failed.append((command, stderr))
        if not failed:
            done = subprocess.run(commands[-1], capture_output=True, text=True)
            failed = [(commands[-1], done.stderr)] if done.returncode else []
        if failed:
            os.unlink(tmp)
            command, stderr = failed[0]
            raise RuntimeError(f"{' '.join(command)}\n{stderr[-4000:]}")
    os.replace(tmp, target)  # atomic: a concurrent reader sees the whole file or none
    return target


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernels, or `None` (see the module docstring); warns once why not."""
    if not enabled():
        return None
    cxx = compiler()
    if cxx is None:
        _fallback("no C++ compiler was found (set CXX, or install g++ or clang++)")
        return None
    try:
        if not library_path(cxx).exists():
            warnings.warn(
                "diffsim: compiling the CPU pairwise kernels once for this machine "
                "(about 15 s; `make` or `python -m diffsim.kernels._build` does it ahead).",
                stacklevel=2,
            )
        return ctypes.cdll.LoadLibrary(str(build(cxx)))
    except (OSError, RuntimeError) as error:
        _fallback(f"building them failed:\n{error}")
        return None


def _fallback(why: str) -> None:
    warnings.warn(
        f"diffsim: the compiled CPU pairwise kernels are unavailable, so all-pairs forces "
        f"use the pure-JAX path (same results, several times slower): {why}. "
        "Set DIFFSIM_CPU_KERNELS=0 to choose the pure-JAX path without this warning.",
        stacklevel=3,
    )


if __name__ == "__main__":  # `make`: build ahead of first use
    cxx = compiler()
    if cxx is None or not enabled():
        print("diffsim: no C++ compiler; all-pairs forces will use the pure-JAX path")
        sys.exit(0)
    try:
        print(f"diffsim: CPU kernels in {build(cxx)}")
    except RuntimeError as error:  # the package still works, on its pure-JAX path
        print(
            f"diffsim: building the CPU kernels failed; all-pairs forces will use the "
            f"pure-JAX path:\n{error}"
        )
