"""TOML recipes for `build` (ROMs and kernels) and `load`, through the real command
line in-process: an answer is an exit status 0, 1 or 2; a traceback is a crash.

The input is the recipe text; it sits in a scratch copy of recipes/ (with ../build
and platforms/ linked) so the shipped recipes' relative paths resolve. Outputs go
to a scratch directory. Seeds: recipes/*.toml."""

import os
from pathlib import Path

from common import REPO, WORK, files, instrumented, main, run_cli

with instrumented(exclude=["bootforge.compress"]):
    import bootforge.cli  # noqa: F401  (what run_cli drives, imported inside the instrumentation)

FAMILY = "recipes"
SCRATCH = WORK / "recipes-scratch"


def scratch():
    (SCRATCH / "recipes").mkdir(parents=True, exist_ok=True)
    (SCRATCH / "out").mkdir(exist_ok=True)
    for link, to in ((SCRATCH / "build", REPO / "build"),
                     (SCRATCH / "recipes" / "platforms", REPO / "recipes" / "platforms")):
        if to.exists() and not os.path.lexists(link):
            os.symlink(to, link)
    return SCRATCH / "recipes" / "fuzz.toml"


RECIPE = scratch()


def seeds():
    return files("recipes/*.toml")



def target(data):
    RECIPE.write_bytes(data)
    text = data.decode("utf-8", "replace")
    out = SCRATCH / "out" / "x.bin"
    if "[load]" in text or "load" in text[:64]:
        run_cli(["load", str(RECIPE), "--json"])
    else:
        run_cli(["build", str(RECIPE), "-o", str(out), "--json"])


if __name__ == "__main__":
    main(FAMILY, seeds, target)
