"""Evaluation of trained avatars (``thgs eval``) and the ablation report (``thgs report``)."""

from thgs.evaluation.evaluate import EvalOptions, EvalResult, evaluate_avatar, write_eval

__all__ = ["EvalOptions", "EvalResult", "evaluate_avatar", "write_eval"]
