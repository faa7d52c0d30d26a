"""From a raw video to a trainable subject: person masks, 2D keypoints and the body-model fit (FMA).

``thgs prepare`` runs these stages on a subject written by ``thgs ingest``. The keypoint layout every
stage shares is defined in :mod:`thgs.prepare.layout`.
"""
