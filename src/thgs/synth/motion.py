"""Face and body motion of a talking speaker, for any body model, driven through semantic joint names.

Everything here is a deterministic function of the body's rest geometry, the mouth-shape track and a
numpy random generator. The motion is built from smooth signals (sums of low-frequency sinusoids with
random phases) and *events* (gesture strokes, nods, head turns, smiles, brow raises, blinks) shaped by
raised-cosine envelopes, so every joint angle is smooth in time.

Pose convention (thgs): local axis-angle per joint whose rest orientation is the identity, so a local
rotation is expressed in the world axes of the rest pose (y up, the body facing +z, left = +x) composed
after the parent's rotation. The arms are placed by direction targets (upper-arm and forearm directions in
the chest frame) converted into minimal rotations from each body's own rest bone directions, so the same
code drives a T-pose body (toy) and an A-pose one (anny).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from thgs.body.model import BodyModel
from thgs.synth.speech import MOUTH_NAMES

# Aliases: the first name of each tuple is the semantic name used here.
_ALIASES: dict[str, tuple[str, ...]] = {
    "left_eye": ("left_eye", "left_eye_smplhf"),
    "right_eye": ("right_eye", "right_eye_smplhf"),
}

FINGERS = ("index", "middle", "ring", "pinky", "thumb")

CONTROL_NAMES: tuple[str, ...] = ("smile", "brow_raise", "blink", "frown", "gesture_left", "gesture_right",
                                  "nod", "head_yaw", "head_pitch", "head_roll")
"""Per-frame controls recorded in truth.npz (expressions in [0, 1], head angles in radians)."""

# How each face control maps onto an expression basis: (expression name, weight) pairs; the first group
# whose names the body has is used.
EXPRESSION_RIGS: dict[str, list[list[tuple[str, float]]]] = {
    "jaw_open": [[("jaw_open", 1.0)], [("jawOpen", 0.8)]],
    "lip_round": [[("lip_round", 1.0)], [("mouthFunnel", 0.5), ("mouthPucker", 0.7)]],
    "lip_wide": [[("lip_wide", 1.0)], [("mouth_wide", 1.0)], [("mouth_stretch", 1.0)],
                 [("mouthStretchLeft", 0.5), ("mouthStretchRight", 0.5)], [("smile", 0.35)]],
    "lip_close": [[("lip_close", 1.0)], [("lip_press", 1.0)],
                  [("mouthPressLeft", 0.6), ("mouthPressRight", 0.6), ("mouthClose", 0.2)]],
    "smile": [[("smile", 1.0)], [("mouthSmileLeft", 0.8), ("mouthSmileRight", 0.8), ("cheekSquintLeft", 0.3),
                                  ("cheekSquintRight", 0.3)]],
    "brow_raise": [[("brow_raise", 1.0)], [("browInnerUp", 0.8), ("browOuterUpLeft", 0.7),
                                           ("browOuterUpRight", 0.7)]],
    "blink": [[("blink", 1.0)], [("eyeBlinkLeft", 1.0), ("eyeBlinkRight", 1.0)]],
    "frown": [[("frown", 1.0)], [("browDownLeft", 0.6), ("browDownRight", 0.6)]],
}


def semantic_joints(body: BodyModel) -> dict[str, int]:
    """Semantic (SMPL-X-like) joint name -> joint index, from ``meta['semantic_joints']`` or the joint names."""
    names = {n: i for i, n in enumerate(body.joint_names)}
    sem = dict(body.meta.get("semantic_joints") or {})
    out: dict[str, int] = {}
    for n, i in names.items():
        out[n] = i
    for n, i in sem.items():
        out[n] = int(i)
    for key, aliases in _ALIASES.items():
        for a in aliases:
            if a in out:
                out[key] = out[a]
                break
    return out


def expression_rig(body: BodyModel) -> dict[str, np.ndarray]:
    """Control name -> [E] expression vector for a unit control (zero vector when the body lacks it)."""
    names = {n: i for i, n in enumerate(body.expression_names)}
    E = body.num_expressions
    rig: dict[str, np.ndarray] = {}
    for control, groups in EXPRESSION_RIGS.items():
        vec = np.zeros(E, dtype=np.float32)
        for group in groups:
            if all(n in names for n, _ in group):
                for n, w in group:
                    vec[names[n]] = w
                break
        rig[control] = vec
    return rig


# -- smooth signals ----------------------------------------------------------------------------------

def smooth_noise(T: int, fps: float, rng: np.random.Generator, f_lo: float = 0.05, f_hi: float = 0.5,
                 n: int = 5) -> np.ndarray:
    """[T] sum of ``n`` sinusoids with random frequencies in [f_lo, f_hi] Hz and phases, |value| <= 1."""
    t = np.arange(T) / fps
    freqs = np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), n))
    amps = rng.uniform(0.5, 1.0, n) / np.sqrt(freqs / f_lo)  # pinkish: slow components dominate
    phases = rng.uniform(0, 2 * np.pi, n)
    s = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return s / amps.sum()


def _bump(t: np.ndarray, start: float, attack: float, hold: float, release: float) -> np.ndarray:
    """Raised-cosine envelope: 0 -> 1 over ``attack`` s, 1 for ``hold`` s, 1 -> 0 over ``release`` s."""
    out = np.zeros_like(t)
    a = (t - start) / max(attack, 1e-6)
    up = (a >= 0) & (a < 1)
    out[up] = 0.5 - 0.5 * np.cos(np.pi * a[up])
    h = (t >= start + attack) & (t < start + attack + hold)
    out[h] = 1.0
    r = (t - start - attack - hold) / max(release, 1e-6)
    down = (r >= 0) & (r < 1)
    out[down] = 0.5 + 0.5 * np.cos(np.pi * r[down])
    return out


def events(T: int, fps: float, rng: np.random.Generator, interval: tuple[float, float],
           attack: tuple[float, float], hold: tuple[float, float], release: tuple[float, float],
           amplitude: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """[T] a train of non-overlapping raised-cosine events spaced by ``interval`` seconds (uniform ranges)."""
    t = np.arange(T) / fps
    out = np.zeros(T)
    s = 0.5 * rng.uniform(*interval)
    end = T / fps
    while s < end:
        a, h, r = rng.uniform(*attack), rng.uniform(*hold), rng.uniform(*release)
        amp = rng.uniform(*amplitude)
        out = np.maximum(out, amp * _bump(t, s, a, h, r))
        s += a + h + r + rng.uniform(*interval)
    return out


# -- rotations ----------------------------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def rotation_between(a: np.ndarray, b: np.ndarray) -> Rotation:
    """Minimal rotations taking unit vectors ``a`` [..., 3] onto ``b`` [T, 3] (broadcast)."""
    a = np.broadcast_to(_unit(a), b.shape)
    b = _unit(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    c = (a * b).sum(-1, keepdims=True)
    angle = np.arctan2(s, c)
    rotvec = np.where(s > 1e-9, axis / np.maximum(s, 1e-12) * angle, 0.0)
    return Rotation.from_rotvec(rotvec.reshape(-1, 3))


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate vectors v [T, 3] about unit axes [T, 3] by angles [T] (Rodrigues)."""
    axis = _unit(axis)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return v * c + np.cross(axis, v) * s + axis * (axis * v).sum(-1, keepdims=True) * (1 - c)


