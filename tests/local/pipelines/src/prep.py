"""Clean a CSV file: keep the first ROWS rows, write them to the output folder (a pipeline's first step)."""
import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--raw", required=True)
parser.add_argument("--rows", type=int, required=True)
parser.add_argument("--label", required=True)
parser.add_argument("--shuffle", required=True)
parser.add_argument("--table", required=True, help="an MLTable folder: only checked to be one")
parser.add_argument("--clean", required=True)
args = parser.parse_args()

lines = Path(args.raw).read_text().splitlines()
assert (Path(args.table) / "MLTable").is_file(), args.table
Path(args.clean, "rows.csv").write_text("\n".join(lines[: args.rows + 1]) + "\n")
Path(args.clean, "args.json").write_text(json.dumps({"rows": args.rows, "label": args.label, "shuffle": args.shuffle}))
print(f"kept {args.rows} rows")
