"""`python -m train.export CHECKPOINT --output HF_DIR`: a trainer checkpoint as a Hugging Face directory.

CHECKPOINT is a `checkpoints/step-NNNNNNN` directory or a run directory (its latest checkpoint). The
checkpoint's sharded state is gathered in one process; the tokenizer files come from RUN/tokenizer
(the shards' tokenizer the run trained on), the special ids from the checkpoint's meta (the manifest's).
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from train.build import materialize
from train.checkpoint import latest_checkpoint, load_checkpoint, read_meta
from train.hf import save_hf
from train.model import ModelConfig, Transformer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(
            f"{path}: neither a checkpoint (meta.json) nor a run directory with checkpoints"
        )
    return latest


def load_model(checkpoint: str | Path) -> tuple[Transformer, dict]:
    """The checkpoint's model, unsharded, fp32, on CPU. Built on the meta device: the checkpoint
    overwrites every parameter, so a random init would be time spent for nothing."""
    checkpoint = resolve_checkpoint(checkpoint)
    meta = read_meta(checkpoint)
    with torch.device("meta"):
        model = Transformer(ModelConfig(**meta["model"]))
    materialize(model, "cpu")
    load_checkpoint(checkpoint, model, None)
    return model, meta


def export(checkpoint: str | Path, output: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    checkpoint = resolve_checkpoint(checkpoint)
    model, meta = load_model(checkpoint)
    tokenizer_dir = checkpoint.parent.parent / "tokenizer"
    return save_hf(
        output,
        model.cfg,
        model.state_dict(),
        tokenizer_dir if tokenizer_dir.is_dir() else None,
        eos_id=meta.get("eos_id"),
        pad_id=meta.get("pad_id"),
        bos_id=meta.get("bos_id"),
        dtype=dtype,
    )


def main(
    checkpoint: Path = typer.Argument(..., help="checkpoints/step-NNNNNNN directory, or a run directory"),
    output: Path = typer.Option(..., "--output", "-o", help="Hugging Face directory to write"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16"),
) -> None:
    """Export a trainer checkpoint to a directory that transformers.AutoModelForCausalLM loads."""
    if dtype not in DTYPES:
        raise typer.BadParameter(f"--dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    out = export(checkpoint, output, DTYPES[dtype])
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
