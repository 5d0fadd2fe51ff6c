"""Train a LightGBM classifier on a CSV file; `mlflow.autolog()` records every boosting round's validation loss,
the parameters and the model, as in Azure ML's LightGBM sweep examples."""
import argparse

import lightgbm as lgb
import mlflow
import pandas as pd
from sklearn.model_selection import train_test_split


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", default="label")
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--num_leaves", type=int, default=31)
    parser.add_argument("--num_iterations", type=int, default=15)
    args = parser.parse_args()

    mlflow.autolog()
    frame = pd.read_csv(args.data)
    y = frame.pop(args.target)
    x_train, x_valid, y_train, y_valid = train_test_split(frame, y, test_size=0.25, random_state=0, stratify=y)
    params = {
        "objective": "multiclass", "num_class": int(y.nunique()), "metric": "multi_logloss", "verbose": -1,
        "learning_rate": args.learning_rate, "num_leaves": args.num_leaves, "min_data_in_leaf": 5, "num_threads": 1,
    }
    train_set = lgb.Dataset(x_train, y_train)
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    lgb.train(params, train_set, num_boost_round=args.num_iterations, valid_sets=[valid_set], valid_names=["validation"])


if __name__ == "__main__":
    main()
