"""The viser GUI around :mod:`thgs.viewer.core`: controls edit a :class:`ViewerState`, a render thread turns
it into an image per connected browser (with that browser's camera) and streams it as the scene
background.

Audio: the driving sequence's sound is put in the panel as an ``<audio>`` element holding a WAV data URL.
"Load speech" takes a speech file from the browser and drives the avatar with it (face from the run's
speech model, body replayed: :func:`thgs.viewer.session.with_speech`), replacing the sequence and its sound.
The server's clock drives the timeline; on play, pause, scrub and once a second while playing the server
replaces a tiny hidden HTML element whose ``onerror`` handler seeks / plays / pauses that ``<audio>``
element (threshold 0.2 s), so the sound follows the timeline. Browsers play sound only after the user
has interacted with the page; pressing the panel's Play button counts.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from thgs.viewer import core
from thgs.viewer.core import ViewerState
from thgs.viewer.session import AvatarSession

AUDIO_ID = "thgs-audio"
RESYNC_S = 1.0
CPU_MAX_HEIGHT = 256
GPU_MAX_HEIGHT = 1080


def default_max_height(session: AvatarSession) -> int:
    """Largest streamed image height: 1080 px on a GPU, 256 px for the CPU reference renderer."""
    return GPU_MAX_HEIGHT if session.device.type == "cuda" else CPU_MAX_HEIGHT


def wav_data_url(samples: np.ndarray, sample_rate: int) -> str:
    """Mono float samples in [-1, 1] -> ``data:audio/wav;base64,...`` (16-bit PCM)."""
    from thgs.io.audio_io import wav_bytes

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim > 1:
        x = x.mean(axis=tuple(range(1, x.ndim)))
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(x, sample_rate)).decode("ascii")


def audio_command(n: int, seconds: float, playing: bool, muted: bool) -> str:
    """HTML whose insertion runs a script that aligns the page's ``<audio>`` element with the timeline
    (``n`` makes every command distinct so that the page re-inserts it)."""
    js = (f"var a=document.getElementById('{AUDIO_ID}');if(a){{a.muted={'true' if muted else 'false'};"
          f"var t={seconds:.3f};")
    if playing:
        js += "if(Math.abs(a.currentTime-t)>0.2){a.currentTime=t;}if(a.paused){a.play().catch(function(e){});}"
    else:
        js += "a.pause();a.currentTime=t;"
    js += "}"
    return f'<img alt="" style="display:none" data-n="{n}" src="data:," onerror="{js}">'


@dataclass
class Stats:
    """Render timings of the last second."""

    times: list[tuple[float, float]] = field(default_factory=list)  # (end wall time, seconds)
    size: tuple[int, int] = (0, 0)
    last_ms: float | None = None

    def add(self, seconds: float, size: tuple[int, int]) -> None:
        self.times.append((time.perf_counter(), seconds))
        self.last_ms = 1000 * seconds
        self.size = size

    def text(self, backend: str) -> str:
        now = time.perf_counter()
        self.times = [x for x in self.times if now - x[0] <= 1.0]
        if not self.times:
            if self.last_ms is None:
                return "render: waiting for a browser"
            return f"render: idle (last frame {self.last_ms:.1f} ms, {self.size[0]}x{self.size[1]}, {backend})"
        ms = 1000 * sum(s for _, s in self.times) / len(self.times)
        span = self.times[-1][0] - self.times[0][0]
        fps = (len(self.times) - 1) / span if len(self.times) > 1 and span > 0 else 1000 / max(ms, 1e-6)
        return f"render: **{fps:.1f} fps**, {ms:.1f} ms/frame, {self.size[0]}x{self.size[1]}, {backend}"


class ViewerApp:
    """The web viewer for one :class:`AvatarSession`.

    Args:
        session: the opened run.
        host, port: where to listen (port 0: any free port).
        max_height: largest streamed image height (0: :func:`default_max_height`).
        jpeg_quality: quality of the streamed JPEG images.
    """

    def __init__(self, session: AvatarSession, host: str = "127.0.0.1", port: int = 8080, max_height: int = 0,
                 jpeg_quality: int = 85) -> None:
        import viser

        self.session = session
        self.max_height = max_height or default_max_height(session)
        self.jpeg_quality = int(jpeg_quality)
        from thgs.viewer.encode import FrameSender

        self.sender = FrameSender(self.jpeg_quality)
        self.lock = threading.RLock()
        self.render_lock = threading.Lock()
        names = session.expression_names
        self.slider_names = core.slider_names(names)
        self.state = ViewerState(sliders=tuple(0.0 for _ in self.slider_names), saam=session.has_saam,
                                 leb=session.has_leb)
        self.version = 0
        self.playing = False
        self.loop = True
        self.muted = False
        self.clock = (time.perf_counter(), 0.0)  # (wall time, sequence seconds) when playback (re)started
        self.last_sync = 0.0
        self.command_n = 0
        self.sent: dict[int, tuple] = {}
        self.overlay_key: tuple | None = (None, (False, False))
        self.overlay_shown = (False, False)
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.target = core.body_center(session, 0)
        self.home = core.view_from_camera(session.camera, self.target)

        self.server = viser.ViserServer(host=host, port=port, label="thgs viewer", verbose=False)
        self.server.scene.set_up_direction(tuple(float(x) for x in self.home.up))
        self.server.scene.world_axes.visible = False
        self._build_gui()
        self.server.on_client_connect(self._on_connect)
        self.thread = threading.Thread(target=self._render_loop, name="thgs-viewer-render", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.server.get_host()}:{self.server.get_port()}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.server.stop()

    # -- state ----------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """Replace fields of the state (thread-safe) and mark every view stale."""
        with self.lock:
            new = self.state.with_(**changes)
            if new != self.state:
                self.state = new
                self.version += 1

    def seconds(self) -> float:
        """The timeline position in seconds."""
        with self.lock:
            if not self.playing:
                return self.state.frame / self.session.fps
            wall, t0 = self.clock
            return t0 + (time.perf_counter() - wall)

    # -- GUI ---------------------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        s = self.session
        gui = self.server.gui
        T = s.num_frames
        with gui.add_folder("Playback"):
            self.play_button = gui.add_button("Play")
            self.timeline = gui.add_slider("Frame", min=0, max=max(1, T - 1), step=1, initial_value=0,
                                           disabled=T <= 1)
            self.time_text = gui.add_markdown(self._time_text(0))
            self.loop_box = gui.add_checkbox("Loop", initial_value=True)
            self.sound_box = gui.add_checkbox("Sound", initial_value=True, disabled=s.drive.clip is None)
            self.speech_button = gui.add_upload_button("Load speech", icon="upload", mime_type="audio/*,video/*",
                                                       hint="drive the avatar with a speech file (face and body)")
        clip = s.drive.clip
        audio_html = (f'<audio id="{AUDIO_ID}" preload="auto" src="{wav_data_url(*clip)}"></audio>'
                      if clip is not None and len(clip[0]) else "")
        self.audio_el = gui.add_html(audio_html)
        self.audio_cmd = gui.add_html("")

        lo, hi = core.slider_range(s.expression_names)
        with gui.add_folder("Expression"):
            self.source = gui.add_dropdown("Source", options=("sequence", "sliders", "blend"), initial_value="sequence")
            self.neutral = gui.add_button("Neutral")
            self.sliders = [gui.add_slider(name, min=lo, max=hi, step=0.01, initial_value=0.0)
                            for name in self.slider_names]
        presets = ["neutral", "sliders", "frame", *[f"{n} = 1" for n in self.slider_names]]
        with gui.add_folder("Blend A to B (Fig. 6)"):
            self.pick_a = gui.add_dropdown("A", options=presets, initial_value="neutral")
            self.pick_b = gui.add_dropdown("B", options=presets, initial_value=presets[3] if len(presets) > 3 else "sliders")
            self.blend = gui.add_slider("t", min=0.0, max=1.0, step=0.01, initial_value=0.0)
        with gui.add_folder("View"):
            self.reset_cam = gui.add_button("Reset camera")
            self.saam_box = gui.add_checkbox("SAAM", initial_value=s.has_saam, disabled=not s.has_saam)
            self.leb_box = gui.add_checkbox("LEB", initial_value=s.has_leb, disabled=not s.has_leb)
            self.skeleton_box = gui.add_checkbox("Skeleton", initial_value=False)
            self.mesh_box = gui.add_checkbox("Template mesh", initial_value=False)
            self.height_slider = gui.add_slider("Max height (px)", min=64, max=max(64, self.max_height * 2), step=16,
                                                initial_value=self.max_height)
        self.stats_text = gui.add_markdown("render: idle")
        with self.lock:
            self.update(expr_a=self._preset("neutral"), expr_b=self._preset(self.pick_b.value))

        self.play_button.on_click(lambda _: self._toggle_play())
        self.timeline.on_update(self._on_timeline)
        self.loop_box.on_update(lambda e: setattr(self, "loop", bool(self.loop_box.value)))
        self.sound_box.on_update(lambda e: self._on_sound())
        self.speech_button.on_upload(lambda e: self._on_speech(self.speech_button.value))
        self.source.on_update(lambda e: self.update(expression_source=self.source.value))
        self.neutral.on_click(lambda _: self._on_neutral())
        for sl in self.sliders:
            sl.on_update(self._on_slider)
        self.pick_a.on_update(lambda e: self._on_pick("a"))
        self.pick_b.on_update(lambda e: self._on_pick("b"))
        self.blend.on_update(self._on_blend)
        self.reset_cam.on_click(lambda e: self._reset_camera(e.client) if e.client is not None else None)
        self.saam_box.on_update(lambda e: self.update(saam=bool(self.saam_box.value)))
        self.leb_box.on_update(lambda e: self.update(leb=bool(self.leb_box.value)))
        self.skeleton_box.on_update(lambda e: self._force_overlays())
        self.mesh_box.on_update(lambda e: self._force_overlays())
        self.height_slider.on_update(lambda e: self._on_height())

    def _time_text(self, frame: int) -> str:
        s = self.session
        return f"{frame / s.fps:.2f} s / {s.duration:.2f} s ({s.num_frames} frames at {s.fps:g} fps)"

    def _preset(self, name: str) -> tuple[float, ...]:
        E = self.session.model.body.num_expressions
        if name == "neutral":
            return tuple(0.0 for _ in range(E))
        if name == "sliders":
            return tuple(float(sl.value) for sl in self.sliders)
        if name == "frame":
            return tuple(core.state_expression(self.session, self.state.with_(expression_source="sequence")).tolist())
        if name.endswith(" = 1") and name[:-4] in self.slider_names:
            v = [0.0] * E
            v[self.slider_names.index(name[:-4])] = 1.0
            return tuple(v)
        raise ValueError(f"unknown expression preset {name!r}")

    def _set_source(self, source: str) -> None:
        if self.source.value != source:
            self.source.value = source  # its callback updates the state
        self.update(expression_source=source)

    def _on_slider(self, event) -> None:
        with self.lock:
            self.update(sliders=tuple(float(sl.value) for sl in self.sliders))
            if event.client is not None:
                self._set_source("sliders")

    def _on_neutral(self) -> None:
        with self.lock:
            for sl in self.sliders:
                sl.value = 0.0
            self.update(sliders=tuple(0.0 for _ in self.sliders))
            self._set_source("sliders")

    def _on_pick(self, which: str) -> None:
        with self.lock:
            pick = self.pick_a if which == "a" else self.pick_b
            self.update(**{f"expr_{which}": self._preset(pick.value)})

    def _on_blend(self, event) -> None:
        with self.lock:
            self.update(blend=float(self.blend.value))
            if event.client is not None:
                self._set_source("blend")

    def _on_height(self) -> None:
        with self.lock:
            self.max_height = int(self.height_slider.value)
            self.version += 1

    def _force_overlays(self) -> None:
        with self.lock:
            self.overlay_key = None

    def _on_sound(self) -> None:
        with self.lock:
            self.muted = not bool(self.sound_box.value)
            self._send_audio(self.seconds())

    def _on_speech(self, upload) -> None:
        """A speech file from the browser: drive the avatar with it (thgs.animate.speech), from frame 0."""
        import tempfile
        from pathlib import Path

        from thgs.viewer.session import with_speech

        suffix = Path(upload.name).suffix or ".wav"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"speech{suffix}"
            path.write_bytes(upload.content)
            try:
                session = with_speech(self.session, path)
            except Exception as exc:  # show the problem in the panel, keep the current sequence
                self.stats_text.content = f"speech: {upload.name}: {exc}"
                return
        with self.lock, self.render_lock:
            self.session = session
            self.playing = False
            self.play_button.label = "Play"
            T = session.num_frames
            self.timeline.max = max(1, T - 1)
            self.timeline.disabled = T <= 1
            self.timeline.value = 0
            self.time_text.content = self._time_text(0)
            clip = session.drive.clip
            self.audio_el.content = (f'<audio id="{AUDIO_ID}" preload="auto" src="{wav_data_url(*clip)}"></audio>'
                                     if clip is not None and len(clip[0]) else "")
            self.sound_box.disabled = clip is None
            self.source.value = "sequence"
            self.update(frame=0, expression_source="sequence")
            self.version += 1

    def _toggle_play(self) -> None:
        with self.lock:
            if self.playing:
                t = self.seconds()
                self.playing = False
                self.play_button.label = "Play"
                self._send_audio(self.state.frame / self.session.fps)
            else:
                t = self.state.frame / self.session.fps
                if self.state.frame >= self.session.num_frames - 1:
                    t = 0.0
                self.clock = (time.perf_counter(), t)
                self.playing = True
                self.play_button.label = "Pause"
                self._send_audio(t)

    def _on_timeline(self, event) -> None:
        if event.client is None:  # the server moved it during playback
            return
        with self.lock:
            frame = int(self.timeline.value)
            self.update(frame=frame)
            self.time_text.content = self._time_text(frame)
            if self.playing:
                self.clock = (time.perf_counter(), frame / self.session.fps)
            self._send_audio(frame / self.session.fps)

    def _send_audio(self, seconds: float) -> None:
        if not self.audio_el.content:
            return
        self.command_n += 1
        self.last_sync = time.perf_counter()
        self.audio_cmd.content = audio_command(self.command_n, seconds, self.playing, self.muted)

    # -- cameras --------------------------------------------------------------------------------------
    def _on_connect(self, client) -> None:
        self._reset_camera(client)
        client.camera.on_update(lambda _: None)  # camera changes are picked up by the render loop

    def _reset_camera(self, client) -> None:
        h = self.home
        with client.atomic():
            client.camera.fov = float(h.fov_y)
            client.camera.up_direction = tuple(float(x) for x in h.up)
            client.camera.position = tuple(float(x) for x in h.position)
            client.camera.look_at = tuple(float(x) for x in h.look_at)

    def _client_camera(self, client):
        cam = client.camera
        try:
            if cam.image_height <= 0 or cam.image_width <= 0 or cam.fov <= 0:
                return None, None
            key = (tuple(np.round(cam.position, 6)), tuple(np.round(cam.wxyz, 6)), round(float(cam.fov), 6),
                   cam.image_width, cam.image_height)
            height = min(self.max_height, int(cam.image_height))
            return core.camera_from_view(cam.position, cam.wxyz, float(cam.fov), float(cam.aspect), height), key
        except AssertionError:  # no camera message from this client yet
            return None, None

    # -- render loop ----------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Move the timeline when playing (looping or stopping at the end) and keep the sound aligned."""
        s = self.session
        with self.lock:
            if not self.playing:
                return
            t = self.seconds()
            if t >= s.duration:
                if self.loop:
                    t = math.fmod(t, s.duration)
                    self.clock = (time.perf_counter(), t)
                    self._send_audio(t)
                else:
                    t = (s.num_frames - 1) / s.fps
                    self.playing = False
                    self.play_button.label = "Play"
                    self._send_audio(t)
            frame = min(s.num_frames - 1, int(t * s.fps))
            if frame != self.state.frame:
                self.update(frame=frame)
                self.timeline.value = frame
                self.time_text.content = self._time_text(frame)
            if self.playing and time.perf_counter() - self.last_sync > RESYNC_S:
                self._send_audio(t)

    def _update_overlays(self) -> None:
        """Show / hide / re-pose the skeleton and template-mesh overlays (drawn by the browser over the image)."""
        with self.lock:
            state, version = self.state, self.version
            show = (bool(self.skeleton_box.value), bool(self.mesh_box.value))
            key = (version if any(show) else None, show)
            if self.overlay_key == key:
                return
            self.overlay_key = key
        scene = self.server.scene
        g = core.body_geometry(self.session, state) if any(show) else None
        if g is not None and show[0]:
            scene.add_line_segments("/thgs/skeleton", g.bones.astype(np.float32), colors=(255, 40, 40),
                                    thickness=3.0, thickness_units="screen")
        elif self.overlay_shown[0]:
            scene.remove_by_name("/thgs/skeleton")
        if g is not None and show[1]:
            scene.add_mesh_simple("/thgs/mesh", g.vertices.astype(np.float32), g.faces, color=(90, 160, 255),
                                  wireframe=True, opacity=0.5)
        elif self.overlay_shown[1]:
            scene.remove_by_name("/thgs/mesh")
        self.overlay_shown = show

    def render_for(self, client) -> bool:
        """Render and send a new image to ``client`` if its camera or the state changed. Returns whether it did."""
        return self.render_clients([client]) > 0

    def render_clients(self, clients) -> int:
        """Render and send a new image to each of ``clients`` whose camera or the state changed: the avatar is
        posed once and the views of one size drawn in one batched call (:func:`core.render_views_tensor`).
        Returns how many were sent."""
        with self.lock:
            state, version = self.state, self.version
        stale = []
        for client in clients:
            camera, key = self._client_camera(client)
            if camera is not None and self.sent.get(client.client_id) != (version, key):
                stale.append((client, camera, (version, key)))
        if not stale:
            return 0
        t0 = time.perf_counter()
        with self.render_lock:
            images = core.render_views_tensor(self.session, state.with_(height=0), [c for _, c, _ in stale])
            for (client, _, _), image in zip(stale, images):
                self.sender.send(client.scene, image)  # on the GPU when it can (thgs.viewer.encode)
        share = (time.perf_counter() - t0) / len(stale)
        for (client, _, full), image in zip(stale, images):
            self.stats.add(share, (int(image.shape[1]), int(image.shape[0])))
            self.sent[client.client_id] = full
        return len(stale)

    def _render_loop(self) -> None:
        last_text = 0.0
        while not self.stop_event.is_set():
            try:
                self._advance()
                self._update_overlays()
                did = self.render_clients(list(self.server.get_clients().values())) > 0
                now = time.perf_counter()
                if now - last_text > 0.5:
                    last_text = now
                    self.stats_text.content = self.stats.text(self.session.backend if self.session.backend != "auto"
                                                              else _backend_name(self.session))
                if not did:
                    time.sleep(0.005)
            except Exception as exc:  # keep serving; show the problem in the panel
                self.stats_text.content = f"render error: {type(exc).__name__}: {exc}"
                time.sleep(0.5)


def _backend_name(session: AvatarSession) -> str:
    from thgs.render.base import available_backends

    return available_backends(session.device)[0]


__all__ = ["ViewerApp", "audio_command", "default_max_height", "wav_data_url"]
