"""A sweep trial: logistic regression on the digits sample with one regularisation strength, saved as an MLflow model."""
import argparse

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="an MLTable folder holding digits.csv")
parser.add_argument("--C", type=float, required=True)
parser.add_argument("--model_output", required=True)
args = parser.parse_args()

frame = pd.read_csv(f"{args.data}/digits.csv")
y = frame.pop("label")
x_train, x_valid, y_train, y_valid = train_test_split(frame / 16.0, y, test_size=0.25, random_state=0)
model = LogisticRegression(C=args.C, max_iter=200).fit(x_train, y_train)
with mlflow.start_run():
    mlflow.log_metric("accuracy", model.score(x_valid, y_valid))
mlflow.sklearn.save_model(model, f"{args.model_output}/model", pip_requirements=["scikit-learn"])
