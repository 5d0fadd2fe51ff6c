"""Write what each given folder holds to a report (the last step of a pipeline)."""
import argparse
import json
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model", action="append", default=[])
parser.add_argument("--out", required=True)
args = parser.parse_args()

found = {folder: sorted(p.name for p in Path(folder).iterdir()) for folder in args.model}
Path(args.out, "report.json").write_text(json.dumps({"models": found, "greeting": os.environ.get("GREETING")}))
print("reported")
