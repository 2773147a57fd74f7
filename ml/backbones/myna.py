"""Myna-Vertical: the Myna authors' SimpleViT over 128×2 mel patches, rebuilt so their released checkpoint loads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from nnAudio.features import MelSpectrogram
from torch import Tensor, nn

from ml.audio import split_windows
from ml.backbones.base import SAMPLE_RATE, Backbone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MynaConfig:
    """The published Myna-Vertical shape (ViT-S: 22M parameters) and its mel front end."""

    n_mels: int = 128
    patch_height: int = 128
    patch_width: int = 2
    dim: int = 384
    depth: int = 12
    heads: int = 6
    dim_head: int = 64
    mlp_dim: int = 1536
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512

    def __post_init__(self) -> None:
        if self.n_mels % self.patch_height:
            raise ValueError(
                f"n_mels ({self.n_mels}) must be a multiple of patch_height ({self.patch_height})"
            )
        if self.dim % 4:
            raise ValueError(
                f"dim ({self.dim}) must be a multiple of 4 for the 2-D sin-cos position embedding"
            )


class MynaCheckpointError(ValueError):
    """A Myna checkpoint that is missing, unreadable or does not fit the model; the message says which file."""


# --- the transformer (module names follow vit-pytorch so the authors' state_dict keys match) ---------


def posemb_sincos_2d(*, rows: int, cols: int, dim: int, temperature: float = 10_000.0) -> Tensor:
    """Fixed 2-D sin-cos position embedding of a rows×cols patch grid, shape (rows*cols, dim), row-major.

    The layout (column sin, column cos, row sin, row cos; frequencies spaced so the last is 1/temperature)
    is the one Myna was trained with; any other layout would silently break the released weights.
    """
    row, col = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    quarter = dim // 4
    omega = temperature ** -(torch.arange(quarter) / (quarter - 1))
    row_angle = row.flatten()[:, None] * omega[None, :]
    col_angle = col.flatten()[:, None] * omega[None, :]
    return torch.cat((col_angle.sin(), col_angle.cos(), row_angle.sin(), row_angle.cos()), dim=1).float()


class Attention(nn.Module):
    """Pre-norm multi-head self-attention without biases, as in SimpleViT."""

    def __init__(self, *, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        q, k, v = self.to_qkv(self.norm(tokens)).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        # Same maths as softmax(q kᵀ / sqrt(d)) v, but fused: flash/memory-efficient kernels on GPU.
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(attended, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        return self.net(tokens)


class Transformer(nn.Module):
    def __init__(self, *, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        # Myna's variant ends with this LayerNorm (vit-pytorch's original SimpleViT does not).
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Attention(dim=dim, heads=heads, dim_head=dim_head),
                    FeedForward(dim=dim, hidden_dim=mlp_dim),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        for attention, feed_forward in self.layers:
            tokens = attention(tokens) + tokens
            tokens = feed_forward(tokens) + tokens
        return self.norm(tokens)


class SimpleViT(nn.Module):
    """Mel spectrogram (batch, 1, n_mels, frames) → mean-pooled embedding (batch, dim).

    The position embedding is computed for the input's own patch grid, so any number of frames that is
    a multiple of `patch_width` works (100k- and 200k-sample windows alike). There is no `linear_head`:
    we only ever want the embedding.
    """

    def __init__(self, *, config: MynaConfig) -> None:
        super().__init__()
        self.config = config
        patch_dim = config.patch_height * config.patch_width  # one input channel
        self.to_patch_embedding = nn.Sequential(
            Rearrange(
                "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=config.patch_height, p2=config.patch_width
            ),
            nn.LayerNorm(patch_dim),
            nn.Linear(patch_dim, config.dim),
            nn.LayerNorm(config.dim),
        )
        self.transformer = Transformer(
            dim=config.dim,
            depth=config.depth,
            heads=config.heads,
            dim_head=config.dim_head,
            mlp_dim=config.mlp_dim,
        )
        # Not a buffer: it is not in the authors' checkpoint and it depends on the input's size.
        self._position_cache: dict[tuple[int, int, torch.device], Tensor] = {}

    def _position_embedding(self, rows: int, cols: int, device: torch.device) -> Tensor:
        key = (rows, cols, device)
        if key not in self._position_cache:
            table = posemb_sincos_2d(rows=rows, cols=cols, dim=self.config.dim)
            self._position_cache[key] = table.to(device)
        return self._position_cache[key]

    def patch_tokens(self, spectrogram: Tensor) -> Tensor:
        """Patch embeddings plus positions, (batch, n_patches, dim), before the transformer."""
        config = self.config
        n_mels, n_frames = spectrogram.shape[-2:]
        if spectrogram.dim() != 4 or spectrogram.shape[1] != 1 or n_mels != config.n_mels:
            raise ValueError(
                f"expected a spectrogram of shape (batch, 1, {config.n_mels}, frames), got {tuple(spectrogram.shape)}"
            )
        if n_frames % config.patch_width:
            raise ValueError(f"frames ({n_frames}) must be a multiple of patch_width ({config.patch_width})")
        tokens = self.to_patch_embedding(spectrogram)
        positions = self._position_embedding(
            n_mels // config.patch_height, n_frames // config.patch_width, tokens.device
        )
        return tokens + positions.to(tokens.dtype)

    def forward(self, spectrogram: Tensor) -> Tensor:
        return self.transformer(self.patch_tokens(spectrogram)).mean(dim=1)


class MynaVertical(nn.Module):
    """Audio windows (batch, samples) at 16 kHz → embeddings (batch, dim): nnAudio mel front end + SimpleViT."""

    def __init__(self, *, config: MynaConfig) -> None:
        super().__init__()
        self.config = config
        self.mel = MelSpectrogram(
            sr=config.sample_rate,
            n_fft=config.n_fft,
            n_mels=config.n_mels,
            hop_length=config.hop_length,
            verbose=False,
        )
        self.vit = SimpleViT(config=config)

    def n_frames(self, n_samples: int) -> int:
        """Frames the ViT sees for a window: the centred STFT's frame count, cut to whole patches."""
        frames = n_samples // self.config.hop_length + 1
        return frames - frames % self.config.patch_width

    def spectrogram(self, audio: Tensor) -> Tensor:
        """Mel power spectrogram (batch, 1, n_mels, frames), float32, trailing odd frame dropped.

        No log and no normalisation: the authors fed nnAudio's output as it is (their example.py;
        `--log_mel` was off), and the patch LayerNorm rescales each patch anyway.
        """
        # Power spectra of loud audio overflow float16, so the front end always runs in float32.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mel = self.mel(audio.float())
        return mel[:, None, :, : self.n_frames(audio.shape[-1])]

    def forward(self, audio: Tensor) -> Tensor:
        return self.vit(self.spectrogram(audio))


