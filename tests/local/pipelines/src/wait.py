"""Mark that the step started, then work for a while, or until MARKS/release exists (a step a stop lands in)."""
import argparse
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--marks", required=True)
parser.add_argument("--name", required=True)
parser.add_argument("--seconds", type=float, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--after", default=None, help="the folder of the step this one follows")
args = parser.parse_args()

with open(Path(args.marks) / "started.txt", "a") as marks:
    marks.write(args.name + "\n")
deadline = time.monotonic() + args.seconds
while time.monotonic() < deadline and not (Path(args.marks) / "release").exists():  # released: done early
    time.sleep(0.1)
Path(args.out, "done.txt").write_text(args.name)
print("done", args.name)
