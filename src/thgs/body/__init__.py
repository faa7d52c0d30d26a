"""Parametric body models behind one abstraction (:class:`thgs.body.model.BodyModel`)."""

from thgs.body.model import BodyModel, BodyOutput, MouthDefinition

__all__ = ["BodyModel", "BodyOutput", "MouthDefinition"]