@dataclass
class Motion:
    """Per-frame body parameters plus the controls that produced them.

    Attributes:
        pose: [T, J, 3] float32 local axis-angle.
        transl: [T, 3] float32 root translation (metres).
        expression: [T, E] float32 expression coefficients of the body's basis.
        betas: [S] float32 shape (zeros: the body's neutral shape).
        controls: [T, C] float32 named by :data:`CONTROL_NAMES`.
    """

    pose: np.ndarray
    transl: np.ndarray
    expression: np.ndarray
    betas: np.ndarray
    controls: np.ndarray
    control_names: tuple[str, ...] = field(default=CONTROL_NAMES)


@dataclass
class MotionStyle:
    """Amplitudes of the motion (radians / metres); the defaults describe a calm standing speaker."""

    head_yaw: float = np.radians(12.0)
    head_pitch: float = np.radians(5.0)
    head_roll: float = np.radians(4.0)
    nod: float = np.radians(9.0)
    torso: float = np.radians(3.0)
    sway: float = 0.015
    gesture_rate: float = 0.3  # gesture strokes per second per arm (mean)
    jaw_angle: float = np.radians(14.0)  # jaw joint rotation at jaw_open = 1 (bodies whose jaw is a joint)


def generate_motion(body: BodyModel, mouth: np.ndarray, fps: float, seed: int = 0,
                    style: MotionStyle | None = None, jaw_from_joint: float = 0.5) -> Motion:
    """Pose, translation and expressions for ``T = len(mouth)`` frames.

    Args:
        body: the body model to drive (its rest joints and expression names are used).
        mouth: [T, M] mouth-shape coefficients named :data:`thgs.synth.speech.MOUTH_NAMES`.
        fps: frame rate.
        seed: random seed (the motion is a deterministic function of body, mouth, fps and seed).
        style: motion amplitudes.
        jaw_from_joint: share of the jaw opening done by rotating the ``jaw`` joint (the rest by the
            expression basis); 0 when the body has no jaw joint.
    """
    style = style or MotionStyle()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3071]))
    T = int(mouth.shape[0])
    J = body.num_joints
    sem = semantic_joints(body)
    rest = body.rest_joints()[0].detach().cpu().numpy().astype(np.float64)  # [J, 3]
    t = np.arange(T) / fps
    local = np.zeros((T, J, 3))  # axis-angle per joint
    mats: dict[int, Rotation] = {}

    def has(*names: str) -> bool:
        return all(n in sem for n in names)

    def set_rot(name: str, rot: Rotation) -> None:
        if name in sem:
            local[:, sem[name]] = rot.as_rotvec()
            mats[sem[name]] = rot

    def euler(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> Rotation:
        """Yaw about y, then pitch about x, then roll about z (intrinsic), angles [T]."""
        return Rotation.from_euler("YXZ", np.stack([yaw, pitch, roll], 1))

    # -- root, torso ------------------------------------------------------------------------------
    sway_x = smooth_noise(T, fps, rng, 0.03, 0.25)
    sway_z = smooth_noise(T, fps, rng, 0.03, 0.2)
    breath = np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 2 * np.pi))
    transl = np.stack([style.sway * sway_x, 0.003 * breath, 0.6 * style.sway * sway_z], 1)
    root_yaw = np.radians(4.0) * smooth_noise(T, fps, rng, 0.03, 0.2)
    root_roll = -0.6 * style.torso * sway_x  # weight shift tilts the pelvis against the sway
    root_pitch = 0.3 * style.torso * smooth_noise(T, fps, rng, 0.05, 0.3)
    root = euler(root_pitch, root_yaw, root_roll)
    local[:, 0] = root.as_rotvec()
    # Legs stay vertical in the world: the hips undo the pelvis rotation.
    for hip in ("left_hip", "right_hip"):
        set_rot(hip, root.inv())
    for k, name in enumerate(("spine1", "spine2", "spine3")):
        w = (1.0, 0.8, 0.6)[k]
        set_rot(name, euler(w * style.torso * smooth_noise(T, fps, rng, 0.05, 0.4) + 0.004 * breath,
                            w * style.torso * smooth_noise(T, fps, rng, 0.05, 0.4),
                            w * (style.torso * smooth_noise(T, fps, rng, 0.05, 0.4) + 0.5 * (-root_roll))))

    # -- head -------------------------------------------------------------------------------------
    turns = events(T, fps, rng, (2.0, 5.0), (0.4, 0.8), (0.6, 2.0), (0.5, 0.9), (-1.0, 1.0))
    yaw = style.head_yaw * (0.5 * smooth_noise(T, fps, rng, 0.05, 0.4) + 0.8 * turns)
    nods = events(T, fps, rng, (2.5, 6.0), (0.15, 0.25), (0.0, 0.1), (0.25, 0.4))
    pitch = style.head_pitch * smooth_noise(T, fps, rng, 0.05, 0.5) + style.nod * nods
    roll = style.head_roll * smooth_noise(T, fps, rng, 0.05, 0.4)
    set_rot("neck", euler(0.4 * pitch, 0.4 * yaw, 0.4 * roll))
    set_rot("head", euler(0.6 * pitch, 0.6 * yaw, 0.6 * roll))

    # -- eyes: saccades between fixations ----------------------------------------------------------
    if has("left_eye", "right_eye"):
        gaze = np.zeros((T, 2))
        s = 0.0
        while s < T / fps:
            k = int(s * fps)
            gaze[k:] = rng.uniform(-1, 1, 2) * np.radians([6.0, 10.0])
            s += rng.uniform(0.4, 2.0)
        kern = np.exp(-0.5 * (np.arange(-3, 4) / 1.0) ** 2)
        kern /= kern.sum()
        gaze = np.stack([np.convolve(np.pad(gaze[:, i], 3, mode="edge"), kern, mode="valid") for i in range(2)], 1)
        # Counter-rotate part of the head yaw (the eyes keep looking near the camera).
        gaze[:, 1] -= 0.5 * yaw
        eye_rot = euler(gaze[:, 0], gaze[:, 1], np.zeros(T))
        set_rot("left_eye", eye_rot)
        set_rot("right_eye", eye_rot)

    # -- arms -------------------------------------------------------------------------------------
    controls: dict[str, np.ndarray] = {}
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        g = events(T, fps, rng, (0.5 / style.gesture_rate, 1.8 / style.gesture_rate), (0.3, 0.5),
                   (0.4, 1.4), (0.4, 0.7), (0.5, 1.0))
        beat = np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * t + rng.uniform(0, 2 * np.pi))
        controls[f"gesture_{side}"] = g
        if not has(f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist"):
            continue
        sh, el, wr = sem[f"{side}_shoulder"], sem[f"{side}_elbow"], sem[f"{side}_wrist"]
        r_u = _unit(rest[el] - rest[sh])
        r_f = _unit(rest[wr] - rest[el])
        n1 = smooth_noise(T, fps, rng, 0.05, 0.5)
        n2 = smooth_noise(T, fps, rng, 0.05, 0.5)
        n3 = smooth_noise(T, fps, rng, 0.05, 0.5)
        abduct = np.radians(12.0 + 3.0 * n1 + 8.0 * g)
        # A stroke swings the upper arm forward with the forearm about level: the hand stays at chest height.
        flex = np.radians(9.0 + 4.0 * n2 + 22.0 * g + 3.0 * g * beat)
        elbow = np.radians(78.0 + 6.0 * n3 + 4.0 * g + 8.0 * g * beat)
        inward = np.radians(17.0 + 5.0 * n1 - 10.0 * g)
        # Upper-arm direction in the chest frame.
        d_u = np.stack([sgn * np.sin(abduct) * np.cos(flex), -np.cos(abduct) * np.cos(flex), np.sin(flex)], 1)
        hinge = np.cross(d_u, np.array([0.0, 0.0, 1.0])[None].repeat(T, 0))
        d_f = _rotate_about(d_u, hinge, elbow)
        d_f = _rotate_about(d_f, d_u, sgn * inward)
        shrug = Rotation.from_rotvec(np.stack([np.zeros(T), np.zeros(T), sgn * np.radians(2.0) * g], 1))
        set_rot(f"{side}_collar", shrug)
        rs = rotation_between(r_u, shrug.inv().apply(d_u))
        set_rot(f"{side}_shoulder", rs)
        re = rotation_between(r_f, (shrug * rs).inv().apply(d_f))
        set_rot(f"{side}_elbow", re)
        # Hand: wrist flexion and forearm twist, fingers curling toward the palm.
        hand = _hand_frame(rest, sem, side)
        if hand is None:
            continue
        f_dir, curl_axis, thumb_axis = hand
        wflex = np.radians(10.0 * smooth_noise(T, fps, rng, 0.1, 0.8) - 8.0 * g)
        wtwist = np.radians(12.0 * smooth_noise(T, fps, rng, 0.05, 0.5))
        wrot = Rotation.from_rotvec(curl_axis[None] * wflex[:, None]) * Rotation.from_rotvec(
            f_dir[None] * wtwist[:, None])
        set_rot(f"{side}_wrist", wrot)
        open_hand = 0.6 * g
        for finger in FINGERS:
            var = smooth_noise(T, fps, rng, 0.1, 0.6)
            for seg in (1, 2, 3):
                name = f"{side}_{finger}{seg}"
                if name not in sem:
                    continue
                if finger == "thumb":
                    ang = np.radians((8.0, 12.0, 10.0)[seg - 1] + 6.0 * var) * (1.0 - 0.5 * open_hand)
                    axis = thumb_axis
                else:
                    base = (22.0, 28.0, 18.0)[seg - 1] * (1.0 + 0.15 * FINGERS.index(finger))
                    ang = np.radians(base + 12.0 * var) * (1.0 - open_hand)
                    axis = curl_axis
                set_rot(name, Rotation.from_rotvec(axis[None] * ang[:, None]))

    # -- face: expressions independent of speech, plus the mouth ----------------------------------
    smile = np.clip(0.12 + 0.08 * smooth_noise(T, fps, rng, 0.03, 0.2)
                    + events(T, fps, rng, (3.0, 8.0), (0.4, 0.8), (1.0, 3.0), (0.6, 1.2), (0.3, 0.8)), 0, 1)
    brow = events(T, fps, rng, (2.5, 6.0), (0.15, 0.3), (0.2, 1.0), (0.3, 0.6), (0.4, 1.0))
    frown = events(T, fps, rng, (6.0, 14.0), (0.3, 0.5), (0.5, 1.5), (0.4, 0.8), (0.3, 0.6)) * (1 - brow)
    blink = events(T, fps, rng, (2.0, 5.5), (0.06, 0.08), (0.0, 0.03), (0.1, 0.14))
    controls.update(smile=smile, brow_raise=brow, blink=blink, frown=frown, nod=nods,
                    head_yaw=yaw, head_pitch=pitch, head_roll=roll)

    rig = expression_rig(body)
    mouth = np.asarray(mouth, dtype=np.float64)
    jaw = mouth[:, MOUTH_NAMES.index("jaw_open")]
    has_jaw = "jaw" in sem and jaw_from_joint > 0
    jaw_expr_share = 1.0 - jaw_from_joint if has_jaw else 1.0
    expr = np.zeros((T, body.num_expressions))
    for k, name in enumerate(MOUTH_NAMES):
        share = jaw_expr_share if name == "jaw_open" else 1.0
        expr += share * mouth[:, k: k + 1] * rig[name][None]
    for name, sig in (("smile", smile), ("brow_raise", brow), ("blink", blink), ("frown", frown)):
        expr += sig[:, None] * rig[name][None]
    if has_jaw:
        set_rot("jaw", Rotation.from_rotvec(
            np.stack([jaw_from_joint * style.jaw_angle * jaw, np.zeros(T), np.zeros(T)], 1)))

    ctrl = np.stack([controls[n] for n in CONTROL_NAMES], 1).astype(np.float32)
    S = body.num_betas
    return Motion(pose=local.astype(np.float32), transl=transl.astype(np.float32),
                  expression=expr.astype(np.float32), betas=np.zeros(S, dtype=np.float32), controls=ctrl)


def _hand_frame(rest: np.ndarray, sem: dict[str, int], side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rest-pose finger direction, finger curl axis and thumb curl axis of one hand (unit [3] each)."""
    need = [f"{side}_wrist", f"{side}_middle1", f"{side}_index1", f"{side}_pinky1"]
    if not all(n in sem for n in need):
        return None
    wrist = rest[sem[f"{side}_wrist"]]
    f_dir = _unit(rest[sem[f"{side}_middle1"]] - wrist)
    across = _unit(rest[sem[f"{side}_index1"]] - rest[sem[f"{side}_pinky1"]])  # toward the thumb side
    palm = _unit(np.cross(f_dir, across) if side == "left" else np.cross(across, f_dir))
    curl_axis = _unit(np.cross(f_dir, palm))
    if f"{side}_thumb1" in sem and f"{side}_thumb2" in sem:
        t_dir = _unit(rest[sem[f"{side}_thumb2"]] - rest[sem[f"{side}_thumb1"]])
        thumb_axis = _unit(np.cross(t_dir, palm))
    else:
        thumb_axis = curl_axis
    return f_dir, curl_axis, thumb_axis
