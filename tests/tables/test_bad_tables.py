"""Bad tables -> clear errors, each naming what is wrong (and never echoing a huge cell)."""

import numpy as np
import pandas as pd
import pytest

from mtlkit import Task
from mtlkit.data import read_table
from mtlkit.data.tabular import TableOptions, TablePreprocessor, labels_from_frame
from mtlkit.run.data import prepare_table


def _df(n=60):
    r = np.random.default_rng(0)
    return pd.DataFrame({"f": r.normal(size=n), "c": r.choice(["a", "b"], n), "y": r.choice(["p", "q"], n)})


def test_duplicate_column_names_in_a_csv(tmp_path):
    (tmp_path / "d.csv").write_text("f0,f1,f0,y\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(ValueError, match=r"column name\(s\) \['f0'\] appear more than once"):
        read_table(tmp_path / "d.csv")


def test_declared_categorical_that_is_all_unique():
    df = _df()
    df["key"] = [f"k{i}" for i in range(len(df))]
    with pytest.raises(ValueError, match=r"'key' .* distinct value in every row \(36\).*Declare it 'id'"):
        prepare_table(df, [Task("y", "binary")], {"f": "numeric", "key": "categorical"})


def test_single_class_in_the_training_split():
    df = _df()
    df["y"] = "p"
    df.loc[[5, 9], "y"] = "q"  # too few to reach the training split
    with pytest.raises(ValueError, match=r"Task 'y': the training split .* single class \('p'\)"):
        prepare_table(df, [Task("y", "binary", positive_class="q")], ["f"], fractions=(0.05, 0.5, 0.45))


def test_too_many_categories():
    df = pd.DataFrame({"c": [f"v{i % 50}" for i in range(100)]})
    with pytest.raises(ValueError, match=r"'c' .* 50 distinct values \(more than 10\); hash it"):
        TablePreprocessor({"c": "categorical"}, TableOptions(max_categories=10)).fit(df)


def test_predict_table_missing_a_feature():
    pre = TablePreprocessor({"f": "numeric", "c": "categorical"}).fit(_df())
    with pytest.raises(KeyError, match=r"Feature column\(s\) \['c'\] not found in the input"):
        pre.transform(_df().drop(columns=["c"]))


def test_unseen_label_at_evaluate_time():
    task = Task("y", "binary", classes=("p", "q"))
    df = _df()
    df.loc[3, "y"] = "r"
    with pytest.raises(ValueError, match=r"Label value 'r' of task 'y' \(column 'y', row 3\).*never seen in training"):
        labels_from_frame(df, [task])


def test_overlong_cell_reported_by_position_and_length(tmp_path):
    df = _df(5)
    df.loc[2, "c"] = "x" * 200_000
    df.to_csv(tmp_path / "big.csv", index=False)
    with pytest.raises(ValueError) as err:
        read_table(tmp_path / "big.csv")
    msg = str(err.value)
    assert "row 2, column 1" in msg and "200,000 characters" in msg and len(msg) < 400


def test_overlong_single_line_file(tmp_path):
    (tmp_path / "line.csv").write_text("a" * 2_000_000)
    with pytest.raises(ValueError) as err:
        read_table(tmp_path / "line.csv")
    assert "longer than 1,000,000 bytes" in str(err.value) and len(str(err.value)) < 300


def test_binary_with_three_values_and_unknown_type():
    df = _df()
    df.loc[0, "y"] = "z"
    with pytest.raises(ValueError, match=r"Task 'y' is binary but .* holds 3 distinct values"):
        prepare_table(df, [Task("y", "binary")], ["f"])
    with pytest.raises(ValueError, match=r"'f': unknown type 'number'"):
        prepare_table(_df(), [Task("y", "binary")], {"f": "number"})
