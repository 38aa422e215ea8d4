"""Build hook: ship the C++/CUDA sources of ``csrc/`` inside the package.

The kernels are compiled just in time on the user's machine, so a wheel must
carry their sources. They live at the repository root (``csrc/``, next to the
package, where an editable install finds them); :class:`BuildPyWithCsrc`
copies them into ``snntorch_sparse/csrc`` of the build tree, where
:func:`snntorch_sparse.ops._build.csrc_dir` looks in an installed copy.
``MANIFEST.in`` puts ``csrc/`` into the sdist, so a wheel built from the
sdist gets them the same way. Everything else is declared in pyproject.toml.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
# Keep in step with MANIFEST.in.
CSRC_SUFFIXES = (".cpp", ".h", ".cu", ".cuh")


def csrc_files():
    """The kernel sources under ``csrc/`` (paths relative to it), sorted."""
    return sorted(p.relative_to(CSRC) for p in CSRC.rglob("*")
                  if p.is_file() and p.suffix in CSRC_SUFFIXES)


class BuildPyWithCsrc(build_py):
    """``build_py`` that also copies ``csrc/`` to ``<build_lib>/snntorch_sparse/csrc``."""

    def _csrc_targets(self):
        dest = Path(self.build_lib) / "snntorch_sparse" / "csrc"
        return [(CSRC / rel, dest / rel) for rel in csrc_files()]

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads <repo>/csrc in place
            return
        targets = self._csrc_targets()
        if not targets:
            raise FileNotFoundError(f"no C++ sources found under {CSRC}; the wheel would "
                                    "fall back to the slow reference backend")
        for src, dst in targets:
            self.mkpath(str(dst.parent))
            self.copy_file(str(src), str(dst))

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [str(dst) for _, dst in self._csrc_targets()]


setup(cmdclass={"build_py": BuildPyWithCsrc})
