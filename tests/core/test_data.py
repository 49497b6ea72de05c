import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import Task, from_arrays, from_dataframe, split
from mtlkit.data import from_torch_dataset, read_table


def _frame(n=40):
    r = np.random.default_rng(1)
    df = pd.DataFrame({"f1": r.normal(size=n), "f2": r.normal(size=n)})
    df["cls"] = r.integers(0, 3, n)
    df["val"] = r.normal(size=n)
    return df


def test_missing_labels_are_masked_not_imputed():
    df = _frame()
    df.loc[0, "val"] = np.nan
    df["cls"] = df["cls"].astype(object)
    df.loc[1, "cls"] = ""
    df.loc[2, "cls"] = -1
    tasks = [Task("cls", "multiclass", num_classes=3, missing_value=-1), Task("val", "regression")]
    data, feats = from_dataframe(df, tasks)
    assert feats == ["f1", "f2"]
    assert not data.masks["val"][0, 0] and data.masks["val"][1, 0]
    assert not data.masks["cls"][1] and not data.masks["cls"][2] and data.masks["cls"][0]
    assert data.labelled_counts() == {"cls": 38, "val": 39}


def test_csv_and_parquet_round_trip(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    tasks = [Task("cls", "multiclass", num_classes=3)]
    a, _ = from_dataframe(read_table(tmp_path / "d.csv"), tasks, ["f1", "f2"])
    b, _ = from_dataframe(read_table(tmp_path / "d.parquet"), tasks, ["f1", "f2"])
    assert torch.equal(a.x, b.x) and torch.equal(a.targets["cls"], b.targets["cls"])


def test_split_is_seeded_and_disjoint():
    data, _ = from_dataframe(_frame(200), [Task("cls", "multiclass", num_classes=3)])
    a = split(data, seed=3)
    b = split(data, seed=3)
    c = split(data, seed=4)
    assert all(torch.equal(x.x, y.x) for x, y in zip(a, b))
    assert not torch.equal(a[0].x, c[0].x)
    assert [len(p) for p in a] == [120, 50, 30]
    rows = torch.cat([p.x for p in a])
    assert len(torch.unique(rows, dim=0)) == 200


def test_stratified_split_keeps_class_balance():
    df = _frame(400)
    df["cls"] = (np.arange(400) % 4 == 0).astype(int)  # 25% positives
    data, _ = from_dataframe(df, [Task("cls", "binary")])
    tr, va, te = split(data, seed=0, stratify="cls")
    for part in (tr, va, te):
        assert part.targets["cls"].mean().item() == pytest.approx(0.25, abs=0.02)


def test_arrays_and_torch_dataset():
    r = np.random.default_rng(0)
    x = r.normal(size=(30, 3)).astype("float32")
    y = r.integers(0, 2, 30).astype(float)
    y[3] = np.nan
    tasks = [Task("y", "binary"), Task("z", "regression", dim=2)]
    z = r.normal(size=(30, 2))
    d = from_arrays(x, {"y": y, "z": z}, tasks)
    assert not d.masks["y"][3] and d.targets["z"].shape == (30, 2)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 30

        def __getitem__(self, i):
            return torch.tensor(x[i]), {"y": float(y[i]), "z": torch.tensor(z[i])}

    d2 = from_torch_dataset(DS(), tasks)
    assert torch.equal(d2.masks["y"], d.masks["y"])
    assert torch.allclose(d2.targets["z"], d.targets["z"])


def test_image_paths_with_two_label_columns(tmp_path):
    from PIL import Image

    rows = []
    for i in range(12):
        arr = (np.full((8, 8, 3), i * 20) % 255).astype("uint8")
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
        rows.append({"path": f"img{i}.png", "type": i % 3, "colour": i % 2})
    df = pd.DataFrame(rows)
    tasks = [Task("type", "multiclass", num_classes=3), Task("colour", "binary")]
    data, _ = from_dataframe(df, tasks, image_column="path", image_root=tmp_path)
    assert data.x.shape == (12, 3, 8, 8)
    assert data.x.max() <= 1.0