# --- checkpoints ----------------------------------------------------------------------------------------


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, Tensor]:
    if isinstance(loaded, dict):
        for wrapper_key in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper_key), dict):
                loaded = loaded[wrapper_key]
                break
    if not isinstance(loaded, dict) or not loaded:
        raise MynaCheckpointError(f"{path} holds no state_dict (found {type(loaded).__name__})")
    not_tensors = sorted(str(key) for key, value in loaded.items() if not isinstance(value, Tensor))
    if not_tensors:
        raise MynaCheckpointError(
            f"{path} is not a bare state_dict: entries that are not tensors: {not_tensors}"
        )
    return loaded


def load_myna_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The SimpleViT weights in a Myna checkpoint: 'module.' prefixes stripped, `linear_head.*` dropped.

    Accepts the authors' file (a bare state_dict saved with torch.save) or a dict holding it under
    'state_dict' or 'model'. Loads with `weights_only=True`, so a file cannot run code on load.
    """
    path = Path(path)
    if not path.is_file():
        raise MynaCheckpointError(
            f"Myna checkpoint {path} does not exist; download the Myna-Vertical checkpoint released by the "
            "Myna authors and point the configuration at it"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean the same to the user
        raise MynaCheckpointError(
            f"could not read Myna checkpoint {path}: {error}. The file is damaged, truncated or not a "
            "PyTorch checkpoint of tensors; download it again"
        ) from error
    state_dict = {}
    for key, value in _unwrap_state_dict(loaded, path).items():
        key = key.removeprefix("module.")  # saved from a DistributedDataParallel wrapper
        if not key.startswith("linear_head."):  # the pre-training projection; embeddings come before it
            state_dict[key] = value
    return state_dict


def _check_fits(state_dict: dict[str, Tensor], model: nn.Module, path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    mismatched = [
        f"{key}: expected {tuple(expected[key].shape)}, found {tuple(state_dict[key].shape)}"
        for key in sorted(expected.keys() & state_dict.keys())
        if expected[key].shape != state_dict[key].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"Myna checkpoint {path} does not fit the Myna-Vertical model:"]
    for title, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", mismatched),
    ):
        if items:
            lines.append(f"  {title} ({len(items)}):")
            lines.extend(f"    {item}" for item in items)
    lines.append(
        "Is it the Myna-Vertical checkpoint (128×2 patches, ViT-S)? Myna-Base and Myna-Hybrid differ."
    )
    raise MynaCheckpointError("\n".join(lines))


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_myna(
    *,
    checkpoint_path: str | Path | None,
    config: MynaConfig = MynaConfig(),
    device: str | torch.device | None = None,
) -> MynaVertical:
    """Mel front end + SimpleViT with the checkpoint's weights, frozen, in eval mode, on `device`.

    `checkpoint_path=None` gives random weights: only for tests and plumbing, never for real embeddings.
    """
    model = MynaVertical(config=config)
    if checkpoint_path is None:
        logger.warning("Myna-Vertical built with random weights (no checkpoint); %s", asdict(config))
    else:
        path = Path(checkpoint_path)
        state_dict = load_myna_state_dict(path)
        _check_fits(state_dict, model.vit, path)
        model.vit.load_state_dict(state_dict)
    model.requires_grad_(False)
    return model.eval().to(resolve_device(device))


# --- the backbone --------------------------------------------------------------------------------------

CPU_BATCH_SIZE = 8
MAX_GPU_BATCH_SIZE = 1024


def _window_batches(window_sets: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Windows of many tracks, in order, regrouped into batches of at most `batch_size` rows."""
    pending: list[np.ndarray] = []
    n_pending = 0
    for windows in window_sets:
        start = 0
        while start < len(windows):
            take = min(batch_size - n_pending, len(windows) - start)
            pending.append(windows[start : start + take])
            n_pending += take
            start += take
            if n_pending == batch_size:
                yield np.concatenate(pending)
                pending, n_pending = [], 0
    if pending:
        yield np.concatenate(pending)


