"""The avatar: canonical 3D Gaussians bound to a body model, skinning-weight grids, LEB and SAAM."""
