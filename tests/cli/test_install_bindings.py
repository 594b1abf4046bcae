"""Tests of how scripts/install-bindings.sh picks its build directory.

Each test copies the script into a temporary repository layout with empty
core/libhivent.a files and runs it with --dry-run, which prints the chosen
directories and installs nothing.  HIVENT_INSTALL_BINDINGS names the
script (default: scripts/install-bindings.sh of this checkout).
"""

import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.environ.get("HIVENT_INSTALL_BINDINGS",
                        os.path.join(HERE, "..", "..", "scripts", "install-bindings.sh"))


class InstallBindingsTest(unittest.TestCase):
    def setUp(self):
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="hivent-install-bindings-"))
        os.makedirs(os.path.join(self.root, "scripts"))
        self.script = os.path.join(self.root, "scripts", "install-bindings.sh")
        shutil.copy(SCRIPT, self.script)

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def make_build(self, relative):
        """Creates a build directory with an empty core/libhivent.a."""
        path = os.path.join(self.root, relative)
        os.makedirs(os.path.join(path, "core"), exist_ok=True)
        open(os.path.join(path, "core", "libhivent.a"), "wb").close()
        return path

    def run_script(self, *args, build_dir=None):
        env = {k: v for k, v in os.environ.items() if k != "HIVENT_BUILD_DIR"}
        if build_dir is not None:
            env["HIVENT_BUILD_DIR"] = build_dir
        return subprocess.run(["bash", self.script, "--dry-run"] + list(args), env=env,
                              capture_output=True, text=True, timeout=30)

    def assert_build_dir(self, result, path):
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("build directory %s\n" % path, result.stdout)

    def test_prefers_build(self):
        build = self.make_build("build")
        self.make_build("build/release")
        self.assert_build_dir(self.run_script(), build)

    def test_build_alone(self):
        build = self.make_build("build")
        result = self.run_script()
        self.assert_build_dir(result, build)
        self.assertIn("installing into %s/bindings-env\n" % build, result.stdout)

    def test_falls_back_to_release(self):
        os.makedirs(os.path.join(self.root, "build", "core"))
        release = self.make_build("build/release")
        self.assert_build_dir(self.run_script(), release)

    def test_environment_wins(self):
        self.make_build("build")
        other = self.make_build("elsewhere")
        result = self.run_script("/tmp/some-env", build_dir=other)
        self.assert_build_dir(result, other)
        self.assertIn("installing into /tmp/some-env\n", result.stdout)

    def test_environment_without_library(self):
        self.make_build("build")
        empty = os.path.join(self.root, "empty")
        os.makedirs(empty)
        result = self.run_script(build_dir=empty)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("HIVENT_BUILD_DIR=%s contains no core/libhivent.a" % empty,
                      result.stderr)
        self.assertIn("cmake -S", result.stderr)

    def test_no_build_lists_tried_paths(self):
        result = self.run_script()
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("no built libhivent found", result.stderr)
        self.assertIn(os.path.join(self.root, "build", "core", "libhivent.a"), result.stderr)
        self.assertIn(os.path.join(self.root, "build", "release", "core", "libhivent.a"),
                      result.stderr)
        self.assertIn("cmake -S %s -B %s/build" % (self.root, self.root), result.stderr)
        self.assertIn("HIVENT_BUILD_DIR", result.stderr)

    def test_rejects_unknown_option(self):
        self.make_build("build")
        result = self.run_script("--force")
        self.assertEqual(result.returncode, 2)
        self.assertIn("usage:", result.stderr)


if __name__ == "__main__":
    unittest.main()
