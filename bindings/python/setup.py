"""Build the hivent Python package: SWIG wrapper of libhivent plus the Python layer.

Install offline with Debian's setuptools, wheel and swig:

    /usr/bin/python3 -m venv --system-site-packages VENV
    VENV/bin/pip install --no-build-isolation ./bindings/python

How the extension gets libhivent, first match wins:

1. HIVENT_LINK=pkg-config, or (without HIVENT_LINK) an installed libhivent
   found by `pkg-config hivent`: link the shared library.
2. HIVENT_LINK=static, or a static library at
   $HIVENT_BUILD_DIR/core/libhivent.a (default build directory: build/ at
   the repository root): link it in, with its dependencies from pkg-config.
3. HIVENT_LINK=source, or neither of the above: compile core/src/*.c of
   the repository into the extension.
"""

import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORE_INCLUDE = os.path.join(REPO, "core", "include")
CORE_SRC = os.path.join(REPO, "core", "src")
CORE_DEPS = ["libwebsockets", "msgpack", "jansson", "zlib", "openssl"]
VERSION = "0.1.0"


def pkg_config(*args):
    """Return the split output of pkg-config, or None when it fails."""
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out.stdout)


def split_flags(flags):
    """Split compiler/linker flags into include dirs, library dirs, libraries and the rest."""
    result = {"include_dirs": [], "library_dirs": [], "libraries": [], "extra": []}
    for flag in flags:
        if flag.startswith("-I"):
            result["include_dirs"].append(flag[2:])
        elif flag.startswith("-L"):
            result["library_dirs"].append(flag[2:])
        elif flag.startswith("-l"):
            result["libraries"].append(flag[2:])
        else:
            result["extra"].append(flag)
    return result


def dependency_flags():
    flags = pkg_config("--cflags", "--libs", *CORE_DEPS)
    if flags is None:
        sys.exit("pkg-config could not find the libhivent dependencies "
                 f"({', '.join(CORE_DEPS)}); install their -dev packages")
    return flags + ["-lpthread"]


def core_build_dir():
    return os.environ.get("HIVENT_BUILD_DIR") or os.path.join(REPO, "build")


def link_mode():
    mode = os.environ.get("HIVENT_LINK")
    if mode:
        if mode not in ("pkg-config", "static", "source"):
            sys.exit(f"HIVENT_LINK must be pkg-config, static or source, not {mode!r}")
        return mode
    if pkg_config("--exists", "hivent") is not None:
        return "pkg-config"
    if os.path.exists(os.path.join(core_build_dir(), "core", "libhivent.a")):
        return "static"
    return "source"


def extension_options():
    """Return (extra sources, Extension keyword arguments) for the chosen link mode."""
    mode = link_mode()
    include_dirs = [os.path.join(HERE, "src")]
    extra_objects = []
    sources = [os.path.join("src", "pyconv.c")]
    macros = []
    if mode == "pkg-config":
        flags = split_flags(pkg_config("--cflags", "--libs", "hivent") + dependency_flags())
    elif mode == "static":
        archive = os.path.join(core_build_dir(), "core", "libhivent.a")
        if not os.path.exists(archive):
            sys.exit(f"HIVENT_LINK=static but {archive} does not exist; build the core "
                     "with cmake first or set HIVENT_BUILD_DIR")
        extra_objects.append(archive)
        include_dirs.append(CORE_INCLUDE)
        flags = split_flags(dependency_flags())
    else:
        core_sources = sorted(glob.glob(os.path.join(CORE_SRC, "*.c")))
        if not core_sources:
            sys.exit(f"no libhivent found: no pkg-config 'hivent', no static library in "
                     f"{core_build_dir()} and no sources in {CORE_SRC}")
        # Absolute paths keep the object files inside build_temp; relative
        # ones starting with ../ would land beside the sources.
        sources += core_sources
        include_dirs += [CORE_INCLUDE, CORE_SRC]
        macros += [("HIVENT_BUILDING", None), ("_GNU_SOURCE", None)]
        flags = split_flags(dependency_flags())
    print(f"hivent: linking libhivent via {mode}", file=sys.stderr)
    kwargs = {
        "include_dirs": include_dirs + flags["include_dirs"],
        "library_dirs": flags["library_dirs"],
        "libraries": flags["libraries"],
        "extra_objects": extra_objects,
        "extra_link_args": flags["extra"],
        "define_macros": macros,
        "extra_compile_args": ["-std=gnu11", "-Wno-unused-parameter"],
    }
    if mode == "pkg-config":
        kwargs["runtime_library_dirs"] = flags["library_dirs"]
    return sources, kwargs


class BuildExt(build_ext):
    """Run SWIG on hivent.i before compiling.

    The wrapper C file goes to the build directory and the generated
    capi.py into the package being built, so the source tree stays clean.
    """

    def run(self):
        swig = shutil.which("swig") or shutil.which("swig4.0")
        if swig is None:
            sys.exit("swig not found; install Debian's swig package")
        package_dir = (os.path.join(HERE, "hivent") if self.inplace
                       else os.path.join(self.build_lib, "hivent"))
        os.makedirs(package_dir, exist_ok=True)
        os.makedirs(self.build_temp, exist_ok=True)
        wrapper = os.path.join(self.build_temp, "hivent_wrap.c")
        command = [swig, "-python", "-threads", "-I" + CORE_INCLUDE,
                   "-outdir", package_dir, "-o", wrapper, "hivent.i"]
        print(" ".join(command), file=sys.stderr)
        subprocess.run(command, check=True, cwd=HERE)
        for ext in self.extensions:
            ext.sources = [wrapper] + [s for s in ext.sources if not s.endswith(".i")]
        super().run()


extra_sources, ext_kwargs = extension_options()

setup(
    name="hivent",
    version=VERSION,
    description="Python binding of libhivent, the C client of the Hivent event bus",
    python_requires=">=3.8",
    packages=["hivent"],
    package_data={"hivent": ["py.typed", "*.pyi"]},
    ext_modules=[Extension("hivent._capi", sources=["hivent.i"] + extra_sources, **ext_kwargs)],
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
