import numpy as np
import pytest
import torch

from thgs.body import toy
from thgs.body.teeth import with_teeth
from thgs.synth.appearance import (
    MAT,
    PART,
    Appearance,
    make_palette,
    pixel_part,
    value_noise,
)
from thgs.synth.motion import semantic_joints


@pytest.fixture(scope="module")
def setup():
    body = with_teeth(toy.load())
    lo, hi = body.meta["teeth_vertex_range"]
    return body, Appearance(body, seed=0, teeth_vertices=torch.arange(lo, hi))


def _material_at(app, body, idx):
    v = body.v_template[idx]
    return app.materials(v, app.vertex_part[idx])


def test_parts_follow_the_skeleton(setup):
    body, app = setup
    sem = semantic_joints(body)
    rest = body.rest_joints()[0]
    v = body.v_template
    lo, hi = body.meta["teeth_vertex_range"]
    assert (app.vertex_part[lo:hi] == PART["teeth"]).all()
    assert (app.vertex_part == PART["cavity"]).any()  # the mouth's inside, hidden behind the lips at rest
    near = lambda p: int(((v[:lo] - p) ** 2).sum(1).argmin())
    assert app.vertex_part[near(rest[sem["left_elbow"]] + torch.tensor([0.1, 0, 0]))] == PART["forearm"]
    assert app.vertex_part[near(rest[sem["right_knee"]])] == PART["leg"]
    eye = torch.nonzero(app.vertex_part == PART["left_eye"]).squeeze(1)
    assert len(eye) and (body.lbs_weights[eye].argmax(1) == sem["left_eye"]).all()


def test_materials_land_where_they_belong(setup):
    body, app = setup
    v = body.v_template
    sem = semantic_joints(body)
    rest = body.rest_joints()[0]
    lo, hi = body.meta["teeth_vertex_range"]
    mat = app.materials(v, app.vertex_part)
    top = int(v[:lo, 1].argmax())
    assert mat[top] == MAT["hair"]
    assert (mat[body.mouth.upper_lip] == MAT["lips"]).float().mean() > 0.8
    assert (mat[body.mouth.lower_lip] == MAT["lips"]).float().mean() > 0.8
    assert (mat[lo:hi] == MAT["teeth"]).all()
    eye = torch.nonzero(app.vertex_part == PART["left_eye"]).squeeze(1)
    front = eye[v[eye, 2].argmax()]
    assert mat[front] == MAT["pupil"]
    chest = int(((v[:lo] - (rest[sem["spine2"]] + torch.tensor([0.0, 0.0, 0.2]))) ** 2).sum(1).argmin())
    assert mat[chest] in (MAT["shirt"], MAT["print"])
    knee = int(((v[:lo] - rest[sem["left_knee"]]) ** 2).sum(1).argmin())
    assert mat[knee] == MAT["trousers"]
    hand = int(((v[:lo] - rest[sem["left_middle2"]]) ** 2).sum(1).argmin())
    assert mat[hand] == MAT["skin"]


def test_albedo_is_deterministic_and_detailed(setup):
    body, app = setup
    # A line of points across the chest: stripes alternate along y.
    sem = semantic_joints(body)
    c = body.rest_joints()[0][sem["spine2"]]
    ys = torch.linspace(-0.08, 0.08, 200)
    p = torch.stack([torch.full_like(ys, float(c[0]) - 0.05), c[1] + ys, torch.full_like(ys, 0.12)], 1)
    part = torch.full((200,), PART["torso"])
    a = app.albedo(p, part)
    assert torch.equal(a, app.albedo(p, part))
    lum = a.mean(1)
    crossings = int(((lum[1:] > lum.mean()) != (lum[:-1] > lum.mean())).sum())
    assert crossings >= 5  # several stripes within 16 cm
    assert a.min() >= 0 and a.max() <= 1
    assert make_palette(0) == make_palette(0)


def test_noise_and_pixel_part():
    p = torch.rand(1000, 3)
    n = value_noise(p, 0.05, seed=3)
    assert n.min() >= 0 and n.max() < 1 and n.std() > 0.05
    assert torch.equal(n, value_noise(p, 0.05, seed=3))
    vp = torch.tensor([0, 1, 1])
    tri = torch.tensor([[0, 1, 2], [0, 1, 2]])
    bary = torch.tensor([[0.8, 0.1, 0.1], [0.4, 0.3, 0.3]])
    assert pixel_part(vp, tri, bary).tolist() == [0, 1]
    assert np.isfinite(n.numpy()).all()
