"""The codec stage: random crops -> reconstruction + VQ loss; evaluation on held-out files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import load_into
from ..codec import Codec, band_levels
from ..codec.discriminator import (
    MultiBandSpectrogramDiscriminator,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    generator_losses,
)
from ..codec.io import codec_lineage, read_codec_file, save_codec
from ..codec.losses import MultiScaleMelLoss, ReconstructionLoss
from ..codec.spectral import FourierEncoder, initialize_from_data, log_magnitude
from ..codec.spectral_loss import SpectralLoss
from ..codes import Codes
from ..config import CodecConfig
from ..errors import ConfigError
from ..eval.metrics import chroma_correlation, level_difference, si_sdr
from ..recipe import Recipe
from ..strict import build
from . import distributed, plots
from .data import AudioCrops, eval_clips, held_out_names, recipe_files
from .state import load_train_state, save_train_state

DISCRIMINATOR_FILE = "discriminator.safetensors"


class CodecTask:
    """Everything stage-specific about training a codec; the loop in loop.py drives it."""

    plot_keys = ("loss", "mel", "val_mel")
    best_key = "val_chroma"  # best.safetensors: the evaluation that kept the most notes

    def __init__(self, recipe: Recipe, on_message: Callable[[str], None], device: str = "cpu"):
        self.recipe = recipe
        config = recipe.codec
        self.model = Codec(config)
        self.discriminator = self.d_optimizer = None
        self._step, self._pair = 0, None
        self.spectral = config.decoder == "spectral"
        gan = recipe.adversarial
        if gan.enabled:
            if self.spectral:  # it renders no waveform in training: judge its log-magnitudes
                self.discriminator = MultiBandSpectrogramDiscriminator(
                    config.sample_rate, config.n_fft, gan.bands_hz, gan.channels
                )
            else:
                self.discriminator = MultiScaleSTFTDiscriminator(gan.window_lengths, gan.channels)
            self.discriminator.to(device).train()
            distributed.broadcast_parameters(self.discriminator)  # one start on every rank
            optim = recipe.optim
            self.d_optimizer = torch.optim.AdamW(
                self.discriminator.parameters(),
                lr=optim.lr,
                betas=tuple(optim.betas),
                weight_decay=optim.weight_decay,
            )
        self.train_module = self.model
        if recipe.init_from and recipe.train.freeze:
            self._load_frozen(recipe.init_from, recipe.train.freeze, on_message)
        elif recipe.init_from:
            state, _, _ = read_codec_file(recipe.init_from)
            load_into(self.model, state, recipe.init_from)  # must fit the recipe's codec section
            on_message(f"initialised from {recipe.init_from}")
        self.sample_rate = config.sample_rate
        block = config.block_samples
        segment = max(block, round(recipe.data.segment_seconds * self.sample_rate / block) * block)
        train_files, val_files = recipe_files(recipe.data)

        def report(i: int, total: int, path: Path) -> None:
            on_message(f"caching audio {i + 1}/{total}: {path.name}")

        self.crops = AudioCrops.from_files(
            train_files, recipe.data, self.sample_rate, segment, report
        )
        self.val_arrays = AudioCrops.from_files(
            val_files, recipe.data, self.sample_rate, segment
        ).arrays
        hours = sum(a.shape[1] for a in self.crops.arrays) / self.sample_rate / 3600
        on_message(
            f"data: {len(train_files)} training files ({hours:.2f} h), {len(val_files)} held out; "
            f"crops of {segment} samples; codec {self.model.num_parameters() / 1e6:.2f} M params"
        )
        on_message(held_out_names(val_files))
        weights = recipe.loss
        if self.spectral:
            self.loss_fn = SpectralLoss(
                self.sample_rate,
                config.n_fft,
                config.hop_length,
                weights.log_magnitude,
                weights.mel,
                weights.convergence,
                chroma_weight=weights.chroma,
                rendered_chroma_weight=weights.rendered_chroma,
                level_weight=weights.level,
                band_span_frames=self._band_span_frames() if weights.band_levels else 0,
                band_resolution=weights.band_levels or band_levels.DEFAULT_RESOLUTION,
            )
        else:
            self.loss_fn = ReconstructionLoss(
                self.sample_rate, weights.l1, weights.mel, weights.stft
            )
        self.mel_distance = MultiScaleMelLoss(self.sample_rate)
        self.last_usage: list[Tensor] = []
        self.last_perplexity: list[Tensor] = []

    def _load_frozen(self, path: str, names: tuple[str, ...], on_message) -> None:
        """Load ``names`` from ``path`` (they must fit exactly) and freeze them; the other parts
        load too where they fit (same decoder), else start from scratch."""
        state, raw, metadata = read_codec_file(path)
        own = self.model.state_dict()
        prefixes = tuple(f"{name}." for name in names)
        frozen = {k: v for k, v in state.items() if k.startswith(prefixes)}
        expected = {k for k in own if k.startswith(prefixes)}
        if set(frozen) != expected or any(own[k].shape != v.shape for k, v in frozen.items()):
            raise ConfigError(
                f"{path}: the frozen parts ({', '.join(names)}) do not fit the recipe's codec "
                "section; keep their settings as in that codec"
            )
        rest = {
            k: v
            for k, v in state.items()
            if k not in frozen and k in own and own[k].shape == v.shape
        }
        whole = len(frozen) + len(rest) == len(own)
        self.model.load_state_dict({**frozen, **rest} if whole else frozen, strict=False)
        self.model.freeze(*names)
        # files and priors of init_from's code space stay valid with this codec's files
        config = build(CodecConfig, raw, "codec")
        self.model.lineage = codec_lineage(path, state, config, metadata)
        trained = "the decoder from its weights" if whole else "a new decoder"
        on_message(f"froze {' and '.join(names)} of {path}; training {trained}")

    def batch(self, rng: np.random.Generator, batch_size: int) -> Tensor:
        return torch.from_numpy(self.crops.batch(rng, batch_size))

    KMEANS_CROPS = 256  # crops whose latents seed the codebooks (4x the codes at the coarsest)

    @torch.no_grad()
    def _initialize_codebooks(self, wav: Tensor) -> None:
        """Data-dependent init before the first step: a Fourier encoder's principal components,
        then k-means on the latents of many crops (not the first batch alone: that is fewer
        vectors than codes at the coarse levels)."""
        quantizer, encoder = self.model.quantizer, self.model.encoder
        fresh_pca = isinstance(encoder, FourierEncoder) and not bool(encoder.initialized)
        fresh_vq = self.recipe.codec.kmeans_init and not all(
            bool(vq.initialized) for vq in quantizer.levels
        )
        if not (fresh_pca or fresh_vq) or "encoder" in self.model.frozen:
            return
        crops = torch.from_numpy(
            self.crops.batch(np.random.default_rng(12345), self.KMEANS_CROPS)
        ).to(wav.device)
        if fresh_pca:  # a fresh Fourier encoder starts as a PCA of its features
            initialize_from_data(encoder, self.model.decoder, crops[:64])
        if not fresh_vq:
            return
        z = torch.cat([self.model.latent(part) for part in crops.split(32)])
        frames = wav.shape[0] * wav.shape[-1] // self.recipe.codec.hop_length
        quantizer.initialize(z, frames)

    def loss(self, model: nn.Module, wav: Tensor, autocast) -> tuple[Tensor, dict]:
        """The codec's loss, and its terms as 0-dim tensors (the loop reads them at log time)."""
        if self._step == 0:
            self._initialize_codebooks(wav)
        with autocast():
            out = model(wav)
        if self.spectral:
            terms = self.loss_fn(out.log_magnitude.float(), wav)
        else:
            terms = self.loss_fn(out.wav.float(), wav)
        loss = terms["total"] + out.vq_loss.float()
        if self._adversarial_on():
            real, fake = self._judged(wav, out)
            self.discriminator.requires_grad_(False)  # this pass trains the codec only
            with torch.no_grad():
                real_out = self.discriminator(real)
            adversarial, matching = generator_losses(real_out, self.discriminator(fake))
            gan = self.recipe.adversarial
            loss = loss + gan.weight * adversarial + gan.feature_weight * matching
            terms["adv"], terms["feat"] = adversarial, matching
            self._pair = (real, fake.detach())
        self.last_usage, self.last_perplexity = out.usage, out.perplexity
        metrics = {k: v.detach() for k, v in terms.items() if k != "total"}
        metrics["vq"] = out.vq_loss.detach()
        metrics["usage"] = list(out.usage)
        metrics["perplexity"] = list(out.perplexity)
        if self._step % self.recipe.train.log_every == 0:
            metrics["stage_rms"] = self.model.stage_rms(wav)
        return loss, metrics

    def _judged(self, wav: Tensor, out) -> tuple[Tensor, Tensor]:
        """What the discriminator compares: the waveforms, or for a spectral decoder the
        input's log-magnitude and the predicted one (B, C, bins, frames), on the same frames."""
        if not self.spectral:
            return wav, out.wav.float()
        fake = out.log_magnitude.float()
        with torch.no_grad():
            real = log_magnitude(wav, self.recipe.codec.n_fft, self.recipe.codec.hop_length)
        frames = min(real.shape[-1], fake.shape[-1])
        return real[..., :frames], fake[..., :frames]

    def _adversarial_on(self) -> bool:
        gan = self.recipe.adversarial
        return gan.enabled and self._step + 1 > gan.start_step

    def after_step(self, step: int) -> dict[str, Tensor]:
        """Gradient norms per part (after clipping), then the discriminator's update on the
        batch the codec just trained on."""
        self._step = step
        norms = {}
        for name in ("encoder", "decoder"):
            grads = [p.grad for p in getattr(self.model, name).parameters() if p.grad is not None]
            if grads:
                norms[f"grad_{name}"] = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads])
                )
        if self._pair is None:
            return norms
        real, fake = self._pair
        self._pair = None
        self.discriminator.requires_grad_(True)
        loss = discriminator_loss(self.discriminator(real), self.discriminator(fake))
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.discriminator)  # each rank judged its own batch
        self.d_optimizer.step()
        return {**norms, "disc": loss.detach()}

    def save_extra_state(self, run_dir: Path, step: int) -> None:
        if self.discriminator is not None:
            save_train_state(
                run_dir / DISCRIMINATOR_FILE,
                self.discriminator,
                self.d_optimizer,
                step,
                np.random.default_rng(0),
            )

    def load_extra_state(self, run_dir: Path) -> None:
        path = run_dir / DISCRIMINATOR_FILE
        if self.discriminator is None or not path.is_file():
            return
        rng_state = torch.get_rng_state()  # the codec's state file owns the RNGs
        self._step, _ = load_train_state(
            path, self.discriminator, self.d_optimizer, np.random.default_rng(0)
        )
        torch.set_rng_state(rng_state)

    @torch.no_grad()
    def evaluate(self, model: Codec, run_dir: Path, step: int, device: str) -> dict:
        """Mel distance, SI-SDR and bits/s at each evaluated operating point, on held-out clips."""
        if not self.val_arrays:
            return {}
        config, ev = self.model.config, self.recipe.eval
        clip_samples = round(ev.clip_seconds * self.sample_rate)
        wav = torch.from_numpy(eval_clips(self.val_arrays, ev.num_clips, clip_samples)).to(device)
        was_training = model.training
        model.eval()
        codes = model.encode(wav)
        given = self._band_levels(wav) if self.recipe.loss.band_levels else None
        levels = ev.levels or tuple(range(1, config.num_levels + 1))
        result: dict = {"points": []}
        for num_levels in sorted({min(k, config.num_levels) for k in levels}):
            wav_hat = self._decode(model, codes.keep(num_levels), given)
            point = {
                "levels": num_levels,
                "bitrate": config.bitrates[num_levels - 1],
                **self._scores(wav, wav_hat),
            }
            result["points"].append(point)
        result["val_mel"] = result["points"][-1]["mel"]
        result["val_si_sdr"] = result["points"][-1]["si_sdr"]
        result["val_chroma"] = result["points"][-1]["chroma"]
        result.update(self._decoder_health(model, wav))
        model.train(was_training)
        plots.plot_spectrograms(
            wav[0, 0].cpu().numpy(),
            wav_hat[0, 0].cpu().numpy(),
            self.sample_rate,
            run_dir / "spectrogram.png",
            f"{config.bitrates[num_levels - 1] / 1000:g} kbps, step {step}",
        )
        if self.last_usage:
            plots.plot_usage(
                [float(u) for u in self.last_usage],
                [float(p) for p in self.last_perplexity],
                config.codebook_size,
                run_dir / "usage.png",
            )
        return result

    def _band_span_frames(self) -> int:
        """Frames per band-level span of ``loss.band_levels``, as compress sends them."""
        config = self.model.config
        seconds = band_levels.RESOLUTIONS[self.recipe.loss.band_levels][1]
        blocks = max(1, round(seconds * config.sample_rate / config.block_samples))
        return blocks * config.level_strides[0]

    def _band_levels(self, wav: Tensor) -> list[band_levels.BandLevels]:
        """Each clip's band levels at ``loss.band_levels``, as compress would send them."""
        config = self.model.config
        per_block = config.level_strides[0]
        span = self._band_span_frames() // per_block
        edges = band_levels.band_edges(config.sample_rate, self.recipe.loss.band_levels)
        spans = band_levels.spans(0, -(-wav.shape[-1] // config.block_samples), span)
        return [
            band_levels.BandLevels(
                band_levels.measure(
                    clip.cpu(), config.sample_rate, config.hop_length, per_block, edges, spans
                ),
                spans,
                edges,
                per_block,
            )
            for clip in wav
        ]

    @staticmethod
    def _decode(model: Codec, codes, given: list | None) -> Tensor:
        """The decode of ``codes``; with ``given`` band levels clip by clip (a decode applies one
        file's levels)."""
        if given is None:
            return model.decode(codes).float()
        out = []
        for i, levels in enumerate(given):
            item = Codes([c[i : i + 1] for c in codes.levels], codes.strides, codes.num_samples)
            out.append(model.decode(item, levels).float())
        return torch.cat(out)

    def _scores(self, wav: Tensor, wav_hat: Tensor) -> dict[str, float]:
        """Mel distance, SI-SDR, chroma correlation and its time-shifted control, and the output
        level 20 log10(rms(decoded) / rms(input)) in dB (negative: too quiet), clip-averaged."""
        ref, dec = wav.cpu().numpy(), wav_hat.cpu().numpy()
        rate = self.sample_rate
        return {
            "mel": float(self.mel_distance(wav_hat, wav)),
            "si_sdr": float(np.mean([si_sdr(r, d) for r, d in zip(ref, dec)])),
            "chroma": float(np.mean([chroma_correlation(r, d, rate) for r, d in zip(ref, dec)])),
            "chroma_control": float(
                np.mean([chroma_correlation(r, d, rate, True) for r, d in zip(ref, dec)])
            ),
            "level_db": float(np.mean([level_difference(r, d) for r, d in zip(ref, dec)])),
        }

    def _decoder_health(self, model: Codec, wav: Tensor) -> dict[str, float]:
        """Does the decoder use its input? Scores of decode(true latent) with the quantizer
        bypassed, against decode(zero latent) and decode(latent shuffled in time)."""
        z = model.latent(wav)
        length = wav.shape[-1]
        order = torch.randperm(z.shape[-1], generator=torch.Generator().manual_seed(0))
        out = {}
        for name, latent in (
            ("bypass", z),
            ("zero", torch.zeros_like(z)),
            ("shuffled", z[..., order.to(z.device)]),
        ):
            scores = self._scores(wav, model.decode_latent(latent, length).float())
            out[f"{name}_mel"], out[f"{name}_chroma"] = scores["mel"], scores["chroma"]
        return out

    @staticmethod
    def describe_eval(result: dict) -> str:
        points = "; ".join(
            f"{p['bitrate'] / 1000:g} kbps mel {p['mel']:.3f} chroma {p['chroma']:.2f} "
            f"(control {p['chroma_control']:.2f}) si-sdr {p['si_sdr']:.2f} dB "
            f"level {p['level_db']:+.2f} dB"
            for p in result.get("points", [])
        )
        if "bypass_chroma" in result:
            points += (
                f"; unquantized chroma {result['bypass_chroma']:.2f} "
                f"mel {result['bypass_mel']:.3f}, zero latent mel {result['zero_mel']:.3f}, "
                f"shuffled mel {result['shuffled_mel']:.3f}"
            )
        return points

    def save(self, model: Codec, path: Path) -> str:
        return save_codec(model, path)
