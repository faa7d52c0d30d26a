"""``thgs view RUN``: the web viewer (viser) for a trained avatar; ``--benchmark N`` measures its frame rate."""

from __future__ import annotations

import argparse
import typing
import time
from pathlib import Path

from thgs.runs.config import Backend

NAME = "view"
HELP = "open a trained avatar in a web viewer (playback, expressions, novel views)"
DESCRIPTION = ("Serve a web viewer for the avatar in RUN (a run folder or its avatar.pt). The avatar is rendered on "
               "this machine (gsplat on a GPU, the reference renderer at reduced size on a CPU) from the browser's "
               "camera and streamed as images. Plays the test split with its sound, or --audio / --motion; "
               "expression sliders, blending between two expressions, SAAM/LEB toggles, skeleton and mesh overlays. "
               "Listens on 127.0.0.1 unless --host says otherwise. --benchmark N renders N frames through the same "
               "path without a browser and prints the frame rate.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder (from `thgs train`) or an avatar/checkpoint .pt file")
    parser.add_argument("--data", type=Path, default=None, help="subject folder (default: the training subject)")
    parser.add_argument("--audio", type=Path, default=None, help="speech audio to drive the avatar instead of the test split")
    parser.add_argument("--motion", type=Path, default=None,
                        help="per-frame body poses (our params.npz or an SMPL-X .npz) instead of the test split")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (0.0.0.0 exposes the viewer to the network)")
    parser.add_argument("--port", type=int, default=8080, help="port (the next free one is taken if it is busy; 0: any)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    parser.add_argument("--backend", default="auto", choices=typing.get_args(Backend),
                        help="rasterizer backend (gsplat needs CUDA)")
    parser.add_argument("--surfels-3dgs", action="store_true",
                        help="2dgs avatars: draw the surfels with the 3DGS rasterizer (flat, third scale 0): faster "
                             "on a GPU, a small image difference (docs/benchmarks.md)")
    parser.add_argument("--max-height", type=int, default=0,
                        help="largest streamed image height in pixels (0: 1080 on a GPU, 256 on a CPU)")
    parser.add_argument("--jpeg-quality", type=int, default=85, help="JPEG quality of the streamed images (1-100)")
    parser.add_argument("--benchmark", type=int, default=0, metavar="N",
                        help="render N frames (state -> image -> JPEG message) without a browser, print fps, exit")


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.viewer.session import open_session

    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f"--jpeg-quality {args.jpeg_quality}: must be between 1 and 100")
    if args.max_height < 0 or args.benchmark < 0:
        raise UserError("--max-height and --benchmark must not be negative")
    try:
        import viser  # noqa: F401
    except ImportError:
        raise UserError("the viewer needs viser: pip install 'thgs[viewer]'") from None
    session = open_session(args.run, data=args.data, audio=args.audio, motion=args.motion, device=args.device,
                           backend=args.backend)
    if getattr(args, "surfels_3dgs", False):
        import dataclasses

        session = dataclasses.replace(session, surfels_as_3dgs=True)
    if args.benchmark:
        benchmark(session, args.benchmark, args.max_height, args.jpeg_quality)
        return 0
    from thgs.viewer.app import ViewerApp

    app = ViewerApp(session, host=args.host, port=args.port, max_height=args.max_height,
                    jpeg_quality=args.jpeg_quality)
    app.start()
    print(f"thgs view: {session.path} ({session.model.num_gaussians} Gaussians, {session.num_frames} frames, "
          f"{session.device}) at {app.url}", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    return 0


def benchmark(session, frames: int, max_height: int, jpeg_quality: int) -> dict:
    """Render ``frames`` frames of the sequence from the training camera through the viewer's path (state ->
    image -> JPEG background message on a viser server with no browser) and print a table: render and
    encode+send times of frames done one after the other (``fps``), then the frame rate with the encoding of
    one frame overlapped with the render of the next (``overlapped fps``; on a GPU with nvJPEG the encode is on
    the GPU, see thgs.viewer.encode)."""
    import torch
    import viser

    from thgs.viewer import core
    from thgs.viewer.app import default_max_height
    from thgs.viewer.encode import FrameSender

    height = min(max_height or default_max_height(session), session.camera.height) if not max_height else max_height

    def sync() -> None:
        if session.device.type == "cuda":
            torch.cuda.synchronize()

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    sender = FrameSender(jpeg_quality)
    overlapped = FrameSender(jpeg_quality, overlap=True)
    try:
        state = core.ViewerState(saam=session.has_saam, leb=session.has_leb, height=height)
        for i in range(min(3, frames)):
            sender.send(server.scene, core.render_state_tensor(session, state.with_(frame=i % session.num_frames)))
        render_s = encode_s = 0.0
        for i in range(frames):
            st = state.with_(frame=i % session.num_frames)
            sync()
            t0 = time.perf_counter()
            img = core.render_state_tensor(session, st)
            sync()
            t1 = time.perf_counter()
            sender.send(server.scene, img)
            t2 = time.perf_counter()
            render_s += t1 - t0
            encode_s += t2 - t1
        sync()
        t0 = time.perf_counter()
        for i in range(frames):
            overlapped.send(server.scene, core.render_state_tensor(session, state.with_(frame=i % session.num_frames)))
        overlapped.flush()
        overlap_s = time.perf_counter() - t0
    finally:
        overlapped.close()
        sender.close()
        server.stop()
    total = render_s + encode_s
    backend = session.backend if session.backend != "auto" else core_backend(session)
    encoder = "gpu (nvJPEG)" if sender.uses_gpu(img) else "cpu"
    row = {"device": str(session.device), "backend": backend, "mode": session.mode,
           "gaussians": session.model.num_gaussians, "size": f"{img.shape[1]}x{img.shape[0]}", "frames": frames,
           "encoder": encoder, "render_ms": 1000 * render_s / frames, "encode_ms": 1000 * encode_s / frames,
           "fps": frames / total, "fps_overlapped": frames / overlap_s}
    print("| device | backend | mode | Gaussians | size | frames | JPEG encoder | render ms | encode+send ms | fps "
          "| overlapped fps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {row['device']} | {row['backend']} | {row['mode']} | {row['gaussians']} | {row['size']} | {frames} | "
          f"{encoder} | {row['render_ms']:.2f} | {row['encode_ms']:.2f} | {row['fps']:.1f} | "
          f"{row['fps_overlapped']:.1f} |", flush=True)
    return row


def core_backend(session) -> str:
    from thgs.render.base import available_backends

    return available_backends(session.device)[0]
