"""CUDA graphs of the fast inference path replay exactly what the eager path computes (needs a GPU)."""

import pytest
import torch

from thgs.avatar.inference import Animator

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def full_precision():
    """Compare in full float32 (no TF32 in matmuls or convolutions) and restore the settings after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("skinning,batch", [("grid", 1), ("grid", 3), ("parent", 2)])
def test_graph_replay_equals_eager(skinning, batch):
    from avatar.test_inference import _frames, _model
    from thgs.body import toy

    body = toy.load()
    model = _model(body, skinning, 1).to("cuda")
    frames = _frames(body, 2 * batch)
    anim = Animator.from_model(model, betas=frames[0].betas.cuda())
    assert anim.capture(batch=batch) is True and anim.captured == [batch]

    def stacked(fs):
        return (torch.stack([f.pose for f in fs]).cuda(), torch.stack([f.expression for f in fs]).cuda(),
                torch.stack([f.audio_window for f in fs]).cuda(), torch.stack([f.transl for f in fs]).cuda())

    with torch.no_grad():
        for part in (frames[:batch], frames[batch:]):  # two different inputs: the replay follows them
            args = stacked(part)
            eager = anim.animate_eager(*args)
            eager = {k: getattr(eager, k).clone() for k in ("means", "quats", "scales")}
            graph = anim.animate(*args)
            assert graph.means.data_ptr() == anim._graphs[batch].output.means.data_ptr()  # it was a replay
            for k, v in eager.items():
                torch.testing.assert_close(getattr(graph, k), v, atol=1e-6, rtol=1e-6, msg=k)
            for b, f in enumerate(part):  # and the model's own forward
                moved = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in vars(f).items()}
                ref = model(type(f)(**moved))
                for k in ("means", "quats", "scales"):
                    torch.testing.assert_close(getattr(graph.frame(b), k), getattr(ref, k), atol=1e-5, rtol=1e-5)
        # a call the graph did not record (no audio) runs eagerly
        args = stacked(frames[:batch])
        out = anim.animate(args[0], args[1], None, args[3])
        assert out.means.data_ptr() != anim._graphs[batch].output.means.data_ptr()
