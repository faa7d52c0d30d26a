"""The avatar: canonical 3D Gaussians bound to a body model, skinning-weight grids, LEB and SAAM."""

from thgs.avatar.gaussians import InitOptions
from thgs.avatar.leb import LearnableExpressionBlendshapes
from thgs.avatar.model import AvatarOptions, AvatarOutput, FrameInputs, THGSAvatar
from thgs.avatar.saam import SAAM
from thgs.avatar.skinning_grid import SkinningGrid
from thgs.avatar.state import GaussianState

__all__ = ["AvatarOptions", "AvatarOutput", "FrameInputs", "GaussianState", "InitOptions",
           "LearnableExpressionBlendshapes", "SAAM", "SkinningGrid", "THGSAvatar"]
