import torch

from vqaudio.codec import Codec
from vqaudio.codec.quantize import MultiScaleQuantizer, VectorQuantizer

from .conftest import tiny_codec_config


def test_nearest_code_equals_brute_force():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=6, codebook_size=32)
    vectors = torch.randn(200, 6)
    brute = torch.stack([((vq.codebook - v) ** 2).sum(1).argmin() for v in vectors])
    assert torch.equal(vq.nearest(vectors), brute)


def test_straight_through_passes_upstream_gradient_unchanged():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=8)
    z = torch.randn(2, 4, 10, requires_grad=True)
    z_q, codes, _, _ = vq(z)
    assert torch.allclose(z_q, vq.codebook[codes].permute(0, 2, 1))  # forward value is the code
    upstream = torch.randn_like(z_q)
    (z_q * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)


def test_gradient_at_encoder_output_equals_gradient_at_decoder_input():
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config(codebook_dim=0, l2_normalize=False, quantizer_dropout=0.0))
    grads = {}
    codec.encoder.register_full_backward_hook(lambda m, gi, go: grads.__setitem__("z", go[0]))
    codec.decoder.register_full_backward_hook(lambda m, gi, go: grads.__setitem__("z_q", gi[0]))
    wav = torch.randn(2, 1, 8 * 16)
    out = codec(wav)
    (out.wav - wav).abs().mean().backward()  # reconstruction only, no VQ losses
    torch.testing.assert_close(grads["z"], grads["z_q"])


def test_codebook_loss_reaches_only_codebook_and_commitment_only_encoder():
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config(codebook_dim=0, quantizer_dropout=0.0))
    wav = torch.randn(2, 1, 8 * 16)
    codebooks = [vq.codebook for vq in codec.quantizer.levels]

    out = codec(wav)
    out.codebook_loss.backward()
    assert all(cb.grad is not None and cb.grad.abs().sum() > 0 for cb in codebooks)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in codec.encoder.parameters())

    codec.zero_grad(set_to_none=True)
    out = codec(wav)
    out.commitment_loss.backward()
    assert all(cb.grad is None or cb.grad.abs().sum() == 0 for cb in codebooks)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in codec.encoder.parameters())
    assert all(p.grad is None for p in codec.decoder.parameters())


def test_commitment_weight_is_beta():
    torch.manual_seed(0)
    config = tiny_codec_config(commitment_weight=0.25, quantizer_dropout=0.0)
    codec = Codec(config).eval()
    wav = torch.randn(1, 1, 8 * 16)
    out = codec(wav)
    # in eval, codebook and raw commitment terms are the same number; beta scales the latter
    torch.testing.assert_close(out.commitment_loss, 0.25 * out.codebook_loss)


def test_dead_code_is_restarted_from_batch_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=8, dead_code_threshold=0.5).train()
    vq.codebook.data[3] = 1e3  # far from every input: never chosen
    z = torch.randn(2, 4, 32)
    for _ in range(400):  # usage EMA of code 3 decays below the threshold
        vq(z)
    assert vq.codebook[3].abs().max() < 100, "dead code was not restarted"
    flat = z.permute(0, 2, 1).reshape(-1, 4)
    assert (flat - vq.codebook[3]).abs().sum(1).min() < 1e-5, "restart should copy a batch vector"


def test_ema_moves_codes_toward_assigned_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=3, codebook_size=4, ema_decay=0.9).train()
    z = torch.randn(1, 3, 64) + 2.0
    codes = vq.encode(z).flatten()
    target = z[0].t()[codes == codes[0]].mean(0)
    before = (vq.codebook[codes[0]] - target).norm()
    for _ in range(5):
        vq(z)
    after = (vq.codebook[codes[0]] - target).norm()
    assert after < 0.7 * before
    assert not isinstance(vq.codebook, torch.nn.Parameter)


def test_kmeans_init_places_codes_on_data():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=2, codebook_size=4, kmeans_init=True).train()
    centers = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    points = centers.repeat(50, 1) + 0.1 * torch.randn(200, 2)
    vq(points.t().unsqueeze(0))
    assert bool(vq.initialized)
    nearest = torch.cdist(centers, vq.codebook).min(dim=1).values
    assert (nearest < 1.0).sum() >= 3  # k-means found (almost) every cluster


def test_eval_decode_of_encode_equals_forward_output():
    torch.manual_seed(0)
    quantizer = MultiScaleQuantizer(tiny_codec_config()).eval()
    z = torch.randn(2, 16, 12)
    out = quantizer(z)
    torch.testing.assert_close(quantizer.decode(quantizer.encode(z)), out.z_q)
    assert all(torch.equal(a, b) for a, b in zip(quantizer.encode(z).levels, out.codes.levels))


def test_usage_and_perplexity_reported_per_level():
    codec = Codec(tiny_codec_config())
    out = codec(torch.randn(2, 1, 8 * 32))
    assert len(out.usage) == len(out.perplexity) == codec.config.num_levels
    assert all(0 < u <= 1 for u in out.usage)
    assert all(1 <= p <= codec.config.codebook_size for p in out.perplexity)


def _residual_energies(normalize_values: bool) -> list[float]:
    torch.manual_seed(0)
    config = tiny_codec_config(
        latent_dim=32,
        codebook_dim=4,
        codebook_size=64,
        level_strides=(1,) * 8,
        kmeans_init=True,
        normalize_values=normalize_values,
    )
    quantizer = MultiScaleQuantizer(config)
    z = torch.randn(4, 32, 256)
    quantizer.train()(z)  # k-means initialisation on this batch
    quantizer.eval()
    residual, energies = z, []
    with torch.no_grad():
        for vq in quantizer.levels:
            residual = residual - vq.decode(vq.encode(residual))
            energies.append(float(residual.pow(2).mean() / z.pow(2).mean()))
    return energies


