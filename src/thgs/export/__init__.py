"""Exporting trained avatars to exchange formats (3DGS PLY)."""
