"""Train a linear classifier with stochastic gradient descent on a CSV file, one epoch at a time.

Written like Azure ML's sweep examples: arguments from the job's command, `mlflow.autolog()`, and the metric the
sweep optimises logged once per epoch (each epoch is an interval for early termination). The model is saved as
an MLflow model to the job's `model_output` output when the command passes one.
"""
import argparse
import time

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="CSV file with a header row")
    parser.add_argument("--target", default="label")
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model_output", default=None)
    parser.add_argument("--epoch_pause", type=float, default=0.0, help="seconds to wait after each epoch (tests: a bigger dataset)")
    args = parser.parse_args()

    mlflow.autolog(log_models=False)  # parameters of the estimator; the metrics below are logged per epoch
    frame = pd.read_csv(args.data)
    y = frame.pop(args.target).to_numpy()
    x = frame.to_numpy(dtype=float) / 16.0
    x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    classes = np.unique(y)
    model = SGDClassifier(loss="log_loss", alpha=args.alpha, random_state=0)
    with mlflow.start_run():
        mlflow.log_params({"alpha": args.alpha, "epochs": args.epochs})
        for epoch in range(1, args.epochs + 1):
            model.partial_fit(x_train, y_train, classes=classes)
            probabilities = model.predict_proba(x_valid)
            mlflow.log_metric("validation_log_loss", log_loss(y_valid, probabilities, labels=classes), step=epoch)
            mlflow.log_metric("validation_accuracy", accuracy_score(y_valid, model.predict(x_valid)), step=epoch)
            time.sleep(args.epoch_pause)
        if args.model_output:
            # Requirements named here: inferring them starts a Python process per save.
            mlflow.sklearn.save_model(model, f"{args.model_output}/model", pip_requirements=["scikit-learn", "numpy"])


if __name__ == "__main__":
    main()
