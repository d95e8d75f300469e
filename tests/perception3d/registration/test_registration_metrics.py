"""Metric values on hand-made cases."""

from __future__ import annotations

import numpy as np

from perception3d.registration import metrics


def _rz(deg):
    a = np.radians(deg)
    t = np.eye(4)
    t[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return t


def test_rre_rte():
    est = _rz(30)
    est[:3, 3] = [0, 3, 4]
    assert abs(metrics.rotation_error(est, np.eye(4)) - 30.0) < 1e-9
    assert abs(metrics.translation_error(est, np.eye(4)) - 5.0) < 1e-12
    assert metrics.rotation_error(_rz(180), np.eye(4)) == 180.0


def test_inlier_ratio_and_fmr():
    src = np.zeros((4, 3))
    tgt = np.array([[0, 0, 0], [0.05, 0, 0], [0.2, 0, 0], [1, 0, 0]])
    assert metrics.inlier_ratio(src, tgt, np.eye(4), 0.1) == 0.5
    assert metrics.inlier_ratio(np.zeros((0, 3)), np.zeros((0, 3)), np.eye(4), 0.1) == 0.0
    assert metrics.feature_match_recall([0.5, 0.04, 0.06, 0.0]) == 0.5


def test_registration_recall_and_rmse():
    assert metrics.registration_recall([1, 2, 10], [0.1, 0.5, 0.1], max_rre=5, max_rte=0.3) == 1 / 3
    assert metrics.registration_recall([1, 1], [0.1, 0.1], max_rre=5, max_rte=np.array([0.2, 0.05])) == 0.5
    est = np.eye(4)
    est[:3, 3] = [0.1, 0, 0]
    assert abs(metrics.correspondence_rmse(est, np.eye(4), np.random.rand(10, 3)) - 0.1) < 1e-12
