"""The project's own trainer checkpoints as a `Scorer`, loaded by the trainer's code (train.export.load_model):
no second model definition lives in eval/. The tokenizer is the run's RUN/tokenizer directory."""

from __future__ import annotations

from pathlib import Path

from eval.models import Scorer, module_scorer, pick_device, place, torch_dtype


def load_tokenizer(tokenizer_dir: str | Path):
    """The run's tokenizer (tokenizer.json + tokenizer_config.json written by the trainer)."""
    from transformers import AutoTokenizer

    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{tokenizer_dir}: no tokenizer.json (the trainer writes RUN/tokenizer)")
    return AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)


def load_trainer_checkpoint(path: str | Path, device: str = "auto", dtype: str = "float32") -> Scorer:
    """A `checkpoints/step-NNNNNNN` directory or a run directory (its latest checkpoint)."""
    from train.export import load_model, resolve_checkpoint
    from train.model import num_params

    checkpoint = resolve_checkpoint(path)
    model, meta = load_model(checkpoint)
    tokenizer = load_tokenizer(checkpoint.parent.parent / "tokenizer")
    torch_device = pick_device(device)
    place(model, torch_device, torch_dtype(dtype))
    info = {"step": meta.get("step"), "tokens": meta.get("tokens"), "params": num_params(model)}
    return module_scorer(
        model, tokenizer, model.cfg.max_seq_len, torch_device, str(checkpoint), "trainer", info
    )