class MynaVerticalBackbone(Backbone):
    """Myna-Vertical embeddings of fixed-length windows (100k samples ≈ 6 s, as KeyMyna uses for GiantSteps).

    `config` (keyword, an addition to the brief's signature) exists so tests can use a small model.
    """

    name = "myna_vertical"
    embedding_dim = 384
    cyclic_transposition = False

    def __init__(
        self,
        *,
        checkpoint_path: str | Path | None,
        window_samples: int = 100_000,
        hop_samples: int | None = None,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        config: MynaConfig = MynaConfig(),
    ) -> None:
        if window_samples < config.n_fft:
            raise ValueError(f"window_samples ({window_samples}) must be at least n_fft ({config.n_fft})")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.window_samples = window_samples
        # None keeps ml.audio's windowing policy (half-window hop), shared by every backbone.
        self.hop_samples = hop_samples
        self.device = resolve_device(device)
        self.embedding_dim = config.dim
        self.model = build_myna(checkpoint_path=checkpoint_path, config=config, device=self.device)
        self._batch_size = batch_size

    def batch_size(self) -> int:
        """Windows per forward pass: as given, a modest fixed size on CPU, or what fits in free GPU memory."""
        if self._batch_size is not None:
            return self._batch_size
        if self.device.type != "cuda":
            return CPU_BATCH_SIZE
        free_bytes, _ = torch.cuda.mem_get_info(self.device)
        return int(np.clip(free_bytes // 2 // self._bytes_per_window(), 1, MAX_GPU_BATCH_SIZE))

    def _bytes_per_window(self) -> int:
        # A generous upper bound on what one window holds at the peak, so the estimate errs small.
        config = self.model.config
        frames = self.window_samples // config.hop_length + 1
        n_tokens = frames // config.patch_width * (config.n_mels // config.patch_height)
        stft = 6 * (config.n_fft // 2 + 1) * frames * 4  # float32 real, imaginary, magnitude and temporaries
        attention_scores = config.heads * n_tokens * n_tokens * 4  # if no fused attention kernel applies
        activations = n_tokens * (8 * config.dim + 2 * config.mlp_dim) * 4
        return 2 * (4 * self.window_samples + stft + attention_scores + activations)

    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        return self.window_embeddings_batch([audio])[0]

    @torch.inference_mode()
    def window_embeddings_batch(self, tracks: list[np.ndarray]) -> list[np.ndarray]:
        if not tracks:
            return []
        windows_per_track: list[int] = []

        def window_sets() -> Iterator[np.ndarray]:
            # Lazily, so only about one batch of windows is held in memory at a time.
            for audio in tracks:
                windows = split_windows(
                    audio, window_samples=self.window_samples, hop_samples=self.hop_samples
                )
                windows_per_track.append(len(windows))
                yield windows

        on_gpu = self.device.type == "cuda"
        embeddings = []
        for batch in _window_batches(window_sets(), self.batch_size()):
            audio = torch.from_numpy(batch).to(self.device, non_blocking=True)
            # float16 on GPU; the mel front end stays float32 inside MynaVertical.spectrogram.
            with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=on_gpu):
                embeddings.append(self.model(audio).float().cpu().numpy())
        return np.split(np.concatenate(embeddings), np.cumsum(windows_per_track)[:-1])