def test_every_residual_level_removes_energy():
    """Each factorized level must shrink the residual (raw code values, inverted projection);
    with unit-norm values (vqaudio 0.1) the residual of a fresh stack grows instead."""
    energies = _residual_energies(normalize_values=False)
    assert all(b < a for a, b in zip([1.0] + energies, energies)), energies
    assert energies[-1] < 0.8
    assert _residual_energies(normalize_values=True)[-1] > 1.0


# --- the quantizer fixes: each test failed on the code before them ---------------------------


def _rvq(**overrides) -> MultiScaleQuantizer:
    config = tiny_codec_config(
        codebook_dim=0, l2_normalize=False, level_strides=(2, 1, 1), **overrides
    )
    return MultiScaleQuantizer(config)


def test_dropout_levels_quantize_the_true_residual_and_kept_prefix_decodes_alike():
    torch.manual_seed(0)
    quantizer = _rvq().eval()
    z = torch.randn(4, 16, 12)
    keep = torch.tensor([1, 2, 3, 1])
    out = quantizer(z, keep=keep)
    reference = quantizer.encode(z)  # every level on the residual of all the levels before it
    for got, want in zip(out.codes.levels, reference.levels):
        assert torch.equal(got, want)  # before the fix, levels past keep re-quantized a residual
    for b, k in enumerate(keep.tolist()):
        prefix = quantizer.decode(reference.keep(k))[b]
        torch.testing.assert_close(out.z_q[b], prefix)


def test_dropout_losses_leave_out_dropped_levels():
    torch.manual_seed(0)
    quantizer = _rvq().eval()
    z = torch.randn(2, 16, 12)
    one = quantizer(z, num_levels=1)
    mixed = quantizer(z, keep=torch.tensor([1, 1]))
    torch.testing.assert_close(mixed.commitment_loss, one.commitment_loss)


def test_no_dropout_keeps_every_level(monkeypatch):
    codec = Codec(tiny_codec_config(quantizer_dropout=0.0)).train()
    seen = []
    forward = codec.quantizer.forward
    monkeypatch.setattr(
        codec.quantizer, "forward", lambda z, n=None, keep=None: seen.append(keep) or forward(z, n)
    )
    for seed in range(5):
        torch.manual_seed(seed)
        codec(torch.randn(3, 1, 8 * 16))
    assert seen == [None] * 5


def _clusters(n: int, centers: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    pick = torch.randint(len(centers), (n,), generator=gen)
    return centers[pick] + 0.01 * torch.randn(n, centers.shape[1], generator=gen)


def test_kmeans_init_survives_the_first_step_and_only_the_unused_code_restarts():
    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    vq = VectorQuantizer(2, 4, ema_decay=0.9, kmeans_init=True, dead_code_threshold=0.1).train()
    vq._kmeans_init(_clusters(512, centers, gen), batch_vectors=128)
    seeded = vq.codebook.clone()
    # each centre has one code
    assert torch.cdist(seeded, centers).min(dim=0).values.max() < 0.05
    unused = int(torch.cdist(centers[3:], seeded).argmin())
    vq(_clusters(128, centers[:3], gen).t().unsqueeze(0))  # one step without the 4th cluster
    torch.testing.assert_close(vq.codebook, seeded, atol=0.02, rtol=0)  # init kept
    for _ in range(400):  # the unused code's usage decays below the threshold: it restarts
        vq(_clusters(128, centers[:3], gen).t().unsqueeze(0))
    moved = (vq.codebook - seeded).norm(dim=1) > 0.5
    assert moved.tolist() == [i == unused for i in range(4)]


def test_initialize_seeds_every_level_from_all_given_vectors():
    torch.manual_seed(0)
    quantizer = _rvq(kmeans_init=True, ema_decay=0.99, dead_code_threshold=0.1).train()
    z = torch.randn(8, 16, 64)
    seen = quantizer.initialize(z, batch_frames=2 * 64)
    assert seen == [8 * 32, 8 * 64, 8 * 64]  # every frame, not one batch's worth
    assert all(bool(vq.initialized) for vq in quantizer.levels)
    before = [vq.codebook.clone() for vq in quantizer.levels]
    quantizer(z[:2])  # a training step: EMA moves the codes a little, nothing restarts
    for vq, old in zip(quantizer.levels, before):
        assert (vq.codebook - old).norm(dim=1).max() < 0.5 * old.norm(dim=1).mean()


def test_encode_never_changes_the_model():
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config(latent_norm="batch", kmeans_init=True, ema_decay=0.9))
    assert codec.training  # a fresh codec is in train mode
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    codec.encode(torch.randn(3, 1, 8 * 16))
    after = codec.state_dict()
    assert codec.training
    for name, value in before.items():
        assert torch.equal(after[name], value), name


def test_bf16_autocast_trains_with_ema_codebooks_and_picks_the_fp32_codes():
    torch.manual_seed(0)
    quantizer = _rvq(ema_decay=0.99, kmeans_init=False).train()
    z = torch.randn(2, 16, 64).bfloat16()
    reference = quantizer.encode(z.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = quantizer(z)
    for got, want in zip(out.codes.levels, reference.levels):
        assert torch.equal(got, want)
    assert out.z_q.dtype == torch.float32
