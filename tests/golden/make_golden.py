"""Write the golden containers of format version 1 into tests/golden/v1/.

    python tests/golden/make_golden.py            # refuses if any golden file exists
    python tests/golden/make_golden.py --force    # replaces them: see below first

The golden files freeze what this version of codecs_ser writes, so that every
later version is tested against files written today (tests/test_golden.py loads
them, and checks that the writer still produces exactly their bytes).

Regenerating them is only allowed together with a change of the format version
(``FORMAT_VERSION`` in codecs_ser/_manifest.py) and a note in docs/format.md that
says what changed. The files of the old version then stay, in their own folder:
a file written today must load in ten years. Regenerating to make a failing
byte-equality test pass hides exactly the change that test exists to catch.

Everything is written with ``SOURCE_DATE_EPOCH`` set to ``objects.EPOCH``, so the
bytes depend on nothing but the objects, the writer, and the versions recorded in
the manifest's ``writer`` and ``dists`` fields.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import objects  # noqa: E402

import codecs_ser  # noqa: E402


def write_all(out: Path) -> list[Path]:
    """Dump every case of ``objects.CASES`` into ``out``; returns the paths written."""
    os.environ["SOURCE_DATE_EPOCH"] = str(objects.EPOCH)
    written = []
    for case in objects.CASES:
        path = out / case.file
        main = case.build()
        codecs_ser.dump(
            main,
            path,
            backend=case.backend,
            checksum=case.checksum,
            metadata=case.metadata,
            durable=False,
        )
        codecs_ser.add(
            path, case.second(main), name="second", metadata=case.second_metadata, durable=False
        )
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / objects.FOLDER)
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace existing golden files (only with a format version change)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    existing = [out / c.file for c in objects.CASES if os.path.lexists(out / c.file)]
    if existing and not args.force:
        print(
            f"refusing to overwrite {len(existing)} golden file(s) in {out}: golden files are "
            "regenerated only together with a format version change and a note in "
            "docs/format.md (then pass --force)",
            file=sys.stderr,
        )
        return 1
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for path in write_all(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
