import numpy as np
import pytest
import torch

from thgs.body import toy
from thgs.core.rotations import axis_angle_to_matrix
from thgs.synth import speech as sp
from thgs.synth.motion import (
    CONTROL_NAMES,
    expression_rig,
    generate_motion,
    semantic_joints,
)

FPS = 25.0


@pytest.fixture(scope="module")
def body():
    return toy.load()


@pytest.fixture(scope="module")
def mouth():
    samples, track = sp.synthesize_speech(30.0, seed=1)
    return sp.mouth_from_audio(samples, track.per_sample(), FPS, int(30 * FPS))


@pytest.fixture(scope="module")
def motion(body, mouth):
    return generate_motion(body, mouth, FPS, seed=1, jaw_from_joint=1.0)


def test_shapes_and_determinism(body, mouth, motion):
    T = len(mouth)
    assert motion.pose.shape == (T, body.num_joints, 3) and motion.pose.dtype == np.float32
    assert motion.transl.shape == (T, 3) and motion.expression.shape == (T, body.num_expressions)
    assert motion.betas.shape == (body.num_betas,) and not motion.betas.any()
    assert motion.controls.shape == (T, len(CONTROL_NAMES))
    again = generate_motion(body, mouth, FPS, seed=1, jaw_from_joint=1.0)
    assert np.array_equal(again.pose, motion.pose) and np.array_equal(again.expression, motion.expression)
    other = generate_motion(body, mouth, FPS, seed=2, jaw_from_joint=1.0)
    assert not np.array_equal(other.pose, motion.pose)


def test_motion_is_smooth_and_moderate(body, motion):
    R = axis_angle_to_matrix(torch.from_numpy(motion.pose).double())
    rel = R[1:].transpose(-1, -2) @ R[:-1]
    step = torch.acos(((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))  # [T-1, J]
    fast = [body.joint_index(n) for n in ("jaw", "left_eye_smplhf", "right_eye_smplhf")]  # speech, saccades
    limbs = torch.ones(body.num_joints, dtype=torch.bool)
    limbs[fast] = False
    assert step[:, limbs].max() < np.radians(9.0)  # at most 225 deg/s
    assert step[:, fast].max() < np.radians(15.0)
    total = torch.acos(((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
    assert total.max() < np.radians(120)
    assert np.abs(np.diff(motion.transl, axis=0)).max() < 0.005
    assert np.abs(motion.transl).max() < 0.05


def test_hands_stay_in_front_of_the_body_and_below_the_face(body, motion):
    sem = semantic_joints(body)
    T = len(motion.pose)
    with torch.no_grad():
        out = body(torch.from_numpy(motion.pose), None, None, torch.from_numpy(motion.transl))
    j = out.joints
    chest_z = j[:, sem["spine3"], 2]
    for side in ("left", "right"):
        wrist = j[:, sem[f"{side}_wrist"]]
        assert (wrist[:, 2] > chest_z + 0.05).float().mean() > 0.95  # in front of the chest
        assert (wrist[:, 1] < j[:, sem["neck"], 1]).all()  # never above the neck
    # the hands never cross the body's midline
    assert (j[:, sem["left_wrist"], 0] > j[:, sem["right_wrist"], 0]).all()
    # head turns and nods happen
    head_yaw = motion.controls[:, CONTROL_NAMES.index("head_yaw")]
    assert np.radians(3) < np.abs(head_yaw).max() < np.radians(25)
    assert T == len(head_yaw)


def test_mouth_drives_jaw_and_expressions_independent_of_speech(body, mouth, motion):
    sem = semantic_joints(body)
    jaw = motion.pose[:, sem["jaw"], 0]
    assert np.corrcoef(jaw, mouth[:, 0])[0, 1] > 0.999  # jaw angle follows jaw_open
    rig = expression_rig(body)
    names = body.expression_names
    assert rig["lip_round"][names.index("lip_round")] == 1.0 and rig["blink"][names.index("blink")] == 1.0
    blink = motion.controls[:, CONTROL_NAMES.index("blink")]
    n_blinks = int(((blink[1:] > 0.5) & (blink[:-1] <= 0.5)).sum())
    assert 6 <= n_blinks <= 20  # 12-40 per minute over 30 s
    smile = motion.controls[:, CONTROL_NAMES.index("smile")]
    brow = motion.controls[:, CONTROL_NAMES.index("brow_raise")]
    assert smile.max() > 0.3 and brow.max() > 0.3
    # brow raises are not tied to the mouth
    assert abs(np.corrcoef(brow, mouth[:, 0])[0, 1]) < 0.3
    e = motion.expression[:, names.index("blink")]
    assert np.allclose(e, blink, atol=1e-6)
    # with the jaw done by the joint, the jaw_open expression is unused; without it, it carries the mouth
    assert np.abs(motion.expression[:, names.index("jaw_open")]).max() == 0
    by_expr = generate_motion(body, mouth, FPS, seed=1, jaw_from_joint=0.0)
    assert np.allclose(by_expr.expression[:, names.index("jaw_open")], mouth[:, 0], atol=1e-6)
    assert not by_expr.pose[:, sem["jaw"]].any()
