"""Write scikit-learn's bundled digits in the Kaggle digit-recognizer layout (no network needed)."""

import csv
from pathlib import Path

from sklearn.datasets import load_digits

digits = load_digits()
with open(Path(__file__).with_name("digits_train.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["label"] + [f"pixel{i}" for i in range(digits.data.shape[1])])
    for pixels, label in zip(digits.data.astype(int), digits.target):
        writer.writerow([int(label)] + [int(v) for v in pixels])
