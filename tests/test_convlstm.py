"""The EchoDFKD ConvLSTM student: the paper's parameter counts, shapes, causality in time, frames as one-frame clips,
shape errors."""

from __future__ import annotations

import pytest
import torch
from echodiff.errors import ShapeMismatchError
from echodiff.inferers import FrameAsClipInferer
from echodiff.networks import ConvLSTMSegmenter


@pytest.mark.parametrize(("k", "n", "params"), [(3, 3, 611_185), (1, 1, 5_701)])
def test_parameter_counts_match_the_paper(k: int, n: int, params: int) -> None:
    assert sum(p.numel() for p in ConvLSTMSegmenter(k, n).parameters()) == params


def test_output_is_one_logit_per_pixel_and_frame() -> None:
    torch.manual_seed(0)
    net = ConvLSTMSegmenter(2, 1).eval()
    assert net(torch.rand(2, 1, 5, 16, 24)).shape == (2, 1, 5, 16, 24)


def test_frame_t_depends_on_earlier_frames_only() -> None:
    torch.manual_seed(0)
    net = ConvLSTMSegmenter(2, 2).eval()
    clip = torch.rand(1, 1, 6, 16, 16)
    changed = clip.clone()
    changed[:, :, 4:] = torch.rand(1, 1, 2, 16, 16)
    with torch.no_grad():
        before, after = net(clip), net(changed)
    torch.testing.assert_close(before[:, :, :4], after[:, :, :4])
    assert not torch.allclose(before[:, :, 4:], after[:, :, 4:])


def test_frames_not_divisible_by_the_pooling_are_refused() -> None:
    with pytest.raises(ShapeMismatchError, match=r"expected \(B, C, T, H, W\) with H and W divisible by 4"):
        ConvLSTMSegmenter(3, 1)(torch.rand(1, 1, 2, 18, 16))


def test_a_frame_is_segmented_as_a_clip_of_one_frame() -> None:
    """FrameAsClipInferer (the bundle's `inferer`, how MONAI Label feeds frames to the student) equals the student on
    a one-frame clip, and refuses anything but (B, C, H, W) frames."""
    torch.manual_seed(0)
    net = ConvLSTMSegmenter(2, 1).eval()
    frames = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        out = FrameAsClipInferer()(frames, net)
        torch.testing.assert_close(out, net(frames[:, :, None])[:, :, 0])
    assert out.shape == (3, 1, 16, 16)
    with pytest.raises(ShapeMismatchError, match=r"input has shape \[1, 1, 2, 16, 16\]; expected \(B, C, H, W\)"):
        FrameAsClipInferer()(torch.rand(1, 1, 2, 16, 16), net)
