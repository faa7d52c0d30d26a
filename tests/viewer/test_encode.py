"""The viewer's JPEG path: the CPU encoder off CUDA, the GPU encoder's bytes, overlapped sending."""

import numpy as np
import pytest
import torch

from thgs.viewer.encode import FrameSender, gpu_jpeg_available


class Scene:
    """Records what a viser scene would send."""

    def __init__(self):
        self.images = []

    def set_background_image(self, image, format, jpeg_quality):
        assert format == "jpeg"
        self.images.append((np.array(image), jpeg_quality))


def test_no_gpu_encoder_for_cpu_tensors():
    assert gpu_jpeg_available("cpu") is False


@pytest.mark.parametrize("overlap", [False, True])
def test_cpu_frames_go_through_the_scene_encoder_in_order(overlap):
    scene = Scene()
    sender = FrameSender(70, overlap=overlap)
    frames = [torch.full((6, 8, 3), v, dtype=torch.uint8) for v in (10, 20, 30)]
    for f in frames:
        sender.send(scene, f)
    sender.close()
    assert [int(img[0, 0, 0]) for img, _ in scene.images] == [10, 20, 30]
    assert all(q == 70 for _, q in scene.images) and sender.last_size == (8, 6)


def test_an_encoder_error_on_the_worker_thread_is_raised():
    class Broken(Scene):
        def set_background_image(self, image, format, jpeg_quality):
            raise OSError("socket closed")

    sender = FrameSender(80, overlap=True)
    sender.send(Broken(), torch.zeros(4, 4, 3, dtype=torch.uint8))
    with pytest.raises(OSError, match="socket closed"):
        sender.flush()


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and gpu_jpeg_available("cuda")),
                    reason="needs a CUDA GPU and a CUDA build of torchvision")
def test_gpu_jpeg_decodes_to_the_image():
    from torchvision.io import decode_jpeg

    from thgs.viewer.encode import encode_jpeg_gpu

    y, x = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    img = torch.stack([x * 2, y * 3, (x + y)], -1).to(torch.uint8).cuda()
    data = encode_jpeg_gpu(img, 95)
    assert data[:2] == b"\xff\xd8"
    back = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8)).permute(1, 2, 0)
    assert (back.float() - img.cpu().float()).abs().mean() < 3.0


def test_encoded_bytes_reach_a_viser_scene():
    """The GPU path hands viser ready JPEG bytes through its background message: that message exists."""
    import io

    viser = pytest.importorskip("viser")
    from PIL import Image

    from thgs.viewer.encode import send_jpeg

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        assert send_jpeg(server.scene, buf.getvalue()) is True
    finally:
        server.stop()
