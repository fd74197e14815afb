"""The inform file: the original's statistics formulas, its pickle format, and safe loading."""
import os
import pickle

import cv2
import numpy as np
import pytest

from dataset.inform import compute_inform, get_inform, read_inform
from utils.errors import UserError


def test_inform_matches_the_formulas_on_a_hand_checked_example(tmp_path):
    root = tmp_path
    (root / "img").mkdir()
    a = np.zeros((2, 2, 3), np.uint8)
    a[..., 0], a[..., 1], a[..., 2] = 10, 20, 30             # BGR
    b = np.zeros((2, 2, 3), np.uint8)
    b[0, :, 0], b[1, :, 0] = 0, 40                           # blue 0/40 -> mean 20, std 20
    la = np.array([[0, 0], [1, 255]], np.uint8)
    lb = np.array([[2, 2], [2, 2]], np.uint8)
    for name, img, lab in (("a", a, la), ("b", b, lb)):
        cv2.imwrite(str(root / "img" / f"{name}.png"), img)
        cv2.imwrite(str(root / "img" / f"{name}_l.png"), lab)
    (root / "list.txt").write_text("img/a.png img/a_l.png\nimg/b.png img/b_l.png\n")
    info = compute_inform(str(root), "list.txt", 3, 255)
    assert info["mean"].tolist() == pytest.approx([(10 + 20) / 2, 20 / 2, 30 / 2])
    assert info["std"].tolist() == pytest.approx([(0 + 20) / 2, 0, 0])
    share = np.array([2, 1, 4]) / 7                          # class pixels among the 7 labelled ones
    assert info["classWeights"].tolist() == pytest.approx((1 / np.log(1.10 + share)).tolist(), rel=1e-6)
    assert all(v.dtype == np.float32 for v in info.values())


def test_original_style_inform_pickle_loads_and_foreign_pickles_are_refused(tmp_path):
    original = {"mean": np.array([73.158, 82.909, 72.392], np.float32),
                "std": np.array([47.6, 48.5, 47.7], np.float32),
                "classWeights": np.ones(19, np.float32)}
    for protocol in (2, 3, 4):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(original, protocol=protocol))
        assert read_inform(str(path))["mean"].tolist() == pytest.approx(original["mean"].tolist())
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"mean": Evil()}))
    with pytest.raises(UserError, match="not a valid statistics file"):
        read_inform(str(bad))
    assert not marker.exists()
    with pytest.raises(UserError, match="19 classes but --classes is 11"):
        path = tmp_path / "ok3.pkl"
        get_inform(str(path), str(tmp_path), "none.txt", 11, 11)
