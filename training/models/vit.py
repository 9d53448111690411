"""A Vision Transformer written from scratch: patch embedding, class token, pre-norm blocks, linear head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.models import Hparams, register_model


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (fused kernels, exports at opset 18)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape[0], x.shape[1], self.dim  # C as a Python int: the ONNX trace keeps B and T dynamic
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class MLP(nn.Module):
    """Two linear layers with GELU between them."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    """Patches of `patch` px -> tokens, a class token and learned positions, `depth` blocks, a linear head."""

    def __init__(
        self,
        *,
        dim: int = 64,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        patch: int = 4,
        dropout: float = 0.0,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch={patch} must divide image_size={image_size}")
        tokens = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)  # one linear map per non-overlapping patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth)))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # Small truncated-normal weights, as in the ViT paper; PyTorch's default Linear init trains slower here.
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, 10) scores."""
        x = self.patch_embed((x - 0.1307) / 0.3081)  # (B, C, H/p, W/p); MNIST mean/std
        x = x.flatten(2).transpose(1, 2)  # (B, T, C)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, C)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, T+1, C)
        x = self.ln(self.blocks(x))
        return self.head(x[:, 0])  # (B, 10) from the class token


@register_model(
    "vit",
    summary="Vision Transformer (from scratch): 7x7 patches on a CPU, 4x4 on a GPU; pre-norm blocks, SDPA attention",
    profiles={
        "smoke": Hparams(
            epochs=1,
            batch_size=64,
            lr=1e-3,
            train_subset=512,
            eval_subset=256,
            build={"dim": 32, "depth": 2, "heads": 2, "patch": 7},
        ),
        # 7x7 patches (16 tokens) and a wider model learn faster per CPU second than 4x4 patches with dim 64.
        # 18 epochs, not 10: +2.2 and +3.0 points of dev at training seeds 0 and 1 for 4-5 more minutes
        # (reports/generalisation/cpu-vit-epochs; the faint photos flat, the bubble outlines lower).
        "cpu": Hparams(
            epochs=18,
            batch_size=128,
            lr=2e-3,
            weight_decay=0.05,
            build={"dim": 128, "depth": 6, "heads": 4, "mlp_ratio": 2.0, "patch": 7},
        ),
        "gpu": Hparams(
            epochs=30,
            batch_size=256,
            lr=1e-3,
            weight_decay=0.05,
            label_smoothing=0.1,
            build={"dim": 192, "depth": 8, "heads": 6, "mlp_ratio": 2.0, "patch": 4, "dropout": 0.1},
        ),
    },
)
def vit(
    *,
    dim: int = 64,
    depth: int = 6,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    patch: int = 4,
    dropout: float = 0.0,
) -> nn.Module:
    """Build the ViT."""
    return ViT(dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, patch=patch, dropout=dropout)
