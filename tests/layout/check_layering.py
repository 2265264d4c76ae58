"""The folders are the architecture: each area of include/mpitrain and src
may include only the areas before it in LAYERS (README, "Layout of the
code"). Fails, naming the file and the include, on any arrow back up, on a
source file outside an area, and on an area missing from LAYERS.

Usage: check_layering.py REPO_ROOT
"""
import pathlib
import re
import sys

LAYERS = ["core", "nn", "comm", "optim", "io", "data", "train", "cli"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"mpitrain/([a-z_]+)/', re.M)


def area_of(path: pathlib.Path, root: pathlib.Path) -> str:
    rel = path.relative_to(root).parts
    if rel[0] == "src":
        return rel[1] if len(rel) > 2 else ""
    return rel[2] if len(rel) > 3 else ""  # include/mpitrain/<area>/x.hpp


def main(root: pathlib.Path) -> int:
    files = [p for d in ("src", "include/mpitrain") for p in (root / d).rglob("*") if p.suffix in (".cpp", ".hpp")]
    problems = []
    for path in sorted(files):
        area = area_of(path, root)
        if area not in LAYERS:
            problems.append(f"{path.relative_to(root)}: not in an area folder ({', '.join(LAYERS)})")
            continue
        for used in INCLUDE.findall(path.read_text()):
            if used not in LAYERS:
                problems.append(f"{path.relative_to(root)}: includes unknown area '{used}'")
            elif LAYERS.index(used) > LAYERS.index(area):
                problems.append(f"{path.relative_to(root)}: {area}/ includes {used}/, which comes after it")
    for p in problems:
        print("layering:", p)
    print(f"layering: {len(files)} files checked, {len(problems)} problem(s)")
    return 1 if problems or not files else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]).resolve()))
