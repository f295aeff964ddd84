"""The codec's decode replayed from CUDA graphs: the same bits as the eager decode."""

from __future__ import annotations

import pytest
import torch
from mirage_ros.core.codec import Codec, CodecConfig
from mirage_ros.core.codec_nets import fine_channels
from mirage_ros.core.config import MemoryConfig
from mirage_ros.core.cuda_graph import GraphedDecode
from mirage_ros.core.errors import ShapeError
from mirage_ros.core.memory import LatentSpatialMemory
from mirage_ros.core.predictor import Predictor

# the shipped codec's options: offsets, sub-cell warp, fine render, image fill, confidence head
CFG = CodecConfig(
    latent_channels=8,
    encoder_width=8,
    width=8,
    inner_width=8,
    head_channels=4,
    confidence_width=4,
    offset_input=True,
    offset_warp=1.0,
    fine_render=True,
    image_fill_blend=1.0,
    image_fill_iterations=3,
)


def _codec(device: str) -> Codec:
    torch.manual_seed(0)
    codec = Codec(CFG)
    with torch.no_grad():
        for p in codec.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return codec.to(device).eval()


def _inputs(b: int, h: int, w: int, device: str, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    cov = torch.rand(b, h, w, generator=g) > 0.4
    cov[0, :, : w // 3] = False  # a never-seen region to fill
    z = torch.randn(b, CFG.latent_channels, h, w, generator=g)
    depth = torch.where(cov, 0.5 + 3 * torch.rand(b, h, w, generator=g), torch.nan)
    offset = torch.rand(b, 2, h, w, generator=g) - 0.5
    fine = torch.randn(b, fine_channels(CFG.latent_channels), h, w, generator=g)
    return tuple(t.to(device) for t in (z, cov, depth)), offset.to(device), fine.to(device)


def test_cpu_codecs_decode_as_usual() -> None:
    codec = _codec("cpu")
    assert not GraphedDecode.usable(codec)
    mem = LatentSpatialMemory(MemoryConfig(latent_channels=8, device="cpu"))
    assert Predictor(codec, mem)._decode == codec.decode
    (z, cov, depth), offset, fine = _inputs(1, 8, 12, "cpu", 0)
    graphed = GraphedDecode(codec)
    out = graphed(z, cov, depth, 32, 48, offset, fine)
    assert torch.equal(out[0], codec.decode(z, cov, depth, 32, 48, offset, fine)[0])
    assert graphed.captures == 0


@pytest.mark.gpu
def test_graph_replay_is_bit_identical_to_the_eager_decode() -> None:
    codec = _codec("cuda")
    graphed = GraphedDecode(codec, max_graphs=2)
    cases = [(1, 12, 16, (48, 64)), (1, 9, 13, (35, 50)), (3, 9, 13, (35, 50))]
    for b, h, w, out_hw in cases + cases[:1]:
        for seed in range(3):  # new inputs each call: the graph reads the copied inputs
            (z, cov, depth), offset, fine = _inputs(b, h, w, "cuda", seed)
            want = codec.decode(z, cov, depth, *out_hw, offset, fine)
            got = graphed(z, cov, depth, *out_hw, offset, fine)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    # one graph per single-view shape (the batch decodes as usual); the first was replayed again
    assert graphed.captures == 2 and not graphed.failed
    out1 = graphed(z, cov, depth, *out_hw, offset, fine)
    out2 = graphed(z, cov, depth, *out_hw, offset, fine)
    assert out1[0].data_ptr() != out2[0].data_ptr()  # results are copies, not the graph's


@pytest.mark.gpu
def test_graphs_are_bounded_and_refuse_bad_inputs() -> None:
    codec = _codec("cuda")
    graphed = GraphedDecode(codec, max_graphs=1)
    for h in (8, 9, 8):
        (z, cov, depth), offset, fine = _inputs(1, h, 12, "cuda", 0)
        graphed(z, cov, depth, h * 4, 48, offset, fine)
    assert graphed.captures == 3 and len(graphed._graphs) == 1
    with pytest.raises(ShapeError):
        graphed(z, cov[:, :-1], depth, 32, 48, offset, fine)
    with pytest.raises(ShapeError):
        graphed(z, cov, depth, 64, 48, offset, fine)
    (z, cov, depth), offset, fine = _inputs(1, 8, 12, "cuda", 1)  # still works after a refusal
    want = codec.decode(z, cov, depth, 32, 48, offset, fine)
    assert torch.equal(graphed(z, cov, depth, 32, 48, offset, fine)[0], want[0])


@pytest.mark.gpu
def test_predictions_with_and_without_graphs_are_identical() -> None:
    codec = _codec("cuda")
    mem = LatentSpatialMemory(MemoryConfig(latent_channels=8, device="cuda"))
    K = torch.tensor([[40.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    rgb = torch.rand(48, 64, 3)
    depth = 1.0 + torch.rand(48, 64)
    depth[:, :20] = 0.0  # never seen on the left
    plain = Predictor(codec, mem, cuda_graphs=False)
    plain.observe((rgb * 255).to(torch.uint8).numpy(), depth.numpy(), K, T, 1)
    graphed = Predictor(codec, mem)
    assert graphed._decode != codec.decode
    for _ in range(3):
        a = plain.predict(K, T, 48, 64)
        b = graphed.predict(K, T, 48, 64)
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.confidence, b.confidence)


@pytest.mark.gpu
def test_a_failed_capture_decodes_as_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    from mirage_ros.core import cuda_graph

    def refuse(*_: object) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(cuda_graph, "_Graph", refuse)
    codec = _codec("cuda")
    graphed = GraphedDecode(codec)
    (z, cov, depth), offset, fine = _inputs(1, 8, 12, "cuda", 0)
    want = codec.decode(z, cov, depth, 32, 48, offset, fine)
    for _ in range(2):
        assert torch.equal(graphed(z, cov, depth, 32, 48, offset, fine)[0], want[0])
    assert graphed.captures == 0 and len(graphed.failed) == 1
    assert "stream is capturing" in next(iter(graphed.failed.values()))
