"""The codec's decode replayed from CUDA graphs (CUDA only; torch only).

Decoding one 640x480 view launches about 900 small kernels (the convolutions, then the
never-seen-pixel fill: ten Jacobi sweeps on every pyramid level). Launched one by one from
Python they cost 9-23 ms on an H100 although the GPU works for about 2.3 ms of that; a CUDA graph
launches them all at once (2.1 ms). :class:`GraphedDecode` captures one graph per signature of
a single view (grid, output size, dtypes, which optional inputs are given) the first time it
sees it, keeps the most recent ``max_graphs``, and replays: inputs are copied into the graph's own
tensors, the outputs are copied out. Replay runs the captured kernels, so the results are
bit-identical to :meth:`Codec.decode` (tested on CUDA). Batches of views decode as usual: their
views share the launches (16 views at 640x480: 14.8 ms eager, 12.5 ms from a graph), and a graph
per batch size would hold memory for little. Bad inputs are refused by an eager decode before
any capture, with the codec's own errors; a signature whose capture fails decodes as usual.

The graphs read the codec's weights where they lie: change the weights of a codec in place and
:meth:`GraphedDecode.clear` must be called (a codec loaded from a file is a new module and gets
a new ``GraphedDecode``). Like the rest of the memory and codec, one thread at a time.
"""

from __future__ import annotations

import collections
from typing import Any

import torch
from torch import Tensor

from mirage_ros.core.codec import Codec

__all__ = ["GraphedDecode"]

_Key = tuple[Any, ...]


def _signature(args: tuple[Any, ...]) -> _Key:
    return tuple(
        (tuple(a.shape), a.dtype, a.device) if isinstance(a, Tensor) else ("v", a) for a in args
    )


class _Graph:
    def __init__(self, codec: Codec, args: tuple[Any, ...]) -> None:
        self.inputs: list[Any] = [a.clone() if isinstance(a, Tensor) else a for a in args]
        side = torch.cuda.Stream(device=args[0].device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(args[0].device))
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture wants
            for _ in range(2):
                codec.decode(*self.inputs)
        torch.cuda.current_stream(args[0].device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.outputs: tuple[Tensor, Tensor] = codec.decode(*self.inputs)

    def __call__(self, args: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
        for static, given in zip(self.inputs, args, strict=True):
            if isinstance(static, Tensor):
                static.copy_(given)
        self.graph.replay()
        return self.outputs[0].clone(), self.outputs[1].clone()


class GraphedDecode:
    """``GraphedDecode(codec)(latents, coverage, depth_m, out_h, out_w, offset, fine)`` returns
    what ``codec.decode`` returns, replayed from a CUDA graph per input signature."""

    def __init__(self, codec: Codec, max_graphs: int = 4) -> None:
        if max_graphs < 1:
            raise ValueError("max_graphs must be >= 1")
        self.codec = codec
        self.max_graphs = max_graphs
        self._graphs: collections.OrderedDict[_Key, _Graph] = collections.OrderedDict()
        self.captures = 0
        #: signatures whose capture failed (they decode as usual) -> the error
        self.failed: dict[_Key, str] = {}

    @staticmethod
    def usable(codec: Codec) -> bool:
        """True when the codec runs on CUDA (graphs exist only there)."""
        return next(codec.parameters()).device.type == "cuda"

    def clear(self) -> None:
        """Forget every captured graph (and free its memory)."""
        self._graphs.clear()

    def __call__(
        self,
        latents: Tensor,
        coverage: Tensor,
        depth_m: Tensor,
        out_height: int,
        out_width: int,
        offset: Tensor | None = None,
        fine: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        args = (latents, coverage, depth_m, int(out_height), int(out_width), offset, fine)
        with torch.inference_mode():  # the graphs' tensors are inference tensors
            return self._decode(args)

    def _decode(self, args: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
        dev = next(self.codec.parameters()).device
        if dev.type != "cuda" or any(isinstance(a, Tensor) and a.device != dev for a in args):
            return self.codec.decode(*args)  # a CPU codec, or inputs elsewhere: as usual
        key = _signature(args)
        graph = self._graphs.get(key)
        if graph is None:
            out = self.codec.decode(*args)  # refuses bad inputs before any capture
            if args[0].shape[0] != 1 or key in self.failed:
                return out  # batches decode as usual: the launches are shared by their views
            while len(self._graphs) >= self.max_graphs:
                self._graphs.popitem(last=False)
            try:
                self._graphs[key] = _Graph(self.codec, args)
                self.captures += 1
            except RuntimeError as exc:  # never fail a decode for want of a graph
                self.failed[key] = f"{type(exc).__name__}: {exc}"
            return out
        self._graphs.move_to_end(key)
        return graph(args)
